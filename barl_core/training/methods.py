"""Training methods: *what* is optimised, separate from *how* the loop runs.

Each method owns its network(s) and turns one batch into a dict of losses
(``"loss"`` is the total, every term is also reported on its own); the
:mod:`~barl_core.training.trainer` owns device, precision, optimiser, schedule, checkpoints and
cancellation and knows nothing of BARL. All methods get the same patches (same sampler)
and the same weak/strong views (same :mod:`~barl_core.data.augment`), so comparisons are fair.

- ``barl``: two independently initialised branches; weak view to A and strong to B,
  swapped every other iteration; supervised loss on both; DPR, PCBC, region and instance
  alignment, ramped up with a Gaussian schedule, each switchable (``disable``).
- ``supervised``: one :class:`~barl_core.networks.unet.UNet3D`, annotated voxels only.
- ``mean-teacher``: student (``branch_a``) + EMA teacher (``branch_b``), softmax-MSE
  consistency between the student's strong and the teacher's weak view.
- ``cps``: two branches, cross pseudo supervision on the finest logits, same views as BARL.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from barl_core.data.augment import Views, make_views
from barl_core.data.cutmix import sample_box_mix
from barl_core.errors import TrainingError
from barl_core.losses import (
    downsample_labels,
    dpr_loss,
    hard_labels,
    instance_matching_loss,
    pcbc_loss,
    region_alignment_loss,
    region_contrast_loss,
    supervised_loss,
)
from barl_core.networks.unet import BiBranchNet, NetOutput, UNet3D, ema_update
from barl_core.training.config import TrainConfig
from barl_core.training.profiling import PhaseTimer

__all__ = [
    "TrainingMethod",
    "TwoBranchMethod",
    "BarlMethod",
    "SupervisedMethod",
    "MeanTeacherMethod",
    "CPSMethod",
    "METHOD_CLASSES",
    "build_method",
]


class TrainingMethod:
    """Base class: one ``training_step`` per iteration, networks, optimisable parameters.

    Parameters
    ----------
    config : TrainConfig
        The run's configuration (network, losses, iterations for the ramp-up).
    device : torch.device
        Where the networks live; batches arrive on CPU and are moved here.
    generator : torch.Generator
        CPU generator for the augmentation (its state is checkpointed by the trainer).
    """

    name = "base"
    n_branches = 2
    #: False: the trainer does not sample unlabelled patches for this method.
    uses_unlabelled = True

    def __init__(self, config: TrainConfig, device: torch.device, generator: torch.Generator):
        self.config = config
        self.device = torch.device(device)
        self.generator = generator
        self.ignore_index = config.ignore_index
        #: What ``run(name, ...)`` calls: the trainable modules, or their DDP wrappers.
        self._runners: dict[str, nn.Module] = {}
        #: Phase timing (the trainer installs its own; disabled unless profiling/planning).
        self.timer = PhaseTimer()

    # -- to implement ---------------------------------------------------------------
    def model_for_checkpoint(self) -> nn.Module:
        """Return the module whose ``state_dict`` is the checkpoint's ``model_state``."""
        raise NotImplementedError

    def training_step(
        self,
        labelled_images: Tensor,
        labels: Tensor,
        unlabelled_images: Tensor | None,
        iteration: int,
    ) -> dict[str, Tensor]:
        """Losses of one batch: ``{"loss": total, "<term>": value, ...}`` (scalars)."""
        raise NotImplementedError

    def trainable_modules(self) -> dict[str, nn.Module]:
        """Return the networks the optimiser updates, by the name ``training_step`` runs them under.

        Modules left out (Mean Teacher's EMA teacher) are never wrapped for
        multi-process training: they receive no gradients and follow their student.
        """
        raise NotImplementedError

    # -- shared ---------------------------------------------------------------------
    def run(self, name: str, *args, **kwargs):
        """Forward pass of trainable module ``name`` (through its DDP wrapper if distributed)."""
        module = self._runners.get(name)
        if module is None:
            module = self.trainable_modules()[name]
        return module(*args, **kwargs)

    @property
    def uses_every_parameter(self) -> bool:
        """Whether every trainable parameter enters every loss.

        True lets DDP skip its search for unused parameters; False by default, as most
        methods leave the projection head out.
        """
        return False

    def distribute(self, wrap: Callable[[nn.Module], nn.Module]) -> None:
        """Route each trainable module's forward pass through ``wrap(module)`` (DDP).

        The wrappers only carry the forward passes: checkpoints keep saving
        :meth:`model_for_checkpoint` (no ``module.`` prefixes), so a model trained on
        several GPUs loads like any other.
        """
        self._runners = {name: wrap(m) for name, m in self.trainable_modules().items()}

    def parameters(self) -> Iterator[nn.Parameter]:
        """Parameters the optimiser updates."""
        return (p for p in self.model_for_checkpoint().parameters() if p.requires_grad)

    def term_weights(self, iteration: int) -> dict[str, float]:
        """Return the factor each loss term enters ``"loss"`` with at ``iteration``, by term name.

        ``loss == sum(w * losses[t] for t, w in term_weights(it).items())``; the per-term
        gradient norms (:mod:`~barl_core.training.gradnorm`) use it to measure what each term
        contributes to the update. Empty by default (no per-term diagnostics).
        """
        return {}

    def after_optimizer_step(self, iteration: int) -> None:
        """Run after each optimiser step (EMA updates); nothing by default."""

    def train(self) -> None:
        """Put the trainable networks in training mode."""
        self.model_for_checkpoint().train()

    #: True when training starts from a trained model's weights (fine-tuning): see :meth:`rampup`.
    warm_start = False

    def rampup(self, iteration: int) -> float:
        """Gaussian ramp-up weight of the unsupervised terms at ``iteration``.

        1.0 throughout a warm start: the ramp protects an untrained network from its own noisy
        pseudo-labels, and a fine-tuned one already gives trained ones (restarting the ramp
        left the alignment terms at a few percent of their weight for a whole 100-iteration
        fine-tuning round).
        """
        if self.warm_start:
            return 1.0
        return self.config.losses.rampup(iteration, self.config.iterations)

    def views(self, labelled: Tensor, labels: Tensor, unlabelled: Tensor | None) -> tuple[Views, int]:
        """Weak/strong views of labelled + unlabelled patches, stacked, on the device.

        Returns the views (labels cover the first ``n_labelled`` samples) and ``n_labelled``.
        """
        images = labelled if unlabelled is None or unlabelled.shape[0] == 0 else torch.cat([labelled, unlabelled])
        n_l = labelled.shape[0]
        full_labels = labels
        if images.shape[0] > n_l:  # unlabelled samples carry ignore everywhere
            pad = torch.full(
                (images.shape[0] - n_l, *labels.shape[1:]), self.ignore_index, dtype=labels.dtype
            )
            full_labels = torch.cat([labels, pad])
        with self.timer.phase("views"):
            v = make_views(images, full_labels, self.generator, self.config.augment)
            dev = self.device
            views = Views(v.weak.to(dev, non_blocking=True), v.strong.to(dev, non_blocking=True),
                          v.labels[:n_l].to(dev, non_blocking=True).long())
        return views, n_l


