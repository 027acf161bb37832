"""Build parameters, the memory map, identify, and sw.compile.program_image (layout, refusals,
encodings)."""

import dataclasses

import numpy as np
import pytest

from boards import BOARDS, CORE_PRESETS, SMALL
from boards.arty_a7 import ARTY_A7_PARAMS as ARTY_A7
from hw.contract import bus
from hw.contract.memory_map import (
    as_identified,
    decode_descriptor,
    descriptor_layout,
    encode_descriptor,
    identify_words,
    identity_mismatch,
    memory_map,
    params_from_identify,
)
from hw.contract.params import CoreParams
from sim.golden.ir import IntLayer, IntNetwork, Mode
from sw.compile.program_image import (
    DoesNotFitError,
    batch_outputs,
    build_image,
    decode_outputs,
    encode_inputs,
    input_block_words,
    output_addresses,
    output_range,
)


def _net(rng, sizes, T=4, wmax=127, **kw):
    layers = [IntLayer(rng.integers(-wmax - 1, wmax + 1, (b, a)), rng.integers(-9, 9, b), 5, **kw)
              for a, b in zip(sizes, sizes[1:], strict=False)]
    return IntNetwork(tuple(layers), T)


@pytest.mark.parametrize("kw,err", [
    ({"n_pe": 3}, ValueError), ({"k": 6}, ValueError), ({"n_pe": 4, "k": 8}, ValueError),
    ({"t_max": 4}, ValueError), ({"acc_bits": 40}, ValueError), ({"weight_bits": 4}, ValueError),
    ({"fire_units": 3}, ValueError), ({"fire_units": 16}, ValueError),
    ({"fire_units": 8}, ValueError), ({"lif": 2}, ValueError), ({"weight_regs": 3}, ValueError),
    ({"bank_passes": 3}, ValueError), ({"bank_passes": 8}, ValueError),
    ({"planes_per_beat": 3}, ValueError), ({"planes_per_beat": 8}, ValueError),
    ({"n_pe": 2.0}, TypeError), ({"batch_depth": True}, TypeError), ({"bt_depth": 4}, ValueError),
])
def test_params_refuse(kw, err):
    args = {"n_pe": 8, "k": 4} | kw
    with pytest.raises(err):
        CoreParams(**args)


def test_arty_preset_is_256_adds_per_cycle():
    assert ARTY_A7.synapses_per_cycle >= 256
    for p in CORE_PRESETS.values():
        assert p == CoreParams(**{f: getattr(p, f) for f in p.__dataclass_fields__})


@pytest.mark.parametrize("name", sorted(CORE_PRESETS))
def test_memory_map_regions_disjoint_aligned(name):
    p = CORE_PRESETS[name]
    mm = memory_map(p)
    spans = sorted((r.base, r.base + r.span, r.name) for r in mm.regions)
    assert spans[0][0] >= bus.REGIONS_BASE
    for (_a0, a1, _), (b0, _, _) in zip(spans, spans[1:], strict=False):
        assert a1 <= b0
    for r in mm.regions:
        assert r.base % r.span == 0 and r.size <= r.span
    assert mm.end <= 1 << bus.ADDR_BITS
    words = identify_words(p)
    assert words[0] == bus.ID_MAGIC and params_from_identify(words) == as_identified(p)
    # The host's map from the identify reply is the build's (the fields identify leaves out
    # change timing, not addresses).
    assert memory_map(params_from_identify(words)).regions == mm.regions


def test_descriptor_round_trip(rng):
    assert descriptor_layout().size == 256
    for _ in range(50):
        fields = {"lif": int(rng.integers(0, 2)), "T": int(rng.integers(1, 17)),
                  "n_in": int(rng.integers(0, 65536)), "w_base": int(rng.integers(0, 1 << 32)),
                  "leak": int(rng.integers(0, 16)), "theta": int(rng.integers(0, 1 << 32))}
        d = decode_descriptor(encode_descriptor(**fields))
        assert {k: d[k] for k in fields} == fields
    with pytest.raises(ValueError):
        encode_descriptor(T=32)


def test_refuses_what_does_not_fit(rng):
    p = SMALL
    with pytest.raises(DoesNotFitError, match="max_layers"):
        build_image(_net(rng, [4] * (p.max_layers + 2)), p)
    with pytest.raises(DoesNotFitError, match="t_max"):
        build_image(_net(rng, [4, 4], T=p.t_max + 1), p)
    with pytest.raises(DoesNotFitError, match=f"at most {p.max_neurons} neurons"):
        build_image(_net(rng, [p.max_neurons + 1, 4]), p)
    with pytest.raises(DoesNotFitError, match="weight_depth"):
        build_image(_net(rng, [p.max_neurons] * 6), p)
    big = CoreParams(n_pe=8, k=4, acc_bits=16, act_chunks=64, weight_depth=1024)
    with pytest.raises(DoesNotFitError, match="16 bits"):
        build_image(_net(rng, [256, 8], T=8), big)
    layer = IntLayer(np.ones((2, 2), int), [0, 0], 1 << 30)
    with pytest.raises(DoesNotFitError, match="theta"):
        build_image(IntNetwork((layer,), 4), p)
    with pytest.raises(DoesNotFitError, match="batch_depth"):
        im = build_image(_net(rng, [4, 4]), p)
        encode_inputs(im, np.zeros((p.batch_depth + 1, 4), int))
    assert issubclass(DoesNotFitError, ValueError)


