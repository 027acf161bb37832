"""The dense gateware meets a real conv program image: it refuses it with BAD_KIND (nothing
runs), and a dense image loaded after it runs bit-exactly."""

import numpy as np
from test_hw_core_pysim import P, PyBus

from hw.contract import registers
from hw.contract.errors import ErrorCode
from hw.core.core import SpikePackCore
from sim.golden import model as golden
from sim.golden.ir import IntLayer, IntNetwork
from sim.tb.random_nets import random_inputs, random_network
from sw.compile import program_image as img


def test_core_refuses_a_conv_image_then_runs_dense(rng):
    conv = IntLayer(weight=rng.integers(-3, 4, size=(4, 2, 3, 3)), bias=np.zeros(4, int),
                    theta=5, kind="conv", in_shape=(2, 2, 2), padding=1)
    fc = IntLayer(weight=rng.integers(-3, 4, size=(3, 16)), bias=np.zeros(3, int), theta=1,
                  readout=True)
    conv_net = IntNetwork((conv, fc), T=3)
    conv_x = rng.integers(0, 8, size=(1, 2, 2, 2))
    dense_net = random_network(rng, P, max_depth=2)
    dense_x = random_inputs(rng, dense_net, 2)
    dut = SpikePackCore(P)
    pb = PyBus(dut, 3, 0.1)
    results = []

    async def host(ctx):
        await pb.load(ctx, conv_net, conv_x, P)
        results.append(await pb.run(ctx, 1))
        image = await pb.load(ctx, dense_net, dense_x, P)
        results.append(await pb.run(ctx, 2))
        results.append(await pb.read_outputs(ctx, image, 2))
        pb.finished = True

    pb.simulate(host)
    refused, done, out = results
    assert refused & registers.STATUS_ERROR and refused >> 8 == ErrorCode.BAD_KIND, hex(refused)
    assert done == registers.STATUS_DONE
    assert np.array_equal(out, golden.run_network(dense_net, dense_x, acc_bits=P.acc_bits).output)
    assert img.build_image(conv_net, P).layers[0].kind == 1
