"""Versioned, atomic, code-free model checkpoints (format in ``docs/architecture.md``).

A checkpoint is a ``torch.save``d dict of plain Python values and tensors only, so it is
read with ``torch.load(weights_only=True)``: a model file from the internet cannot run code
on the radiologist's workstation. It carries everything predict and resume need: the
architecture, class names, normalisation, working spacing, patch size, the full training
config, optimiser/scaler/RNG state and a metrics excerpt.

Older files keep loading: :data:`MIGRATIONS` upgrades a dict one format version at a time
(version 0 is the pre-release layout without ``format_version``); a file from a *newer*
napari-barl, or one too old to upgrade, is refused with a message that says so.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from barl_core.errors import CheckpointError, OutputFileError
from barl_core.io.atomic import atomic_path, describe_os_error
from barl_core.networks.unet import BiBranchNet, NetworkConfig, UNet3D

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MIGRATIONS",
    "migrate",
    "save_checkpoint",
    "load_checkpoint",
    "check_compatible",
    "build_model",
    "network_config_of",
    "plain",
]

FORMAT = "napari-barl-checkpoint"
FORMAT_VERSION = 1
_REQUIRED = ("method", "n_branches", "model_state", "network", "class_names")


def _migrate_0_to_1(data: dict[str, Any]) -> dict[str, Any]:
    """Version 0 (pre-release, no ``format_version``): fill the keys it did not have yet.

    Version 0 files held the weights, architecture and classes; what predict and resume
    need beyond them gets the value those runs used implicitly: ignore value 255,
    per-volume normalisation, the native grid, the training config's patch, no optimiser
    state (such a file fine-tunes or predicts, it does not resume mid-schedule).
    """
    from barl_core.data.normalization import NormalizationConfig
    from barl_core.training.config import (
        TrainConfig,  # late: config imports far more than a loader needs
    )

    config = data.get("config") if isinstance(data.get("config"), dict) else {}
    patch = config.get("patch_size") or list(TrainConfig().patch_size)
    out = dict(data)
    out.setdefault("ignore_index", config.get("ignore_index", 255))
    out.setdefault("normalization", None)
    out.setdefault("norm_config", config.get("normalization") or asdict(NormalizationConfig()))
    out.setdefault("target_spacing", config.get("target_spacing"))
    out.setdefault("patch_size", list(patch))
    out.setdefault("iteration", 0)
    out.setdefault("total_iterations", config.get("iterations", out["iteration"]))
    out.setdefault("config", config)
    for key in ("optimizer_state", "scaler_state", "rng_state"):
        out.setdefault(key, None)
    out.setdefault("history", [])
    out["format_version"] = 1
    return out


#: ``{version: upgrade to version + 1}``; :func:`load_checkpoint` chains them.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {0: _migrate_0_to_1}


def migrate(data: dict[str, Any], where: str = "checkpoint") -> dict[str, Any]:
    """Upgrade a loaded checkpoint dict to :data:`FORMAT_VERSION`.

    Raises
    ------
    CheckpointError
        A newer (or malformed) version, or an old one that lacks what cannot be filled in
        (weights, architecture, classes).
    """
    version = data.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool) or version < 0 or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{where}: checkpoint format version {version!r} is not supported by this napari-barl "
            f"(reads versions 0 to {FORMAT_VERSION}); upgrade napari-barl or retrain"
        )
    if version < FORMAT_VERSION:
        missing = [k for k in _REQUIRED if k not in data]
        if missing:
            raise CheckpointError(
                f"{where}: old checkpoint (format version {version}) lacks {', '.join(missing)} "
                "and cannot be upgraded; retrain the model"
            )
    while version < FORMAT_VERSION:
        data = MIGRATIONS[version](data)
        version = data["format_version"]
    return data


def plain(obj: Any) -> Any:
    """Recursively turn numpy scalars/arrays and tuples into types ``weights_only`` reads.

    Tensors are kept (moved to CPU); numpy arrays become tensors; tuples stay tuples.
    """
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, Mapping):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return tuple(plain(v) for v in obj)
    if isinstance(obj, list):
        return [plain(v) for v in obj]
    if type(obj).__module__ == "numpy":
        import numpy as np

        if isinstance(obj, np.ndarray):
            return torch.from_numpy(obj.copy())
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def save_checkpoint(path: str | os.PathLike, ckpt: dict[str, Any]) -> Path:
    """Write ``ckpt`` atomically (temporary file in the same folder, then rename).

    The format header is filled in; a reader never sees a half-written model file,
    even if training is killed mid-write.

    Raises
    ------
    CheckpointError
        Missing required keys, or the file cannot be written.
    """
    missing = [k for k in _REQUIRED if k not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint is missing {', '.join(missing)}")
    data = plain({**ckpt, "format": FORMAT, "format_version": FORMAT_VERSION})
    p = Path(path)
    try:
        with atomic_path(p, verify=_verify_zip) as tmp:
            torch.save(data, tmp)
    except OutputFileError as exc:
        raise CheckpointError(f"cannot write checkpoint: {exc}") from None
    except (OSError, RuntimeError) as exc:  # torch reports a short write as RuntimeError
        raise CheckpointError(
            f"{p}: cannot write checkpoint ({describe_os_error(exc)}; disk full?); "
            "the previous file is unchanged"
        ) from None
    return p


def _verify_zip(tmp: Path) -> None:
    """Check that every member of the zip archive reads back with a matching CRC."""
    with zipfile.ZipFile(tmp) as zf:
        bad = zf.testzip()
    if bad is not None:
        raise CheckpointError(f"member {bad} does not read back as written")


def load_checkpoint(path: str | os.PathLike, *, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint without executing code and check its format.

    Raises
    ------
    CheckpointError
        Missing or unreadable file; a pickle that holds code or arbitrary objects
        (refused, never executed); another format or a newer format version.

    An older format version is upgraded in memory (:func:`migrate`); the file is not touched.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: no such model file")
    try:
        with warnings.catch_warnings():  # torch's pickle-protocol notices are not for users
            warnings.simplefilter("ignore")
            data = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a CheckpointError
        if _is_refused_object(exc) or _is_raw_pickle(p):
            # Never quote torch's hint to retry with weights_only=False: that is the unsafe act.
            raise CheckpointError(
                f"{p}: refusing to load: the file holds {_refused_object(str(exc))} beyond "
                "weights and plain values, and loading it may execute code; use only model "
                "files written by napari-barl"
            ) from None
        raise CheckpointError(
            f"{p}: not a readable napari-barl model file (corrupt, truncated or another format: "
            f"{type(exc).__name__}: {_safe_detail(str(exc))})"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{p}: not a napari-barl checkpoint (no '{FORMAT}' header)")
    data = migrate(data, str(p))
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise CheckpointError(f"{p}: incomplete checkpoint, missing {', '.join(missing)}")
    _check_contents(data, p)
    return data


def _check_contents(data: dict[str, Any], p: Path) -> None:
    """Refuse a checkpoint whose parts have the wrong types or whose weights are not finite.

    NaN or Inf weights (a diverged run, a corrupted file) would predict all background
    and exit 0; refusing at load time says what is wrong instead.
    """
    state = data["model_state"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{p}: model_state is not a set of named tensors")
    if not isinstance(data["network"], Mapping):
        raise CheckpointError(f"{p}: the network description is not a mapping")
    names = data["class_names"]
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise CheckpointError(f"{p}: class_names is not a list of names")
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(
            f"{p}: {len(bad)} weight tensor(s) hold NaN or Inf (e.g. {bad[0]}): the run diverged "
            "or the file is damaged; use an earlier checkpoint or retrain"
        )


def _is_refused_object(exc: BaseException) -> bool:
    """Return True when the weights-only unpickler met a global, class or call it does not allow."""
    if not isinstance(exc, pickle.UnpicklingError):
        return False
    low = str(exc).lower()
    return any(w in low for w in ("global", "reduce", "build", "callable", "class"))


def _refused_object(message: str) -> str:
    """Say what the weights-only unpickler refused, e.g. ``a Python object (posix.system)``."""
    found = re.search(r"GLOBAL\s+([\w.]+)", message)
    return f"a Python object ({found.group(1)})" if found else "pickled Python objects"


def _safe_detail(message: str) -> str:
    """Return the first informative line of a load error, without advice to disable safe loading."""
    for line in message.splitlines():
        line = line.strip()
        if line and "weights_only" not in line and "safe_globals" not in line:
            return line.split(". ")[0][:200]
    return "unreadable"


def _is_raw_pickle(path: Path) -> bool:
    """Return True for a bare pickle stream (protocol 2+ starts with PROTO): objects, maybe code."""
    try:
        with open(path, "rb") as fh:
            return fh.read(1) == b"\x80"
    except OSError:
        return False


def network_config_of(ckpt: Mapping[str, Any]) -> NetworkConfig:
    """Return the checkpoint's :class:`NetworkConfig` (unknown keys are an error)."""
    raw = dict(ckpt["network"])
    known = {f.name for f in fields(NetworkConfig)}
    extra = sorted(set(raw) - known)
    if extra:
        raise CheckpointError(
            f"checkpoint network has settings this version does not know: {', '.join(extra)}"
        )
    try:
        return NetworkConfig(**raw)
    except Exception as exc:
        raise CheckpointError(f"checkpoint network configuration is invalid: {exc}") from None


