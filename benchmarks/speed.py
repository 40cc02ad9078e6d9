"""Speed and memory, measured in one run so the ratios compare like with like.

Seven measurements (each can be selected with ``--parts``):

``train``
    Seconds per training iteration of ``supervised``, ``mean-teacher``, ``cps`` and ``barl``
    with the same network, patch and batch (the trainer's ``train_step`` timed in memory;
    ``--warmup`` steps dropped, then the median of ``--iterations``). Reported as ratios
    (BARL's overhead over CPS and over supervised).
``inference``
    Sliding-window prediction of one volume: :func:`barl_core.inference.predict.predict_volume`
    (both branches, class map and disagreement map) against MONAI's
    ``sliding_window_inference`` running the same two-branch network (mean of the branches'
    softmax), with the same window, overlap and Gaussian weighting; median of ``--repeats``.
``options``
    One forward pass of the two-branch network on one window under each inference option
    (``no_grad``, ``inference_mode``, ``channels_last_3d``, bfloat16 autocast, both,
    ``torch.compile``), interleaved rounds, with the largest softmax change against float32:
    what ``barl_core`` keeps is what wins here.
``interactive``
    What the radiologist waits for on the app's phantom: a model trained briefly on it, then
    the current slice's proposal (:func:`~barl_core.inference.predict.predict_slab`), the
    whole case, the whole case in float32, and a prediction job in a child process from start
    to written files (what the plugin runs); label agreement of slab and bfloat16 with the
    float32 whole-volume pass, and foreground Dice against the phantom's truth.
``large``
    A 512^3 CBCT phantom (0.3 mm) predicted at the planned working resolution
    (``--large-spacing``), with its disagreement, in a clean child process: seconds and peak
    memory (as ``memory``).
``memory``
    Peak resident memory of predicting a ``--size``\\ ^3 CBCT phantom with its disagreement
    map, in a fresh child process (so nothing else inflates the peak; the phantom is
    rendered by another child and handed over as a ``.npy``), relative to the volume's own
    float32 size.
``gui``
    The longest event-loop stall of a Qt application (a 10 ms ``QTimer`` heartbeat, which
    also drains the job's progress queue as the plugin does) while
    :class:`barl_core.runtime.jobs.TrainJob` trains in a child process; max and p99 gap in ms, with
    the idle loop's gaps as the reference. Skipped with a message when Qt is unavailable.

Example
-------
``python benchmarks/speed.py`` (a few minutes on 2 CPU cores; ``--size 512`` is the default)
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # executed as ``python benchmarks/speed.py``
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402
from benchmarks.speed_parts.gui import gui_child, measure_gui  # noqa: E402
from benchmarks.speed_parts.interactive import time_interactive  # noqa: E402
from benchmarks.speed_parts.memory import measure_large, measure_memory, memory_child, phantom_child  # noqa: E402
from benchmarks.speed_parts.phantoms import make_model, phantom_cases  # noqa: E402
from benchmarks.speed_parts.render import plot, render_table  # noqa: E402
from benchmarks.speed_parts.timing import time_inference, time_options, time_training  # noqa: E402

__all__ = ["main", "parse_args", "run", "parse_size"]

METHODS = ("supervised", "mean-teacher", "cps", "barl")
PARTS = ("train", "inference", "options", "interactive", "large", "memory", "gui")


def parse_size(text: str) -> tuple[int, int, int]:
    """``512`` (a cube) or ``600x800x800`` (z x y x)."""
    parts = [int(v) for v in text.lower().split("x")]
    if len(parts) == 1:
        parts *= 3
    if len(parts) != 3 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"size {text!r}: give N or ZxYxX")
    return tuple(parts)  # type: ignore[return-value]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python benchmarks/speed.py",
        description="Speed and memory: training iteration time per method, barl_core vs MONAI "
        "sliding window, peak memory of a large prediction, GUI event-loop stalls during training.",
    )
    p.add_argument("--parts", default=",".join(PARTS), help=f"subset of {','.join(PARTS)}")
    p.add_argument("--methods", default=",".join(METHODS), help="methods timed in the train part")
    common.add_model_arguments(p, patch_help="training patch (default 24 32 24, as label_efficiency)",
                               base_help="network width (default 8)", batches=True)
    p.add_argument("--warmup", type=int, default=None, help="iterations dropped (default 3)")
    p.add_argument("--iterations", type=int, default=None, help="timed iterations per method (default 20)")
    p.add_argument("--window", type=int, nargs=3, metavar=("Z", "Y", "X"), default=None,
                   help="inference window for the inference and memory parts (default 64 64 64)")
    p.add_argument("--infer-size", type=int, nargs=3, metavar=("Z", "Y", "X"), default=None,
                   help="phantom volume of the inference comparison (default 128 160 160)")
    p.add_argument("--overlap", type=float, default=0.5, help="sliding-window overlap (both implementations)")
    p.add_argument("--sw-batch", type=int, default=1, help="windows per forward pass (both implementations)")
    p.add_argument("--repeats", type=int, default=None, help="timed inference repeats (default 3)")
    p.add_argument("--sizes", type=lambda t: [parse_size(v) for v in t.split(",") if v.strip()], default=None,
                   help="memory part: phantom sizes, N (a cube) or ZxYxX, comma-separated (default 512)")
    p.add_argument("--memory-overlap", type=float, default=0.0,
                   help="overlap of the memory part (default 0: memory does not depend on it, time does)")
    p.add_argument("--gui-iterations", type=int, default=None, help="training iterations during the GUI part (default 40)")
    p.add_argument("--option-repeats", type=int, default=None, help="options part: timed rounds (default 5)")
    p.add_argument("--no-compile", dest="compile", action="store_false",
                   help="options part: leave torch.compile out (its first call compiles for minutes)")
    p.add_argument("--app-size", type=int, nargs=3, metavar=("Z", "Y", "X"), default=None,
                   help="interactive part: the app's phantom (default 64 96 96)")
    p.add_argument("--app-patch", type=int, nargs=3, metavar=("Z", "Y", "X"), default=None,
                   help="interactive part: training patch = window (default 32 64 64, the quick preset's)")
    p.add_argument("--app-iterations", type=int, default=None, help="interactive part: BARL training iterations (default 40)")
    p.add_argument("--large-size", type=parse_size, default=None, help="large part: phantom size (default 512)")
    p.add_argument("--large-spacing", type=float, default=None,
                   help="large part: planned working spacing in mm of the 0.3 mm phantom (default 0.6)")
    common.add_device_arguments(p)
    common.add_output_arguments(p, "speed")
    # hidden: the child processes of the memory and GUI parts
    for hidden in ("--_memory-child", "--_phantom-child", "--_gui-child"):
        p.add_argument(hidden, action="store_true", help=argparse.SUPPRESS)
    for hidden in ("--_model", "--_npy", "--_json", "--_config", "--_images", "--_labels", "--_out", "--_spacing"):
        p.add_argument(hidden, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    smoke = args.smoke
    args.patch = tuple(args.patch or ((16, 16, 16) if smoke else (24, 32, 24)))
    args.base_channels = args.base_channels or (4 if smoke else 8)
    args.warmup = args.warmup if args.warmup is not None else (1 if smoke else 3)
    args.iterations = args.iterations or (2 if smoke else 20)
    args.window = tuple(args.window or ((16, 16, 16) if smoke else (64, 64, 64)))
    args.infer_size = tuple(args.infer_size or ((24, 32, 32) if smoke else (128, 160, 160)))
    args.repeats = args.repeats or (1 if smoke else 3)
    args.sizes = args.sizes or [(32, 32, 32) if smoke else (512, 512, 512)]
    args.gui_iterations = args.gui_iterations or (3 if smoke else 40)
    args.option_repeats = args.option_repeats or (1 if smoke else 5)
    args.compile = args.compile and not smoke
    args.app_size = tuple(args.app_size or ((16, 24, 24) if smoke else (64, 96, 96)))
    args.app_patch = tuple(args.app_patch or ((16, 16, 16) if smoke else (32, 64, 64)))
    args.app_iterations = args.app_iterations or (1 if smoke else 40)
    args.large_size = tuple(args.large_size or ((32, 32, 32) if smoke else (512, 512, 512)))
    args.large_spacing = args.large_spacing or 0.6
    if smoke:
        args.batch_labeled, args.batch_unlabeled = 1, 1
    common.parse_parts_and_methods(p, args, PARTS, METHODS)
    return args


def run(args: argparse.Namespace) -> dict:
    common.set_threads(args.threads)
    config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()
              if not k.startswith("_") and k not in ("out", "plot", "work_dir")}
    # a run of some parts keeps the others' results (each part records its own settings)
    keep = set(args.parts) != set(PARTS)
    store = common.ResultsStore.open(args.out, "speed", resume=keep, config=config)
    for part in PARTS:
        if part in args.parts:
            store.data.pop(part, None)
    t_start = time.perf_counter()
    with common.temp_work_dir("barl_speed_", args.work_dir) as tmp:
        work = Path(tmp)
        train_shape = tuple(max(int(p) + 8, 32) for p in args.patch)
        cases, labels = phantom_cases(4, train_shape)
        if "train" in args.parts:
            store.set("train", time_training(args, cases, labels, work))
        model_path = None
        if {"inference", "options", "large", "memory"} & set(args.parts):
            model_path = make_model(args, cases, labels, work, args.window)
        if "inference" in args.parts:
            from barl_core.data.phantom import make_phantom

            vol, _ = make_phantom(shape=args.infer_size, seed=7)
            vol.metadata = {}
            store.set("inference", time_inference(args, model_path, vol))
        if "options" in args.parts:
            store.set("options", time_options(args, model_path))
        if "interactive" in args.parts:
            store.set("interactive", time_interactive(args, work))
        if "large" in args.parts:
            store.set("large", measure_large(args, model_path, work))
        if "memory" in args.parts:
            store.set("memory", measure_memory(args, model_path, work))
        if "gui" in args.parts:
            store.set("gui", measure_gui(args, cases, labels, work))
    store.save(finished=True)
    print()
    print(render_table(store.data))
    print(f"\n[speed] results in {args.out}; took {time.perf_counter() - t_start:.0f} s")
    if args.plot and "train" in store.data:
        plot(store.data, args.plot)
        print(f"[speed] plot: {args.plot}")
    return store.data


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args._memory_child:
        return memory_child(args)
    if args._phantom_child:
        return phantom_child(args)
    if args._gui_child:
        return gui_child(args)
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
