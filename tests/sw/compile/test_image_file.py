"""Program image files: round trip, and refusal of files this host's compiler would not make."""

import json

import numpy as np
import pytest

from boards import MEDIUM, SMALL
from sim.golden.ir import IntLayer, IntNetwork, Mode, Reset
from sw.compile.image_file import ImageFileError, load_image_file, save_image_file
from sw.compile.program_image import build_image
from sw.compile.targets import get_target, target_names, usage


def random_net(rng, sizes=(20, 12, 5), T=4):
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:], strict=False)):
        last = i == len(sizes) - 2
        layers.append(IntLayer(
            weight=rng.integers(-100, 101, (b, a)), bias=rng.integers(-50, 51, b),
            theta=rng.integers(1, 300, b) if i % 2 else int(rng.integers(1, 300)),
            mode=Mode.LIF if i == 1 else Mode.SPIKEPACK, readout=last, leak_shift=2 * (i == 1),
            reset=Reset.ZERO if i == 1 else Reset.SUBTRACT))
    return IntNetwork(tuple(layers), T)


def test_round_trip_gives_the_same_image_and_network(tmp_path, rng):
    net = random_net(rng, (20, 12, 9, 5))
    image = build_image(net, SMALL)
    path = save_image_file(tmp_path / "net.spkimg", image, net, "preset small")
    assert path.exists() and not (tmp_path / "net.spkimg.npz").exists()
    loaded = load_image_file(path)
    assert loaded.image == image and loaded.target == "preset small"
    for a, b in zip(loaded.net.layers, net.layers, strict=True):
        assert np.array_equal(a.weight, b.weight) and np.array_equal(a.theta, b.theta)
        assert (a.mode, a.reset, a.leak_shift, a.readout) == (b.mode, b.reset, b.leak_shift,
                                                              b.readout)


def test_an_edited_image_is_refused(tmp_path, rng):
    net = random_net(rng)
    path = save_image_file(tmp_path / "a.spkimg", build_image(net, SMALL), net)
    with np.load(path) as f:
        arrays = dict(f)
    arrays["write1"] = arrays["write1"].copy()
    arrays["write1"][0] ^= 1  # one weight bit
    with open(tmp_path / "b.spkimg", "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(ImageFileError, match="compile` again"):
        load_image_file(tmp_path / "b.spkimg")
    # an image claiming other build parameters than it was laid out for
    header = json.loads(str(arrays["header"]))
    header["params"] = {**header["params"], "weight_depth": 2 * header["params"]["weight_depth"]}
    arrays["header"] = np.array(json.dumps(header))
    with open(tmp_path / "c.spkimg", "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(ImageFileError):
        load_image_file(tmp_path / "c.spkimg")


def test_other_files_are_not_images(tmp_path, rng):
    random_net(rng).save(tmp_path / "net.npz")
    with pytest.raises(ImageFileError, match="not a spikepack image"):
        load_image_file(tmp_path / "net.npz")
    with pytest.raises(FileNotFoundError, match="spikepack compile"):
        load_image_file(tmp_path / "missing.spkimg")


def test_usage_counts_what_the_layout_uses(rng):
    net = random_net(rng, (70, 33, 10))
    image = build_image(net, MEDIUM)
    got = {u.what: (u.used, u.capacity) for u in usage(net, image)}
    p = MEDIUM
    rows = sum(-(-la.n_in // p.k) * -(-la.n_out // p.n_pe) for la in net.layers)
    assert got["weight memory"] == (rows, p.weight_depth)
    bt = sum(-(-la.n_out // p.n_pe) * p.n_pe for la in net.layers)
    assert got["bias/theta memory"] == (bt, p.bt_depth)
    assert got["widest layer"] == (70, p.max_neurons)
    assert got["layers"] == (2, p.max_layers)


def test_targets_are_boards_then_presets():
    names = target_names()
    assert "arty_a7" in names and "small" in names
    assert get_target("small").params == SMALL and get_target("small").baud is None
    assert get_target("arty_a7").baud > 0
    with pytest.raises(KeyError, match="known: arty_a7"):
        get_target("nope")