def _pseudo_ce(logits: Tensor, pseudo: Tensor) -> Tensor:
    return F.cross_entropy(logits.float(), pseudo)


class TwoBranchMethod(TrainingMethod):
    """Base of the methods that train two independently initialised branches ``a`` and ``b``."""

    n_branches = 2

    def __init__(self, config: TrainConfig, device: torch.device, generator: torch.Generator):
        super().__init__(config, device, generator)
        self.net = BiBranchNet(config.network).to(self.device)

    def model_for_checkpoint(self) -> nn.Module:
        """Return the two-branch network."""
        return self.net

    def trainable_modules(self) -> dict[str, nn.Module]:
        """Return both branches: each is optimised."""
        return {"a": self.net.branch_a, "b": self.net.branch_b}

    @staticmethod
    def by_branch(weak, strong, weak_to_a: bool) -> tuple:
        """Order a (weak-view, strong-view) pair as (branch A's, branch B's), or back.

        The one place the alternation lives: the order is kept or swapped, so the same call
        also turns (A's, B's) into (weak's, strong's).
        """
        return (weak, strong) if weak_to_a else (strong, weak)

    def forward_pair(self, views: Views, iteration: int, features: bool) -> tuple[NetOutput, NetOutput, bool]:
        """Both branches' outputs over the same voxels, and whether A took the weak view.

        Weak -> A and strong -> B on even iterations, swapped on odd ones. With probability
        ``losses.cutmix_prob`` the strong view is cut-mixed and its branch's outputs (every
        scale, and the features) are un-mixed, so every loss downstream still compares the
        branches voxel by voxel.
        """
        weak_to_a = iteration % 2 == 0
        strong = views.strong
        mix = None
        if self.config.losses.cutmix_prob > 0 and (
            torch.rand((), generator=self.generator).item() < self.config.losses.cutmix_prob
        ):
            mix = sample_box_mix(self.generator)
            strong = mix.mix(strong)
        x_a, x_b = self.by_branch(views.weak, strong, weak_to_a)
        with self.timer.phase("forward"):
            out_a: NetOutput = self.run("a", x_a, return_features=features)
            out_b: NetOutput = self.run("b", x_b, return_features=features)
        if mix is not None:
            out_w, out_s = self.by_branch(out_a, out_b, weak_to_a)
            out_s = NetOutput([mix.unmix(t) for t in out_s.logits],
                              None if out_s.features is None else mix.unmix(out_s.features))
            out_a, out_b = self.by_branch(out_w, out_s, weak_to_a)
        return out_a, out_b, weak_to_a


