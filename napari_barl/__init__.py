"""napari-barl: the napari plugin (UI and glue only; the engine is barl_core)."""

from barl_core import __version__

__all__ = ["__version__"]
