"""The GPU check: one command, under 8 minutes on one GPU, that the GPU path works and how fast.

No GPU path ran before this script: the ``full`` preset, AMP, GPU memory release and real
CUDA out-of-memory were untested. Five measurements, each a key of the results JSON
(rendered into docs/benchmarks.md by ``benchmarks/report.py``):

``methods``
    Iterations per second of ``supervised``, ``mean-teacher``, ``cps`` and ``barl`` at the
    ``full`` preset (patch, batch, width; AMP on CUDA), and each one's peak GPU memory.
``predict``
    Predicting a 512^3 CBCT phantom with a ``full``-width two-branch network (96^3 window,
    overlap 0.5, both branches and the disagreement): seconds and peak GPU memory.
``release``
    The device's free memory (``torch.cuda.mem_get_info``, what every process sees) before a
    training child starts, after it ends, and after a second child is cancelled mid-run: it
    must come back to the baseline. On the CPU: the children end with the right status.
``oom``
    A real CUDA out-of-memory: this process's share of the GPU is capped
    (``torch.cuda.set_per_process_memory_fraction``) below what a ``full`` training step and
    a batched prediction need; the trainer must shrink batch/patch and finish, prediction
    must retry with one window per batch. On the CPU the same back-off is driven by one
    injected ``OutOfMemoryError`` (recorded as ``simulated``), so the path cannot rot.
``la``
    A short BARL run on Left Atrium 2018 in the UA-MT h5 layout (``benchmarks/la_h5.py``,
    ``--la-root``): the training loss of the first and last tenth of the iterations. Skipped,
    with the reason, when the data is absent.

``--tiny`` shrinks every size so the whole check runs on a CPU in a minute (the tests run it
that way with ``--device cpu``).

Example
-------
``python benchmarks/gpu_check.py --la-root data/LA`` (on a GPU machine)
``python benchmarks/gpu_check.py --device cpu --tiny --out /tmp/gpu_check.json``
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # executed as ``python benchmarks/gpu_check.py``
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402

__all__ = ["main", "parse_args", "check_methods", "check_predict", "check_release", "check_oom", "check_la",
           "render_table", "PARTS"]

METHODS = ("supervised", "mean-teacher", "cps", "barl")
PARTS = ("methods", "predict", "release", "oom", "la")
#: Free device memory may differ from the baseline by this much after a child ends (allocator
#: granularity of other processes on a shared GPU; a leaked CUDA context is ~500 MiB).
_RELEASE_TOLERANCE = 128 * 2**20


# --------------------------------------------------------------------------- helpers
def _is_cuda(device: str) -> bool:
    return device.startswith("cuda")


def _reset_peak(device: str) -> None:
    import torch

    if _is_cuda(device):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def _peak_mib(device: str) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**20 if _is_cuda(device) else None


def _free_bytes(device: str) -> int | None:
    """Free memory of the device as every process sees it (None on the CPU)."""
    import torch

    if not _is_cuda(device):
        return None
    torch.cuda.synchronize()
    free, _ = torch.cuda.mem_get_info()
    return int(free)


def _config(args: argparse.Namespace, method: str, iterations: int, num_classes: int, names: Sequence[str]):
    """The ``full`` preset for ``method`` (``--tiny``: small patch, width and batch)."""
    from barl_core.training.config import preset

    over: dict = {"method": method, "iterations": int(iterations), "device": args.device, "checkpoint_every": 0,
                  "log_every": 1, "class_names": tuple(names), "seed": 0,
                  "num_threads": args.threads}
    net = {"num_classes": num_classes}
    if args.tiny:
        over.update(patch_size=(16, 16, 16), batch_labeled=1, batch_unlabeled=1)
        net["base_channels"] = 4
    return preset("full", network=net, **over)


def _phantom_cases(shape: Sequence[int], prefix: str) -> tuple[dict, dict]:
    """Four seeded phantoms named ``<prefix><i>``; the even ones labelled, the odd ones not."""
    from barl_core.data.phantom import make_phantom

    cases, labels = {}, {}
    for i in range(4):
        vol, lab = make_phantom(shape=tuple(shape), seed=i)
        vol.metadata = {}
        cases[f"{prefix}{i}"] = common.BenchCase(name=f"{prefix}{i}", image=vol, truth=lab)
        labels[f"{prefix}{i}"] = lab if i % 2 == 0 else None
    return cases, labels


def _phantom_data(args: argparse.Namespace, work: Path, shape: Sequence[int]) -> tuple[Path, Path, list[str]]:
    from barl_core.data.phantom import PHANTOM_CLASSES

    cases, labels = _phantom_cases(shape, "phantom_")
    img, lab = common.materialise(cases, labels, work / "phantoms")
    return img, lab, list(PHANTOM_CLASSES)


def _train_shape(args: argparse.Namespace) -> tuple[int, int, int]:
    return (24, 24, 24) if args.tiny else (112, 128, 128)


# --------------------------------------------------------------------------- parts
def check_methods(args: argparse.Namespace, work: Path) -> dict:
    """Iterations/s and peak GPU memory of every method at the ``full`` preset with AMP."""
    from barl_core.data.phantom import PHANTOM_CLASSES

    cases, labels = _phantom_cases(_train_shape(args), "p")
    out: dict = {"methods": {}}
    for m in args.methods:
        cfg = _config(args, m, args.warmup + args.iterations, len(PHANTOM_CLASSES), PHANTOM_CLASSES)
        _reset_peak(args.device)
        times = common.iteration_times(cfg, cases, labels, work / f"train_{m}")
        sec = common.robust_iteration_time(times, warmup=args.warmup)
        out["methods"][m] = {"its_per_s": 1.0 / sec, "median_s": sec, "peak_mib": _peak_mib(args.device),
                             "amp": bool(cfg.amp and _is_cuda(args.device))}
        out.update(patch_zyx=list(cfg.patch_size), batch=[cfg.batch_labeled, cfg.batch_unlabeled],
                   base_channels=cfg.network.base_channels)
        print(f"[gpu_check] {m}: {1 / sec:.2f} it/s", flush=True)
    if "barl" in out["methods"] and "cps" in out["methods"]:
        out["barl/cps_time"] = out["methods"]["barl"]["median_s"] / out["methods"]["cps"]["median_s"]
    return out


def check_predict(args: argparse.Namespace) -> dict:
    """512^3 prediction with a ``full``-width two-branch network: seconds, peak GPU memory."""
    import torch

    from barl_core.data.phantom import make_phantom
    from barl_core.inference.model import LoadedModel
    from barl_core.inference.predict import predict_volume
    from barl_core.networks.unet import BiBranchNet, NetworkConfig
    from barl_core.training.config import preset

    full = preset("full")
    width = 4 if args.tiny else full.network.base_channels
    window = (16, 16, 16) if args.tiny else tuple(full.patch_size)
    torch.manual_seed(0)
    net = BiBranchNet(NetworkConfig(num_classes=4, base_channels=width)).eval()
    model = LoadedModel.from_module(net, patch_size=window, device=args.device)
    vol, _ = make_phantom(shape=tuple(args.predict_size), seed=0)
    vol.metadata = {}
    from barl_core.io.volume import Volume

    warm = np.ascontiguousarray(vol.array[: window[0], : window[1], : window[2]])
    predict_volume(model, Volume(warm, spacing=vol.spacing))  # warm-up: kernels, allocator
    _reset_peak(args.device)
    t0 = time.perf_counter()
    pred = predict_volume(model, vol, sw_batch_size=args.sw_batch)
    if _is_cuda(args.device):
        torch.cuda.synchronize()
    sec = time.perf_counter() - t0
    res = {"size_zyx": list(vol.shape), "window_zyx": list(window), "base_channels": width, "overlap": 0.5,
           "sw_batch": args.sw_batch, "seconds": sec, "peak_mib": _peak_mib(args.device),
           "mean_disagreement": float(pred.disagreement.mean(dtype=np.float64))}
    print(f"[gpu_check] predict {'x'.join(map(str, vol.shape))}: {sec:.1f} s", flush=True)
    return res


def _run_job(handle, cancel_after_progress: int | None, timeout_s: float) -> str:
    """Drain a job's updates until it ends (cancelling it after some progress); its final kind."""
    seen, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        for u in handle.poll():
            if u.kind == "progress":
                seen += 1
                if cancel_after_progress is not None and seen >= cancel_after_progress:
                    handle.cancel()
            if u.kind in ("done", "error", "cancelled"):
                handle.wait(60)
                return u.kind if u.kind != "error" else f"error: {u.message}"
        time.sleep(0.05)
    handle.cancel()
    handle.wait(60)
    return "timeout"


