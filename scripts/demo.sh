#!/usr/bin/env bash
# Set up ./.venv and run the main job: the whole BARL loop on the built-in CBCT phantom.
# Extra arguments go to `barl demo` (e.g. --gui to open napari with the phantom).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh pyqt5
exec .venv/bin/barl demo "$@"
