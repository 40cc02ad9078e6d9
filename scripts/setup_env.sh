#!/usr/bin/env bash
# Create ./.venv (if missing) and install napari-barl into it with the given extras.
# Usage: scripts/setup_env.sh EXTRAS        e.g. scripts/setup_env.sh "pyqt5"  or  "test"
# PyTorch is installed first and pinned (TORCH_SPEC, default torch==2.13.0): an unpinned
# torch would pull whatever build pip picks; see the README for a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
extras=${1:-pyqt5}
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/python -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
fi
.venv/bin/python -m pip install -q -e ".[${extras}]"