def check_release(args: argparse.Namespace, work: Path) -> dict:
    """Free device memory before a training child, after it ends, and after one is cancelled."""
    from barl_core.runtime.jobs import TrainJob

    img, lab, names = _phantom_data(args, work, _train_shape(args))
    out: dict = {"device": args.device}
    base = _free_bytes(args.device)
    out["baseline_free_mib"] = None if base is None else base / 2**20
    cfg = _config(args, "barl", args.job_iterations, len(names), names)
    out["done_status"] = _run_job(TrainJob.start(cfg, img, lab, work / "job_done"), None, args.job_timeout)
    after = _free_bytes(args.device)
    out["after_done_free_mib"] = None if after is None else after / 2**20
    long_cfg = _config(args, "barl", 10_000, len(names), names)
    out["cancel_status"] = _run_job(TrainJob.start(long_cfg, img, lab, work / "job_cancel"), 2, args.job_timeout)
    after_cancel = _free_bytes(args.device)
    out["after_cancel_free_mib"] = None if after_cancel is None else after_cancel / 2**20
    if base is not None:
        out["returned"] = bool(after >= base - _RELEASE_TOLERANCE and after_cancel >= base - _RELEASE_TOLERANCE)
    else:
        out["returned"] = None  # no device memory to return on the CPU; the statuses say the children ended
    print(f"[gpu_check] release: done={out['done_status']} cancelled={out['cancel_status']} "
          f"returned={out['returned']}", flush=True)
    return out


