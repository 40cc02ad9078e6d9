"""``barl suggest``: which cases and slices to annotate next, from the branches' disagreement.

Predicts every case of ``--images`` (sparse labels from ``--labels``, default the MSD
sibling ``labelsTr`` when present), ranks the cases by expected gain and, within each case,
its unannotated slices; prints a table and optionally writes everything as JSON.

With the default ``focused`` strategy this is the app's ranking
(:mod:`barl_core.active.case_ranking`): each prediction also returns its per-slice pooled
features, every case is ranked with every other case's annotations as context, and a case's
gain is the mean score of its best 3 picks. Of each prediction only a per-slice summary is
kept (:func:`~barl_core.active.context.prepare_case`, a few KB) until every case is
predicted and the ranking runs (the context needs all of them).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from barl_core.cli.guards import add_series_id, check_outputs
from barl_core.cli.predict import input_files
from barl_core.data.labels import annotated_slices
from barl_core.io.atomic import write_text_atomic
from barl_core.io.volume import check_same_grid, read_volume, strip_extension

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``barl suggest`` and its options to the subcommands."""
    from barl_core.active.suggest import DEFAULT_STRATEGY, STRATEGIES, STRATEGY_HELP

    p = subparsers.add_parser(
        "suggest",
        help="rank cases and slices to annotate next",
        description="Predict each case, then rank cases and their unannotated slices by where the "
        "two branches disagree (or by entropy, or at random, as baselines).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="strategies:\n" + "\n".join(
            f"  {name:<13} {STRATEGY_HELP[name]}" + (" (default)" if name == DEFAULT_STRATEGY else "")
            for name in STRATEGIES
        ),
    )
    p.add_argument("--model", required=True, type=Path, metavar="CKPT", help="model file (model.pt)")
    p.add_argument("--images", required=True, type=Path, metavar="DIR", help="folder of volumes")
    p.add_argument("--labels", type=Path, metavar="DIR", help="sparse label maps (255 = not annotated); default: sibling labelsTr")
    p.add_argument("--top", type=int, default=5, metavar="K", help="slices suggested per case (default 5); every case is ranked")
    p.add_argument("--strategy", choices=STRATEGIES, default=DEFAULT_STRATEGY,
                   help=f"ranking: {', '.join(STRATEGIES)} (default {DEFAULT_STRATEGY}; see below)")
    p.add_argument("--axis", type=int, default=0, choices=(0, 1, 2), help="slicing axis of the (z, y, x) array (default 0, axial)")
    p.add_argument("--min-gap", type=int, default=2,
                   help="minimum distance between suggested slices (default 2; focused: also from annotated slices)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random strategy")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--json", type=Path, metavar="OUT", help="write the ranking as JSON")
    add_series_id(p)
    p.set_defaults(func=run)


def _labels_dir(images: Path, labels: Path | None) -> Path | None:
    if labels is not None:
        return labels
    sibling = images.parent / "labelsTr"
    return sibling if images.name == "imagesTr" and sibling.is_dir() else None


def _find_labels(folder: Path | None, name: str) -> Path | None:
    if folder is None:
        return None
    for p in sorted(folder.glob(f"{name}.*")):
        if strip_extension(p.name) == name:
            return p
    return None


def _summarise(case, num_classes: int, axis: int) -> tuple:
    """Reduce one predicted case to what the ``focused`` ranking keeps of it (a few KB).

    Returns its :class:`~barl_core.active.case_ranking.CaseSource` (its annotations, as
    context for the other cases) and its :class:`~barl_core.active.context.PreparedCase`,
    so the volumes can go before the next case is predicted.
    """
    from barl_core.active.case_ranking import CaseSource
    from barl_core.active.context import annotated_context, prepare_case
    from barl_core.active.ranking import RankingConfig

    cfg = RankingConfig()  # the band and area floor the ranking uses (min_gap does not matter here)
    source = CaseSource(case.name, annotated_context(case.labels, case.features, num_classes, axis=axis))
    return source, prepare_case(case, num_classes=num_classes, focus=cfg.focus, area_floor=cfg.area_floor,
                                axis=axis)


def _focused_ranking(summaries: dict, model, args: argparse.Namespace):
    """Rank every case and its slices with the app's ``focused`` ranking.

    :func:`~barl_core.active.case_ranking.rank_case_by_case` over the cases' summaries: each
    case with every other case's annotations as context, features included on axis 0.
    """
    from barl_core.active.case_ranking import rank_case_by_case
    from barl_core.active.ranking import RankingConfig

    return rank_case_by_case(
        [src for src, _ in summaries.values()], lambda name: summaries[name][1],
        num_classes=max(2, len(model.class_names)), axis=args.axis, top_k=args.top,
        config=RankingConfig(min_gap=args.min_gap), class_names=model.class_names,
    )


