"""The protocol: the shared round-0 model, and one (strategy, seed) learning curve.

Every training, prediction and metric goes through ``barl_core``'s public API by way of
:mod:`benchmarks.common`; only the slices each strategy picks differ between curves.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from benchmarks import common
from benchmarks.common import BenchCase

from .selection import DEFAULT_OVERLAP, select_slices
from .summary import pick_facts

__all__ = ["round0", "run_strategy"]


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


def round0(args, ds, pool_cases, test_cases, start, work: Path) -> tuple[Path, dict]:
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


def run_strategy(args, ds, strategy: str, seed: int, al_cases: list[str], pool_cases, test_cases,
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
        # a case nobody annotated yet stays unlabelled data (an all-ignore label map would take
        # a labelled slot of the batch)
        labels = {n: common.sparsify(ds.cases[n].truth, annotated[n]) for n in al_cases if annotated[n]}
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
