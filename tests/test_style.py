"""The code passes ruff with pyproject.toml's rules (``ruff check .``, as README.md's Tests
section says), so a long line or an unused import fails the default tier, not a later review.
ruff is pinned in pyproject.toml's ``dev`` extra: a new release's rules do not move the bar."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing():
    exe = Path(sys.executable).with_name("ruff")
    r = subprocess.run([str(exe), "check", "--output-format", "concise", "--no-cache", "."],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
