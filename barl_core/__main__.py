"""``python -m barl_core`` (also what ``torchrun -m barl_core`` starts)."""

import sys

from .cli import main

sys.exit(main())
