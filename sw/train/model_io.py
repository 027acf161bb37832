"""Saving and loading float models with what is needed to rebuild them (``.pt`` files).

A model file is ``torch.save`` of a dict: ``kind`` ("ann" or "spikepack"), ``sizes``, ``T``,
``activation`` (ANN only) and ``state_dict``. Integer networks are ``.npz`` files
(:meth:`sim.golden.ir.IntNetwork.save`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

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


def save_model(model: nn.Sequential, path) -> Path:
    path = Path(path)
    torch.save({**describe(model), "state_dict": model.state_dict()}, path)
    return path


def load_model(path) -> tuple[nn.Sequential, dict]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model file {path} does not exist")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many kinds here
        raise ValueError(f"{path} is not a spikepack model file ({e.__class__.__name__})") from e
    if not isinstance(blob, dict) or blob.get("kind") not in ("ann", "spikepack"):
        raise ValueError(f"{path} is not a spikepack model file (no 'kind')")
    if blob["kind"] == "spikepack":
        model = spikepack_mlp(blob["sizes"], blob["T"])
    else:
        model = ann_mlp(blob["sizes"], blob["activation"], blob["T"] or 4)
    model.load_state_dict(blob["state_dict"])
    model.eval()
    return model, {k: v for k, v in blob.items() if k != "state_dict"}
