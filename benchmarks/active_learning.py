"""Active learning: Dice against the number of annotated slices, per slice-selection strategy.

What it answers: how many fewer annotated slices does choosing them with the product's
default ranking (``focused``) need to reach the Dice that **random** choice reaches at the
end? ``entropy`` and ``disagreement`` (the old default) are the other baselines.

Protocol (on the converged training of issue 11)
------------------------------------------------
- The fixed split of :mod:`benchmarks.label_efficiency` (same constant seed and, by default,
  the same 40 test cases): the test set is never trained on. The first ``--cases`` cases of
  the fixed labelled order start with ``--start-slices`` (3) annotated axial slices each, at
  1/6, 1/2 and 5/6 of the structure (the sparse setting of the label-efficiency benchmark;
  one middle slice per case gave a broken round 0, Dice 0.105); the next ``--pool - --cases`` pool cases are unlabelled data for the
  semi-supervised method; the rest of the pool is not used (a cut, see below).
- Round 0 trains one ``barl`` model from scratch at the planner's hippocampus patch
  (32x48x32) for ``--iterations`` (1000): the start shared by every strategy and seed
  (with ``--work-dir`` it is cached there; ``--round0-only`` trains it and stops, so the
  strategies can then run as parallel processes that reuse it).
- Each round: predict every annotated case with the current model, rank its axial slices by
  the strategy under test (annotated slices are never re-picked), take the ``K`` best across
  cases, reveal their true labels, fine-tune from the previous model for
  ``--finetune-iterations`` (100, the same for every strategy) at ``--finetune-lr`` (1e-3:
  AdamW restarts with each fine-tune, and the round-0 rate of 3e-3 would first undo what the
  previous model learned), and score the test set.
- ``focused`` gets per-slice pooled decoder features from the same prediction
  (``predict_volume(return_features=True)``) for its feature-space coverage factor.
- The saving is read off the curves by linear interpolation; if a strategy never reaches
  random's final Dice, the script says so. Each pick's foreground voxels and whether it lies
  outside the structure's z-extent are recorded with it, so the pick statistics survive a
  merge of results files (:mod:`benchmarks.merge_results`).

Cost and what was cut (2 CPU cores, one thread per process)
-----------------------------------------------------------
Measured on this project's machine in CPU seconds: a ``barl`` iteration at 32x48x32, width 8,
batch 2+2 costs ~0.62-0.71 s; predicting one hippocampus case ~0.2 s (8 windows of 32x48x32
at overlap 0.25 or 0.5 alike); loading 48 cases for a fine-tune ~2 s. The defaults (3 seeds x 4
strategies x 6 rounds = 72 fine-tunes of 100 iterations, 40 test cases each round) are
~0.7 x 100 + ~15 s = ~85 s per round, ~51 min for 36 rounds per process, after the shared
round 0 (1000 iterations, ~9-12 min): **~60-65 minutes as two parallel processes** (two
strategies each). Cut to fit, instead of seeds or rounds: the unlabelled pool (40 of the
160 other pool cases: a fine-tune loads 48 cases, not 168), one shared round-0 model instead
of one per seed (the seeds vary the fine-tuning and the random draws, so the sd understates
the spread a new round 0 would add), and 100 fine-tuning iterations per round. The window
overlap is the engine's default (0.5): at this patch a hippocampus case needs 8 windows at
any overlap, so cutting it saved nothing.

Example
-------
See docs/benchmarks.md section 2 for the full run (round 0, then two processes, then merge).
``python benchmarks/active_learning.py --smoke --data DIR`` checks the pipeline on phantoms.
``python benchmarks/active_learning.py --advice-only --out benchmarks/results/active_learning.json``
replays the "label more or stop?" advice along the stored curves (no training) and prints
where it stops, against where each curve flattens and the rule before its recalibration.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # executed as ``python benchmarks/active_learning.py``
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402
from benchmarks.al_advice import advice_along_curves, advice_only, render_advice  # noqa: E402
from benchmarks.common import BenchCase  # noqa: E402

__all__ = ["STRATEGIES", "select_slices", "slices_to_reach", "summarise", "render_table", "main", "parse_args"]

STRATEGIES = ("random", "entropy", "disagreement", "focused", "focused2", "focused3")
#: The strategies that are presets of the product's ranking (:data:`barl_core.active.ranking.RANKING_PRESETS`).
RANKING_STRATEGIES = ("focused", "focused2", "focused3")
#: What ``--strategies`` runs unless told: ``focused2`` (a preset of
#: :data:`barl_core.active.ranking.RANKING_PRESETS`, not the default yet) only when asked.
DEFAULT_STRATEGIES = ("random", "entropy", "disagreement", "focused")
DEFAULT_ITERATIONS = 1000
DEFAULT_FINETUNE = 100
#: Peak learning rate of each fine-tune (round 0 uses the benchmarks' ``BENCH_LR``, 3e-3).
DEFAULT_FINETUNE_LR = 1e-3
DEFAULT_ROUNDS = 6
DEFAULT_N_TEST = 40
DEFAULT_SEEDS = "0,1,2"
#: Pool cases the engine trains on: the ``--cases`` annotated ones, the rest unlabelled.
DEFAULT_POOL = 48
#: Annotated axial slices each of the ``--cases`` cases starts with (at 1/6, 1/2 and 5/6 of the
#: structure, as the sparse settings of :mod:`benchmarks.label_efficiency` place them). One
#: middle slice per case gave a broken round-0 model under the design weights (test Dice 0.105,
#: confident false positives beyond the structure's ends).
DEFAULT_START_SLICES = 3
#: Sliding-window overlap of every prediction here (selection and test): the engine's default;
#: at the 32x48x32 window a hippocampus case needs 8 windows at 0.25 or 0.5 alike.
DEFAULT_OVERLAP = 0.5
#: The planner's patch for hippocampus (the median shape rounded down; issue 11).
DEFAULT_PATCH = (32, 48, 32)
DEFAULT_BASE = 8


# --------------------------------------------------------------------------------------------
# Selection and the answer
# --------------------------------------------------------------------------------------------


def select_slices(
    model_path: Path,
    cases: dict[str, BenchCase],
    annotated: dict[str, set[int]],
    *,
    strategy: str,
    k: int,
    seed: int,
    device: str = "cpu",
    overlap: float = DEFAULT_OVERLAP,
    features: bool = True,
) -> list[tuple[str, int, float]]:
    """The ``k`` best ``(case, axial slice, score)`` across cases, by ``strategy``.

    Each case is predicted with the current model; :func:`barl_core.active.suggest.suggest_slices`
    ranks its slices (skipping annotated ones, given as a sparse label map) and the per-case
    candidates are merged by score. Scores of different cases are comparable because every
    strategy scores a slice by a per-voxel mean (disagreement or entropy) or a uniform draw.
    ``focused`` ranks all cases at once (see :func:`_select_focused`), with the per-slice
    pooled features of the same prediction when ``features`` is true.
    """
    from barl_core.active.suggest import suggest_slices
    from barl_core.inference.predict import load_model, predict_volume

    model = load_model(model_path, device=device)
    if strategy in RANKING_STRATEGIES:
        return _select_focused(model, cases, annotated, k=k, overlap=overlap, features=features, preset=strategy)
    candidates: list[tuple[float, str, int]] = []
    for i, (name, case) in enumerate(sorted(cases.items())):
        pred = predict_volume(model, case.image, return_probabilities=(strategy == "entropy"), overlap=overlap)
        labels = common.sparsify(case.truth, annotated[name])
        picks = suggest_slices(
            pred.disagreement,
            labels=labels,
            axis=0,
            top_k=k,
            min_gap=1,
            strategy=strategy,
            **_strategy_kwargs(strategy, pred, seed * 1000 + i),
        )
        for s in picks:
            if int(s.index) in annotated[name]:
                raise AssertionError(f"suggest_slices re-picked annotated slice {s.index} of {name}")
            candidates.append((float(s.score), name, int(s.index)))
    candidates.sort(key=lambda c: (-c[0], c[1], c[2]))
    return [(name, idx, score) for score, name, idx in candidates[:k]]


def _select_focused(model, cases: dict[str, BenchCase], annotated: dict[str, set[int]], *,
                    k: int, overlap: float = DEFAULT_OVERLAP, features: bool = True,
                    preset: str = "focused") -> list[tuple[str, int, float]]:
    """The product's ranking (:func:`barl_core.active.ranking.rank_slices`, configured by the
    named ``preset`` of :data:`~barl_core.active.ranking.RANKING_PRESETS`) over all cases at
    once: it needs every case's prediction, disagreement and annotated slices together,
    because its coverage rules (z-gap, case spread, class balance, feature space) span cases.
    The per-slice features come out of the same sliding-window pass.
    """
    from barl_core.active.ranking import RANKING_PRESETS, CaseInputs, rank_slices
    from barl_core.inference.predict import predict_volume

    inputs = []
    for name, case in sorted(cases.items()):
        pred = predict_volume(model, case.image, overlap=overlap, return_features=features)
        inputs.append(CaseInputs(name, pred.disagreement, pred.labels,
                                 common.sparsify(case.truth, annotated[name]),
                                 features=pred.slice_features))
    picks = rank_slices(inputs, top_k=k, num_classes=len(model.class_names), class_names=model.class_names,
                        config=RANKING_PRESETS[preset])
    for s in picks:
        if s.index in annotated[s.case]:
            raise AssertionError(f"rank_slices re-picked annotated slice {s.index} of {s.case}")
    return [(s.case, s.index, s.score) for s in picks]


def _strategy_kwargs(strategy: str, pred, seed: int) -> dict:
    """Extra inputs a strategy needs (entropy: the probabilities; random: a seeded generator)."""
    if strategy == "entropy":
        return {"probabilities": pred.probabilities}
    if strategy == "random":
        return {"rng": np.random.default_rng(seed)}
    return {}


def slices_to_reach(curve: Sequence[tuple[float, float]], target: float) -> float | None:
    """Annotated slices at which a (slices, Dice) curve first reaches ``target`` (linear
    interpolation between rounds); ``None`` if it never does.
    """
    pts = sorted(curve)
    for i, (n, d) in enumerate(pts):
        if d >= target:
            if i == 0:
                return float(n)
            n0, d0 = pts[i - 1]
            return float(n0 + (target - d0) / (d - d0) * (n - n0)) if d != d0 else float(n)
    return None


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


def mean_curve(runs: dict, strategy: str) -> list[dict]:
    """Per round: annotated slices and mean ± sd over seeds of the test-set mean fg Dice."""
    by_round: dict[int, list[dict]] = {}
    for r in runs.values():
        if r["strategy"] == strategy:
            for pt in r["curve"]:
                by_round.setdefault(pt["round"], []).append(pt)
    out = []
    for rnd in sorted(by_round):
        pts = by_round[rnd]
        mu, sd, n = common.mean_sd(p["mean_fg_dice"] for p in pts)
        out.append({"round": rnd, "n_slices": float(np.mean([p["n_slices"] for p in pts])),
                    "dice": mu, "sd": sd, "n": n})
    return out


def paired_differences(runs: dict, strategy: str, baseline: str = "random") -> list[dict]:
    """Per round: mean ± sd over seeds of ``strategy``'s Dice minus ``baseline``'s, same seed
    (both start from the same round-0 model, so the pairing removes the shared part)."""
    by_seed = {(r["strategy"], r["seed"]): {p["round"]: p["mean_fg_dice"] for p in r["curve"]}
               for r in runs.values()}
    seeds = sorted(sd for st, sd in by_seed if st == strategy and (baseline, sd) in by_seed)
    rounds = sorted({rnd for sd in seeds for rnd in by_seed[(strategy, sd)]})
    out = []
    for rnd in rounds:
        diffs = [by_seed[(strategy, sd)][rnd] - by_seed[(baseline, sd)][rnd] for sd in seeds
                 if by_seed[(strategy, sd)].get(rnd) is not None and by_seed[(baseline, sd)].get(rnd) is not None]
        mu, sd_, n = common.mean_sd(diffs)
        out.append({"round": rnd, "diff": mu, "sd": sd_, "n": n})
    return out


def summarise(runs: dict, strategies: Sequence[str]) -> dict:
    """Curves per strategy and the answer: slices saved by each strategy vs random."""
    curves = {s: mean_curve(runs, s) for s in strategies}
    answer: dict = {"question": "how many fewer annotated slices does each strategy ('focused', the "
                    "default) need to reach the Dice that 'random' reaches at the end?"}
    rand = curves.get("random")
    if rand:
        target = rand[-1]["dice"]
        n_final = rand[-1]["n_slices"]
        answer.update(random_final_dice=target, random_final_slices=n_final)
        for s in strategies:
            if s == "random" or not curves.get(s):
                continue
            reach = slices_to_reach([(p["n_slices"], p["dice"]) for p in curves[s]], target)
            answer[s] = {
                "paired_vs_random": paired_differences(runs, s),
                "slices_to_reach": reach,
                "slices_saved": None if reach is None else n_final - reach,
                "fraction_saved": None if reach is None else (n_final - reach) / n_final,
                "final_dice": curves[s][-1]["dice"],
                "reached": reach is not None,
            }
    return {"curves": curves, "answer": answer}


def pick_facts(truth: np.ndarray, z: int) -> tuple[int, bool]:
    """Foreground voxels of axial slice ``z`` and whether it lies outside the structure's
    z-extent (recorded with each pick, so that the statistics need no data after a merge)."""
    zs = np.flatnonzero(truth.any(axis=(1, 2)))
    return int(np.count_nonzero(truth[z])), bool(zs.size) and not zs[0] <= z <= zs[-1]


def pick_stats(runs: dict, truth: dict[str, np.ndarray] | None = None) -> dict:
    """What each strategy asked the annotator to label: how many picked slices hold any
    foreground, their median foreground voxels, and how many lie outside the structure's
    z-extent (empty slices beyond its ends). Explains a curve better than its Dice alone.

    Each pick ``[case, z, score, fg_voxels, outside]`` carries its facts; picks of older files
    (``[case, z, score]``) are looked up in ``truth``.
    """
    out: dict = {}
    for run in runs.values():
        st = out.setdefault(run["strategy"], {"picked": 0, "with_foreground": 0, "outside_object": 0, "_fg": []})
        for point in run["curve"][1:]:
            for pick in point["picked"]:
                if len(pick) >= 5:
                    fg, outside = int(pick[3]), bool(pick[4])
                elif truth is not None:
                    fg, outside = pick_facts(truth[pick[0]], int(pick[1]))
                else:
                    raise ValueError("picks without their facts need the truth maps")
                st["picked"] += 1
                st["with_foreground"] += fg > 0
                st["outside_object"] += outside
                st["_fg"].append(fg)
    for st in out.values():
        st["median_foreground_voxels"] = float(np.median(st.pop("_fg"))) if st["picked"] else None
    return out


def summarise_all(runs: dict, strategies: Sequence[str], truth: dict[str, np.ndarray] | None = None) -> dict:
    """:func:`summarise` plus the pick statistics and the advice along the curves (what the
    report renders; :mod:`benchmarks.merge_results` calls it on the merged runs)."""
    present = {r["strategy"] for r in runs.values()}
    summary = summarise(runs, [s for s in strategies if s in present])
    try:
        summary["picks"] = pick_stats(runs, truth)
    except ValueError:  # picks of an older file, without their facts and without the data
        summary["picks"] = None
    summary["advice"] = advice_along_curves(runs)
    return summary


def render_per_seed(runs: dict) -> str:
    """Every run's curve: test Dice per round (one row per strategy and seed)."""
    rounds = sorted({p["round"] for r in runs.values() for p in r["curve"]})
    rows = []
    for key in sorted(runs, key=lambda k: (runs[k]["strategy"], runs[k]["seed"])):
        by_round = {p["round"]: p["mean_fg_dice"] for p in runs[key]["curve"]}
        rows.append([key] + ["n/a" if by_round.get(r) is None else f"{by_round[r]:.3f}" for r in rounds])
    return "### Per seed (test Dice by round)\n\n" + common.markdown_table(["run"] + [f"r{r}" for r in rounds], rows)


