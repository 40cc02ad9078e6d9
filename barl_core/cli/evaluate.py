"""``barl evaluate --pred DIR_OR_FILE --gt DIR_OR_FILE``: Dice, Jaccard, HD95, ASD.

Files are matched by case name (extension and an nnU-Net ``_0000`` suffix removed);
two single files are compared directly. Distances are in mm from the ground truth's
spacing (``--voxel`` for voxel units). Undefined distances (a class present in only
one of the two maps) print as ``nan`` and are skipped in the means; the JSON holds
``null`` there.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from barl_core.cli.guards import check_outputs
from barl_core.data.labels import IGNORE_INDEX
from barl_core.errors import InputFileError
from barl_core.evaluation.metrics import METRIC_NAMES, evaluate_folders
from barl_core.io.atomic import write_text_atomic

__all__ = ["register", "run", "parse_classes", "format_results"]


def register(subparsers) -> None:
    """Add ``barl evaluate`` and its options to the subcommands."""
    p = subparsers.add_parser(
        "evaluate",
        help="per-case and mean Dice/Jaccard/HD95/ASD of predictions against ground truth",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--pred", required=True, type=Path, help="prediction file or folder")
    p.add_argument("--gt", required=True, type=Path, help="ground-truth file or folder")
    p.add_argument(
        "--json",
        dest="json_out",
        type=Path,
        default=None,
        help="write all results as JSON (atomically) to this file",
    )
    p.add_argument(
        "--classes",
        nargs="+",
        default=None,
        metavar="LABEL[:NAME]",
        help="classes to score, e.g. '1 2' or '1:bone 3:lesion' "
        "(default: every non-zero label present)",
    )
    p.add_argument("--voxel", action="store_true", help="distances in voxels instead of mm")
    p.add_argument(
        "--ignore-index",
        type=int,
        default=IGNORE_INDEX,
        help=f"ground-truth value of unannotated voxels, left out (default {IGNORE_INDEX})",
    )
    p.set_defaults(func=run)


def parse_classes(tokens: list[str] | None) -> dict[int, str] | None:
    """``["1", "3:lesion"]`` -> ``{1: "1", 3: "lesion"}``."""
    if not tokens:
        return None
    out: dict[int, str] = {}
    for tok in tokens:
        label, _, name = tok.partition(":")
        try:
            value = int(label)
        except ValueError:
            raise InputFileError(
                f"--classes: {tok!r} is not LABEL or LABEL:NAME (LABEL a whole number)"
            ) from None
        if value < 0:
            raise InputFileError(f"--classes: label {value} is negative")
        out[value] = name or str(value)
    return out


def _fmt(v: float) -> str:
    return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"


def format_results(result: dict) -> str:
    """Format per-case, per-class metrics as the table the command prints."""
    unit = result.get("units", "mm")
    head = f"{'case':<24} {'class':<12} {'dice':>8} {'jaccard':>8} {'hd95':>9} {'asd':>9}"
    lines = [f"distances in {unit}", head, "-" * len(head)]
    for case, res in result["cases"].items():
        for name, row in res["classes"].items():
            vals = " ".join(
                f"{_fmt(row[m]):>{8 if m in ('dice', 'jaccard') else 9}}" for m in METRIC_NAMES
            )
            lines.append(f"{case:<24} {name:<12} {vals}")
    lines.append("-" * len(head))
    for name, row in result["classes"].items():
        vals = " ".join(
            f"{_fmt(row[m]):>{8 if m in ('dice', 'jaccard') else 9}}" for m in METRIC_NAMES
        )
        lines.append(f"{'mean (' + str(row['n']) + ' cases)':<24} {name:<12} {vals}")
    vals = " ".join(
        f"{_fmt(result['mean'][m]):>{8 if m in ('dice', 'jaccard') else 9}}" for m in METRIC_NAMES
    )
    lines.append(f"{'mean':<24} {'all classes':<12} {vals}")
    if result.get("missing"):
        lines.append(
            f"no prediction for {len(result['missing'])} case(s): {', '.join(result['missing'][:10])}"
        )
    if result.get("unmatched"):
        lines.append(
            f"ignored {len(result['unmatched'])} prediction file(s) without ground truth: "
            f"{', '.join(result['unmatched'][:10])}"
        )
    return "\n".join(lines)


def _json_safe(obj):
    if isinstance(obj, float):
        return None if math.isnan(obj) or math.isinf(obj) else obj
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def run(args: argparse.Namespace) -> int:
    """Score predictions against references; return the exit code."""
    if args.json_out is not None:
        check_outputs([args.json_out], [args.pred, args.gt])
    result = evaluate_folders(
        args.pred,
        args.gt,
        classes=parse_classes(args.classes),
        voxel_units=args.voxel,
        ignore_index=args.ignore_index,
    )
    print(format_results(result))
    if args.json_out is not None:
        payload = _json_safe({"pred": str(args.pred), "gt": str(args.gt), **result})
        write_text_atomic(args.json_out, json.dumps(payload, indent=2, allow_nan=False))
    return 0