class BarlMethod(TwoBranchMethod):
    """BARL: bilateral alignment in label and representation spaces (see module docstring)."""

    name = "barl"

    def __init__(self, config: TrainConfig, device: torch.device, generator: torch.Generator):
        super().__init__(config, device, generator)
        losses = config.losses.disable(config.disable)
        self.losses = losses
        self.terms = losses.enabled_terms()

    @property
    def uses_every_parameter(self) -> bool:
        """Return True while region or instance alignment keeps the projection head in the loss."""
        # the alignment losses keep the features in the graph even when they are zero
        return bool({"region", "instance"} & set(self.terms))

    #: EMA copies of the branches (``losses.teacher_ema > 0``), made at the first step so that
    #: they copy the weights a fine-tune or resume loaded; not checkpointed (a resumed run
    #: restarts them from the branches).
    _teachers: BiBranchNet | None = None

    def _teacher_logits(self, views: Views, weak_to_a: bool) -> tuple[list[Tensor], list[Tensor]]:
        """Each EMA teacher's logits (every scale) on the view its branch saw."""
        if self._teachers is None:
            self._teachers = copy.deepcopy(self.net).requires_grad_(False).eval()
        x_a, x_b = self.by_branch(views.weak, views.strong, weak_to_a)
        with torch.no_grad(), self.timer.phase("forward:teachers"):
            t_a = self._teachers.branch_a(x_a, return_features=False).logits
            t_b = self._teachers.branch_b(x_b, return_features=False).logits
        return t_a, t_b

    def after_optimizer_step(self, iteration: int) -> None:
        """Move the EMA teachers towards their branches."""
        if self._teachers is not None:
            ema_update(self._teachers, self.net, self.losses.teacher_ema)

    def training_step(self, labelled_images, labels, unlabelled_images, iteration):
        """Compute the supervised loss on both branches and every enabled BARL term."""
        views, n_l = self.views(labelled_images, labels, unlabelled_images)
        features = bool({"region", "instance"} & set(self.terms))
        timer = self.timer
        out_a, out_b, weak_to_a = self.forward_pair(views, iteration, features)
        y = views.labels
        with timer.phase("loss:sup"):
            sup_a = supervised_loss([t[:n_l] for t in out_a.logits], y, self.ignore_index)
            sup_b = supervised_loss([t[:n_l] for t in out_b.logits], y, self.ignore_index)
        out: dict[str, Tensor] = {"sup": sup_a + sup_b}
        lc = self.losses
        hard_a = hard_b = None
        if {"dpr", "pcbc"} & set(self.terms):
            src_a, src_b = out_a.logits, out_b.logits
            if lc.teacher_ema > 0:
                src_a, src_b = self._teacher_logits(views, weak_to_a)
            with timer.phase("loss:pseudo"):  # one class decision per scale, shared by DPR and PCBC
                hard_a = [hard_labels(t) for t in src_a]
                hard_b = [hard_labels(t) for t in src_b]
        if hard_a is not None:  # diagnostic: share of voxels where the branches' finest decisions differ
            out["disagree"] = (hard_a[-1] != hard_b[-1]).float().mean()
        if "dpr" in self.terms:
            with timer.phase("loss:dpr"):
                out["dpr"] = dpr_loss(out_a.logits, out_b.logits, lc.dpr_threshold, hard_a, hard_b)
        if "pcbc" in self.terms:
            with timer.phase("loss:pcbc"):
                out["pcbc"] = pcbc_loss(out_a.logits, out_b.logits, lc.pcbc_area_floor, lc.pcbc_mode, hard_a, hard_b)
        if features:
            # Decisions at feature resolution from pooled logits: 8x fewer voxels to decide
            # than at full resolution, and voxel-aligned with the (avg-pooled) features.
            feat_size = tuple(out_a.features.shape[2:])
            with timer.phase("loss:region"):
                pooled_a = hard_labels(F.adaptive_avg_pool3d(out_a.logits[-1].detach().float(), feat_size))
                pooled_b = hard_labels(F.adaptive_avg_pool3d(out_b.logits[-1].detach().float(), feat_size))
                if "region" in self.terms:
                    out["region"] = self._region_term(out_a, out_b, pooled_a, pooled_b, y, n_l, weak_to_a)
            if "instance" in self.terms:
                with timer.phase("loss:instance"):
                    out["instance"] = instance_matching_loss(
                        out_a.features, out_b.features, pooled_a > 0, pooled_b > 0,
                        lc.instance_min_size, lc.instance_top_k, lc.instance_iou_threshold,
                    )
        ramp = self.rampup(iteration)
        total = out["sup"]
        for term in self.terms:
            total = total + ramp * lc.weight(term) * out[term]
        out["loss"] = total
        return out

    def _region_term(self, out_a, out_b, pooled_a, pooled_b, y, n_l, weak_to_a) -> Tensor:
        """Region alignment on ground truth where annotated, else the weak branch's pseudo-label.

        The ``contrast`` mode also drops unannotated voxels where the branches disagree: a
        contrastive target pulls features towards a class, so a contested pseudo-label would
        teach the wrong one, where the prototype mode only averages it in.
        """
        lc, k, ignore = self.losses, self.config.network.num_classes, self.ignore_index
        region = (pooled_a if weak_to_a else pooled_b).clone()
        if lc.region_mode == "contrast":
            region[pooled_a != pooled_b] = ignore
        gt = downsample_labels(y, tuple(pooled_a.shape[1:]), num_classes=k, ignore_index=ignore)
        region[:n_l] = torch.where(gt != ignore, gt, region[:n_l])
        if lc.region_mode == "contrast":
            return region_contrast_loss(
                out_a.features, out_b.features, region, k, lc.region_temperature, lc.region_min_voxels, ignore
            )
        return region_alignment_loss(out_a.features, out_b.features, region, k, lc.region_min_voxels, ignore)

    def term_weights(self, iteration: int) -> dict[str, float]:
        """``sup`` at 1; each enabled BARL term at its ramped weight."""
        ramp = self.rampup(iteration)
        return {"sup": 1.0, **{term: ramp * self.losses.weight(term) for term in self.terms}}


