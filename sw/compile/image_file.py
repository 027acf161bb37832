"""Program image files (``.spkimg``): made by ``spikepack compile``, run by ``deploy``, ``infer``.

An image file is an ``.npz`` holding the compiled :class:`sw.compile.program_image.ProgramImage`
(the build parameters it was laid out for, the layer layout and every memory write) together with
the :class:`sim.golden.ir.IntNetwork` it came from, so the host can always say what the device
should return (the golden model) and check that the image still is what this host's compiler makes
of it.

Members of the archive: ``header`` (JSON: format, version, target, params, T, sizes, layers,
regions), ``write<i>`` (uint32 words of write ``i``) and ``network`` (the network's own ``.npz``
bytes).
"""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import numpy as np

from hw.contract.params import CoreParams
from sim.golden.ir import IntNetwork, write_file_atomically

from .block_order import BlockOrder
from .input_fold import InputFold
from .program_image import ImageWrite, LayerLayout, ProgramImage, build_image

__all__ = ["ImageFile", "ImageFileError", "save_image_file", "load_image_file", "is_image_file",
           "FORMAT"]

FORMAT = "spikepack-image"
VERSION = 1


class ImageFileError(ValueError):
    """Not an image file, or one this host's compiler would not make (recompile it)."""


@dataclasses.dataclass(frozen=True)
class ImageFile:
    """A compiled network.

    Members
    -------
    image : sw.compile.program_image.ProgramImage
    net : sim.golden.ir.IntNetwork
        The network the image was compiled from (for golden-model comparisons).
    target : str
        Where the build parameters came from (``"board arty_a7"``, ``"device loop://"``, ...).
    """

    image: ProgramImage
    net: IntNetwork
    target: str


def save_image_file(path, image: ProgramImage, net: IntNetwork, target: str = "") -> Path:
    """Write ``image`` (compiled from ``net``) to ``path``.

    The archive is built in memory and written through a temporary file and a rename, so a
    failed or interrupted save leaves no partial image file.
    """
    path = Path(path)
    header = {
        "format": FORMAT, "version": VERSION, "target": target,
        "params": dataclasses.asdict(image.params), "T": image.T, "n_in": image.n_in,
        "n_out": image.n_out, "readout": image.readout, "in_shape": list(image.in_shape),
        "input_fold": None if image.input_fold is None else dataclasses.asdict(image.input_fold),
        "block_order": None if image.block_order is None else [
            None if o is None else list(o) for o in image.block_order.orders],
        "layers": [dataclasses.asdict(lay) for lay in image.layers],
        "writes": [[w.region, w.addr] for w in image.writes],
    }
    buf = io.BytesIO()
    net.save(buf)
    arrays = {f"write{i}": np.array(w.words, dtype=np.uint32) for i, w in enumerate(image.writes)}
    out = io.BytesIO()  # np.savez would append ".npz" to a path
    np.savez(out, header=np.array(json.dumps(header)),
             network=np.frombuffer(buf.getvalue(), dtype=np.uint8), **arrays)
    write_file_atomically(path, out.getvalue())
    return path


#: What reading a damaged archive can raise: anything (zipfile, numpy's header parser, JSON, zlib,
#: our checks); the message keeps the exception's class and text.
_READ_ERRORS = (Exception,)


def is_image_file(path) -> bool:
    """True if ``path`` is a zip archive whose ``header`` says it is an image file.

    Never raises for a damaged file (it is then not an image file); a missing file raises
    :class:`FileNotFoundError`.
    """
    with open(path, "rb") as fh:
        if not fh.read(4).startswith(b"PK"):
            return False
    try:
        with np.load(path) as f:
            return "header" in f.files and FORMAT in str(f["header"])
    except _READ_ERRORS:
        return False


