#!/usr/bin/env bash
# Set up (if needed) and run the main job: the accelerator's build for the Arty A7-35T
# (the Vivado plan, a bitstream when Vivado is on PATH, else a yosys resource estimate).
# Extra arguments go to hw.build.main (e.g. --board ulx3s).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
if [ "$#" -eq 0 ]; then
    set -- --board arty_a7
fi
exec python -m hw.build "$@"
