"""Fixtures for GUI tests that go the user's way: the dock through npe2, files through the plugin."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from barl_core.io.volume import write_labels, write_volume
from napari_barl.testing import paint_slice  # noqa: F401  (re-exported: tests import it from here)

PLUGIN, WIDGET = "napari-barl", "BARL segmentation"


@pytest.fixture(autouse=True)
def _private_settings(tmp_path_factory, monkeypatch):
    """Each test gets its own settings file: no test sees another's (or the user's) choices."""
    monkeypatch.setenv("NAPARI_BARL_SETTINGS", str(tmp_path_factory.mktemp("settings") / "s.ini"))


def phantom_files(folder: Path, shape=(24, 40, 40), seed=0) -> tuple[Path, Path]:
    """Write a small phantom scan and its ground truth as NIfTI files; return both paths."""
    from barl_core.data.phantom import make_phantom

    image, labels = make_phantom(shape=shape, seed=seed)
    folder.mkdir(parents=True, exist_ok=True)
    img = write_volume(image, folder / f"phantom{seed}.nii.gz")
    lab = write_labels(np.asarray(labels, np.uint8), image, folder / f"truth{seed}.nii.gz")
    return img, lab


def dock(viewer):
    """Dock the plugin the way a user does (Plugins menu -> npe2 -> proxy viewer)."""
    _dw, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    return widget


def add_files_via_dialog(widget, monkeypatch, paths) -> None:
    """Click "Add files..." with the file dialog answering ``paths``."""
    from qtpy.QtWidgets import QFileDialog

    monkeypatch.setattr(
        QFileDialog, "getOpenFileNames", staticmethod(lambda *a, **k: ([str(p) for p in paths], ""))
    )
    widget.workspace_panel.add_files_btn.click()


def open_workspace_via_dialog(widget, monkeypatch, folder) -> None:
    """Click "Open / create folder..." with the dialog answering ``folder``."""
    from qtpy.QtWidgets import QFileDialog

    monkeypatch.setattr(
        QFileDialog, "getExistingDirectory", staticmethod(lambda *a, **k: str(folder))
    )
    widget.workspace_panel.open_ws_btn.click()


def set_tiny_training(w) -> None:
    """A seconds-long training run through the panel's own controls."""
    tp = w.training
    tp.budget_on.setChecked(False)  # these iterations and patch, not a plan to a budget
    tp.iterations.setValue(4)
    for sb, v in zip(tp.patch, (16, 32, 32), strict=True):
        sb.setValue(v)
    tp.base_channels.setValue(4)
    tp.device_box.setCurrentText("CPU")


@pytest.fixture
def user(make_napari_viewer, tmp_path, monkeypatch):
    """A viewer with the dock (through npe2), a workspace and one phantom added as a file.

    Yields ``(viewer, widget, truth_path)``: the phantom's ground-truth label file.
    """
    viewer = make_napari_viewer(show=True)
    w = dock(viewer)
    open_workspace_via_dialog(w, monkeypatch, tmp_path / "ws")
    img, truth = phantom_files(tmp_path / "data")
    add_files_via_dialog(w, monkeypatch, [img])
    yield viewer, w, truth
    w.shutdown()