class SupervisedMethod(TrainingMethod):
    """One network trained on annotated voxels only (the lower baseline)."""

    name = "supervised"
    n_branches = 1
    uses_unlabelled = False

    def __init__(self, config: TrainConfig, device: torch.device, generator: torch.Generator):
        super().__init__(config, device, generator)
        self.net = UNet3D(config.network).to(self.device)

    def model_for_checkpoint(self) -> nn.Module:
        """Return the one network."""
        return self.net

    def trainable_modules(self) -> dict[str, nn.Module]:
        """Return the one network."""
        return {"net": self.net}

    def training_step(self, labelled_images, labels, unlabelled_images, iteration):
        """Compute the supervised loss of the weak view on annotated voxels."""
        views, _ = self.views(labelled_images, labels, None)
        with self.timer.phase("forward"):
            out = self.run("net", views.weak, return_features=False)
        with self.timer.phase("loss:sup"):
            sup = supervised_loss(out.logits, views.labels, self.ignore_index)
        return {"loss": sup, "sup": sup}

    def term_weights(self, iteration: int) -> dict[str, float]:
        """Return ``sup`` at 1: the supervised loss is the whole loss."""
        return {"sup": 1.0}


class MeanTeacherMethod(TrainingMethod):
    """Mean Teacher: ``branch_a`` is the student, ``branch_b`` its EMA (no gradients)."""

    name = "mean-teacher"
    n_branches = 2

    def __init__(self, config: TrainConfig, device: torch.device, generator: torch.Generator):
        super().__init__(config, device, generator)
        self.net = BiBranchNet(config.network, shared_init=True).to(self.device)
        self.net.branch_b.requires_grad_(False)

    @property
    def student(self) -> UNet3D:
        """Return the student (``branch_a``), the network the optimiser updates."""
        return self.net.branch_a

    @property
    def teacher(self) -> UNet3D:
        """Return the EMA teacher (``branch_b``), never optimised."""
        return self.net.branch_b

    def model_for_checkpoint(self) -> nn.Module:
        """Return student and teacher as one two-branch network."""
        return self.net

    def trainable_modules(self) -> dict[str, nn.Module]:
        """Return the student only: the teacher follows it by EMA."""
        return {"student": self.net.branch_a}  # the EMA teacher is never optimised nor wrapped

    def train(self) -> None:
        """Put the student in training mode and keep the teacher in eval mode."""
        self.student.train()
        self.teacher.eval()

    def training_step(self, labelled_images, labels, unlabelled_images, iteration):
        """Compute the supervised loss and the student-teacher softmax consistency."""
        views, n_l = self.views(labelled_images, labels, unlabelled_images)
        with self.timer.phase("forward"):
            out_s = self.run("student", views.strong, return_features=False)
            with torch.no_grad():
                out_t = self.teacher(views.weak, deep_supervision=False, return_features=False)
        with self.timer.phase("loss:sup"):
            sup = supervised_loss([t[:n_l] for t in out_s.logits], views.labels, self.ignore_index)
        with self.timer.phase("loss:consistency"):
            consistency = F.mse_loss(
                torch.softmax(out_s.logits[-1].float(), 1), torch.softmax(out_t.logits[-1].float(), 1)
            )
        total = sup + self.rampup(iteration) * self.config.consistency_weight * consistency
        return {"loss": total, "sup": sup, "consistency": consistency}

    def term_weights(self, iteration: int) -> dict[str, float]:
        """``sup`` at 1, the consistency term at its ramped weight."""
        return {"sup": 1.0, "consistency": self.rampup(iteration) * self.config.consistency_weight}

    def after_optimizer_step(self, iteration: int) -> None:
        """Move the teacher towards the student (EMA)."""
        # Warm start: a plain average early on, then the configured decay.
        decay = min(1.0 - 1.0 / (iteration + 2), self.config.ema_decay)
        ema_update(self.teacher, self.student, decay)