def render_picks(picks: dict) -> str:
    rows = [[s, str(v["picked"]), str(v["with_foreground"]), str(v["outside_object"]),
             "n/a" if v["median_foreground_voxels"] is None else f"{v['median_foreground_voxels']:.0f}"]
            for s, v in picks.items()]
    return "### What each strategy picked (all rounds and seeds)\n\n" + common.markdown_table(
        ["strategy", "slices picked", "with foreground", "outside the structure's z-extent",
         "median foreground voxels"], rows)


def answer_text(summary: dict) -> str:
    a = summary["answer"]
    if "random_final_dice" not in a:
        return "No 'random' curve: the saving cannot be computed."
    lines = [f"random reaches Dice {a['random_final_dice']:.3f} with {a['random_final_slices']:.0f} annotated slices."]
    for s, v in a.items():
        if not isinstance(v, dict):
            continue
        paired = [p for p in v.get("paired_vs_random", []) if p["round"] > 0 and p["n"]]
        if paired:
            lines.append(f"{s} minus random, same seed, per round (mean ± sd over {paired[0]['n']} seed(s)): "
                         + ", ".join(f"r{p['round']} {p['diff']:+.3f} ± {p['sd']:.3f}" for p in paired) + ".")
        if v["reached"]:
            lines.append(f"{s} reaches it with {v['slices_to_reach']:.1f} slices: {v['slices_saved']:.1f} "
                         f"fewer ({100 * v['fraction_saved']:.0f}% saved).")
        else:
            lines.append(f"{s} does not reach it within the rounds run (final Dice {v['final_dice']:.3f}): "
                         "not reached, no saving can be claimed.")
    return "\n".join(lines)


