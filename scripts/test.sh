#!/usr/bin/env bash
# Set up ./.venv with the test extras and run the whole suite. GUI tests need a display:
# without one, the suite runs under Xvfb (apt-get install xvfb libgl1-mesa-dri).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh test
if [ -z "${DISPLAY:-}" ] && command -v xvfb-run >/dev/null 2>&1; then
  exec xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python -m pytest "$@"
fi
exec .venv/bin/python -m pytest "$@"
