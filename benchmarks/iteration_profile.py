"""Cost of one training iteration per method, by phase, measured side by side in one process.

What it answers: where the time of a training iteration goes (sampling, augmentation,
network forward, each loss term, backward, optimiser step), how much a BARL iteration costs
against a CPS one, and how close a supervised iteration comes to the bare network's
forward + backward. Every method gets a :class:`barl_core.training.trainer.Trainer` on the same data;
the methods then take turns, one iteration each per round, so that load from other processes
on a shared machine falls on all of them alike. ``network`` is the bare U-Net: one forward
(finest head only, no projection) and ``backward()`` of the mean logit, batch ``batch_labeled``.

Data: ``--data`` (hippocampus by default; ``--cases`` of them, a tenth with 3 labelled axial
slices, the rest unlabelled), or tiny phantoms with ``--smoke``.

Example
-------
``python benchmarks/iteration_profile.py --threads 2 --rounds 20``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # executed as ``python benchmarks/iteration_profile.py``
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402

__all__ = ["main", "parse_args", "render_table", "NETWORK"]

METHODS = ("supervised", "mean-teacher", "cps", "barl")
#: Pseudo-method name of the bare network forward + backward.
NETWORK = "network"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python benchmarks/iteration_profile.py", description=__doc__.split("\n")[0])
    common.add_dataset_arguments(p)
    p.add_argument("--cases", type=int, default=40, help="cases to load (a tenth get 3 labelled slices)")
    p.add_argument("--methods", default=",".join(METHODS), help="methods to time (comma list)")
    p.add_argument("--rounds", type=int, default=20, help="timed iterations per method")
    p.add_argument("--warmup", type=int, default=3, help="untimed iterations per method first")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="wall seconds, or CPU seconds of this process (robust to other jobs on a shared "
                   "machine; use with --threads 1)")
    common.add_model_arguments(p, patch_help="patch (default 32 48 32)", base_help="width (default 8)", batches=True)
    common.add_device_arguments(p)
    common.add_output_arguments(p, "iteration_profile")
    return p.parse_args(argv)


def _cases(args: argparse.Namespace) -> tuple[list, tuple[str, ...]]:
    """Engine cases: a tenth labelled with 3 axial slices, the rest without labels."""
    from barl_core.data.dataset import Case

    if args.smoke:
        from barl_core.data.phantom import PhantomConfig, make_phantom

        bench = {}
        for i in range(4):
            vol, truth = make_phantom(PhantomConfig(shape=(16, 24, 24)), seed=i)
            bench[f"ph{i}"] = common.BenchCase(f"ph{i}", vol, truth.astype("uint8"))
    else:
        bench = common.load_msd_cases(args.data / "imagesTr", args.data / "labelsTr")
        bench = {k: bench[k] for k in sorted(bench)[: args.cases]}
    names = sorted(bench)
    n_lab = max(1, len(names) // 10)
    cases = []
    k = 1
    for i, name in enumerate(names):
        c = bench[name]
        k = max(k, int(c.truth.max()) + 1)
        lab = common.sparsify(c.truth, common.foreground_slices(c.truth, 3)) if i < n_lab else None
        cases.append(Case(name, c.image, lab, c.image_path or Path(f"{name}.nii.gz"), None))
    return cases, tuple(["background"] + [f"class_{i}" for i in range(1, k)])


def _network_step(net, images, optimizer) -> None:
    optimizer.zero_grad(set_to_none=True)
    out = net(images, deep_supervision=False, return_features=False).logits[-1]
    out.float().mean().backward()


def run(args: argparse.Namespace) -> dict:
    import numpy as np
    import torch

    from barl_core.networks.unet import UNet3D
    from barl_core.training.prepare import prepare_training_data
    from barl_core.training.trainer import Trainer

    common.set_threads(args.threads)
    cases, names = _cases(args)
    methods = [m for m in args.methods.split(",") if m]
    config = {
        "patch": list(args.patch), "base_channels": args.base_channels, "batch_labeled": args.batch_labeled,
        "batch_unlabeled": args.batch_unlabeled, "rounds": args.rounds, "warmup": args.warmup,
        "cases": len(cases), "threads": torch.get_num_threads(), "methods": methods, "clock": args.clock,
    }
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    store = common.ResultsStore.open(args.out, "iteration_profile", resume=False, config=config)
    trainers: dict[str, Trainer] = {}
    for method in methods:
        cfg = common.build_train_config(
            method=method, iterations=1000, patch=args.patch, base_channels=args.base_channels,
            num_classes=len(names), seed=0, batch_labeled=args.batch_labeled,
            batch_unlabeled=args.batch_unlabeled, device=args.device, class_names=names,
            num_threads=args.threads,
        )
        volumes, stats, _ = prepare_training_data(cases, cfg)
        tr = Trainer(cfg, volumes, Path(args.work_dir or "/tmp") / f"iteration_profile_{method}", norm_stats=stats)
        tr.initialize()
        trainers[method] = tr
    first = next(iter(trainers.values()))
    net = UNet3D(first.config.network).to(first.device)
    net_opt = torch.optim.SGD(net.parameters(), lr=0.0)
    images, _ = first.sampler.sample_labelled(args.batch_labeled)
    x = torch.from_numpy(images).to(first.device)

    start_it = 400  # past the ramp-up start: every term is computed at full cost from iteration 0 anyway
    steps: dict[str, list[float]] = {m: [] for m in [*methods, NETWORK]}
    for r in range(args.warmup + args.rounds):
        timed = r >= args.warmup
        if timed and r == args.warmup:
            for tr in trainers.values():
                tr.timer.reset()
                tr.timer.enabled = True
                tr.timer.clock = clock
        for method, tr in trainers.items():
            t0 = clock()
            tr.train_step(start_it + r)
            if timed:
                steps[method].append(clock() - t0)
        t0 = clock()
        _network_step(net, x, net_opt)
        if timed:
            steps[NETWORK].append(clock() - t0)
    results = {}
    for name, times in steps.items():
        entry = {"median_s": statistics.median(times), "mean_s": float(np.mean(times)), "n": len(times)}
        if name in trainers:
            phases = trainers[name].timer.mean_per(args.rounds)
            phases["other"] = max(0.0, entry["mean_s"] - sum(phases.values()))
            entry["phases_s"] = phases
        results[name] = entry
    ratios = {}
    if "barl" in results and "cps" in results:
        ratios["barl/cps"] = results["barl"]["mean_s"] / results["cps"]["mean_s"]
    if "supervised" in results:
        ratios["supervised/network"] = results["supervised"]["mean_s"] / results[NETWORK]["mean_s"]
        for m in (m for m in methods if m != "supervised"):
            ratios[f"{m}/supervised"] = results[m]["mean_s"] / results["supervised"]["mean_s"]
    store.set("results", results)
    store.set("ratios", ratios)
    store.save(finished=True)
    return store.data


def render_table(data: dict) -> str:
    """Per-method mean ms per phase (columns) and the ratios the issue asks for."""
    results = data.get("results", {})
    phases: list[str] = []
    for r in results.values():
        for p in r.get("phases_s", {}):
            if p not in phases:
                phases.append(p)
    order = ["sample", "views", "forward"] + sorted(p for p in phases if p.startswith("loss:")) + [
        "backward", "optimizer", "other"]
    order = [p for p in order if p in phases]
    rows = []
    for name, r in results.items():
        ph = r.get("phases_s", {})
        rows.append([name, f"{1000 * r['mean_s']:.0f}", f"{1000 * r['median_s']:.0f}",
                     *[f"{1000 * ph[p]:.0f}" if p in ph else "" for p in order]])
    cfg = data.get("config", {})
    unit = "CPU ms/it" if cfg.get("clock") == "cpu" else "ms/it"
    table = common.markdown_table(["method", f"mean {unit}", "median", *order], rows)
    ratios = ", ".join(f"{k} {v:.2f}x" for k, v in data.get("ratios", {}).items() if k != "supervised/supervised")
    return (f"{table}\n\nPatch {cfg.get('patch')}, width {cfg.get('base_channels')}, batch "
            f"{cfg.get('batch_labeled')}+{cfg.get('batch_unlabeled')}, {cfg.get('threads')} threads, "
            f"{cfg.get('rounds')} interleaved rounds, {'CPU' if cfg.get('clock') == 'cpu' else 'wall'} time. "
            f"Ratios of the means: {ratios}.")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.patch is None:
        args.patch = [16, 24, 24] if args.smoke else [32, 48, 32]
    if args.base_channels is None:
        args.base_channels = 4 if args.smoke else 8
    if args.smoke:
        args.rounds, args.warmup = min(args.rounds, 2), min(args.warmup, 1)
    data = run(args)
    print(render_table(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