def render_table(summary: dict) -> str:
    curves = summary["curves"]
    strategies = list(curves)
    rounds = sorted({p["round"] for c in curves.values() for p in c})
    headers = ["round", "slices"] + [f"Dice {s}" for s in strategies]
    rows = []
    for rnd in rounds:
        row = [str(rnd)]
        n = next((p["n_slices"] for c in curves.values() for p in c if p["round"] == rnd), float("nan"))
        row.append(f"{n:.0f}")
        for s in strategies:
            pt = next((p for p in curves[s] if p["round"] == rnd), None)
            if pt is None or not pt["n"]:
                row.append("n/a")
            elif pt["n"] > 1:
                row.append(f"{pt['dice']:.3f} ± {pt['sd']:.3f}")
            else:
                row.append(f"{pt['dice']:.3f}")
        rows.append(row)
    return "### Active learning (mean foreground Dice, test set)\n\n" + common.markdown_table(headers, rows)


def plot(summary: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    for i, (s, curve) in enumerate(summary["curves"].items()):
        pts = [p for p in curve if p["n"]]
        if not pts:
            continue
        ax.errorbar([p["n_slices"] for p in pts], [p["dice"] for p in pts], yerr=[p["sd"] for p in pts],
                    marker="o", capsize=3, color=f"C{i}", label=s)
    a = summary["answer"]
    if "random_final_dice" in a:
        ax.axhline(a["random_final_dice"], color="grey", linestyle=":", label="random, final")
    common.finish_dice_plot(fig, ax, path, xlabel="annotated axial slices", title=title, fontsize=8)


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python benchmarks/active_learning.py",
        description="Active-learning benchmark: Dice vs annotated slices for the focused, disagreement, "
        "entropy and random slice-selection strategies.",
    )
    common.add_dataset_arguments(p)
    p.add_argument("--cases", type=int, default=8, help="pool cases that get annotated slices (default 8)")
    p.add_argument("--start-slices", type=int, default=DEFAULT_START_SLICES,
                   help=f"annotated axial slices per case at the start, spread through the structure "
                   f"(default {DEFAULT_START_SLICES})")
    p.add_argument("--pool", type=int, default=DEFAULT_POOL,
                   help=f"pool cases the engine trains on: the --cases annotated ones, then the next ones of "
                   f"the fixed order, unlabelled (default {DEFAULT_POOL}; 0: the whole pool)")
    p.add_argument("--k", type=int, default=4, help="slices revealed per round (default 4)")
    p.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS,
                   help=f"selection rounds after the start (default {DEFAULT_ROUNDS})")
    p.add_argument("--strategies", default=",".join(DEFAULT_STRATEGIES),
                   help=f"subset of {','.join(STRATEGIES)} (default {','.join(DEFAULT_STRATEGIES)})")
    p.add_argument("--method", default="barl", help="training method (needs two branches for disagreement)")
    p.add_argument("--iterations", type=int, default=None, help=f"round-0 training (default {DEFAULT_ITERATIONS})")
    p.add_argument("--finetune-iterations", type=int, default=None,
                   help=f"per round, from the previous model (default {DEFAULT_FINETUNE})")
    p.add_argument("--finetune-lr", type=float, default=DEFAULT_FINETUNE_LR,
                   help=f"peak learning rate of each fine-tune (default {DEFAULT_FINETUNE_LR})")
    p.add_argument("--no-features", action="store_true",
                   help="focused without its feature-space coverage factor (an ablation)")
    p.add_argument("--round0-only", action="store_true",
                   help="train (or reuse) the shared round-0 model in --work-dir, score it, and stop: "
                   "the strategies can then run as parallel processes that reuse it")
    common.add_model_arguments(p)
    common.add_device_arguments(p)
    common.add_output_arguments(p, "active_learning", resume_help="keep (strategy, seed) runs already in --out")
    p.add_argument("--advice-only", action="store_true",
                   help="no training: replay the label-more-or-stop advice along the curves stored in --out, "
                   "write it into that file's summary and print the table")
    p.add_argument("--round0-seed", type=int, default=0,
                   help="seed of the one round-0 model every seed and strategy starts from (default 0); "
                   "with --work-dir it is kept there and reused by later sessions")
    p.set_defaults(n_test=DEFAULT_N_TEST, seeds=DEFAULT_SEEDS)
    args = p.parse_args(argv)
    if args.smoke:
        args.iterations = args.iterations or 2
        args.finetune_iterations = args.finetune_iterations or 1
        args.patch = args.patch or [16, 16, 16]
        args.base_channels = args.base_channels or 4
    args.iterations = args.iterations or DEFAULT_ITERATIONS
    args.finetune_iterations = args.finetune_iterations or DEFAULT_FINETUNE
    args.patch = tuple(args.patch or DEFAULT_PATCH)
    args.base_channels = args.base_channels or DEFAULT_BASE
    if args.round0_only and args.work_dir is None:
        p.error("--round0-only needs --work-dir (where the later sessions find the model)")
    return args


