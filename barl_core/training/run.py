"""One call to train a model on a folder: the entry point of the CLI, the GUI's jobs and the demo.

It loads and prepares the data, resolves what a resume or a fine-tune implies for the config,
lets a planner size the run, holds out validation volumes, and runs a
:class:`~barl_core.training.trainer.Trainer`. Out of memory at the top level (outside the
trainer's own back-off) becomes a :class:`~barl_core.errors.TrainingError`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from barl_core.data.dataset import Case, load_dataset
from barl_core.data.sampler import TrainingVolume
from barl_core.errors import BarlError, TrainingError
from barl_core.runtime.cancel import CancelToken
from barl_core.training.checkpoint import load_checkpoint
from barl_core.training.config import TrainConfig
from barl_core.training.oom import is_out_of_memory
from barl_core.training.prepare import (
    dataset_class_names,
    prepare_training_data,
    validation_volumes,
)
from barl_core.training.resume import latest_checkpoint
from barl_core.training.trainer import ProgressCallback, Trainer, TrainResult
from barl_core.training.validator import split_validation

__all__ = ["train"]

_log = logging.getLogger(__name__)


def train(
    config: TrainConfig,
    images_dir: str | os.PathLike,
    labels_dir: str | os.PathLike | None,
    out_dir: str | os.PathLike,
    *,
    resume: bool = False,
    resume_to: int | None = None,
    init_from: str | os.PathLike | None = None,
    callback: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    validation_cases: Sequence[Case] | None = None,
    diagnostic_cases: Sequence[Case] | None = None,
    planner: Callable[[TrainConfig, list[TrainingVolume]], TrainConfig] | None = None,
) -> TrainResult:
    """Train a model on an MSD-style folder; the one call behind CLI, GUI jobs and demo.

    Parameters
    ----------
    config : TrainConfig
    images_dir, labels_dir : path
        Images (``imagesTr``) and sparse labels (``labelsTr``; 255 = not annotated).
        ``labels_dir`` None lets the loader find the MSD sibling folder.
    out_dir : path
        The run directory.
    resume : bool
        Continue from the latest checkpoint in ``out_dir`` with its saved config (the
        given config's ``device`` and ``num_threads`` still apply, and its ``max_seconds``
        when set); iteration count, optimiser, scaler and RNG state continue. A time limit
        (``max_seconds``) counts afresh from the resume: the resumed part may take that long.
    resume_to : int, optional
        With ``resume``: continue to this many iterations instead of the run's own count,
        also after the run finished. The schedule (poly decay, ramp-up) is recomputed as if
        the run had been planned for ``resume_to`` from the start, so a finished run gets its
        learning rate back; a finished run continues from its ``model.pt`` (with validation,
        the best validated weights).
    init_from : path, optional
        Fine-tune: start from this checkpoint's weights (architecture and classes must
        match; its class names are adopted when the config names none) with a fresh
        schedule of ``config.iterations``. Otherwise, unnamed classes come from a
        ``dataset.json`` beside the images, else from the largest label value.
    callback : callable, optional
        Receives :class:`TrainProgress`.
    cancel : CancelToken, optional
    validation_cases : list of Case, optional
        Held-out labelled cases to validate on (with ``config.validation.every``); without
        them a fixed share of the labelled cases is held out (:func:`~barl_core.training.validator.split_validation`).
    diagnostic_cases : list of Case, optional
        Training cases labelled with the truth of their unannotated voxels (255 where
        annotated): pseudo-label quality per branch, logged at each validation.
    planner : callable, optional
        ``planner(config, training_volumes) -> config``, called once the data is loaded
        (e.g. :func:`barl_core.training.planner.make_planner`: fingerprint, timing, time budget).

    Returns
    -------
    TrainResult

    Raises
    ------
    EmptyDatasetError, TrainingError, CheckpointError, InputFileError, ...
        Every user error as a :class:`~barl_core.errors.BarlError`.
    """
    if resume_to is not None and not resume:
        raise TrainingError("resume_to continues a run: use it with resume")
    if resume and init_from is not None:
        raise TrainingError("use either resume (continue a run) or init_from (fine-tune), not both")
    run_dir = Path(out_dir)
    resume_from: Path | None = None
    if resume:
        resume_from = latest_checkpoint(run_dir)
        if resume_from is None:
            raise TrainingError(f"{run_dir}: nothing to resume (no checkpoint in this run folder)")
        ckpt = load_checkpoint(resume_from)
        saved = TrainConfig.from_dict(ckpt["config"])
        done = int(ckpt.get("iteration", 0))
        if resume_to is not None and resume_to < done:
            raise TrainingError(
                f"{run_dir}: the run is already at iteration {done}; continue it to more than "
                f"{resume_to} iterations, or fine-tune from {resume_from} into a new run"
            )
        # the saved time limit counts afresh from the resume (the trainer says so); a limit
        # in the given config (``barl train --resume --time-budget``) replaces it
        limit = saved.max_seconds if config.max_seconds is None else config.max_seconds
        config = replace(saved, device=config.device, num_threads=config.num_threads, max_seconds=limit,
                         iterations=saved.iterations if resume_to is None else int(resume_to))
    elif init_from is not None and config.class_names is None:
        ckpt = load_checkpoint(init_from)
        config = config.with_classes(ckpt["class_names"])
    elif config.class_names is None:
        names = dataset_class_names(images_dir, config.ignore_index)
        if names is not None:
            config = config.with_classes(names)
    config.validate()
    num_classes = len(config.class_names) if config.class_names else None
    cases = load_dataset(images_dir, labels_dir, ignore_index=config.ignore_index, num_classes=num_classes)
    volumes, stats, names = prepare_training_data(cases, config)
    config = config.with_classes(names).validate()
    if planner is not None:
        config = planner(config, volumes)
    held_out: list[TrainingVolume] = []
    if config.validation.every:
        if validation_cases is not None:
            held_out = validation_volumes(validation_cases, config, stats)
        else:
            volumes, held_out = split_validation(volumes, config.validation, config.ignore_index)
        if not held_out:
            _log.warning("validation is off: fewer than %d labelled cases to hold some out",
                         config.validation.min_labelled_cases)
    diagnostics = validation_volumes(diagnostic_cases, config, stats) if diagnostic_cases and held_out else None
    trainer = Trainer(config, volumes, run_dir, norm_stats=stats, callback=callback, cancel=cancel,
                      validation_volumes=held_out, diagnostic_volumes=diagnostics)
    try:
        trainer.initialize()
        if resume_from is not None:
            trainer.load_checkpoint(resume_from)
        elif init_from is not None:
            trainer.init_from(init_from)
        return trainer.run_training()
    except BarlError:
        raise
    except (ValueError, RuntimeError) as exc:
        if is_out_of_memory(exc):
            raise TrainingError(f"out of memory: {str(exc).splitlines()[0]}; use a smaller patch or batch") from None
        raise
    finally:
        trainer.close()
