"""``barl info PATH``: what a volume, label map or dataset folder holds.

For a volume: geometry (shape, spacing, origin, direction), dtype and intensity
range/percentiles; integer volumes with few values are summarised as label maps
(value counts). For a dataset folder (``imagesTr``/``labelsTr``, or a folder of
volumes): one line per case with its annotation status (labelled, partial with the
annotated slices and their axis, or unlabelled).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from barl_core.cli.guards import add_series_id, check_outputs
from barl_core.data.annotation import format_ranges
from barl_core.data.dataset import dataset_summary, load_dataset
from barl_core.data.labels import IGNORE_INDEX
from barl_core.errors import InputFileError
from barl_core.io.atomic import write_text_atomic
from barl_core.io.volume import SUPPORTED_EXTENSIONS, is_supported_path, read_volume

__all__ = ["register", "run", "volume_info", "format_volume_info"]

#: Integer volumes with at most this many distinct values are shown as label maps.
_MAX_LABEL_VALUES = 64
_PERCENTILES = (0.5, 1.0, 50.0, 99.0, 99.5)


def register(subparsers) -> None:
    """Add ``barl info`` and its options to the subcommands."""
    p = subparsers.add_parser(
        "info",
        help="show geometry and intensities of a volume, or the cases of a dataset folder",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("path", type=Path, help="a volume file, DICOM folder, or dataset folder")
    p.add_argument(
        "--labels",
        dest="labels_dir",
        type=Path,
        default=None,
        help="label folder of a dataset (default: sibling labelsTr)",
    )
    p.add_argument(
        "--num-classes",
        type=int,
        default=None,
        help="check that label values are within 0..N-1 (or the ignore value)",
    )
    p.add_argument(
        "--ignore-index",
        type=int,
        default=IGNORE_INDEX,
        help="label value meaning 'not annotated' (default 255)",
    )
    p.add_argument(
        "--json",
        dest="json_out",
        type=Path,
        default=None,
        help="also write the information as JSON to this file",
    )
    add_series_id(p)
    p.set_defaults(func=run)


def volume_info(path: Path, series_id: str | None = None) -> dict:
    """Geometry and intensity statistics of one volume (JSON-friendly)."""
    vol = read_volume(path, series_id=series_id)
    arr = vol.array
    info = {"kind": "volume", "path": str(path), **vol.geometry(), "dtype": str(arr.dtype)}
    flat = arr.reshape(-1)
    info["min"] = float(flat.min())
    info["max"] = float(flat.max())
    info["mean"] = float(flat.mean(dtype=np.float64))
    info["std"] = float(flat.std(dtype=np.float64))
    info["percentiles"] = {
        str(q): float(v)
        for q, v in zip(_PERCENTILES, np.percentile(flat, _PERCENTILES), strict=True)
    }
    if np.issubdtype(arr.dtype, np.integer):
        values, counts = np.unique(flat, return_counts=True)
        if values.size <= _MAX_LABEL_VALUES:
            info["label_values"] = {int(v): int(c) for v, c in zip(values, counts, strict=True)}
    return info


def format_volume_info(info: dict) -> str:
    """Format one volume's header facts (shape, spacing, origin, labels) for the terminal."""
    sp = ", ".join(f"{s:g}" for s in info["spacing"])
    org = ", ".join(f"{o:g}" for o in info["origin"])
    d = info["direction"]
    rows = [", ".join(f"{v:+.4g}" for v in d[i : i + 3]) for i in (0, 3, 6)]
    pct = "  ".join(f"p{q}={v:.6g}" for q, v in info["percentiles"].items())
    lines = [
        f"{info['path']}",
        f"  shape (z, y, x):     {tuple(info['shape'])}",
        f"  spacing (z, y, x):   ({sp}) mm",
        f"  origin (x, y, z):    ({org}) mm",
        f"  direction:           [{rows[0]}] [{rows[1]}] [{rows[2]}]",
        f"  dtype:               {info['dtype']}",
        f"  range:               {info['min']:.6g} .. {info['max']:.6g}"
        f"  (mean {info['mean']:.6g}, std {info['std']:.6g})",
        f"  percentiles:         {pct}",
    ]
    if "label_values" in info:
        total = sum(info["label_values"].values())
        counts = ", ".join(
            f"{v}: {c} ({100.0 * c / total:.2f}%)" for v, c in info["label_values"].items()
        )
        lines.append(f"  label values:        {counts}")
    return "\n".join(lines)


def _is_dataset(path: Path) -> bool:
    if not path.is_dir():
        return False
    if (path / "imagesTr").is_dir() or path.name == "imagesTr":
        return True
    if is_supported_path(path):  # a DICOM series folder is one volume
        return False
    return True


def _format_dataset(rows: list[dict], root: Path) -> str:
    n_lab = sum(r["status"] == "labelled" for r in rows)
    n_part = sum(r["status"] == "partial" for r in rows)
    n_un = sum(r["status"] == "unlabelled" for r in rows)
    width = max(len(r["name"]) for r in rows)
    lines = [
        f"{root}: {len(rows)} cases ({n_lab} labelled, {n_part} partial, {n_un} unlabelled)",
        f"  {'case'.ljust(width)}  {'shape (z, y, x)':<18} {'spacing (mm)':<22} {'range':<24} status",
    ]
    for r in rows:
        shape = "x".join(str(s) for s in r["shape"])
        sp = "x".join(f"{s:g}" for s in r["spacing"])
        rng = f"{r['min']:.5g}..{r['max']:.5g}"
        if r["status"] == "partial":
            what = "slices" if r["whole_slices"] else "slices (partly)"
            status = (
                f"partial: {len(r['slices'])} {what} on axis {r['axis']}: {format_ranges(r['slices'])}"
            )
        else:
            status = r["status"]
        if r["label_values"]:
            status += "  values " + ",".join(str(v) for v in r["label_values"])
        lines.append(f"  {r['name'].ljust(width)}  {shape:<18} {sp:<22} {rng:<24} {status}")
    return "\n".join(lines)


def _write_json(path: Path, payload) -> None:
    write_text_atomic(path, json.dumps(payload, indent=2, allow_nan=False))


def run(args: argparse.Namespace) -> int:
    """Print what a volume or dataset holds; return the exit code."""
    path: Path = args.path
    if args.json_out is not None:
        check_outputs([args.json_out], [path, *([args.labels_dir] if args.labels_dir else [])])
    try:
        is_dataset = _is_dataset(path)
    except OSError as exc:  # e.g. a name longer than the file system allows
        raise InputFileError(f"{path}: cannot access: {exc.strerror or exc}") from None
    if is_dataset:
        cases = load_dataset(
            path, args.labels_dir, ignore_index=args.ignore_index, num_classes=args.num_classes
        )
        rows = dataset_summary(cases)
        print(_format_dataset(rows, path))
        payload = {"kind": "dataset", "path": str(path), "cases": rows}
    else:
        if path.is_file() and not path.name.lower().endswith(SUPPORTED_EXTENSIONS):
            raise InputFileError(
                f"{path}: unsupported file type (use {', '.join(SUPPORTED_EXTENSIONS)})"
            )
        payload = volume_info(path, args.series_id)
        print(format_volume_info(payload))
    if args.json_out is not None:
        _write_json(args.json_out, payload)
    return 0
