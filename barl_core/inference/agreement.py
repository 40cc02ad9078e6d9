"""Prediction that keeps what agreement-gated proposals need: a per-voxel agreement confidence.

:func:`barl_core.inference.predict.predict_volume` returns the class map and the branches'
disagreement (Jensen-Shannon divergence). A *proposal* must be stricter: a voxel is
proposed only where **both** branches pick the same class (argmax equal) **and** both are
sure of it. That needs each branch's softmax, which the blended prediction does not keep,
so here each branch runs as its own one-branch model (same weights, same windows, same
normalisation: the same forward compute as one two-branch pass) and the two softmax maps
are combined slice block by slice block:

- ``labels``: argmax of the branches' mean softmax (as :func:`predict_volume`);
- ``disagreement``: Jensen-Shannon / log 2 between the branches (as :func:`predict_volume`);
- ``confidence``: ``min(p_a[k], p_b[k])`` where both argmaxes equal ``k``, else 0 (float16).

A one-branch model (``supervised``) has no second opinion: its confidence is its own
maximum probability.

The GUI runs this off its process with :class:`AgreementPredictJob` (a child process, like
:class:`barl_core.runtime.jobs.PredictJob`), which writes ``NAME.nii.gz``,
``NAME_disagreement.nii.gz`` and ``NAME_confidence.npz`` (float16, array ``confidence``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from barl_core.io.volume import Volume, read_volume, strip_extension, write_labels, write_volume

__all__ = [
    "AgreementPrediction",
    "predict_with_agreement",
    "agreement_maps",
    "predict_agreement_files",
    "AgreementPredictJob",
    "CONFIDENCE_SUFFIX",
    "output_paths",
    "save_confidence",
    "load_confidence",
]

CONFIDENCE_SUFFIX = "_confidence.npz"


@dataclass
class AgreementPrediction:
    """Class map, disagreement and agreement confidence on the input grid."""

    labels: np.ndarray
    disagreement: np.ndarray
    confidence: np.ndarray


def agreement_maps(
    pa: np.ndarray, pb: np.ndarray, chunk: int = 4
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Combine two branches' softmax ``[C, z, y, x]`` into (labels, disagreement, confidence).

    Processed a few z-slices at a time so that no float32 copy of the full maps is made.
    """
    import torch

    from barl_core.inference.window import js_disagreement

    shape = pa.shape[1:]
    labels = np.empty(shape, np.uint8)
    dis = np.empty(shape, np.float16)
    conf = np.empty(shape, np.float16)
    for z0 in range(0, shape[0], chunk):
        sl = slice(z0, z0 + chunk)
        a = torch.from_numpy(np.asarray(pa[:, sl], np.float32))
        b = torch.from_numpy(np.asarray(pb[:, sl], np.float32))
        labels[sl] = ((a + b) / 2).argmax(0).to(torch.uint8).numpy()
        dis[sl] = js_disagreement(a, b).to(torch.float16).numpy()
        ka, kb = a.argmax(0), b.argmax(0)
        pka = a.gather(0, ka[None])[0]
        pkb = b.gather(0, ka[None])[0]
        c = torch.where(ka == kb, torch.minimum(pka, pkb), torch.zeros_like(pka))
        conf[sl] = c.to(torch.float16).numpy()
    return labels, dis, conf


def _branch_model(model: Any, branch: Any) -> Any:
    return replace(model, module=branch, metadata=dict(model.metadata, n_branches=1))


def predict_with_agreement(
    model: Any,
    volume: Volume,
    *,
    progress: Callable[[int, int], None] | None = None,
    cancel: Any = None,
) -> AgreementPrediction:
    """Predict ``volume`` with ``model`` (a :class:`~barl_core.inference.model.LoadedModel`).

    Parameters
    ----------
    model : LoadedModel
    volume : Volume
    progress : callable, optional
        ``progress(done, total)`` over the windows of both passes.
    cancel : CancelToken, Event or callable, optional
    """
    from barl_core.inference.predict import predict_volume

    if model.n_branches == 1:
        pred = predict_volume(
            model, volume, return_probabilities=True, progress=progress, cancel=cancel
        )
        conf = pred.probabilities.max(0).astype(np.float16)
        return AgreementPrediction(pred.labels, pred.disagreement.astype(np.float16), conf)
    probs = []
    for i, branch in enumerate((model.module.branch_a, model.module.branch_b)):

        def step(done: int, total: int, _i: int = i) -> None:
            if progress is not None:
                progress(_i * total + done, 2 * total)

        pred = predict_volume(
            _branch_model(model, branch),
            volume,
            return_probabilities=True,
            progress=step,
            cancel=cancel,
        )
        probs.append(pred.probabilities)
    labels, dis, conf = agreement_maps(probs[0], probs[1])
    return AgreementPrediction(labels, dis, conf)


