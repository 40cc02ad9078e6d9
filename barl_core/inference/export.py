"""Predict image files and write NIfTI outputs on each input's grid: :func:`predict_files`."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from barl_core.errors import CancelledError, InputFileError
from barl_core.inference.agreement import predict_with_agreement, save_confidence, save_features
from barl_core.inference.model import LoadedModel
from barl_core.inference.outputs import features_path, output_paths
from barl_core.inference.predict import predict_volume
from barl_core.io.volume import read_volume, strip_extension, write_labels, write_volume
from barl_core.runtime.cancel import is_cancelled

__all__ = ["PredictedFile", "predict_files"]

@dataclass
class PredictedFile:
    """Where :func:`predict_files` wrote one case's outputs."""

    image: Path
    labels: Path
    disagreement: Path | None
    mean_disagreement: float
    confidence: Path | None = None
    features: Path | None = None


def _output_name(path: Path) -> str:
    return strip_extension(path.name) if path.is_file() or path.suffix else path.name


def predict_files(
    model: LoadedModel,
    paths: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    disagreement_dir: str | os.PathLike | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    cancel: Any = None,
    *,
    write_disagreement: bool = True,
    agreement: bool = False,
    features: bool = False,
    overlap: float = 0.5,
    sw_batch_size: int = 1,
) -> list[PredictedFile]:
    """Predict image files and write NIfTI outputs on each input's grid, atomically.

    Writes ``out_dir/NAME.nii.gz`` (uint8 class map) and, with ``write_disagreement``,
    ``disagreement_dir/NAME_disagreement.nii.gz`` (float32; ``disagreement_dir`` defaults
    to ``out_dir``), where ``NAME`` is the input's file name without extension; with
    ``agreement``, also ``out_dir/NAME_confidence.npz``, the branches' agreement confidence
    (:func:`~barl_core.inference.agreement.predict_with_agreement`) that proposals need;
    with ``features``, also ``out_dir/NAME_features.npz``, the per-slice pooled decoder
    features of the same pass that the ``focused`` ranking's feature-space coverage uses.
    :func:`~barl_core.inference.outputs.output_paths` and
    :func:`~barl_core.inference.outputs.features_path` are the naming rule.

    Parameters
    ----------
    progress : callable, optional
        ``progress(case_index, n_cases, message)``; called per window with a message such
        as ``"case_001 (2/5): window 3/8"`` and once per finished case.
    cancel : CancelToken, Event or callable, optional
        Raises :class:`CancelledError` between windows; files already written stay.

    Raises
    ------
    InputFileError
        No input, an unreadable input, or two inputs with the same name.
    """
    files = [Path(p) for p in paths]
    if not files:
        raise InputFileError("no image to predict")
    names = [_output_name(p) for p in files]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputFileError(f"several inputs would write the same output name: {', '.join(dupes)}")
    out = Path(out_dir)
    dis_dir = Path(disagreement_dir) if disagreement_dir is not None else out
    written: list[PredictedFile] = []
    n = len(files)
    for i, (path, name) in enumerate(zip(files, names, strict=True)):
        if is_cancelled(cancel):
            raise CancelledError("prediction cancelled")
        volume = read_volume(path)

        def on_window(done: int, total: int, _i=i, _name=name) -> None:
            if progress is not None:
                progress(_i, n, f"{_name} ({_i + 1}/{n}): window {done}/{total}")

        predict = predict_with_agreement if agreement else predict_volume
        pred = predict(model, volume, progress=on_window, cancel=cancel, return_features=features,
                       overlap=overlap, sw_batch_size=sw_batch_size)
        lab_target, dis_target, conf_target = output_paths(out, name, dis_dir)
        lab_path = write_labels(pred.labels, volume, lab_target)
        dis_path = conf_path = None
        if write_disagreement:
            dis_path = write_volume(
                volume.with_array(pred.disagreement.astype(np.float32)), dis_target
            )
        if agreement:
            conf_path = save_confidence(conf_target, pred.confidence)
        feat_path = save_features(features_path(out, name), pred.slice_features) if features else None
        mean_dis = float(np.mean(pred.disagreement, dtype=np.float64))
        written.append(PredictedFile(path, lab_path, dis_path, mean_dis, conf_path, feat_path))
        if progress is not None:
            progress(i + 1, n, f"{name} ({i + 1}/{n}): done")
    return written
