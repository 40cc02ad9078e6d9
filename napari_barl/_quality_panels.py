"""Widgets of the "Proposals / History / Versions / Advice & audit" tabs (no logic here).

The controller (:mod:`napari_barl._quality`) fills them and connects their buttons.
"""

from __future__ import annotations

from qtpy.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QPushButton,
    QTableWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

__all__ = ["QualityTabs", "ACCEPT_KEY", "REJECT_KEY", "collapsible"]

ACCEPT_KEY = "Shift-A"
REJECT_KEY = "Shift-R"


def collapsible(title: str, content: QWidget, settings_key: str) -> QGroupBox:
    """Return a checkable box around ``content``: unchecking hides it, and it is remembered.

    The tabs are details a user opens when needed; folded, they keep Train and the review
    above the fold.
    """
    from . import _settings

    box = QGroupBox(title)
    box.setCheckable(True)
    box.setChecked(True)
    QVBoxLayout(box).addWidget(content)
    box.toggled.connect(content.setVisible)
    _settings.bind(settings_key, box)
    return box


def _label(text: str = "") -> QLabel:
    lab = QLabel(text)
    lab.setWordWrap(True)
    return lab


class QualityTabs(QTabWidget):
    """Four compact tabs: proposals, slice history, model versions, advice and audit export."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        # ---- proposals
        prop = QWidget()
        form = QFormLayout()
        self.threshold = QDoubleSpinBox()
        self.threshold.setRange(0.5, 1.0)
        self.threshold.setSingleStep(0.01)
        self.threshold.setDecimals(2)
        self.threshold.setValue(0.9)
        self.threshold.setMinimumWidth(self.threshold.sizeHint().width() + 8)
        self.threshold.setToolTip(
            "propose a voxel only where both branches agree with at least this probability"
        )
        form.addRow("Agreement threshold", self.threshold)
        self.adapt_threshold = QCheckBox("fit the threshold to each new model")
        self.adapt_threshold.setChecked(True)
        self.adapt_threshold.setToolTip(
            "after each prediction, the lowest threshold at which the proposals were right "
            "95% of the time on your validation slices (never trained on)"
        )
        form.addRow(self.adapt_threshold)
        self.calibration_label = _label("")
        self.show_needs_human = QCheckBox('outline what "needs a human" (magenta)')
        self.show_needs_human.setToolTip(
            "voxels where the branches do not agree confidently enough to propose anything"
        )
        form.addRow(self.show_needs_human)
        self.accept_btn = QPushButton(f"Accept proposal ({ACCEPT_KEY})")
        self.reject_btn = QPushButton(f"Reject ({REJECT_KEY})")
        row = QHBoxLayout()
        row.addWidget(self.accept_btn)
        row.addWidget(self.reject_btn)
        self.proposal_status = _label("predict a case to get proposals")
        lay = QVBoxLayout(prop)
        lay.addLayout(form)
        lay.addWidget(self.calibration_label)
        lay.addLayout(row)
        lay.addWidget(self.proposal_status)
        lay.addStretch(1)
        self.addTab(prop, "Proposals")

        # ---- history
        hist = QWidget()
        self.history_list = QListWidget()
        self.history_list.setToolTip("versions of the current slice, oldest first")
        self.revert_btn = QPushButton("Revert slice to selected version")
        lay = QVBoxLayout(hist)
        self.history_label = _label("slice history")
        lay.addWidget(self.history_label)
        lay.addWidget(self.history_list)
        lay.addWidget(self.revert_btn)
        self.addTab(hist, "History")

        # ---- versions
        ver = QWidget()
        self.version_table = QTableWidget(0, 5)
        self.version_table.setHorizontalHeaderLabels(
            ["version", "slices", "val Dice", "parent", "model"]
        )
        self.version_table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.version_table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.version_table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.version_table.verticalHeader().setVisible(False)
        self.version_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.version_table.horizontalHeader().setStretchLastSection(True)
        self.version_table.setMinimumHeight(90)
        self.rollback_btn = QPushButton("Roll back to selected")
        self.compare_a, self.compare_b = QComboBox(), QComboBox()
        self.compare_btn = QPushButton("Compare on slice")
        crow = QHBoxLayout()
        for w in (self.compare_a, self.compare_b, self.compare_btn):
            crow.addWidget(w)
        self.compare_label = _label("")
        lay = QVBoxLayout(ver)
        lay.addWidget(self.version_table)
        lay.addWidget(self.rollback_btn)
        lay.addLayout(crow)
        lay.addWidget(self.compare_label)
        self.addTab(ver, "Versions")

        # ---- advice and audit
        adv = QWidget()
        self.advice_btn = QPushButton("Label more or stop?")
        self.advice_label = _label("")
        self.audit_btn = QPushButton("Export audit bundle...")
        self.audit_btn.setToolTip("NIfTI masks, ITK-SNAP / Slicer label tables, JSON + HTML report")
        self.audit_label = _label("")
        lay = QVBoxLayout(adv)
        lay.addWidget(self.advice_btn)
        lay.addWidget(self.advice_label)
        lay.addWidget(self.audit_btn)
        lay.addWidget(self.audit_label)
        lay.addStretch(1)
        self.addTab(adv, "Advice && audit")
        self.setMinimumHeight(230)
        from . import _settings

        for key, widget in (
            ("proposals/threshold", self.threshold),
            ("proposals/show_needs_human", self.show_needs_human),
            ("proposals/adapt_threshold", self.adapt_threshold),
        ):
            _settings.bind(key, widget)