def save_confidence(path: str | os.PathLike, confidence: np.ndarray) -> Path:
    """Write a float16 confidence map atomically (compressed ``.npz``)."""
    from barl_core.io.volume import atomic_path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, confidence=np.asarray(confidence, np.float16))
    return path


def load_confidence(path: str | os.PathLike) -> np.ndarray:
    with np.load(Path(path)) as data:
        return data["confidence"]


def output_paths(out_dir: str | os.PathLike, name: str) -> tuple[Path, Path, Path]:
    """Where :func:`predict_agreement_files` writes case ``name``: labels, disagreement, confidence.

    The one naming rule for these files, so that whoever reads them (the session) never
    guesses names.
    """
    from barl_core.inference.export import DISAGREEMENT_SUFFIX

    out = Path(out_dir)
    return (
        out / f"{name}.nii.gz",
        out / f"{name}{DISAGREEMENT_SUFFIX}.nii.gz",
        out / f"{name}{CONFIDENCE_SUFFIX}",
    )


def predict_agreement_files(
    model_path: str | os.PathLike,
    image_paths: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    report: Callable[[int, int, str], None] | None = None,
    cancel: Any = None,
    device: str = "auto",
) -> list[str]:
    """Predict files; write ``NAME.nii.gz``, ``NAME_disagreement.nii.gz``, ``NAME_confidence.npz``."""
    from barl_core.inference.model import load_model

    model = load_model(model_path, device=device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = []
    n = len(image_paths)
    for i, p in enumerate(image_paths):
        vol = read_volume(p)
        name = strip_extension(Path(p).name)

        def step(done: int, total: int, _i: int = i, _name: str = name) -> None:
            if report is not None:
                report(_i, n, f"{_name}: window {done}/{total}")

        res = predict_with_agreement(model, vol, progress=step, cancel=cancel)
        lab_path, dis_path, conf_path = output_paths(out, name)
        write_labels(res.labels, vol, lab_path)
        write_volume(vol.with_array(res.disagreement.astype(np.float32)), dis_path)
        save_confidence(conf_path, res.confidence)
        names.append(name)
        if report is not None:
            report(i + 1, n, f"{name}: done")
    return names


def _agreement_child(
    updates: Any, event: Any, model_path: str, image_paths: list[str], out_dir: str, device: str
) -> None:
    from barl_core.runtime import jobs

    jobs.child_setup(updates)
    n = len(image_paths)
    try:
        from barl_core.errors import CancelledError
        from barl_core.training.trainer import CancelToken

        updates.put(jobs.ProgressUpdate("message", total=n, message="loading model"))

        def report(done: int, total: int, message: str) -> None:
            updates.put(
                jobs.ProgressUpdate("progress", iteration=done, total=total, message=message)
            )

        try:
            predict_agreement_files(
                model_path, image_paths, out_dir, report, CancelToken(event), device
            )
            final = jobs.ProgressUpdate(
                "done", iteration=n, total=n, result_path=out_dir, message=f"predicted {n} case(s)"
            )
        except CancelledError as exc:
            final = jobs.ProgressUpdate("cancelled", total=n, message=str(exc), result_path=out_dir)
    except BaseException as exc:  # noqa: BLE001 - everything travels to the parent
        final = jobs.error_update(exc)
    jobs.child_finish(updates, final)


class AgreementPredictJob:
    """:func:`predict_agreement_files` in a child process (see :mod:`barl_core.runtime.jobs`)."""

    @staticmethod
    def start(
        model_path: str | os.PathLike,
        image_paths: Sequence[str | os.PathLike],
        out_dir: str | os.PathLike,
        device: str = "auto",
        *,
        grace_s: float = 10.0,
    ) -> Any:
        """Start predicting; returns the child's :class:`~barl_core.runtime.jobs.JobHandle`."""
        from barl_core.runtime import jobs

        args = (str(model_path), [str(p) for p in image_paths], str(out_dir), str(device))
        return jobs.start_job(_agreement_child, args, "prediction", grace_s)
