"""Convolution in the program image: layout, descriptors, fit checks and the image-level golden
model (sw.compile.image_golden.run_image == sim.golden.model.run_network on the IR)."""

import dataclasses
import zlib

import numpy as np
import pytest

from boards import BOARDS, CORE_PRESETS
from hw.contract.memory_map import DESCRIPTOR_FIELDS, decode_descriptor, encode_descriptor
from sim.golden.ir import NETWORK_INPUT, IntLayer, IntNetwork, MaxPool, Mode, Reset, Residual
from sim.golden.model import run_network
from sim.golden.packing import feature_map_blocks
from sw.compile.conv_layout import conv_fetch, conv_weight_rows, dense_after_conv_weight
from sw.compile.image_file import load_image_file, save_image_file
from sw.compile.image_golden import image_memories, input_memory, run_image
from sw.compile.input_fold import folded_network
from sw.compile.program_image import (
    DoesNotFitError,
    ImageWrite,
    build_image,
    encode_inputs,
    input_block_words,
)
from sw.compile.targets import layer_table, usage_table

PARAMS = {**CORE_PRESETS, **{f"board {n}": b.params for n, b in BOARDS.items()}}


def _layer(rng, shape, c_out, *, kernel, stride=1, padding=0, pool=None, residual=None,
           lif=False, T=4):
    c_in = shape[0]
    w = rng.integers(-6, 7, size=(c_out, c_in, kernel, kernel))
    fan = c_in * kernel * kernel
    theta = rng.integers(1, max(2, 3 * fan), size=c_out) if rng.random() < 0.5 else \
        int(rng.integers(1, max(2, 3 * fan)))
    mode = dict(mode=Mode.LIF, leak_shift=int(rng.integers(0, 3)),
                reset=Reset.ZERO if rng.random() < 0.5 else Reset.SUBTRACT,
                fire_above=bool(rng.random() < 0.5),
                compare_leaked=bool(rng.random() < 0.5)) if lif else {}
    return IntLayer(weight=w, bias=rng.integers(-4 * fan, 4 * fan + 1, size=c_out), theta=theta,
                    kind="conv", in_shape=tuple(shape), stride=stride, padding=padding,
                    pool=pool, residual=residual, **mode)


