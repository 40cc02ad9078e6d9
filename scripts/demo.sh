#!/usr/bin/env bash
# Set up ./.venv and run the main job on the built-in CBCT phantom.
# With a display (and no arguments) it opens napari with the phantom and the BARL widget;
# without one it runs the whole loop headless (train, predict, suggest, reveal, fine-tune,
# Dice per round). Arguments go to `barl demo` (e.g. --gui, --rounds 2, --device cpu).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh pyqt5
if [ "$#" -eq 0 ] && [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  exec .venv/bin/barl demo --gui
fi
exec .venv/bin/barl demo "$@"
