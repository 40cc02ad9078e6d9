"""The user's choices, kept between sessions (QSettings).

Why: a radiologist sets the preset, device, agreement threshold and paint mode once;
resetting them on every start invites a wrong run. Values live in Qt's per-user
settings store; ``NAPARI_BARL_SETTINGS`` names an INI file instead (tests, portable setups).
"""

from __future__ import annotations

import os

from qtpy.QtCore import QSettings
from qtpy.QtWidgets import (
    QAbstractButton,
    QComboBox,
    QDoubleSpinBox,
    QGroupBox,
    QSpinBox,
    QWidget,
)

__all__ = ["settings", "bind"]

ENV = "NAPARI_BARL_SETTINGS"


def settings() -> QSettings:
    """Return the settings store (an INI file when ``NAPARI_BARL_SETTINGS`` is set)."""
    path = os.environ.get(ENV)
    if path:
        return QSettings(path, QSettings.IniFormat)
    return QSettings("napari-barl", "napari-barl")


def bind(key: str, widget: QWidget) -> None:
    """Restore ``widget``'s value from ``key`` now, and store it whenever it changes.

    Handles spin boxes, combo boxes (by text) and checkable buttons; a stored value the
    widget cannot take (a preset that no longer exists) is ignored.
    """
    value = settings().value(key)
    if isinstance(widget, QSpinBox | QDoubleSpinBox):
        if value is not None:
            try:
                widget.setValue(type(widget.value())(value))
            except (TypeError, ValueError):
                pass
        widget.valueChanged.connect(lambda v: _store(key, v))
    elif isinstance(widget, QComboBox):
        if value is not None and widget.findText(str(value)) >= 0:
            widget.setCurrentText(str(value))
        widget.currentTextChanged.connect(lambda v: _store(key, v))
    elif isinstance(widget, QAbstractButton | QGroupBox):  # checkable
        if value is not None:
            widget.setChecked(str(value).lower() in ("true", "1"))
        widget.toggled.connect(lambda v: _store(key, bool(v)))
    else:  # pragma: no cover (a programming error)
        raise TypeError(f"cannot bind a {type(widget).__name__} to settings")


def _store(key: str, value) -> None:
    s = settings()
    s.setValue(key, value)
    s.sync()
