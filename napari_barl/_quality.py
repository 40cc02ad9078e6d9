"""Proposals, slice history, model versions, advice and audit: the quality tabs' glue.

All decisions live in barl_core: the use-cases in :class:`barl_core.workspace.session.Session`
(over :mod:`~barl_core.active.proposals`, :mod:`~barl_core.workspace.provenance`,
:mod:`~barl_core.workspace.validation`, :mod:`~barl_core.workspace.versions`,
:mod:`~barl_core.workspace.advice`, :mod:`~barl_core.workspace.audit`); this controller
follows the dock's :class:`~napari_barl._state.BarlState`, calls them and shows the result
in :class:`~napari_barl._quality_panels.QualityTabs` and in layers.

Keys (bound on the viewer, so they work whatever layer is selected):
``Shift-A`` accepts the proposal on the current slice, ``Shift-R`` rejects it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from qtpy.QtCore import QObject, Qt
from qtpy.QtWidgets import QFileDialog, QListWidgetItem, QTableWidgetItem

from barl_core.active.proposals import NEEDS_HUMAN
from barl_core.errors import InputFileError

from ._case_view import CaseView
from ._layers import CASE_KEY, geometry_kwargs, same_layer, single_colour_labels
from ._notify import guarded
from ._notify import notify as _notify
from ._quality_panels import ACCEPT_KEY, REJECT_KEY, QualityTabs, collapsible
from ._state import BarlState

__all__ = ["QualityController", "PROPOSAL_LAYER", "NEEDS_HUMAN_LAYER", "MIN_ACCEPT_COVERAGE"]

#: Below this share of confidently proposed voxels, accepting a slice asks first: the rest
#: of the slice would take the model's unsure guesses as training labels.
MIN_ACCEPT_COVERAGE = 0.5
COMPARE_COLOURS = ("cyan", "yellow")

PROPOSAL_LAYER = "proposal"
NEEDS_HUMAN_LAYER = "needs a human"
_ROLE = Qt.UserRole


class QualityController(QObject):
    """Drive the quality tabs (:class:`~napari_barl._quality_panels.QualityTabs`).

    Parameters
    ----------
    view : CaseView
        The open case: its labels binding, the slice on screen.
    state : BarlState
        The dock's shared state.
    all_cases : callable, optional
        Whether an audit export covers all cases (the export panel's choice).
    """

    def __init__(
        self,
        view: CaseView,
        state: BarlState,
        all_cases: Callable[[], bool] = lambda: False,
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        self.view = view
        self.state = state
        self._all_cases = all_cases
        self._layers: list = []  # the layers this controller added for the open case
        self._layers_case: str | None = None  # the case those layers belong to
        self.tabs = QualityTabs()
        self.box = collapsible("Proposals, history, versions, audit", self.tabs, "quality/expanded")
        self.proposal: np.ndarray | None = None
        self._compare_layers: list = []
        state.events.case.connect(self._case_changed)
        state.events.session.connect(lambda _s: self.refresh_versions())
        state.events.model.connect(lambda _m: self.refresh_versions())
        # before the prediction views redraw: the proposals they trigger use the fitted threshold
        state.events.predictions.connect(self._predictions_filed, priority=10)
        state.events.labels_saved.connect(lambda _n: self._labels_saved())
        state.events.all.connect(lambda *_: self._update_enabled())
        t = self.tabs
        t.threshold.valueChanged.connect(lambda _v: self.refresh_proposals())
        t.show_needs_human.toggled.connect(self._show_needs_human)
        t.accept_btn.clicked.connect(lambda: self.accept_current())
        t.reject_btn.clicked.connect(lambda: self.reject_current())
        t.revert_btn.clicked.connect(lambda: self.revert_selected())
        t.rollback_btn.clicked.connect(lambda: self.rollback())
        t.compare_btn.clicked.connect(
            lambda: self.compare(t.compare_a.currentText(), t.compare_b.currentText())
        )
        t.advice_btn.clicked.connect(lambda: self.advise())
        t.audit_btn.clicked.connect(self._choose_audit_folder)
        viewer = view.viewer
        viewer.bind_key(ACCEPT_KEY, lambda _v: self.accept_current(), overwrite=True)
        viewer.bind_key(REJECT_KEY, lambda _v: self.reject_current(), overwrite=True)
        viewer.dims.events.current_step.connect(self._dims_changed)
        self._update_enabled()

    # ------------------------------------------------------------------ helpers
    def _ws_case(self):
        ws, case = self.state.workspace, self.state.case
        if ws is None or case is None or self.view.sync is None:
            raise InputFileError("open a case first")
        return ws, case

    def _update_enabled(self) -> None:
        """Actions that write the workspace are off while it is read-only."""
        writable = not self.state.read_only
        t = self.tabs
        for b in (t.accept_btn, t.reject_btn, t.revert_btn, t.rollback_btn):
            b.setEnabled(writable)

    def _dims_changed(self, _event=None) -> None:
        if self.view.labels_layer is not None:
            try:
                self.update_status()
                self.refresh_history()
            except Exception:  # noqa: BLE001 (a repaint hint, never worth an error)
                pass

    def _labels_saved(self) -> None:
        """Slices annotated since the proposal was drawn lose it; the history grows."""
        ws, case = self.state.workspace, self.state.case
        if self.proposal is not None and ws is not None and case is not None:
            slices = ws.annotated_slices(case)
            if any((self.proposal[z] != NEEDS_HUMAN).any() for z in slices):
                self.refresh_proposals()
        self._dims_changed()

    def _predictions_filed(self, _count: int) -> None:
        self.refresh_versions()
        self.calibrate()

    def _version_id(self) -> str | None:
        return self.state.session.current_version_id() if self.state.session else None

    def _remove_layers(self, names) -> None:
        viewer = self.view.viewer
        for layer in [ly for ly in viewer.layers if ly.name in names]:
            viewer.layers.remove(layer)
            self._layers = [ly for ly in self._layers if not same_layer(ly, layer)]

    def _case_changed(self, case: str | None) -> None:
        """Another case (or none): this controller's layers and proposal belong to the old one."""
        if case is not None and case == self._layers_case:
            return  # already drawn for this case (the prediction view redrew first)
        self._remove_layers({ly.name for ly in self._layers})
        self._layers, self._compare_layers = [], []
        self._layers_case = None
        self.proposal = None

    def _add_labels(self, data, name, **kwargs):
        ws, case = self.state.workspace, self.state.case
        geo = geometry_kwargs(ws.reference(case), {CASE_KEY: case})
        layer = self.view.viewer.add_labels(data, name=name, **geo, **kwargs)
        self._layers.append(layer)
        self._layers_case = case
        return layer

    def _keep_labels_on_top(self) -> None:
        layer, layers = self.view.labels_layer, self.view.viewer.layers
        if layer is not None and layer in layers:
            layers.move(layers.index(layer), len(layers))
            layers.selection.active = layer

    def _show_needs_human(self, on: bool) -> None:
        for layer in self.view.viewer.layers:
            if layer.name == NEEDS_HUMAN_LAYER:
                layer.visible = bool(on)

    # ------------------------------------------------------------------ proposals
    def calibrate(self):
        """Fit the agreement threshold to the working model, and say on what evidence."""
        t = self.tabs
        if self.state.session is None or not t.adapt_threshold.isChecked():
            return None
        cal = self.state.session.calibrated_threshold()
        if cal is None:
            t.calibration_label.setText(
                f"threshold {t.threshold.value():.2f}: no validation slice scored yet to fit "
                "it on (they come from your 5th annotated slice on)"
            )
            return None
        t.threshold.blockSignals(True)
        t.threshold.setValue(cal.threshold)
        t.threshold.blockSignals(False)
        t.calibration_label.setText(
            f"threshold {cal.threshold:.2f} fitted to this model: on {cal.n_slices} validation "
            f"slice(s) you drew, {100 * cal.precision:.0f}% or more of each class's voxels "
            f"proposed at this agreement were right; {100 * cal.coverage:.0f}% of them were "
            "proposed"
        )
        return cal

    def refresh_proposals(self) -> None:
        """Gate the current case's prediction and show the proposal and "needs a human" layers."""
        self._remove_layers({PROPOSAL_LAYER, NEEDS_HUMAN_LAYER})
        self.proposal = None
        ws, case = self.state.workspace, self.state.case
        if ws is None or case is None or self.view.sync is None:
            return
        self.proposal = self.state.session.proposal(case, self.tabs.threshold.value())
        if self.proposal is None:
            self.tabs.proposal_status.setText("no proposals: predict this case first")
            return
        skip = self.state.session.proposal_skip(case)
        shown = np.where(self.proposal == NEEDS_HUMAN, 0, self.proposal).astype(np.uint8)
        needs = (self.proposal == NEEDS_HUMAN).astype(np.uint8)
        if skip:
            needs[sorted(skip)] = 0
        self._add_labels(shown, PROPOSAL_LAYER, opacity=0.5)
        # an outline, and hidden unless asked for: after a first round almost everything
        # "needs a human", and a filled overlay would hide the prediction and disagreement
        layer = self._add_labels(
            needs,
            NEEDS_HUMAN_LAYER,
            opacity=0.8,
            visible=self.tabs.show_needs_human.isChecked(),
        )
        layer.contour = 1
        layer.colormap = single_colour_labels("magenta")
        self._keep_labels_on_top()
        self.update_status()

    def update_status(self) -> None:
        """Say what the proposal is on the current slice (and which keys act on it)."""
        if self.proposal is None or self.view.sync is None:
            return
        ws, case = self.state.workspace, self.state.case
        z = self.view.current_slice()
        if z in ws.annotated_slices(case):
            text = f"slice {z}: annotated (no proposal)"
        elif z in ws.provenance.rejected(case):
            text = f"slice {z}: proposal rejected - draw it yourself"
        else:
            cov = self.state.session.proposal_coverage(self.proposal, z)
            text = (
                f"slice {z}: {100 * cov:.0f}% proposed with agreement >= "
                f"{self.tabs.threshold.value():.2f}; magenta needs a human. "
                f"{ACCEPT_KEY} accepts, {REJECT_KEY} rejects."
            )
        self.tabs.proposal_status.setText(text)

    @guarded
    def accept_current(self) -> list[int] | None:
        """Accept the proposal on the current slice (recorded as model-proposed, human-accepted)."""
        ws, case = self._ws_case()
        z = self.view.current_slice()
        session = self.state.session
        values, proposal = session.proposal_values(case, z, self.tabs.threshold.value())
        coverage = float(np.mean(proposal != NEEDS_HUMAN))
        if coverage < MIN_ACCEPT_COVERAGE and not self.confirm(
            f"Only {100 * coverage:.0f}% of slice {z} is proposed with confidence.\n"
            f"Accepting puts the model's unsure guesses on the other "
            f"{100 * (1 - coverage):.0f}% into your training labels.\n\nAccept anyway?"
        ):
            self.tabs.proposal_status.setText(
                f"slice {z}: not accepted ({100 * coverage:.0f}% confident); paint it or lower "
                "the threshold"
            )
            return None
        slices = self.view.sync.set_slice(
            z, values, how="accepted", proposal=proposal, model_version=self._version_id()
        )
        session.record_accepted(case, z)
        self.state.labels_saved += 1  # the accepted mark shows
        self.refresh_proposals()
        return slices

    def confirm(self, question: str) -> bool:
        """Ask the user a yes/no question (default: no)."""
        from qtpy.QtWidgets import QMessageBox

        answer = QMessageBox.question(
            self.tabs, "napari-barl", question, QMessageBox.Yes | QMessageBox.No, QMessageBox.No
        )
        return answer == QMessageBox.Yes

    @guarded
    def reject_current(self) -> None:
        """Reject the proposal on the current slice: it is the user's to draw."""
        _ws, case = self._ws_case()
        self.state.session.reject_proposal(case, self.view.current_slice())
        self.refresh_proposals()
        self.refresh_history()

    # ------------------------------------------------------------------ history
    def refresh_history(self) -> None:
        """List the current slice's history (``#K`` edits), newest last."""
        lst = self.tabs.history_list
        lst.clear()
        ws, case = self.state.workspace, self.state.case
        if ws is None or case is None or self.view.sync is None:
            return
        z = self.view.current_slice()
        self.tabs.history_label.setText(f"slice {z} of {case}")
        for ev in ws.provenance.events(case, z):
            when = time.strftime("%H:%M:%S", time.localtime(ev.time))
            # "#K" for slice edits: "vN" names model versions
            text = f"{'#' + str(ev.version) if ev.version else '--'}  {ev.how}  {when}"
            if ev.model_version:
                text += f"  model {ev.model_version}"
            if ev.dice_to_proposal is not None:
                text += f"  Dice to proposal {ev.dice_to_proposal:.2f}"
            item = QListWidgetItem(text)
            item.setData(_ROLE, ev.version)
            lst.addItem(item)

    @guarded
    def revert_selected(self, version: int | None = None) -> None:
        """Revert the current slice to ``version`` (default: the selected history entry)."""
        ws, case = self._ws_case()
        if version is None:
            item = self.tabs.history_list.currentItem()
            version = item.data(_ROLE) if item is not None else None
        if not version:
            raise InputFileError("select an entry (#1, #2...) of this slice's history first")
        z = self.view.current_slice()
        self.view.save_now()
        ws.revert_slice(case, z, int(version))
        self.view.sync.reload_slice(z)
        self.state.labels_saved += 1  # a save done on disk: the views follow
        self.refresh_proposals()

    # ------------------------------------------------------------------ versions
    def refresh_versions(self) -> None:
        """List the model versions (the working one starred) and fill the compare boxes."""
        t = self.tabs
        ws = self.state.workspace
        t.version_table.setRowCount(0)
        for box in (t.compare_a, t.compare_b):
            box.clear()
        if ws is None:
            return
        current = self._version_id()
        for v in ws.versions.versions:
            r = t.version_table.rowCount()
            t.version_table.insertRow(r)
            cells = [
                v.id + (" *" if v.id == current else ""),
                str(v.n_annotated),
                "" if v.val_dice is None else f"{v.val_dice:.3f}",
                v.parent or "",
                Path(v.path).parent.name,
            ]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(_ROLE, v.id)
                t.version_table.setItem(r, c, item)
            t.compare_a.addItem(v.id)
            t.compare_b.addItem(v.id)
        n = len(ws.versions.versions)
        if n >= 2:
            t.compare_a.setCurrentIndex(n - 2)
            t.compare_b.setCurrentIndex(n - 1)

    @guarded
    def rollback(self, version: str | None = None) -> None:
        """Make ``version`` (default: the selected row) the working model."""
        self.state.require_session()
        if version is None:
            items = self.tabs.version_table.selectedItems()
            version = items[0].data(_ROLE) if items else None
        if not version:
            raise InputFileError("select a version to roll back to")
        path = self.state.session.rollback(version)
        self.refresh_versions()
        self.state.model = version  # the dock enables Fine-tune / Predict for it
        _notify("info", f"working model is now {version} ({path.parent.name}); predict to see it")

    @guarded
    def compare(self, a: str, b: str) -> dict:
        """Dice between versions ``a`` and ``b`` on the current slice; show both as layers."""
        _ws, case = self._ws_case()
        z = self.view.current_slice()
        res, pa, pb = self.state.session.compare(a, b, case, z)
        self._remove_layers({ly.name for ly in self._compare_layers})
        self._compare_layers = []
        for vid, p, colour in zip((a, b), (pa, pb), COMPARE_COLOURS, strict=True):
            layer = self._add_labels(p.astype(np.uint8), f"version {vid} ({colour})", opacity=0.9)
            layer.contour = 1  # two outlines stay readable over each other and the image
            layer.colormap = single_colour_labels(colour)
            self._compare_layers.append(layer)
        self._keep_labels_on_top()
        self.tabs.compare_label.setText(
            f"slice {z}: Dice {res['dice']:.3f} between {a} ({COMPARE_COLOURS[0]}) and "
            f"{b} ({COMPARE_COLOURS[1]}); "
            f"{100 * res['changed_fraction']:.1f}% of voxels differ"
        )
        return res

    # ------------------------------------------------------------------ training glue
    def prepare_training(self) -> tuple[Path, dict]:
        """Freeze new validation slices and write the training labels (see :meth:`Session.prepare_training`)."""
        self.state.require_session()
        plan = self.state.session.prepare_training()
        return plan.labels_dir, plan.version_info()

    def evaluate_version(self, vid: str) -> dict | None:
        """Score version ``vid`` on the frozen validation slices and show it."""
        metrics = self.state.session.evaluate_version(vid)
        self.refresh_versions()
        return metrics

    # ------------------------------------------------------------------ advice and audit
    @guarded
    def advise(self):
        """Show whether labelling more is likely to help, and where next."""
        self.state.require_session()
        self.view.save_now()
        adv = self.state.session.advise(self.state.case)
        which = ", ".join(f"{c} slice {z}" for c, z in adv.slices)
        text = adv.message + (f"\nNext: {which}" if which else "")
        if adv.reasons:
            text += "\n(" + "; ".join(adv.reasons) + ")"
        self.tabs.advice_label.setText(text)
        return adv

    def _choose_audit_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.tabs, "Export audit bundle to folder")
        if folder:
            self.export_audit(folder, self._all_cases())

    @guarded
    def export_audit(self, folder: str | Path, all_cases: bool = False) -> list:
        """Write an audit bundle (masks, label tables, report) per case to ``folder``."""
        ws = self.state.require_session().workspace
        self.view.save_now()
        cases = ws.cases if all_cases else ([self.state.case] if self.state.case else [])
        if not cases:
            raise InputFileError("open a case first")
        bundles = self.state.session.export_audit(folder, cases)
        self.tabs.audit_label.setText(f"audit bundle(s) written to {folder}")
        _notify("info", f"exported {len(bundles)} audit bundle(s) to {folder}")
        return bundles