BUILDS = {**CORE_PRESETS, **{name: board.params for name, board in BOARDS.items()}}


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_a_device_takes_the_images_compiled_for_its_preset(name, rng):
    """What the driver and the CLI check before an upload: a device of a preset identifies with
    the timing-only fields at their defaults (arty_a7: fetch_queue=16, seq_prefetch=1, ...), and
    must still take an image compiled for that preset (`spikepack compile --board arty_a7`). A
    build that differs in an identified field is refused, the field named."""
    p = BUILDS[name]
    device = params_from_identify(identify_words(p))
    assert identity_mismatch(device, p) is None
    assert identity_mismatch(p, device) is None
    timing = {f: getattr(p, f) for f in ("fetch_queue", "seq_prefetch", "weight_regs")}
    assert identity_mismatch(device, build_image(_net(rng, [8, 8]), p).params) is None, timing
    other = dataclasses.replace(p, batch_depth=p.batch_depth * 2)
    assert identity_mismatch(device, other) == (
        f"batch_depth {2 * p.batch_depth} -> {p.batch_depth}")


def test_spikepack_only_build_refuses_lif_layers(rng):
    """A build without the LIF datapath (lif=0) takes SpikePack networks and refuses LIF ones,
    saying which build would take them."""
    p = CoreParams(n_pe=8, k=4, lif=0)
    build_image(_net(rng, [8, 8]), p)
    with pytest.raises(DoesNotFitError, match="lif=1"):
        build_image(_net(rng, [8, 8], mode=Mode.LIF), p)
    assert params_from_identify(identify_words(p)) == as_identified(p)


def test_image_layout_and_inputs(rng):
    p = SMALL
    net = _net(rng, [37, 20, 9], T=5, mode=Mode.LIF)
    im = build_image(net, p)
    assert [(lay.chunks, lay.passes) for lay in im.layers] == [(10, 3), (5, 2)]
    assert im.layers[1].w_base == 30 and im.layers[1].bt_base == 3
    weights = dict((w.region, w) for w in im.writes)["WEIGHTS"]
    assert len(weights.words) == im.weight_rows * p.weight_row_words
    # Row of (pass 1, chunk 2) of layer 0, PE 3 lane 1 = W[1*8 + 3, 2*4 + 1].
    row = 1 * 10 + 2
    byte_index = 3 * p.k + 1
    word = weights.words[row * p.weight_row_words + byte_index // 4]
    b = (word >> (8 * (byte_index % 4))) & 0xFF
    assert (b - 256 if b >= 128 else b) == net.layers[0].weight[11, 9]
    # Spike blocks: bit q*k + i of block c = bit q of input c*k + i.
    x = rng.integers(0, 32, (2, 37))
    for b, words in enumerate(input_block_words(im, x)):
        bits = [(int(word) >> j) & 1 for word in words.ravel() for j in range(32)]
        for c in range(10):
            for q in range(p.t_max):
                for i in range(p.k):
                    n = c * p.k + i
                    want = (int(x[b, n]) >> q) & 1 if n < 37 else 0
                    assert bits[c * p.block_bits + q * p.k + i] == want
    assert decode_outputs(im, [1, 0xFFFFFFFF] + [0] * 7).tolist() == [[1, 31] + [0] * 7]
    # One READ of a batch's outputs: from sample 0's first output word to the last sample's
    # last, the words between samples (the last layer's passes n_pe slots past n_out) left out.
    base = im.memory_map["OUTPUT"].base
    assert output_range(im, 3) == (base, 2 * im.out_stride + 9)
    words = list(range(1000, 1000 + 2 * im.out_stride + 9))
    picked = batch_outputs(im, 3, words)
    assert picked == [1000 + b * im.out_stride + j for b in range(3) for j in range(9)]
    assert picked == [w - base + 1000 for a, n in output_addresses(im, 3)
                      for w in range(a, a + n)]
    with pytest.raises(ValueError, match="not the"):
        batch_outputs(im, 3, words[:-1])


def test_core_error_codes_have_words():
    """Every sequencer error code has a name and a meaning on the host (sw.host.driver)."""
    from hw.contract.errors import ErrorCode
    from sw.host.driver import core_error_text

    for code in ErrorCode:
        if code is ErrorCode.NONE:
            continue
        text = core_error_text(code << 8 | 0x4)
        assert code.name in text and "unknown" not in text, text
