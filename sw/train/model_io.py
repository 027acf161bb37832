"""Saving and loading float models with what is needed to rebuild them (``.pt`` files).

A model file is ``torch.save`` of a dict: ``kind`` ("ann" or "spikepack"), ``sizes``, ``T``,
``activation`` (ANN only), ``state_dict`` and ``sha256``, a digest of the description and every
tensor: torch's zip reader does not check CRCs, so a flipped bit in a weight would otherwise load as
another model. Files without ``sha256`` (older ones) load unchecked. Integer networks are ``.npz``
files (:meth:`sim.golden.ir.IntNetwork.save`).
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import torch
from torch import nn

from sim.golden.ir import write_file_atomically

from .models import ClipFloor, ann_mlp, spikepack_mlp
from .neurons import InputEncoder


def describe(model: nn.Sequential) -> dict:
    linears = [m for m in model if isinstance(m, nn.Linear)]
    sizes = [linears[0].in_features] + [lin.out_features for lin in linears]
    if isinstance(model[0], InputEncoder):
        return {"kind": "spikepack", "sizes": sizes, "T": model[0].T}
    act = next((m for m in model if not isinstance(m, nn.Linear)), None)
    if isinstance(act, ClipFloor):
        return {"kind": "ann", "sizes": sizes, "activation": "clipfloor", "T": act.T}
    return {"kind": "ann", "sizes": sizes, "activation": "relu", "T": None}


class ModelFileError(ValueError):
    """A file is not a usable float model file (the message names the file and what is wrong)."""


def save_model(model: nn.Sequential, path) -> Path:
    """Write ``model`` to ``path`` (through a temporary file and a rename: never partial)."""
    path = Path(path)
    buf = io.BytesIO()
    meta, state = describe(model), model.state_dict()
    torch.save({**meta, "state_dict": state, "sha256": _digest(meta, state)}, buf)
    write_file_atomically(path, buf.getvalue())
    return path


def load_model(path) -> tuple[nn.Sequential, dict]:
    """Rebuild a model saved by :func:`save_model`; returns ``(model, description)``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ModelFileError
        If the file is not a spikepack model file, does not match the model it describes, or
        holds NaN or infinite parameters (a diverged training run).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model file {path} does not exist")
    remedy = "save it with `spikepack train --save-dir` or sw.model_io.save_model"
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many kinds here
        raise ModelFileError(f"{path} is not a spikepack model file ({e.__class__.__name__}); "
                             f"{remedy}") from None
    if not isinstance(blob, dict) or blob.get("kind") not in ("ann", "spikepack"):
        raise ModelFileError(f"{path} is not a spikepack model file (no 'kind'); {remedy}")
    unknown = sorted(str(k) for k in blob if k not in _KEYS)
    if unknown:
        raise ModelFileError(f"{path} is damaged or from another program: unknown entries "
                             f"{', '.join(unknown)}; {remedy}")
    meta = {k: v for k, v in blob.items() if k not in ("state_dict", "sha256")}
    if "sha256" in blob:
        try:
            intact = blob["sha256"] == _digest(meta, blob["state_dict"])
        except Exception:  # noqa: BLE001 - whatever a damaged blob holds, it is not intact
            intact = False
        if not intact:
            raise ModelFileError(f"{path} is damaged: its contents do not match the checksum "
                                 f"saved with them; {remedy}")
    try:
        if blob["kind"] == "spikepack":
            model = spikepack_mlp(blob["sizes"], blob["T"])
        else:
            model = ann_mlp(blob["sizes"], blob["activation"], blob["T"] or 4)
        model.load_state_dict(blob["state_dict"])
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as e:
        detail = f"missing entry {e}" if isinstance(e, KeyError) else " ".join(str(e).split())
        raise ModelFileError(f"{path} is a damaged spikepack model file "
                             f"({e.__class__.__name__}: {detail[:300]}); {remedy}") from None
    model.eval()
    check_finite(model, str(path))
    return model, meta


#: The entries of a model file.
_KEYS = frozenset({"kind", "sizes", "T", "activation", "state_dict", "sha256"})


def _digest(meta: dict, state: dict) -> str:
    """SHA-256 of a model's description and tensors (names, dtypes, shapes, bytes)."""
    h = hashlib.sha256(json.dumps(meta, sort_keys=True).encode())
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}:".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def check_finite(model: nn.Module, what: str = "the model") -> None:
    """Raise :class:`ModelFileError` if any parameter or buffer holds NaN or infinity."""
    for name, t in [*model.named_parameters(), *model.named_buffers()]:
        if t.is_floating_point():
            bad = int((~torch.isfinite(t)).sum())
            if bad:
                raise ModelFileError(f"{what}: {name} holds {bad} NaN/infinite value(s) (did the "
                                     "training diverge?); retrain the model or fix that tensor")
