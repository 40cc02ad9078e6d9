#!/usr/bin/env bash
# Set up ./.venv with the test extras and run the whole suite. GUI tests need a display:
# without one, the suite runs under Xvfb (apt-get install xvfb libgl1-mesa-dri).
# The GUI tests run under PyQt5 (the default binding of the test extras) and then, the
# ones that start no training child, again under PyQt6 (napari's recommended binding):
# set BARL_SKIP_QT6=1 to skip that second pass.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh "test,pyqt6"
run() {
  if [ -z "${DISPLAY:-}" ] && command -v xvfb-run >/dev/null 2>&1; then
    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python -m pytest "$@"
  else
    .venv/bin/python -m pytest "$@"
  fi
}
QT_API=pyqt5 run "$@"
if [ $# -eq 0 ] && [ -z "${BARL_SKIP_QT6:-}" ] && .venv/bin/python -c "import PyQt6" 2>/dev/null; then
  QT_API=pyqt6 run -q -m "gui and not slow" tests/napari_barl
fi