def _train(args, cfg_iters: int, seed: int, class_names, cases, labels, work: Path, tag: str,
           init_from: Path | None = None, lr: float = common.BENCH_LR) -> tuple[Path, float]:
    cfg = common.build_train_config(
        method=args.method, iterations=cfg_iters, patch=args.patch, base_channels=args.base_channels,
        num_classes=len(class_names), seed=seed, device=args.device, class_names=class_names,
        num_threads=args.threads, lr=lr)
    img_dir, lab_dir = common.materialise(cases, labels, work / f"labels_{tag}", images_dir=work / "imagesTr")
    return common.train_model(cfg, img_dir, lab_dir, work / f"run_{tag}", init_from=init_from)


def _point(rnd: int, annotated: dict[str, set[int]], ev: dict, class_names, extra: dict) -> dict:
    fg = [ev["mean"].get(c, {}).get("dice") for c in class_names[1:]]
    fg = [v for v in fg if v is not None]
    return {"round": rnd, "n_slices": sum(len(v) for v in annotated.values()),
            "mean_fg_dice": float(np.mean(fg)) if fg else None, "metrics": ev["mean"], **extra}


def _evaluate(model_path: Path, test_cases: dict[str, BenchCase], class_names, device: str) -> dict:
    return common.evaluate_model(model_path, test_cases, num_classes=len(class_names),
                                 class_names=class_names, device=device)


