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
from sim.golden.ir import IntNetwork

from .program_image import ImageWrite, LayerLayout, ProgramImage, build_image

__all__ = ["ImageFile", "ImageFileError", "save_image_file", "load_image_file", "FORMAT"]

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
    """Write ``image`` (compiled from ``net``) to ``path``."""
    path = Path(path)
    header = {
        "format": FORMAT, "version": VERSION, "target": target,
        "params": dataclasses.asdict(image.params), "T": image.T, "n_in": image.n_in,
        "n_out": image.n_out, "readout": image.readout,
        "layers": [dataclasses.asdict(lay) for lay in image.layers],
        "writes": [[w.region, w.addr] for w in image.writes],
    }
    buf = io.BytesIO()
    net.save(buf)
    arrays = {f"write{i}": np.array(w.words, dtype=np.uint32) for i, w in enumerate(image.writes)}
    with open(path, "wb") as f:  # np.savez would append ".npz" to a path
        np.savez(f, header=np.array(json.dumps(header)),
                 network=np.frombuffer(buf.getvalue(), dtype=np.uint8), **arrays)
    return path


def load_image_file(path) -> ImageFile:
    """Read an image file; refuse one that is not, or that this host's compiler would not make."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"image file {path} does not exist (make one with "
                                "`spikepack compile`)")
    try:
        with np.load(path) as f:
            header = json.loads(str(f["header"]))
            net = IntNetwork.load(io.BytesIO(f["network"].tobytes()))
            words = [tuple(int(w) for w in f[f"write{i}"]) for i in range(len(header["writes"]))]
    except (OSError, KeyError, ValueError, json.JSONDecodeError) as e:
        raise ImageFileError(f"{path} is not a spikepack image file ({e.__class__.__name__}: "
                             f"{e})") from e
    if header.get("format") != FORMAT or header.get("version") != VERSION:
        raise ImageFileError(f"{path} is not a version-{VERSION} spikepack image file")
    try:
        params = CoreParams(**header["params"])
        fresh = build_image(net, params)
    except (TypeError, ValueError) as e:  # parameters of another host version
        raise ImageFileError(f"{path} was compiled for build parameters this host does not "
                             f"know ({e}); run `spikepack compile` again") from e
    image = ProgramImage(
        params, fresh.memory_map,
        tuple(LayerLayout(**{**lay, "descriptor": tuple(lay["descriptor"])})
              for lay in header["layers"]),
        tuple(ImageWrite(region, addr, w) for (region, addr), w in
              zip(header["writes"], words, strict=True)),
        header["T"], header["n_in"], header["n_out"], header["readout"])
    if image != fresh:
        raise ImageFileError(f"{path} differs from what this host compiles for its network "
                             "(made by another version?); run `spikepack compile` again")
    return ImageFile(image, net, header.get("target", ""))