def run(args: argparse.Namespace) -> int:
    """Print the slices (or cases) to annotate next; return the exit code."""
    from barl_core.active.focus import PROFILE_LABEL, focus_profile
    from barl_core.active.ranking import CaseInputs
    from barl_core.active.suggest import case_score, slice_scores, suggest_cases, suggest_slices
    from barl_core.inference.predict import load_model, predict_volume

    files = input_files(args.images)
    labels_dir = _labels_dir(args.images, args.labels)
    if args.json is not None:
        check_outputs([args.json], [*files, args.model, *([labels_dir] if labels_dir else [])])
    model = load_model(args.model, device=args.device)
    rng = np.random.default_rng(args.seed)
    focused = args.strategy == "focused"
    per_case: dict[str, dict] = {}
    scores: dict[str, float] = {}
    n_annotated: dict[str, int] = {}
    summaries: dict = {}  # focused: per case its context and per-slice summary, ranked once all are in
    for path in files:
        name = strip_extension(path.name)
        volume = read_volume(path, series_id=args.series_id)
        labels = None
        lab_path = _find_labels(labels_dir, name)
        if lab_path is not None:
            lab_vol = read_volume(lab_path)
            check_same_grid(volume, lab_vol)
            labels = lab_vol.array
        entropy = args.strategy == "entropy"
        # the features are per axial slice: the feature-space factor applies on axis 0 only
        pred = predict_volume(model, volume, return_entropy=entropy,
                              return_features=focused and args.axis == 0)
        n_annotated[name] = len(annotated_slices(labels, args.axis))
        per_case[name] = {
            "image": str(path),
            "labels": str(lab_path) if lab_path else None,
            "annotated_slices": n_annotated[name],
            "mean_disagreement": float(np.mean(pred.disagreement, dtype=np.float64)),
        }
        if focused:  # as the benchmark: the prediction's own float16 map and its features
            summaries[name] = _summarise(CaseInputs(name, pred.disagreement, pred.labels, labels,
                                                    features=pred.slice_features),
                                         max(2, len(model.class_names)), args.axis)
            per_case[name]["slice_profile"] = [round(float(v), 5) for v in focus_profile(
                pred.disagreement, pred.labels, labels, num_classes=max(2, len(model.class_names)),
                axis=args.axis)]
            per_case[name]["slice_profile_label"] = PROFILE_LABEL
            per_case[name]["features"] = pred.slice_features is not None
            continue
        score_map = (pred.entropy if entropy else pred.disagreement).astype(np.float32)
        picks = suggest_slices(score_map, labels, axis=args.axis, top_k=args.top, min_gap=args.min_gap,
                               strategy=args.strategy, rng=rng)
        scores[name] = float(rng.random()) if args.strategy == "random" else case_score(score_map, labels,
                                                                                         axis=args.axis)
        per_case[name].update(
            case_score=scores[name],
            slice_profile=[round(float(v), 5) for v in slice_scores(score_map, args.axis)],
            slice_profile_label="top-10% disagreement per slice",
            suggestions=[{"index": s.index, "score": s.score, "uncertainty": s.uncertainty, "reason": s.reason}
                         for s in picks],
        )
    if focused:
        ranking = _focused_ranking(summaries, model, args)
        ranked = ranking.cases  # the case score is the ranking's own: no further weighting
        for c in ranked:
            per_case[c.name].update(
                case_score=c.score, case_reason=c.reason, best_slice=c.best_slice,
                suggestions=[{"index": s.index, "score": s.score, "uncertainty": s.uncertainty,
                              "reason": s.reason} for s in ranking.slices[c.name]],
            )
    else:
        ranked = suggest_cases(scores, n_annotated, top_k=len(scores))
    width = max(len(n) for n in per_case) if per_case else 4
    print(f"{'rank':>4}  {'case':<{width}}  {'gain':>7}  {'labelled':>8}  suggested slices (axis {args.axis}: index score)")
    for i, c in enumerate(ranked, start=1):
        slices = ", ".join(f"{s['index']} ({s['score']:.3f})" for s in per_case[c.name]["suggestions"]) or "-"
        print(f"{i:>4}  {c.name:<{width}}  {c.score:7.4f}  {c.n_annotated:>8}  {slices}")
        for s in per_case[c.name]["suggestions"]:
            if s["reason"]:
                print(f"{'':>4}  {'':<{width}}  slice {s['index']}: {s['reason']}")
    if args.json is not None:
        doc = {
            "model": str(args.model),
            "strategy": args.strategy,
            "axis": args.axis,
            "cases": [{"name": c.name, "gain": c.score, **per_case[c.name]} for c in ranked],
        }
        write_text_atomic(args.json, json.dumps(doc, indent=2) + "\n")
        print(f"written {args.json}")
    return 0
