"""Render the benchmark results JSON as markdown, and fill them into ``docs/benchmarks.md``.

Why: every number in the docs must come from a script anyone can rerun. The docs hold
marker pairs ``<!-- BEGIN:NAME -->`` / ``<!-- END:NAME -->``; this script replaces what is
between them with tables rendered from ``benchmarks/results/*.json`` (NAME is one of
``label_efficiency``, ``iteration_profile``, ``active_learning``, ``speed``, ``gpu_check``, or ``NAME-machine`` for the machine
and command block of that benchmark). A missing results file leaves a "not run yet" note.

Example
-------
``python benchmarks/report.py`` (print everything)
``python benchmarks/report.py --update docs/benchmarks.md``
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # executed as ``python benchmarks/report.py``
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402

__all__ = ["render_machine", "render_section", "render_all", "update_markdown", "main", "SECTIONS"]

SECTIONS = ("label_efficiency", "iteration_profile", "active_learning", "speed", "gpu_check")
_MARKER = re.compile(r"(<!-- BEGIN:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- END:(?P=name) -->)", re.S)


def _load(results_dir: Path, name: str) -> dict | None:
    path = results_dir / f"{name}.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def render_machine(data: dict) -> str:
    """Machine, date, exact command(s) and time taken, one line per session of the file."""
    rows = []
    for s in data.get("sessions", []):
        gpu = s.get("gpu") or "none"
        minutes = (s.get("elapsed_s") or 0) / 60
        rows.append([s.get("date", "?"), f"{s.get('cpu', '?')} ({s.get('usable_cores', '?')} cores usable)",
                     gpu, f"torch {s.get('torch', '?')}", f"{minutes:.1f} min" + ("" if s.get("finished") else " (unfinished)"),
                     f"`{s.get('command', '?')}`", s.get("git_commit") or "?"])
    return common.markdown_table(["date", "CPU", "GPU", "software", "took", "command", "commit"], rows)


def render_section(name: str, data: dict) -> str:
    """The tables of one benchmark's results."""
    if name == "label_efficiency":
        from benchmarks.label_efficiency_parts.summary import (
            render_per_seed,
            render_tables,
            summarise,
        )

        names = data.get("config", {}).get("class_names") or ["background", "class_1"]
        summary = data.get("summary") or summarise(data.get("runs", {}), names)
        units = data.get("config", {}).get("distance_units", "mm")
        body = render_tables(summary, names, jaccard=units == "voxels")
        if len({r.get("seed") for r in data.get("runs", {}).values()}) > 1:
            reference = data.get("config", {}).get("reference", "barl")
            body += "\n\n" + render_per_seed(data.get("runs", {}), names, reference)
        split = data.get("split", {})
        labelled = split.get("labelled", {})
        extra = (f"\n\nSplit (seed {split.get('seed')}): {len(split.get('test', []))} test cases, "
                 f"{len(split.get('pool', []))} pool cases; labelled per budget: "
                 + ", ".join(f"{k}: {len(v)} cases" for k, v in labelled.items())
                 + f". HD95 and ASD in {units}; mean ± sd over seeds of the test-set mean.")
        return body + extra
    if name == "active_learning":
        from benchmarks.active_learning import (
            answer_text,
            render_per_seed,
            render_picks,
            render_table,
            summarise,
        )
        from benchmarks.al_advice import render_advice

        strategies = data.get("config", {}).get("strategies") or ["disagreement", "entropy", "random"]
        summary = data.get("summary") or summarise(data.get("runs", {}), strategies)
        picks = "\n\n" + render_picks(summary["picks"]) if summary.get("picks") else ""
        seeds = "\n\n" + render_per_seed(data["runs"]) if data.get("runs") and "advice" in summary else ""
        advice = "\n\n" + render_advice(summary["advice"]) if summary.get("advice") else ""
        return render_table(summary) + "\n\n" + answer_text(summary) + picks + seeds + advice
    if name == "speed":
        from benchmarks.speed_parts.render import render_table

        return render_table(data)
    if name == "iteration_profile":
        from benchmarks.iteration_profile import render_table

        return render_table(data)
    if name == "gpu_check":
        from benchmarks.gpu_check import render_table as render_gpu

        return render_gpu(data)
    raise ValueError(f"unknown section {name!r}")


def render_all(results_dir: Path) -> dict[str, str]:
    """``{marker name: markdown}`` for every section and its machine block."""
    out: dict[str, str] = {}
    for name in SECTIONS:
        data = _load(results_dir, name)
        if data is None:
            out[name] = f"_Not run yet: `{results_dir.name}/{name}.json` is missing._"
            out[f"{name}-machine"] = "_Not run yet._"
            continue
        out[name] = render_section(name, data)
        out[f"{name}-machine"] = render_machine(data)
    # Variant runs of a section (e.g. label_efficiency_quick_weights.json from --out) render
    # like their section, under a marker named after the file.
    for name in SECTIONS:
        for path in sorted(results_dir.glob(f"{name}_*.json")):
            data = json.loads(path.read_text())
            out[path.stem] = render_section(name, data)
            out[f"{path.stem}-machine"] = render_machine(data)
    return out


def update_markdown(text: str, blocks: dict[str, str]) -> tuple[str, list[str]]:
    """Replace the body of every known marker pair; returns (new text, names replaced)."""
    done: list[str] = []

    def sub(m: re.Match) -> str:
        name = m.group("name")
        if name not in blocks:
            return m.group(0)
        done.append(name)
        return f"{m.group(1)}{blocks[name].rstrip()}\n{m.group(4)}"

    return _MARKER.sub(sub, text), done


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/report.py",
                                description="Render benchmark results JSON as markdown tables.")
    p.add_argument("--results", type=Path, default=common.RESULTS_DIR, help="folder of the results JSON")
    p.add_argument("--update", type=Path, default=None,
                   help="markdown file whose <!-- BEGIN:NAME --> ... <!-- END:NAME --> blocks are refilled")
    args = p.parse_args(argv)
    blocks = render_all(args.results)
    if args.update is None:
        for name in SECTIONS:
            print(f"## {name}\n\n{blocks[f'{name}-machine']}\n\n{blocks[name]}\n")
        return 0
    text = args.update.read_text(encoding="utf-8")
    new, done = update_markdown(text, blocks)
    args.update.write_text(new, encoding="utf-8")
    print(f"[report] {args.update}: refilled {', '.join(done) if done else 'no block (no markers found)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
