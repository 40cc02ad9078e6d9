"""Open napari with the CBCT phantom in a workspace and the BARL widget docked.

``barl demo --gui`` and ``python -m napari_barl.launch [--workspace DIR]`` call
:func:`main`.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main", "open_app", "prefer_qt6"]


def open_app(workspace: str | Path | None = None, *, show: bool = True):
    """Create the viewer, dock the widget and load the phantom; return ``(viewer, widget)``.

    A new workspace gets the phantom as its first case; an existing one opens as is.
    """
    import napari

    from ._sample_data import make_sample_data
    from ._widget import BarlWidget

    folder = Path(workspace) if workspace else Path(tempfile.mkdtemp(prefix="barl-workspace-"))
    viewer = napari.Viewer(title="napari-barl", show=show)
    widget = BarlWidget(viewer)
    viewer.window.add_dock_widget(widget, name="BARL segmentation", area="right")
    fresh = not (folder / "workspace.json").exists()
    if fresh:
        for data, kwargs, kind in make_sample_data():
            getattr(viewer, f"add_{kind}")(data, **kwargs)
    widget.workspace_panel.open_workspace(folder)
    if fresh:
        widget.workspace_panel.add_viewer_images()
    return viewer, widget


def prefer_qt6() -> str | None:
    """Pick PyQt6 when it is installed and no binding was chosen (``QT_API`` unset).

    napari deprecates PyQt5 (a warning at every start); with both bindings installed qtpy
    would take PyQt5 first. Must run before anything imports qtpy or napari.
    """
    import importlib.util
    import os
    import sys

    if os.environ.get("QT_API") or "qtpy" in sys.modules:
        return os.environ.get("QT_API")
    if importlib.util.find_spec("PyQt6") is not None:
        os.environ["QT_API"] = "pyqt6"
    return os.environ.get("QT_API")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``python -m napari_barl.launch``: napari with the phantom and the dock, until closed."""
    parser = argparse.ArgumentParser(
        prog="python -m napari_barl.launch",
        description="Open napari with the dental CBCT phantom and the BARL widget.",
    )
    parser.add_argument(
        "--workspace",
        type=Path,
        default=None,
        help="workspace folder (default: a new temporary one)",
    )
    args = parser.parse_args(argv)
    prefer_qt6()
    import napari

    open_app(args.workspace)
    napari.run()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
