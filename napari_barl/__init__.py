"""napari-barl: the napari plugin (UI and glue only; the engine is barl_core)."""

__version__ = "0.1.0"

__all__ = ["__version__"]
