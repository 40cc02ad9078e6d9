"""``python -m barl_core`` (also what ``torchrun -m barl_core`` starts)."""

import sys

from barl_core.cli.main import main

sys.exit(main())