class CPSMethod(TwoBranchMethod):
    """Cross pseudo supervision: each branch learns the other's hard finest prediction."""

    name = "cps"

    def training_step(self, labelled_images, labels, unlabelled_images, iteration):
        """Compute the supervised loss on both branches and cross pseudo supervision."""
        views, n_l = self.views(labelled_images, labels, unlabelled_images)
        out_a, out_b, _ = self.forward_pair(views, iteration, features=False)
        with self.timer.phase("loss:sup"):
            sup = supervised_loss([t[:n_l] for t in out_a.logits], views.labels, self.ignore_index)
            sup = sup + supervised_loss([t[:n_l] for t in out_b.logits], views.labels, self.ignore_index)
        with self.timer.phase("loss:cps"):
            la, lb = out_a.logits[-1], out_b.logits[-1]
            hard_a, hard_b = hard_labels(la), hard_labels(lb)
            cps = _pseudo_ce(la, hard_b) + _pseudo_ce(lb, hard_a)
        total = sup + self.rampup(iteration) * self.config.cps_weight * cps
        return {"loss": total, "sup": sup, "cps": cps, "disagree": (hard_a != hard_b).float().mean()}

    def term_weights(self, iteration: int) -> dict[str, float]:
        """``sup`` at 1, cross pseudo supervision at its ramped weight."""
        return {"sup": 1.0, "cps": self.rampup(iteration) * self.config.cps_weight}


METHOD_CLASSES: dict[str, type[TrainingMethod]] = {
    "barl": BarlMethod,
    "supervised": SupervisedMethod,
    "mean-teacher": MeanTeacherMethod,
    "cps": CPSMethod,
}


def build_method(config: TrainConfig, device: torch.device | str, generator: torch.Generator) -> TrainingMethod:
    """Instantiate the method named by ``config.method`` (networks on ``device``).

    Raises
    ------
    TrainingError
        Unknown method name.
    """
    try:
        cls = METHOD_CLASSES[config.method]
    except KeyError:
        raise TrainingError(
            f"unknown training method {config.method!r}; choose one of {', '.join(METHOD_CLASSES)}"
        ) from None
    return cls(config, torch.device(device), generator)
