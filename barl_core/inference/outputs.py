"""The names of prediction files: one rule for the writer and every reader.

Why a module of its own: the writer (:func:`barl_core.inference.export.predict_files`)
needs torch, the readers (the workspace, the session) must not pay for importing it just
to know a file name. Torch-free, like :mod:`barl_core.data.labels`.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "DISAGREEMENT_SUFFIX",
    "CONFIDENCE_SUFFIX",
    "FEATURES_SUFFIX",
    "LABELS_EXTENSION",
    "output_paths",
    "features_path",
]

#: File name suffix of disagreement maps (before the extension).
DISAGREEMENT_SUFFIX = "_disagreement"
#: File name end of agreement confidence maps (compressed ``.npz``, array ``confidence``).
CONFIDENCE_SUFFIX = "_confidence.npz"
#: File name end of per-slice pooled features (compressed ``.npz``, array ``features``,
#: float32 ``[n_slices, F]``: ``Prediction.slice_features``, what the ``focused`` ranking's
#: feature-space coverage compares slices with).
FEATURES_SUFFIX = "_features.npz"
#: Extension of the class and disagreement maps.
LABELS_EXTENSION = ".nii.gz"


def output_paths(
    out_dir: str | os.PathLike, name: str, disagreement_dir: str | os.PathLike | None = None
) -> tuple[Path, Path, Path]:
    """Where case ``name``'s prediction lives: class map, disagreement map, confidence map.

    ``disagreement_dir`` (default ``out_dir``) holds the disagreement map.
    """
    out = Path(out_dir)
    dis_dir = Path(disagreement_dir) if disagreement_dir is not None else out
    return (
        out / f"{name}{LABELS_EXTENSION}",
        dis_dir / f"{name}{DISAGREEMENT_SUFFIX}{LABELS_EXTENSION}",
        out / f"{name}{CONFIDENCE_SUFFIX}",
    )


def features_path(out_dir: str | os.PathLike, name: str) -> Path:
    """Where case ``name``'s per-slice features live, beside its confidence map.

    Apart from :func:`output_paths` because only predictions with features write it, and
    readers of older folders must find none (``features=None``: the ranking runs without
    its feature-space factor).
    """
    return Path(out_dir) / f"{name}{FEATURES_SUFFIX}"
