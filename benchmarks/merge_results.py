"""Merge results files of one benchmark written by parallel processes (e.g. one per seed).

Why: on a machine with N cores, ``label_efficiency.py --seeds 0 --threads 1`` and
``--seeds 1 --threads 1 --out other.json`` run side by side in about half the wall time;
this joins their runs into one file, so that the tables' mean ± sd covers both seeds. The
settings that make runs comparable (schedule, network, patch, split) must agree, or the
merge is refused; every process's session (machine, command, time taken) is kept.

Example
-------
``python benchmarks/merge_results.py benchmarks/results/label_efficiency.json /tmp/seed1.json``
(merges into the first file; ``--out`` writes elsewhere)
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # executed as ``python benchmarks/merge_results.py``
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402

__all__ = ["merge", "main"]

#: Config keys that must agree between the files (the rest, e.g. seeds, may differ).
MUST_MATCH = {
    "label_efficiency": ("dataset", "iterations", "patch_zyx", "base_channels", "batch_labeled",
                         "batch_unlabeled", "sparse_slices_per_case", "distance_units", "class_names"),
    "active_learning": ("dataset", "cases", "pool", "k", "rounds", "method", "iterations", "finetune_iterations",
                        "finetune_lr", "features", "round0_seed", "overlap", "patch_zyx", "base_channels",
                        "class_names"),
}


def _summarise(benchmark: str, data: dict) -> dict:
    if benchmark == "label_efficiency":
        from benchmarks.label_efficiency_parts.summary import summarise

        return summarise(data["runs"], data["config"]["class_names"])
    from benchmarks.active_learning import STRATEGIES, summarise_all

    return summarise_all(data["runs"], STRATEGIES)


def merge(datas: Sequence[dict]) -> dict:
    """One results dict holding every run of ``datas`` (the first one's config, all sessions)."""
    if not datas:
        raise ValueError("nothing to merge")
    first = datas[0]
    benchmark = first.get("benchmark")
    if benchmark not in MUST_MATCH:
        raise ValueError(f"cannot merge results of {benchmark!r} (only {', '.join(MUST_MATCH)})")
    out = json.loads(json.dumps(first))
    seeds = set(out["config"].get("seeds", []))
    for other in datas[1:]:
        if other.get("benchmark") != benchmark:
            raise ValueError(f"cannot merge {other.get('benchmark')!r} results into {benchmark!r}")
        diff = [k for k in MUST_MATCH[benchmark] if out["config"].get(k) != other["config"].get(k)]
        if other.get("split", {}).get("test") != out.get("split", {}).get("test"):
            diff.append("split")
        if diff:
            raise ValueError("the files used different settings: " + ", ".join(diff))
        clash = sorted(set(out["runs"]) & set(other["runs"]))
        if clash:
            raise ValueError(f"both files hold run(s) {', '.join(clash[:3])}{' ...' if len(clash) > 3 else ''}")
        out["runs"].update(other["runs"])
        out["sessions"].extend(other.get("sessions", []))
        seeds |= set(other["config"].get("seeds", []))
        if "strategies" in out["config"]:  # active learning: processes split by strategy
            out["config"]["strategies"] += [s for s in other["config"].get("strategies", [])
                                            if s not in out["config"]["strategies"]]
    out["config"]["seeds"] = sorted(seeds)
    out["summary"] = _summarise(benchmark, out)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/merge_results.py", description=__doc__.split("\n\n")[0])
    p.add_argument("files", type=Path, nargs="+", help="results JSON of one benchmark; the first is the base")
    p.add_argument("--out", type=Path, default=None, help="where to write (default: the first file)")
    p.add_argument("--reference", default=None,
                   help="label-efficiency: the variant the per-seed table's paired gaps are taken to "
                        "(default 'barl'), e.g. 'barl [dpr=1,pcbc=0.5]'")
    args = p.parse_args(argv)
    try:
        merged = merge([json.loads(f.read_text()) for f in args.files])
    except ValueError as exc:
        raise SystemExit(f"merge_results: {exc}") from None
    if args.reference:
        merged["config"]["reference"] = args.reference
    out = args.out or args.files[0]
    common.write_results(out, merged)
    print(f"[merge_results] {len(merged['runs'])} runs from {len(args.files)} files -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
