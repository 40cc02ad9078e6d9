"""Scoring a trained model on the test cases: the one evaluation every benchmark reports."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence

import numpy as np

from .cases import BenchCase

#: Metric names reported per class, in the order of the tables.
FOREGROUND_METRICS = ("dice", "jaccard", "hd95", "asd")


def evaluate_model(
    model_path: str | os.PathLike,
    cases: Mapping[str, BenchCase],
    *,
    num_classes: int,
    class_names: Sequence[str] | None = None,
    voxel_units: bool = False,
    device: str = "cpu",
) -> dict:
    """Predict every case with :func:`barl_core.inference.predict.predict_volume`, score with
    :func:`barl_core.evaluation.metrics.evaluate_case`.

    Parameters
    ----------
    voxel_units : bool
        Distances in voxels (the literature's LA protocol) instead of mm: the image is scored
        on a unit-spacing grid.

    Returns
    -------
    dict
        ``{"per_case": {name: {class: {metric: value}}}, "mean": {class: {metric: value}},
        "seconds": float}``; the mean is over cases (NaN distances, e.g. a class missed
        entirely, are left out of the distance means and counted in ``"missed"``).
    """
    from barl_core.evaluation.metrics import evaluate_case
    from barl_core.inference.predict import load_model, predict_volume

    t0 = time.perf_counter()
    model = load_model(model_path, device=device)
    names = list(class_names) if class_names else ["background"] + [f"class_{i}" for i in range(1, num_classes)]
    classes = {i: names[i] for i in range(1, num_classes)}
    per_case: dict[str, dict] = {}
    for name, case in cases.items():
        pred = predict_volume(model, case.image)
        spacing = (1.0, 1.0, 1.0) if voxel_units else tuple(case.image.spacing)
        res = evaluate_case(pred.labels, case.truth, spacing=spacing, classes=classes)
        per_case[name] = {
            cls: {m: vals[m] for m in FOREGROUND_METRICS if m in vals}
            for cls, vals in res["classes"].items()
        }
    return {
        "per_case": per_case,
        "mean": summarise_case_metrics(per_case),
        "seconds": time.perf_counter() - t0,
    }


def summarise_case_metrics(per_case: Mapping[str, Mapping[str, Mapping[str, float]]]) -> dict:
    """Mean over cases per class and metric (non-finite values skipped, their count kept)."""
    classes: dict[str, dict[str, list[float]]] = {}
    for metrics in per_case.values():
        for cls, vals in metrics.items():
            for m, v in vals.items():
                if isinstance(v, (int, float)):
                    classes.setdefault(str(cls), {}).setdefault(m, []).append(float(v))
    out: dict[str, dict[str, float]] = {}
    for cls, by_metric in classes.items():
        out[cls] = {}
        for m, vals in by_metric.items():
            arr = np.asarray(vals, dtype=float)
            finite = arr[np.isfinite(arr)]
            out[cls][m] = float(finite.mean()) if finite.size else float("nan")
            if finite.size < arr.size:
                out[cls][f"{m}_missed"] = int(arr.size - finite.size)
    return out
