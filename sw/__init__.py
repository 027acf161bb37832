"""Host software, in layers along the data path: ``train`` (PyTorch models and data), ``compile``
(quantizers, NIR import, program image), ``host`` (transports and the driver), ``research`` (the
seed papers' experiments and results) and ``cli`` (the ``spikepack`` command).

This root module holds only what every layer may use: where spikepack keeps what it makes.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir() -> Path:
    """``$SPIKEPACK_CACHE`` (default ``~/.cache/spikepack``), created if missing: trained networks
    of the zoo, RTL builds outside a checkout."""
    d = Path(os.environ.get("SPIKEPACK_CACHE", Path.home() / ".cache" / "spikepack"))
    d.mkdir(parents=True, exist_ok=True)
    return d