def check_oom(args: argparse.Namespace, work: Path) -> dict:
    """A real CUDA out-of-memory (capped share of the GPU), answered by the back-off."""
    import torch

    from barl_core.inference.model import LoadedModel
    from barl_core.inference.predict import predict_volume
    from barl_core.io.volume import Volume
    from barl_core.networks.unet import BiBranchNet, NetworkConfig
    from barl_core.training import trainer as trainer_mod
    from barl_core.training.checkpoint import load_checkpoint
    from barl_core.training.run import train

    img, lab, names = _phantom_data(args, work, _train_shape(args))
    cfg = _config(args, "barl", 3, len(names), names)
    if args.tiny:  # leave the back-off something to shrink
        cfg = replace(cfg, batch_labeled=2, batch_unlabeled=2)
    out: dict = {"simulated": not _is_cuda(args.device), "patch_before": list(cfg.patch_size),
                 "batch_before": [cfg.batch_labeled, cfg.batch_unlabeled]}
    restore = None
    if _is_cuda(args.device):
        torch.cuda.empty_cache()
        torch.cuda.set_per_process_memory_fraction(args.oom_fraction)
        out["memory_fraction"] = args.oom_fraction
    else:  # inject one OutOfMemoryError into the first training step: the same back-off path
        original = trainer_mod.Trainer._train_step_once
        state = {"raised": False}

        def once(self, iteration):
            if not state["raised"]:
                state["raised"] = True
                raise torch.OutOfMemoryError("simulated: CUDA out of memory")
            return original(self, iteration)

        trainer_mod.Trainer._train_step_once = once
        restore = (trainer_mod.Trainer, original)
    messages: list[str] = []
    try:
        result = train(cfg, img, lab, work / "oom_run",
                                   callback=lambda ev: messages.append(str(getattr(ev, "message", "") or "")))
        final = load_checkpoint(result.model_path)["config"]
        out["train"] = f"finished ({result.status}, {result.iterations_done} iterations)"
        out["patch_after"] = list(final.get("patch_size", []))
        out["batch_after"] = [final.get("batch_labeled"), final.get("batch_unlabeled")]
    except Exception as exc:  # noqa: BLE001 - the check reports what happened
        out["train"] = f"{type(exc).__name__}: {str(exc)[:300]}"
    finally:
        if restore is not None:
            restore[0]._train_step_once = restore[1]
    out["backoff_messages"] = [m for m in messages if "memory" in m.lower()][:5]
    if _is_cuda(args.device):
        width = 4 if args.tiny else 32
        net = BiBranchNet(NetworkConfig(num_classes=4, base_channels=width)).eval()
        model = LoadedModel.from_module(net, patch_size=(96, 96, 96) if not args.tiny else (16, 16, 16),
                                        device=args.device)
        vol = Volume(np.random.default_rng(0).normal(0, 1, tuple(args.oom_predict_size)).astype(np.float32))
        try:
            predict_volume(model, vol, sw_batch_size=args.oom_sw_batch, check_memory=False)
            out["predict"] = "finished"
        except Exception as exc:  # noqa: BLE001
            out["predict"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
    print(f"[gpu_check] oom: train {out['train']}, predict {out.get('predict', 'n/a')}", flush=True)
    return out


def check_la(args: argparse.Namespace, work: Path) -> dict:
    """A short BARL run on LA (UA-MT h5): mean supervised loss of the first and last tenth."""
    from benchmarks.la_h5 import LA_CLASS_NAMES, load_la_cases

    if args.la_root is None or not Path(args.la_root).exists():
        return {"skipped": f"no Left Atrium data (--la-root {args.la_root})"}
    try:
        cases, train_names, _ = load_la_cases(args.la_root)
    except (FileNotFoundError, KeyError, ValueError) as exc:
        return {"skipped": f"Left Atrium data unreadable: {exc}"}
    train_names = train_names[: args.la_cases]
    labels = {n: (cases[n].truth if i < max(1, len(train_names) // 5) else None) for i, n in enumerate(train_names)}
    img, lab = common.materialise({n: cases[n] for n in train_names}, labels, work / "la")
    cfg = _config(args, "barl", args.la_iterations, len(LA_CLASS_NAMES), LA_CLASS_NAMES)
    losses: list[float] = []

    def on_event(ev):  # the supervised term: BARL's total grows while its other terms ramp up
        got = getattr(ev, "losses", None) or {}
        loss = got.get("sup", got.get("loss"))
        if loss is not None:
            losses.append(float(loss))

    from barl_core.training.run import train

    t0 = time.perf_counter()
    train(cfg, img, lab, work / "la_run", callback=on_event)
    n = max(1, len(losses) // 10)
    res = {"cases": len(train_names), "labelled": sum(v is not None for v in labels.values()),
           "iterations": args.la_iterations, "seconds": time.perf_counter() - t0, "patch_zyx": list(cfg.patch_size),
           "loss_first": float(np.mean(losses[:n])) if losses else None,
           "loss_last": float(np.mean(losses[-n:])) if losses else None}
    res["loss_went_down"] = bool(losses) and res["loss_last"] < res["loss_first"]
    print(f"[gpu_check] la: loss {res['loss_first']} -> {res['loss_last']}", flush=True)
    return res


# --------------------------------------------------------------------------- report
def render_table(data: dict) -> str:
    """Markdown tables of the check's results."""
    out = []
    m = data.get("methods")
    if m and m.get("methods"):
        rows = [[k, f"{v['its_per_s']:.2f}", "n/a" if v["peak_mib"] is None else f"{v['peak_mib']:.0f}",
                 "yes" if v["amp"] else "no"] for k, v in m["methods"].items()]
        out.append(f"### Training at the full preset (patch {'x'.join(map(str, m['patch_zyx']))}, batch "
                   f"{m['batch'][0]}+{m['batch'][1]}, base {m['base_channels']})\n\n"
                   + common.markdown_table(["method", "iterations/s", "peak GPU MiB", "AMP"], rows)
                   + (f"\n\nBARL/CPS time per iteration: {m['barl/cps_time']:.2f}" if "barl/cps_time" in m else ""))
    p = data.get("predict")
    if p and "seconds" in p:
        out.append(common.markdown_table(
            ["prediction", "seconds", "peak GPU MiB"],
            [[f"{'x'.join(map(str, p['size_zyx']))}, window {'x'.join(map(str, p['window_zyx']))}, base "
              f"{p['base_channels']}, overlap {p['overlap']}, batch {p['sw_batch']}", f"{p['seconds']:.1f}",
              "n/a" if p["peak_mib"] is None else f"{p['peak_mib']:.0f}"]]))
    r = data.get("release")
    if r:
        def fmt(v):
            return "n/a" if v is None else f"{v:.0f}"
        out.append(common.markdown_table(
            ["GPU memory release", "free MiB", "job status"],
            [["before", fmt(r.get("baseline_free_mib")), ""],
             ["after a training child ended", fmt(r.get("after_done_free_mib")), r.get("done_status", "?")],
             ["after a training child was cancelled", fmt(r.get("after_cancel_free_mib")), r.get("cancel_status", "?")],
             ["back to baseline", {True: "yes", False: "NO", None: "n/a (CPU)"}[r.get("returned")], ""]]))
    o = data.get("oom")
    if o:
        out.append(common.markdown_table(
            ["out of memory", "result"],
            [["kind", "simulated (CPU)" if o.get("simulated") else f"real CUDA OOM (memory fraction "
                                                                    f"{o.get('memory_fraction')})"],
             ["training", f"{o.get('train')}; patch {o.get('patch_before')} -> {o.get('patch_after', '?')}, "
                          f"batch {o.get('batch_before')} -> {o.get('batch_after', '?')}"],
             ["prediction (batched windows)", o.get("predict", "n/a")]]))
    la = data.get("la")
    if la:
        if "skipped" in la:
            out.append(f"Left Atrium run: skipped ({la['skipped']}).")
        else:
            out.append(common.markdown_table(
                ["Left Atrium run", "value"],
                [["cases (labelled)", f"{la['cases']} ({la['labelled']})"], ["iterations", str(la["iterations"])],
                 ["loss, first / last tenth", f"{la['loss_first']:.3f} / {la['loss_last']:.3f}"],
                 ["loss went down", "yes" if la["loss_went_down"] else "NO"], ["seconds", f"{la['seconds']:.0f}"]]))
    return "\n\n".join(out) if out else "_No results._"


# --------------------------------------------------------------------------- main
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python benchmarks/gpu_check.py",
                                description="GPU check: full-preset training speed with AMP, 512^3 prediction, "
                                "memory release, real out-of-memory back-off, a short Left Atrium run.")
    p.add_argument("--parts", default=",".join(PARTS), help=f"subset of {','.join(PARTS)}")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--tiny", action="store_true", help="tiny sizes (a CPU test of the whole check)")
    p.add_argument("--warmup", type=int, default=None, help="dropped iterations per method (default 3)")
    p.add_argument("--iterations", type=int, default=None, help="timed iterations per method (default 10)")
    p.add_argument("--predict-size", type=int, nargs=3, default=None, help="prediction volume (default 512^3)")
    p.add_argument("--sw-batch", type=int, default=4, help="windows per forward pass of the prediction")
    p.add_argument("--job-iterations", type=int, default=None, help="iterations of the release check's job")
    p.add_argument("--job-timeout", type=float, default=240.0, help="seconds a release-check job may take")
    p.add_argument("--oom-fraction", type=float, default=0.02,
                   help="share of the GPU this process may use in the OOM check (0.02 of 140 GiB ~ 2.8 GiB)")
    p.add_argument("--oom-predict-size", type=int, nargs=3, default=None, help="OOM check prediction volume")
    p.add_argument("--oom-sw-batch", type=int, default=16, help="OOM check: windows per batch before the retry")
    p.add_argument("--la-root", default=None, help="Left Atrium (UA-MT h5) root; the part is skipped without it")
    p.add_argument("--la-cases", type=int, default=None, help="training cases used (default 20; first fifth labelled)")
    p.add_argument("--la-iterations", type=int, default=None, help="BARL iterations on LA (default 300)")
    common.add_device_arguments(p, default="cuda")
    p.add_argument("--out", type=Path, default=common.RESULTS_DIR / "gpu_check.json", help="results JSON")
    p.add_argument("--work-dir", type=Path, default=None, help="scratch folder (default: a temporary one)")
    args = p.parse_args(argv)
    tiny = args.tiny
    args.warmup = args.warmup if args.warmup is not None else (1 if tiny else 3)
    args.iterations = args.iterations or (2 if tiny else 10)
    args.predict_size = tuple(args.predict_size or ((32, 32, 32) if tiny else (512, 512, 512)))
    args.job_iterations = args.job_iterations or (2 if tiny else 20)
    args.oom_predict_size = tuple(args.oom_predict_size or ((32, 32, 32) if tiny else (192, 192, 192)))
    args.la_cases = args.la_cases or (3 if tiny else 20)
    args.la_iterations = args.la_iterations or (4 if tiny else 300)
    common.parse_parts_and_methods(p, args, PARTS, METHODS)
    return args


def run(args: argparse.Namespace) -> dict:
    import torch

    if _is_cuda(args.device) and not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device here; run with --device cpu --tiny to check the script itself")
    common.set_threads(args.threads)
    config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()
              if k not in ("out", "work_dir")}
    store = common.ResultsStore.open(args.out, "gpu_check", resume=False, config=config)
    t0 = time.perf_counter()
    with common.temp_work_dir("barl_gpu_check_", args.work_dir) as tmp:
        work = Path(tmp)
        steps = {"methods": lambda: check_methods(args, work), "predict": lambda: check_predict(args),
                 "release": lambda: check_release(args, work), "oom": lambda: check_oom(args, work),
                 "la": lambda: check_la(args, work)}
        for part in PARTS:
            if part in args.parts:
                store.set(part, steps[part]())
    store.save(finished=True)
    print()
    print(render_table(store.data))
    print(f"\n[gpu_check] results in {args.out}; took {time.perf_counter() - t0:.0f} s")
    return store.data


def main(argv: Sequence[str] | None = None) -> int:
    """Run the checks asked for; 0 once their results are written."""
    return 0 if run(parse_args(argv)) is not None else 1


if __name__ == "__main__":
    sys.exit(main())