def check_compatible(
    ckpt: Mapping[str, Any],
    network_cfg: NetworkConfig | Mapping[str, Any] | None,
    class_names: Sequence[str] | None,
) -> None:
    """Raise :class:`CheckpointError` unless the checkpoint fits the architecture and classes.

    Parameters
    ----------
    ckpt : dict
        A loaded checkpoint.
    network_cfg : NetworkConfig or dict or None
        Expected architecture (None: not checked).
    class_names : sequence of str or None
        Expected classes, in order (None: not checked).
    """
    if network_cfg is not None:
        want = asdict(network_cfg) if isinstance(network_cfg, NetworkConfig) else dict(network_cfg)
        have = dict(ckpt["network"])
        diffs = [
            f"{k}: checkpoint {have.get(k)!r} vs expected {want.get(k)!r}"
            for k in sorted(set(want) | set(have))
            if have.get(k) != want.get(k)
        ]
        if diffs:
            raise CheckpointError(
                "the checkpoint was trained with another network architecture (" + "; ".join(diffs) + ")"
            )
    if class_names is not None:
        have_names = list(ckpt["class_names"])
        if have_names != [str(n) for n in class_names]:
            raise CheckpointError(
                f"the checkpoint's classes {have_names} differ from the expected {list(class_names)}"
            )


def build_model(ckpt: Mapping[str, Any]) -> nn.Module:
    """Build the network of a checkpoint with its weights: ``UNet3D`` (1 branch) or ``BiBranchNet``.

    Raises
    ------
    CheckpointError
        Unknown branch count or weights that do not fit the recorded architecture.
    """
    cfg = network_config_of(ckpt)
    n = ckpt.get("n_branches")
    if n == 1:
        model: nn.Module = UNet3D(cfg)
    elif n == 2:
        model = BiBranchNet(cfg)
    else:
        raise CheckpointError(f"checkpoint has {n!r} branches; expected 1 or 2")
    try:
        model.load_state_dict(ckpt["model_state"], strict=True)
    except (RuntimeError, KeyError, TypeError) as exc:
        raise CheckpointError(
            f"checkpoint weights do not fit its recorded architecture: {str(exc).splitlines()[0][:300]}"
        ) from None
    return model
