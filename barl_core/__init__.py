"""barl_core: the BARL engine of napari-barl (no Qt, no napari).

Usable from the ``barl`` CLI, scripts and notebooks. Arrays are ``(z, y, x)``;
see :mod:`barl_core.io.volume` for the geometry convention.
"""

__version__ = "0.1.0"

from barl_core.errors import BarlError  # noqa: E402

__all__ = ["__version__", "BarlError"]
