"""Training controls: method, iterations, patch, device, presets, progress and loss plot.

The panel only builds a :class:`barl_core.training.config.TrainConfig` and shows progress;
the dock widget starts the job, so the panel stays testable on its own.
"""

from __future__ import annotations

from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from barl_core.training.config import METHODS, PRESETS, TrainConfig, preset
from barl_core.training.validator import OVERREACH_WARNING

from . import _settings
from ._progress import LossPlot, format_duration, format_eta

__all__ = ["TrainingPanel", "gpu_description"]

_DEVICES = {"auto": "auto", "CUDA": "cuda", "CPU": "cpu"}


def gpu_description() -> str:
    """Name of the first CUDA GPU, or why there is none.

    ``torch.cuda`` is queried without creating a context (no GPU memory is taken in
    the GUI process).
    """
    try:
        import torch

        if torch.cuda.is_available():
            return f"GPU: {torch.cuda.get_device_name(0)}"
        return "no CUDA GPU found: training runs on the CPU"
    except Exception as exc:  # a broken CUDA install must not break the widget
        return f"CUDA unavailable ({exc.__class__.__name__})"


class TrainingPanel(QGroupBox):
    """Controls and progress display of a training run.

    Signals
    -------
    train_requested(bool)
        ``False`` to train from scratch, ``True`` to fine-tune the current model.
    cancel_requested()
    """

    train_requested = Signal(bool)
    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Training", parent)
        form = QFormLayout()
        self.preset_box = QComboBox()
        self.preset_box.addItems(list(PRESETS))
        self.preset_box.setToolTip('"quick" suits a CPU, "full" a GPU')
        self.method_box = QComboBox()
        self.method_box.addItems(list(METHODS))
        self.iterations = QSpinBox()
        self.iterations.setRange(1, 1_000_000)
        self.patch = [QSpinBox() for _ in range(3)]
        patch_row = QHBoxLayout()
        for sb in self.patch:
            sb.setRange(8, 512)
            sb.setSingleStep(8)
            patch_row.addWidget(sb)
        self.base_channels = QSpinBox()
        self.base_channels.setRange(2, 64)
        self.device_box = QComboBox()
        self.device_box.addItems(list(_DEVICES))
        self.gpu_label = QLabel(gpu_description())
        self.gpu_label.setWordWrap(True)
        self.predict_after = QCheckBox("predict the current case when done")
        self.predict_after.setChecked(True)
        self.budget_on = QCheckBox("plan patch and iterations to fit")
        self.budget_on.setToolTip(
            "time a few iterations on this machine first, then train as many as fit the budget "
            "(the planner of barl train --time-budget)"
        )
        self.budget_s = QSpinBox()
        self.budget_s.setRange(5, 24 * 3600)
        self.budget_s.setSingleStep(30)
        self.budget_s.setSuffix(" s")
        budget_row = QHBoxLayout()
        budget_row.addWidget(self.budget_on)
        budget_row.addWidget(self.budget_s)
        self.plan_label = QLabel("")
        self.plan_label.setWordWrap(True)
        self.plan: dict | None = None  # the running job's plan, once the child made it
        self.overreach: float | None = None  # the last validation's over-reach (a warning, not the score)
        form.addRow("Preset", self.preset_box)
        form.addRow("Method", self.method_box)
        form.addRow("Time budget", budget_row)
        form.addRow("Iterations", self.iterations)
        form.addRow("Patch (z, y, x)", patch_row)
        form.addRow("Network width", self.base_channels)
        form.addRow("Device", self.device_box)
        form.addRow("", self.gpu_label)
        form.addRow("", self.predict_after)

        self.train_btn = QPushButton("Train")
        self.train_btn.setToolTip("train a new model on the annotated slices of all cases")
        self.finetune_btn = QPushButton("Fine-tune")
        self.finetune_btn.setToolTip(
            "continue from the current model with the newly painted slices"
        )
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setEnabled(False)
        buttons = QHBoxLayout()
        for b in (self.train_btn, self.finetune_btn, self.cancel_btn):
            buttons.addWidget(b)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self.eta_label = QLabel("idle")
        self.loss_plot = LossPlot()

        lay = QVBoxLayout(self)
        lay.addLayout(buttons)  # the action first: above the fold, whatever the options
        lay.addWidget(self.progress)
        lay.addWidget(self.eta_label)
        lay.addWidget(self.plan_label)
        lay.addLayout(form)
        lay.addWidget(self.loss_plot)

        self.preset_box.currentTextChanged.connect(self.apply_preset)
        self.budget_on.toggled.connect(self._budget_toggled)
        self.train_btn.clicked.connect(lambda: self.train_requested.emit(False))
        self.finetune_btn.clicked.connect(lambda: self.train_requested.emit(True))
        self.cancel_btn.clicked.connect(lambda: self.cancel_requested.emit())
        self.apply_preset("quick")
        self.finetune_btn.setEnabled(False)
        # the preset first: choosing it resets the values restored after it
        for key, widget in (
            ("training/preset", self.preset_box),
            ("training/method", self.method_box),
            ("training/iterations", self.iterations),
            *((f"training/patch_{i}", sb) for i, sb in enumerate(self.patch)),
            ("training/base_channels", self.base_channels),
            ("training/device", self.device_box),
            ("training/predict_after", self.predict_after),
            ("training/budget_on", self.budget_on),
            ("training/budget_s", self.budget_s),
        ):
            _settings.bind(key, widget)

    def showEvent(self, event) -> None:  # noqa: N802 (Qt API)
        """Give spin boxes the width their digits need before they show."""
        # napari's style sheet gives spin boxes a fixed minimum width, which lets a layout
        # squeeze them below what their digits and arrows need (seen under Qt6)
        for sb in (*self.patch, self.iterations, self.base_channels, self.budget_s):
            sb.setMinimumWidth(sb.minimumSizeHint().width())
        super().showEvent(event)

    # ------------------------------------------------------------------ config
    def apply_preset(self, name: str) -> None:
        """Set iterations, patch and width from preset ``name``."""
        cfg = preset(name)
        self.iterations.setValue(cfg.iterations)
        for sb, v in zip(self.patch, cfg.patch_size, strict=True):
            sb.setValue(int(v))
        self.base_channels.setValue(cfg.network.base_channels)
        from barl_core.training.planner import PRESET_TIME_BUDGETS

        budget = PRESET_TIME_BUDGETS.get(name)
        if budget is not None:
            self.budget_s.setValue(int(budget))
        self.budget_on.setChecked(budget is not None)
        self._budget_toggled(budget is not None)
        if self.preset_box.currentText() != name:
            self.preset_box.setCurrentText(name)

    def _budget_toggled(self, on: bool) -> None:
        """With a budget the planner sets patch and iterations: their boxes are off."""
        self.budget_s.setEnabled(on)
        for sb in (self.iterations, *self.patch):
            sb.setEnabled(not on)
            sb.setToolTip("planned to fit the time budget" if on else "")

    def time_budget_s(self) -> float | None:
        """Return the time budget the run is planned to (None: the boxes' values as given)."""
        return float(self.budget_s.value()) if self.budget_on.isChecked() else None

    def build_config(self, class_names: list[str]) -> TrainConfig:
        """Return the TrainConfig the controls describe (validated; raises TrainingError)."""
        cfg = preset(
            self.preset_box.currentText(),
            method=self.method_box.currentText(),
            iterations=int(self.iterations.value()),
            patch_size=tuple(int(sb.value()) for sb in self.patch),
            device=_DEVICES[self.device_box.currentText()],
            network={"base_channels": int(self.base_channels.value())},
        )
        return cfg.with_classes(class_names).validate()

    # ------------------------------------------------------------------ progress
    def set_running(self, running: bool, can_finetune: bool) -> None:
        """Enable Train / Fine-tune / Cancel for a run in progress or not."""
        self.train_btn.setEnabled(not running)
        self.finetune_btn.setEnabled(not running and can_finetune)
        self.cancel_btn.setEnabled(running)

    def start_display(self, what: str) -> None:
        """Reset the progress bar, status, plan and loss plot for a new run."""
        self.progress.setValue(0)
        self.eta_label.setText(f"{what}: starting...")
        budget = self.time_budget_s()
        self.plan_label.setText(f"planning to fit {budget:.0f} s..." if budget else "")
        self.plan = None
        self.overreach = None
        self.loss_plot.clear()

    def show_plan(self, plan: dict) -> None:
        """Show the plan the run follows: patch, iterations, the time it should take."""
        self.plan = plan
        patch = "x".join(str(int(v)) for v in plan["patch_size"])
        text = (
            f"plan: patch {patch}, {plan['iterations']} iterations at "
            f"{plan['seconds_per_iteration']:.2f} s each, about {format_duration(plan['expected_seconds'])}"
        )
        if plan.get("time_budget_s"):
            text += f" (budget {plan['time_budget_s']:.0f} s)"
        if plan.get("max_seconds"):  # the trainer keeps this limit even if the machine slows down
            text += f"; stops by {format_duration(plan['max_seconds'])} at the latest"
        self.plan_label.setText("\n".join([text, *plan.get("notes", [])]))

    def show_update(self, upd, what: str = "training") -> None:
        """Show one progress update: bar, speed, ETA and the loss curve."""
        total = getattr(upd, "total", 0) or 0
        it = getattr(upd, "iteration", 0) or 0
        if total:
            self.progress.setValue(int(round(100 * min(it, total) / total)))
        losses = getattr(upd, "losses", None) or {}
        loss = losses.get("total", losses.get("loss"))
        if loss is None and losses:
            loss = sum(float(v) for v in losses.values())
        if what == "training" and loss is not None:
            self.loss_plot.add(float(loss), it)
        metrics = getattr(upd, "metrics", None) or {}
        val = metrics.get("val_dice")
        if val is not None:  # the key the trainer writes to metrics.jsonl
            self.loss_plot.add_validation(it, float(val))
        if metrics.get("val_overreach") is not None:  # what the sparse validation slices cannot see
            self.overreach = float(metrics["val_overreach"])
        if getattr(upd, "plan", None):
            self.show_plan(upd.plan)
        speed = getattr(upd, "its_per_s", None)
        parts = [f"{what}: {it}/{total}" if total else what]
        if speed:
            parts.append(f"{speed:.2f} it/s")
        if getattr(upd, "eta_s", None) is not None:
            parts.append(format_eta(upd.eta_s))
        if getattr(upd, "kind", "") == "message" and getattr(upd, "message", ""):
            parts = [f"{what}: {upd.message}"]
        if self.overreach is not None and self.overreach >= OVERREACH_WARNING:
            parts.append(f"warning: {100 * self.overreach:.0f}% of the predicted structure lies on slices "
                         "where it is far larger than anything annotated (likely false positives off the "
                         "labelled slices; label one there)")
        self.eta_label.setText("  ".join(parts))

    def end_display(self, text: str, complete: bool) -> None:
        """Show the outcome of a run (``complete`` fills the bar)."""
        if complete:
            self.progress.setValue(100)
        self.eta_label.setText(text)
