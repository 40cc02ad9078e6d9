"""Shared pieces of the benchmark scripts: splits, sparse labels, runs, results files, tables.

Why one package: every benchmark must use the *same* split, the same way of hiding labels and
the same evaluation, otherwise the numbers of two scripts are not comparable. The engine work
itself (training, prediction, metrics) always goes through ``barl_core``'s public API; nothing
here re-implements it.

One module per job; the scripts use them through this namespace (``common.sparsify``):

- :mod:`.paths` -- repository, data and results folders, temporary work folders.
- :mod:`.protocol` -- the fixed split, the labelled order and the sparse (slice) labels.
- :mod:`.cases` -- benchmark cases with full truth; reading and writing MSD-layout folders.
- :mod:`.training` -- the shared training config, training runs and iteration timing.
- :mod:`.evaluation` -- predicting and scoring the test cases.
- :mod:`.machine` -- where and how a run happened.
- :mod:`.results_store` -- the results JSON file, rewritten after every run.
- :mod:`.tables` -- mean ± sd and markdown tables.
- :mod:`.plots` -- plot labels and saving figures.
- :mod:`.cli` -- command-line options every script shares.
"""

from __future__ import annotations

from barl_core.data.labels import IGNORE_INDEX

from .cases import BenchCase, load_msd_cases, materialise
from .cli import (
    add_dataset_arguments,
    add_device_arguments,
    add_model_arguments,
    add_output_arguments,
    optional_path,
    parse_parts_and_methods,
)
from .evaluation import FOREGROUND_METRICS, evaluate_model, summarise_case_metrics
from .machine import machine_info
from .paths import REPO_ROOT, RESULTS_DIR, SHARED_DATA, ensure_parent, temp_work_dir
from .plots import finish_dice_plot, save_figure
from .protocol import (
    SPLIT_SEED,
    Split,
    choose_labelled,
    foreground_slices,
    labelled_order,
    make_split,
    sparsify,
)
from .results_store import ResultsStore, clean_nan, write_results
from .tables import fmt_mean_sd, markdown_table, mean_sd
from .training import (
    BENCH_LR,
    BENCH_OPTIMIZER,
    build_train_config,
    iteration_times,
    robust_iteration_time,
    set_threads,
    train_model,
    train_with_curve,
)

__all__ = [
    "REPO_ROOT",
    "SHARED_DATA",
    "RESULTS_DIR",
    "SPLIT_SEED",
    "IGNORE_INDEX",
    "FOREGROUND_METRICS",
    "BENCH_OPTIMIZER",
    "BENCH_LR",
    "BenchCase",
    "Split",
    "make_split",
    "labelled_order",
    "choose_labelled",
    "foreground_slices",
    "sparsify",
    "load_msd_cases",
    "materialise",
    "build_train_config",
    "train_model",
    "train_with_curve",
    "iteration_times",
    "robust_iteration_time",
    "evaluate_model",
    "summarise_case_metrics",
    "machine_info",
    "ResultsStore",
    "clean_nan",
    "write_results",
    "markdown_table",
    "fmt_mean_sd",
    "mean_sd",
    "set_threads",
    "ensure_parent",
    "temp_work_dir",
    "optional_path",
    "parse_parts_and_methods",
    "finish_dice_plot",
    "save_figure",
    "add_dataset_arguments",
    "add_model_arguments",
    "add_device_arguments",
    "add_output_arguments",
]