def load_image_file(path) -> ImageFile:
    """Read an image file; refuse one that is not, or that this host's compiler would not make.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ImageFileError
        If the file is empty, truncated, damaged, not an image file, or not what this host's
        compiler makes of its network (the message names the file and what to do).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"image file {path} does not exist (make one with "
                                "`spikepack compile`)")
    if not path.is_file() or path.stat().st_size == 0:
        raise ImageFileError(f"{path} is {'empty (0 bytes)' if path.is_file() else 'not a file'}"
                             "; make an image with `spikepack compile`")
    with open(path, "rb") as fh:
        if not fh.read(4).startswith(b"PK"):
            raise ImageFileError(f"{path} is not a spikepack image file (not an .npz archive); "
                                 "make one with `spikepack compile`")
    try:
        with np.load(path) as f:
            if "header" not in f.files:
                raise _NotAnImage("it has no header; an integer network .npz?")
            header = json.loads(str(f["header"]))
            if not isinstance(header, dict):
                raise ValueError("the header is not a JSON object")
            if header.get("format") != FORMAT or header.get("version") != VERSION:
                raise _NotAnImage(f"its header is not a version-{VERSION} image header")
            net = IntNetwork.load(io.BytesIO(f["network"].tobytes()))
            words = [tuple(int(w) for w in f[f"write{i}"]) for i in range(len(header["writes"]))]
    except _NotAnImage as e:
        raise ImageFileError(f"{path} is not a spikepack image file ({e}); make one with "
                             "`spikepack compile`") from None
    except _READ_ERRORS as e:
        detail = f"missing entry {e}" if isinstance(e, KeyError) else " ".join(str(e).split())
        raise ImageFileError(f"{path} is not a valid spikepack image file (damaged or truncated: "
                             f"{e.__class__.__name__}: {detail}); run `spikepack compile` "
                             "again") from None
    try:
        params = CoreParams(**header["params"])
        order = _block_order(header.get("block_order"))
    except (TypeError, ValueError, KeyError) as e:  # parameters of another host version
        raise ImageFileError(f"{path} was compiled for build parameters this host does not "
                             f"know ({e}); run `spikepack compile` again") from None
    try:
        fresh = build_image(net, params, order)
    except (TypeError, ValueError, KeyError) as e:
        raise ImageFileError(f"{path} does not compile on this host ({e}); run `spikepack "
                             "compile` again") from None
    try:
        image = ProgramImage(
            params, fresh.memory_map,
            tuple(LayerLayout(**{**lay, "descriptor": tuple(lay["descriptor"])})
                  for lay in header["layers"]),
            tuple(ImageWrite(region, addr, w) for (region, addr), w in
                  zip(header["writes"], words, strict=True)),
            header["T"], header["n_in"], header["n_out"], header["readout"],
            tuple(header.get("in_shape", ())), _input_fold(header.get("input_fold")), order)
    except _READ_ERRORS as e:
        detail = f"missing entry {e}" if isinstance(e, KeyError) else " ".join(str(e).split())
        raise ImageFileError(f"{path} has a damaged header ({e.__class__.__name__}: {detail}); "
                             "run `spikepack compile` again") from None
    if image != fresh:
        raise ImageFileError(f"{path} differs from what this host compiles for its network "
                             "(made by another version?); run `spikepack compile` again")
    return ImageFile(image, net, header.get("target", ""))


def _input_fold(fields) -> InputFold | None:
    """The header's ``input_fold`` entry (``None``: the image does not fold its input)."""
    if fields is None:
        return None
    # (Files before 2026-12-04 have no rows_stored: their folds stored the padding rows.)
    return InputFold(tuple(fields["in_shape"]), fields["kw"], fields["pad"],
                     bool(fields.get("rows_stored", True)))


def _block_order(entry) -> BlockOrder | None:
    """The header's ``block_order`` entry (``None``: the layers' inputs in their own order)."""
    if entry is None:
        return None
    if not isinstance(entry, list):
        raise ValueError("block_order is not a list")
    return BlockOrder(tuple(None if o is None else tuple(o) for o in entry))


class _NotAnImage(Exception):
    """Internal: a readable archive whose header is not an image header."""
