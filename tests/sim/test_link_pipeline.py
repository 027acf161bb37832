"""The pipelined driver on the accelerator RTL: bit-exact with the golden model, faster than batch by
batch, and correct when frames are damaged on the way (go-back-N resends).

Random networks and inputs (seeds logged) on the ``small`` build, through ``sim.rtl.session`` with
the byte-pipe front end (the real driver, link, frame decoder and executor).
"""

from pathlib import Path

import numpy as np
import pytest

from boards.core_presets import SMALL
from sim.golden.model import run_network
from sim.rtl.runner import require_simulator

pytest.importorskip("cocotbext.uart", reason="cocotbext-uart (dev extra) is not installed")

BUILD = Path(__file__).resolve().parents[2] / "build" / "tests"


def _case(rng):
    from sim.tb.random_nets import random_network

    net = random_network(rng, SMALL, max_depth=3)
    x = rng.integers(0, 1 << net.T, (3 * SMALL.batch_depth - 1, net.n_in))  # 3 batches
    return net, x


def test_pipelined_infer_bit_exact_and_faster(rng):
    require_simulator("verilator")
    from sim.rtl.session import run_on_rtl

    net, x = _case(rng)
    golden = run_network(net, x).output
    new = run_on_rtl(net, x, SMALL, build_dir=BUILD)
    old = run_on_rtl(net, x, SMALL, build_dir=BUILD, pipeline=False)
    print(f"{len(x)} samples: pipelined {new.infer_cycles} cycles, batch by batch "
          f"{old.infer_cycles} cycles")
    assert np.array_equal(new.outputs, golden)
    assert np.array_equal(old.outputs, golden)
    for field in ("spikes", "cycles", "skipped", "total_cycles"):
        assert np.array_equal(getattr(new, field), getattr(old, field)), field
    assert len(new.total_cycles) == 3
    assert new.resends == old.resends == 0
    assert new.infer_cycles < old.infer_cycles


def test_pipelined_infer_resends_damaged_frames(rng):
    require_simulator("verilator")
    from sim.rtl.session import run_on_rtl

    net, x = _case(rng)
    corrupt = sorted(int(i) for i in rng.choice(np.arange(1, 16), 3, replace=False))
    print("damaged frames:", corrupt)
    run = run_on_rtl(net, x, SMALL, build_dir=BUILD, corrupt=corrupt)
    assert np.array_equal(run.outputs, run_network(net, x).output)
    assert run.resends >= len(corrupt)