def _method_digest(args, num_classes: int) -> str:
    """Short hash of the method settings a round-0 model is trained with (weights, schedule, views).

    Part of the cache name: a model cached under other loss weights must not be reused.
    """
    import hashlib
    import json

    cfg = common.build_train_config(method=args.method, iterations=args.iterations, patch=args.patch,
                                    base_channels=args.base_channels, num_classes=num_classes, seed=0).to_dict()
    keys = ("optimizer", "lr", "losses", "cps_weight", "consistency_weight", "augment", "normalization")
    text = json.dumps({k: cfg.get(k) for k in keys}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def _round0(args, ds, pool_cases, test_cases, start, work: Path) -> tuple[Path, dict]:
    """The one round-0 model all seeds and strategies start from, and its test point.

    One shared model (seed ``--round0-seed``) instead of one per seed: round 0 costs as much as
    ~10 fine-tuning rounds on the CPU, and every strategy must start from the same model anyway;
    the seeds vary the fine-tuning and the random draws. With ``--work-dir`` the model (with its
    training time) and its test point are kept there, named by every setting that shapes them,
    and reused by later sessions, so seeds and strategies can run as separate, parallel,
    resumable sessions.
    """
    import json
    import shutil

    tag = (f"round0_s{args.round0_seed}_it{args.iterations}_p{'x'.join(map(str, args.patch))}"
           f"_b{args.base_channels}_{args.method}_t{args.n_test}_c{args.cases}"
           f"{'' if args.start_slices == 1 else f'x{args.start_slices}'}_pool{len(pool_cases)}"
           f"_m{_method_digest(args, len(ds.class_names))}")
    cache = Path(args.work_dir) if args.work_dir else work
    cache.mkdir(parents=True, exist_ok=True)
    model_path, train_json = cache / f"{tag}.pt", cache / f"{tag}.train.json"
    point_json = cache / f"{tag}_ov{DEFAULT_OVERLAP}.json"
    if model_path.is_file() and train_json.is_file():
        t0 = json.loads(train_json.read_text())["train_seconds"]
        print(f"[active_learning] round-0 model reused from {model_path}")
    else:
        labels0 = {n: common.sparsify(ds.cases[n].truth, start[n]) for n in sorted(start)}
        model0, t0 = _train(args, args.iterations, args.round0_seed, ds.class_names, pool_cases, labels0,
                            work, "r0")
        shutil.copyfile(model0, model_path)
        train_json.write_text(json.dumps({"train_seconds": round(t0, 2), "threads": args.threads}))
    if point_json.is_file():
        p0 = json.loads(point_json.read_text())
    else:
        ev0 = _evaluate(model_path, test_cases, ds.class_names, args.device)
        p0 = _point(0, start, ev0, ds.class_names, {"train_seconds": round(t0, 2),
                                                    "eval_seconds": round(ev0["seconds"], 2), "picked": []})
        point_json.write_text(json.dumps(p0))
    print(f"[active_learning] round 0: {p0['n_slices']} slices, Dice {p0['mean_fg_dice']:.3f} "
          f"({p0['train_seconds'] / 60:.1f} min of training)", flush=True)
    return model_path, p0


def _run_strategy(args, ds, strategy: str, seed: int, al_cases: list[str], pool_cases, test_cases,
                  start: dict[str, set[int]], model0: Path, p0: dict, work: Path) -> dict:
    """One (strategy, seed) learning curve: ``--rounds`` of pick, reveal, fine-tune, score."""
    annotated = {n: set(v) for n, v in start.items()}
    curve, model = [p0], model0
    for rnd in range(1, args.rounds + 1):
        t_sel = time.perf_counter()
        picked = select_slices(model, {n: ds.cases[n] for n in al_cases}, annotated, strategy=strategy,
                               k=args.k, seed=seed * 100 + rnd, device=args.device,
                               features=not args.no_features)
        t_sel = time.perf_counter() - t_sel
        for name, idx, _ in picked:
            annotated[name].add(idx)
        labels = {n: common.sparsify(ds.cases[n].truth, annotated[n]) for n in al_cases}
        model, t = _train(args, args.finetune_iterations, seed * 100 + rnd, ds.class_names, pool_cases, labels,
                          work, f"s{seed}_{strategy}_r{rnd}", init_from=model, lr=args.finetune_lr)
        ev = _evaluate(model, test_cases, ds.class_names, args.device)
        facts = [pick_facts(ds.cases[n].truth, i) for n, i, _ in picked]
        pt = _point(rnd, annotated, ev, ds.class_names,
                    {"train_seconds": round(t, 2), "select_seconds": round(t_sel, 2),
                     "eval_seconds": round(ev["seconds"], 2),
                     "picked": [[n, i, round(s, 6), fg, out] for (n, i, s), (fg, out) in zip(picked, facts, strict=True)]})
        curve.append(pt)
        print(f"[active_learning] seed {seed} {strategy} round {rnd}: {pt['n_slices']} slices, "
              f"Dice {pt['mean_fg_dice']:.3f} (select {t_sel:.0f} s, fine-tune {t:.0f} s, "
              f"test {ev['seconds']:.0f} s)", flush=True)
    return {"strategy": strategy, "seed": seed, "curve": curve,
            "annotated": {n: sorted(v) for n, v in annotated.items()}}


def run(args: argparse.Namespace) -> dict:
    common.set_threads(args.threads)
    from benchmarks.label_efficiency_parts.dataset import load_msd

    if not (args.data / "imagesTr").is_dir():
        raise SystemExit(f"{args.data}: no imagesTr/ folder (pass --data DIR)")
    ds = load_msd(args.data, args.n_test)
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    bad = sorted(set(strategies) - set(STRATEGIES))
    if bad:
        raise SystemExit(f"unknown strategies {bad}; choose from {', '.join(STRATEGIES)}")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    pool_names = list(ds.pool_order[: args.pool] if args.pool > 0 else ds.pool_order)
    if len(pool_names) < args.cases:
        raise SystemExit(f"--pool {args.pool} holds fewer cases than --cases {args.cases}")
    al_cases = sorted(pool_names[: args.cases])
    pool_cases = {n: ds.cases[n] for n in pool_names}
    test_cases = {n: ds.cases[n] for n in ds.test}
    start = {n: set(common.foreground_slices(ds.cases[n].truth, args.start_slices)) for n in al_cases}
    t_start = time.perf_counter()
    if args.round0_only:
        _round0(args, ds, pool_cases, test_cases, start, Path(args.work_dir))
        print(f"[active_learning] round 0 ready in {args.work_dir} after "
              f"{(time.perf_counter() - t_start) / 60:.1f} min")
        return {}

    config = {
        "dataset": ds.name, "data": str(args.data), "cases": al_cases, "pool": len(pool_cases), "k": args.k,
        "rounds": args.rounds, "strategies": strategies, "method": args.method, "seeds": seeds,
        "iterations": args.iterations, "finetune_iterations": args.finetune_iterations,
        "finetune_lr": args.finetune_lr, "features": not args.no_features, "round0_seed": args.round0_seed,
        "overlap": DEFAULT_OVERLAP, "patch_zyx": list(args.patch),
        "base_channels": args.base_channels, "device": args.device, "class_names": list(ds.class_names),
        "start_slices": {n: sorted(v) for n, v in start.items()},
    }
    store = common.ResultsStore.open(
        args.out, "active_learning", resume=args.resume, config=config,
        must_match=("dataset", "cases", "pool", "k", "rounds", "method", "iterations", "finetune_iterations",
                    "finetune_lr", "features", "round0_seed", "overlap", "patch_zyx", "base_channels",
                    "start_slices"))
    store.set("split", {"seed": common.SPLIT_SEED, "test": ds.test, "pool": ds.pool})
    n_tune = len(seeds) * len(strategies) * args.rounds
    print(f"[active_learning] {len(al_cases)} annotated + {len(pool_cases) - len(al_cases)} unlabelled pool "
          f"cases, K={args.k}, {args.rounds} rounds, strategies {strategies}, seeds {seeds}: "
          f"1 x {args.iterations} iterations (shared round 0) + {n_tune} x {args.finetune_iterations} "
          f"fine-tuning iterations, {len(test_cases)} test cases")
    with common.temp_work_dir("barl_al_", args.work_dir) as tmp:
        work = Path(tmp)
        model0 = p0 = None
        for seed in seeds:
            for strategy in strategies:
                if args.resume and store.has(f"{strategy}/seed{seed}"):
                    continue
                if model0 is None:
                    model0, p0 = _round0(args, ds, pool_cases, test_cases, start, work)
                    store.set("round0", p0)
                store.add_run(f"{strategy}/seed{seed}",
                              _run_strategy(args, ds, strategy, seed, al_cases, pool_cases, test_cases,
                                            start, model0, p0, work))
    summary = summarise_all(store.runs, STRATEGIES, {n: ds.cases[n].truth for n in al_cases})
    store.set("summary", summary)
    store.save(finished=True)
    print()
    print(render_table(summary))
    print()
    print(render_picks(summary["picks"]))
    print()
    print(render_advice(summary["advice"]))
    print()
    print(answer_text(summary))
    print(f"\n[active_learning] results in {args.out}; this session took "
          f"{(time.perf_counter() - t_start) / 60:.1f} min")
    if args.plot:
        plot(summary, args.plot, f"{ds.name}: Dice vs annotated slices")
        print(f"[active_learning] plot: {args.plot}")
    return store.data


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.advice_only:
        print(advice_only(args.out))
        return 0
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
