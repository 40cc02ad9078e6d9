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
from pathlib import Path

if __package__ in (None, ""):  # executed as ``python benchmarks/gpu_check.py``
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402
from benchmarks.gpu_check_parts.device import is_cuda  # noqa: E402
from benchmarks.gpu_check_parts.la import check_la  # noqa: E402
from benchmarks.gpu_check_parts.oom import check_oom  # noqa: E402
from benchmarks.gpu_check_parts.release import check_release  # noqa: E402
from benchmarks.gpu_check_parts.render import render_table  # noqa: E402
from benchmarks.gpu_check_parts.throughput import check_methods, check_predict  # noqa: E402

__all__ = ["main", "parse_args", "check_methods", "check_predict", "check_release", "check_oom", "check_la",
           "render_table", "PARTS"]

METHODS = ("supervised", "mean-teacher", "cps", "barl")
PARTS = ("methods", "predict", "release", "oom", "la")


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

    if is_cuda(args.device) and not torch.cuda.is_available():
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