def _random_conv_net(rng, p):
    """A random conv net that fits ``p`` (kernel 1..5, stride 1..2, padding 0..2, pooling,
    residual, conv -> dense, T 1..8), or None when the draw does not fit."""
    T = int(rng.integers(1, 9))
    lif = bool(p.lif) and rng.random() < 0.3
    side = min(7, 3 + p.act_chunks // 16)  # maps that fit the build's spike memory
    shape = (int(rng.integers(1, 6)), int(rng.integers(3, side + 1)),
             int(rng.integers(3, side + 1)))
    shapes = {NETWORK_INPUT: shape}  # stored output shape of each layer
    layers = []
    for li in range(int(rng.integers(1, 4))):
        c, h, w = shape
        residual = None
        same = [s for s, sh in shapes.items() if sh[1:] == (h, w)]
        if rng.random() < 0.4 and same:
            # A stride-1 "same" conv whose output matches a stored map: a shortcut from it.
            src = int(rng.choice(same))
            kernel = int(rng.choice([1, 3, 5]))
            kernel = kernel if kernel <= min(h, w) + kernel - 1 else 1
            layer_kw = dict(kernel=kernel, padding=(kernel - 1) // 2)
            c_out = shapes[src][0]
            residual = Residual(src, int(rng.choice([-2, -1, 1, 2, 3])))
        else:
            kernel = int(rng.integers(1, 6))
            padding = int(rng.integers(0, 3))
            if kernel > min(h, w) + 2 * padding:
                kernel = 1
            layer_kw = dict(kernel=kernel, padding=padding, stride=int(rng.integers(1, 3)))
            c_out = int(rng.integers(1, 7))
        layer = _layer(rng, shape, c_out, residual=residual, lif=lif, T=T, **layer_kw)
        _, ch, cw = layer.conv_shape
        if residual is None and min(ch, cw) >= 2 and rng.random() < 0.4:
            layer = _layer(rng, shape, c_out, pool=MaxPool(2), lif=lif, T=T, **layer_kw)
        layers.append(layer)
        shape = layer.out_shape
        shapes[li] = shape
    n_in = int(np.prod(shape))
    for _ in range(int(rng.integers(0, 2))):
        n_out = int(rng.integers(2, 20))
        layers.append(IntLayer(weight=rng.integers(-6, 7, size=(n_out, n_in)),
                               bias=rng.integers(-20, 21, size=n_out),
                               theta=int(rng.integers(1, 3 * n_in + 2))))
        n_in = n_out
    readout = rng.random() < 0.7
    n_out = int(rng.integers(2, 12))
    layers.append(IntLayer(weight=rng.integers(-6, 7, size=(n_out, n_in)),
                           bias=rng.integers(-20, 21, size=n_out),
                           theta=int(rng.integers(1, 3 * n_in + 2)), readout=readout))
    net = IntNetwork(tuple(layers), T=T)
    try:
        return net, build_image(net, p)
    except DoesNotFitError:
        return None


def _check_random_conv_nets(p, name, rng, draws):
    # A dense-only build (the iCEBreaker's, conv=0) refuses conv images; the layout in its
    # memories is what is checked here, so lay them out as if it ran conv layers.
    p = dataclasses.replace(p, conv=1)
    built = 0
    seen = set()
    for _ in range(draws):
        drawn = _random_conv_net(rng, p)
        if drawn is None:
            continue
        net, image = drawn
        built += 1
        x = rng.integers(0, 1 << net.T, size=(min(2, p.batch_depth),) + net.in_shape)
        want = run_network(net, x)
        got = run_image(image, x)
        assert (got.output == want.output).all()
        assert (got.spikes == want.spikes_per_layer).all()
        for layer in net.layers:
            seen |= {("pool", layer.pool is not None), ("res", layer.residual is not None),
                     ("mode", layer.mode), ("stride", layer.stride)}
    assert built >= draws // 3, f"only {built} of {draws} random nets fit {name}"
    assert {("pool", True), ("res", True), ("stride", 2)} <= seen
    if p.lif:
        assert ("mode", Mode.LIF) in seen  # LIF conv layers, OR-pooled


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_image_golden_equals_ir_golden_conv(name, rng):
    """Many random conv nets: run_image (memories only) == run_network (IR), bit for bit."""
    _check_random_conv_nets(PARAMS[name], name, rng, 60)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PARAMS))
def test_image_golden_equals_ir_golden_conv_many(name, rng):
    _check_random_conv_nets(PARAMS[name], name, rng, 1000)


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_image_golden_equals_ir_golden_dense(name, rng):
    p = PARAMS[name]
    for _ in range(8):
        T = int(rng.integers(1, 9))
        top = min(p.max_neurons // 2, 48)
        sizes = [int(rng.integers(1, top + 1)) for _ in range(int(rng.integers(2, 4)))]
        layers = [IntLayer(weight=rng.integers(-6, 7, size=(b, a)),
                           bias=rng.integers(-20, 21, size=b),
                           theta=int(rng.integers(1, 3 * a + 2)), readout=(i == len(sizes) - 2))
                  for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True))]
        net = IntNetwork(tuple(layers), T=T)
        x = rng.integers(0, 1 << T, size=(min(3, p.batch_depth), net.n_in))
        got = run_image(build_image(net, p), x)
        assert (got.output == run_network(net, x).output).all()


def _fixed_dense_net():
    rng = np.random.default_rng(1234)
    l1 = IntLayer(weight=rng.integers(-100, 100, size=(40, 30)),
                  bias=rng.integers(-50, 50, size=40), theta=rng.integers(1, 90, size=40))
    l2 = IntLayer(weight=rng.integers(-100, 100, size=(10, 40)),
                  bias=rng.integers(-50, 50, size=10), theta=7, readout=True)
    return IntNetwork((l1, l2), T=5), rng.integers(0, 32, size=(3, 30))


#: CRC-32 of every image word (with addresses) and of the input blocks' words of
#: ``_fixed_dense_net``, so that any later change to dense images shows here. Conv images left
#: dense images as they were (commit ef7b660); the image values are from the change that put the
#: INPUT stride in layer 0's descriptor and gave the Arty preset 256-block halves. The input
#: values are the blocks as INPUT holds them (``input_block_words``: the same words since then);
#: where INPUT has them, lane-major, is ``test_inputs_lane_major``'s.
DENSE_IMAGE_CRC = {"small": (0x9757c83d, 0xce581a15), "medium": (0xad9a6f5e, 0x57d69f21),
                   "arty_a7": (0x170aa775, 0xa61465b7)}


@pytest.mark.parametrize("name", sorted(DENSE_IMAGE_CRC))
def test_dense_image_unchanged(name):
    net, x = _fixed_dense_net()
    img = build_image(net, CORE_PRESETS[name])
    words = [w for wr in img.writes for w in (wr.addr,) + wr.words]
    blocks = input_block_words(img, x).ravel()
    assert (zlib.crc32(np.array(words, dtype=np.uint32).tobytes()),
            zlib.crc32(np.array(blocks, dtype=np.uint32).tobytes())) == DENSE_IMAGE_CRC[name]
    assert all(lay.kind == 0 and lay.taps == 1 for lay in img.layers)
    assert img.in_shape == ()


@pytest.mark.parametrize("name", ["small", "medium", "arty_a7"])
@pytest.mark.parametrize("T", [1, 2, 3, 4, 5, 8])
def test_inputs_lane_major(name, T):
    """``encode_inputs`` writes INPUT lane-major: one contiguous write per block word that holds
    a plane below ``T`` (word ``w`` of block ``r`` at ``w input_lane_stride + r``), never a
    word above them; decoded as the core decodes them, the writes put every sample's blocks at
    ``b in_stride``."""
    p = CORE_PRESETS[name]
    rng = np.random.default_rng(T)
    net = IntNetwork((IntLayer(weight=rng.integers(-5, 6, size=(7, 70)), bias=np.zeros(7, int),
                               theta=3, readout=True),), T=T)
    img = build_image(net, p)
    x = rng.integers(0, 1 << T, size=(img.max_batch, 70))
    writes = encode_inputs(img, x)
    used = p.input_words_per_block(T)
    assert used == min(p.block_words, -(-T * p.k // 32))
    base = img.memory_map["INPUT"].base
    assert [w.addr for w in writes] == [base + w * p.input_lane_stride for w in range(used)]
    rows = (len(x) - 1) * img.in_stride + -(-70 // p.k)
    assert all(len(w.words) == rows for w in writes)
    memory = input_memory(img, writes)
    blocks = input_block_words(img, x)
    for b in range(len(x)):
        start = b * img.in_stride
        assert (memory[start:start + blocks.shape[1]] == blocks[b]).all()
    assert not blocks[:, :, used:].any()  # the words left out hold no plane below T
    # A write into a row past input_blocks, or past the region, is not INPUT's.
    outside = [base + img.memory_map["INPUT"].size]
    if p.input_lane_stride > p.input_blocks:
        outside.append(base + p.input_blocks)
    for addr in outside:
        with pytest.raises(ValueError, match="not in INPUT"):
            input_memory(img, [ImageWrite("INPUT", addr, (1,))])


def _small_net(rng, **conv1_kw):
    conv0 = IntLayer(weight=rng.integers(-2, 8, size=(4, 1, 3, 3)), bias=np.zeros(4, int),
                     theta=16, kind="conv", in_shape=(1, 4, 4), padding=1)
    kw = dict(weight=rng.integers(-4, 8, size=(4, 4, 3, 3)), bias=np.zeros(4, int),
              theta=[60, 70, 80, 90], kind="conv", in_shape=(4, 4, 4), padding=1,
              residual=Residual(source=0, gain=2), pool=MaxPool(2))
    kw.update(conv1_kw)
    conv1 = IntLayer(**kw)
    fc = IntLayer(weight=rng.integers(-8, 8, size=(10, conv1.n_out)), bias=np.zeros(10, int),
                  theta=1, readout=True)
    return IntNetwork((conv0, conv1, fc), T=4)


def test_descriptor_fields(rng):
    """Conv fields sit in words 6, 7 and word 0's spare bits, disjoint from the dense ones."""
    used = set()
    for name, word, lsb, width in DESCRIPTOR_FIELDS:
        bits = {32 * word + lsb + i for i in range(width)}
        assert not bits & used, name
        assert lsb + width <= 32
        used |= bits
    net = _small_net(rng)
    img = build_image(net, CORE_PRESETS["small"])
    d0, d1, d2 = (decode_descriptor(lay.descriptor) for lay in img.layers)
    assert (d0["kind"], d1["kind"], d2["kind"]) == (1, 1, 0)
    # conv0 (1 channel, 3x3, padding 1) runs folded (sw.compile.input_fold): its 3 kernel
    # columns side by side as channels of a 4 x 4 map, a 3 x 1 kernel padding its rows only.
    assert img.input_fold is not None and img.in_shape == (1, 4, 4)
    assert (d0["in_h"], d0["in_w"], d0["conv_h"], d0["conv_w"], d0["kh"], d0["kw"]) == \
        (4, 4, 4, 4, 3, 1)
    assert (d0["stride"], d0["pad"], d0["pad_rows_only"], d0["pool_log2"], d0["res_gain"]) == \
        (1, 1, 1, 0, 0)
    assert d1["pad_rows_only"] == 0
    assert (d1["in_h"], d1["in_w"], d1["kh"], d1["kw"], d1["pad"]) == (4, 4, 3, 3, 1)
    assert (d1["pool_log2"], d1["res_gain"], d1["res_input"], d1["res_base"]) == (1, 2, 0, 0)
    assert (d0["n_in"], d0["n_out"], d0["chunks"], d0["passes"]) == (3, 4, 1, 1)
    # conv1 feeds a dense layer: it writes the bottom of its half, where the dense fetcher reads.
    assert d1["out_base"] == CORE_PRESETS["small"].act_chunks
    # The dense readout reads the pooled 2x2 map's 4 blocks of one chunk.
    assert (d2["n_in"], d2["chunks"]) == (16, 4)
    assert encode_descriptor(**{k: v for k, v in d1.items()}) == list(img.layers[1].descriptor)
    assert img.weight_rows == 3 + 9 + 2 * 4


def test_shortcut_source_is_kept(rng):
    """A shortcut from two layers back: the output moves so the source survives the ping-pong."""
    p = CORE_PRESETS["small"]

    def conv(c_in, kernel, **kw):
        return IntLayer(weight=rng.integers(-3, 4, size=(4, c_in, kernel, kernel)),
                        bias=np.zeros(4, int), theta=5, kind="conv", in_shape=(c_in, 4, 4),
                        padding=(kernel - 1) // 2, **kw)

    fc = IntLayer(weight=rng.integers(-3, 4, size=(3, 64)), bias=np.zeros(3, int), theta=1,
                  readout=True)
    net = IntNetwork((conv(2, 3), conv(4, 3), conv(4, 1, residual=Residual(0, 3)), conv(4, 1),
                      fc), T=3)
    img = build_image(net, p)
    bases = [decode_descriptor(lay.descriptor)["out_base"] for lay in img.layers[:4]]
    # Layer 2's home (the bottom of half 0) holds layer 0's map, its shortcut source: it goes
    # above it; layer 3 feeds the dense layer from the bottom of half 1.
    assert bases == [0, p.act_chunks, 16, p.act_chunks]
    x = rng.integers(0, 8, size=(2, 2, 4, 4))
    assert (run_image(img, x).output == run_network(net, x).output).all()


def test_shortcut_from_network_input(rng):
    conv = IntLayer(weight=rng.integers(-3, 4, size=(3, 3, 3, 3)), bias=np.zeros(3, int),
                    theta=4, kind="conv", in_shape=(3, 4, 4), padding=1,
                    residual=Residual(NETWORK_INPUT, -2))
    fc = IntLayer(weight=rng.integers(-3, 4, size=(3, 48)), bias=np.zeros(3, int), theta=1,
                  readout=True)
    net = IntNetwork((conv, fc), T=3)
    img = build_image(net, CORE_PRESETS["small"])
    d = decode_descriptor(img.layers[0].descriptor)
    assert (d["res_input"], d["res_base"], d["res_gain"]) == (1, 0, 256 - 2)
    x = rng.integers(0, 8, size=(3, 3, 4, 4))
    assert (run_image(img, x).output == run_network(net, x).output).all()


def test_weight_rows_and_permutation(rng):
    layer = IntLayer(weight=rng.integers(-8, 8, size=(5, 6, 2, 3)), bias=np.zeros(5, int),
                     theta=1, kind="conv", in_shape=(6, 4, 4))
    rows = conv_weight_rows(layer, n_pe=4, k=4)  # 2 passes, 6 taps, 2 chunks
    assert rows.shape == (2 * 6 * 2, 16)
    for p_, ky, kx, j, n, i in [(0, 0, 0, 0, 0, 0), (1, 1, 2, 1, 0, 1), (0, 1, 1, 0, 3, 3)]:
        r = (p_ * 6 + ky * 3 + kx) * 2 + j
        assert rows[r, n * 4 + i] == layer.weight[p_ * 4 + n, j * 4 + i, ky, kx]
    assert (rows[(1 * 6) * 2:, 4:] == 0).all()  # channels 5.. of pass 1 are padding
    assert (rows[1::2].reshape(-1, 4, 4)[:, :, 2:] == 0).all()  # input channels 6, 7 padding
    # Dense after conv: W_blocks @ blocks == W @ flatten(C, H, W).
    w = rng.integers(-8, 8, size=(3, 6 * 2 * 3))
    a = rng.integers(0, 16, size=(6, 2, 3))
    wb = dense_after_conv_weight(w, (6, 2, 3), 4)
    assert (wb @ feature_map_blocks(a, 4).ravel() == w @ a.ravel()).all()


def test_conv_input_blocks(rng):
    net = _small_net(rng)
    img = build_image(net, CORE_PRESETS["small"])
    x = rng.integers(0, 16, size=(2, 1, 4, 4))
    flat = encode_inputs(img, x.reshape(2, -1))
    assert flat == encode_inputs(img, x)
    # Folded (sw.compile.input_fold): 3 kernel columns of the image padded left and right (4 x
    # 6) side by side at 4 x 4 positions, one chunk each.
    assert input_block_words(img, x).shape == (2, 16, img.params.block_words)


@pytest.mark.parametrize("change, message", [
    (dict(pool=MaxPool(3)), "max pooling 3x3"),
    (dict(pool=MaxPool(2, 1), residual=None), "max pooling 2x2 stride 1"),
    (dict(stride=4, padding=3, residual=None, pool=None), "stride 4"),
    (dict(weight=np.ones((4, 4, 9, 9), int), padding=3, residual=None, pool=None),
     "kernel 9x9"),
    (dict(padding_w=2, residual=None, pool=None), "pads columns as rows or not at all"),
])
def test_conv_refusals(rng, change, message):
    with pytest.raises(DoesNotFitError, match=message):
        build_image(_small_net(rng, **change), CORE_PRESETS["small"])


def test_feature_map_too_large(rng):
    big = IntLayer(weight=np.ones((8, 1, 1, 1), int), bias=np.zeros(8, int), theta=1,
                   kind="conv", in_shape=(1, 5, 5))
    fc = IntLayer(weight=np.ones((2, 8 * 25), int), bias=np.zeros(2, int), theta=1, readout=True)
    with pytest.raises(DoesNotFitError, match=r"output needs 50 spike blocks .* holds 32 \(act"):
        build_image(IntNetwork((big, fc), T=2), CORE_PRESETS["small"])
    # The small preset's INPUT region holds 4 x 32 = 128 blocks (in_blocks' default).
    img_in = IntLayer(weight=np.ones((1, 8, 1, 1), int), bias=np.zeros(1, int), theta=1,
                      kind="conv", in_shape=(8, 12, 12), stride=2)
    fc = IntLayer(weight=np.ones((2, 36), int), bias=np.zeros(2, int), theta=1, readout=True)
    with pytest.raises(DoesNotFitError, match=r"input image \(8, 12, 12\) needs 288 spike blocks"
                       r" .* holds 128 \(in_blocks\)"):
        build_image(IntNetwork((img_in, fc), T=2), CORE_PRESETS["small"])
    # 8 x 5 x 5 is 50 blocks: two samples' inputs fit INPUT, a third does not.
    img_in = IntLayer(weight=np.ones((1, 8, 1, 1), int), bias=np.zeros(1, int), theta=1,
                      kind="conv", in_shape=(8, 5, 5))
    fc = IntLayer(weight=np.ones((2, 25), int), bias=np.zeros(2, int), theta=1, readout=True)
    image = build_image(IntNetwork((img_in, fc), T=2), CORE_PRESETS["small"])
    assert (image.in_stride, image.max_batch) == (50, 2)
    with pytest.raises(DoesNotFitError, match=r"batch of 3 samples .* \(2: a sample's input is "
                       r"50 spike blocks of the INPUT region's 128\)"):
        encode_inputs(image, np.zeros((3, 200), int))


def test_conv_last_layer_and_weight_rows_refused(rng):
    conv = IntLayer(weight=np.ones((2, 1, 3, 3), int), bias=np.zeros(2, int), theta=1,
                    kind="conv", in_shape=(1, 4, 4))
    with pytest.raises(DoesNotFitError, match="end the network with a dense layer"):
        build_image(IntNetwork((conv,), T=2), CORE_PRESETS["small"])
    # On the medium preset (n_pe 16, k 8, 256 rows), 5x5 kernels: 16 -> 64 channels is 4 passes
    # x 25 taps x 2 chunks = 200 rows, 64 -> 16 is 1 x 25 x 8 = 200 more, the readout 8.
    wide = [IntLayer(weight=np.ones((co, ci, 5, 5), int), bias=np.zeros(co, int), theta=1,
                     kind="conv", in_shape=(ci, 2, 2), padding=2)
            for ci, co in ((16, 64), (64, 16))]
    fc = IntLayer(weight=np.ones((2, 16 * 4), int), bias=np.zeros(2, int), theta=1,
                  readout=True)
    with pytest.raises(DoesNotFitError, match="needs 408 weight rows"):
        build_image(IntNetwork((*wide, fc), T=2), CORE_PRESETS["medium"])


def test_shortcut_without_room_refused(rng):
    """The source and the outputs around it do not fit the two halves: a clear refusal."""
    mk = lambda c, res=None: IntLayer(  # noqa: E731
        weight=np.ones((c, c, 1, 1), int), bias=np.zeros(c, int), theta=1, kind="conv",
        in_shape=(c, 5, 5), residual=res)
    fc = IntLayer(weight=np.ones((2, 100), int), bias=np.zeros(2, int), theta=1, readout=True)
    net = IntNetwork((mk(4), mk(4), mk(4), mk(4, Residual(0, 1)), fc), T=2)
    with pytest.raises(DoesNotFitError, match=r"no room .* layer\(s\) \[.*0.*\]"):
        build_image(net, CORE_PRESETS["small"])


def test_image_file_round_trip_and_tables(rng, tmp_path):
    net = _small_net(rng)
    img = build_image(net, CORE_PRESETS["small"])
    path = save_image_file(tmp_path / "conv.spkimg", img, net, "preset small")
    loaded = load_image_file(path)
    assert loaded.image == img
    x = rng.integers(0, 16, size=(2, 1, 4, 4))
    assert (run_image(loaded.image, x).output == run_network(net, x).output).all()
    table = layer_table(net, img)
    assert "conv 1x4x4 -> 4x4x4" in table and "k3x3 s1 p1" in table and "pool 2" in table
    assert "shortcut 0 x2" in table
    assert "weight memory" in usage_table(net, img)
    mem = image_memories(img)
    assert [d["kind"] for d in mem.program] == [1, 1, 0]


@pytest.mark.parametrize("name", ["small", "arty_a7"])
def test_conv_fetch_walk_equals_formulas(name, rng):
    """The counter-and-add walk visits exactly the in-map taps, at the formula's addresses."""
    p = CORE_PRESETS[name]
    checked = 0
    for _ in range(40):
        drawn = _random_conv_net(rng, p)
        if drawn is None:
            continue
        net, image = drawn
        net = folded_network(net, p)  # the layers the image lays out (a thin first one folded)
        for layer, lay in zip(net.layers, image.layers, strict=True):
            if layer.kind != "conv":
                continue
            d = decode_descriptor(lay.descriptor)
            _, h, w = layer.in_shape
            kh, kw = layer.kernel
            s, (pad, pad_w), ch = layer.stride, layer.pads, lay.chunks
            pk = layer.pool.kernel if layer.pool else 1
            _, oh, ow = layer.out_shape
            want = []
            for py in range(oh):
                for px in range(ow):
                    for dy in range(pk):
                        for dx in range(pk):
                            cy, cx = py * pk + dy, px * pk + dx
                            for ps in range(lay.passes):
                                f = [((iy * w + ix) * ch + j,
                                      lay.w_base + (ps * kh * kw + ky * kw + kx) * ch + j)
                                     for ky in range(kh) for kx in range(kw)
                                     for iy, ix in [(cy * s - pad + ky, cx * s - pad_w + kx)]
                                     if 0 <= iy < h and 0 <= ix < w for j in range(ch)]
                                want.append((cy, cx, ps, f))
            assert list(conv_fetch(d)) == want
            checked += 1
    assert checked >= 20
