"""The headless demo loop: it runs, reveals suggested slices, and its model beats chance."""

from __future__ import annotations

import io

import numpy as np
import pytest

from barl_core.cli.main import main as cli_main
from barl_core.demo import DemoConfig, format_table, run_demo, sparkline
from barl_core.evaluation.metrics import dice
from barl_core.io.volume import read_volume


def _chance_dice(truth: np.ndarray, n_classes: int, rng: np.random.Generator) -> float:
    """Mean foreground Dice of uniform random labels (all-background scores 0)."""
    guess = rng.integers(0, n_classes, truth.shape)
    return float(np.mean([dice(guess == k, truth == k) for k in range(1, n_classes)]))


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    cfg = DemoConfig(
        rounds=2, iterations=80, finetune_iterations=20, slices_per_round=2, n_train=3, n_labelled=2,
        initial_slices=2, n_test=1, shape=(48, 64, 64), patch_size=(16, 32, 32), base_channels=8,
        device="cpu", num_threads=1,
    )
    stream = io.StringIO()
    result = run_demo(cfg, out, stream=stream)
    return result, stream.getvalue(), out


def test_demo_runs_two_rounds_and_prints_a_dice_table(demo):
    result, text, out = demo
    assert [r.round for r in result.rounds] == [0, 1]
    assert "Dice on held-out phantom cases after each round" in text
    table = text.split("after each round:")[1]
    header = table.strip().splitlines()[0].split()
    assert header[:3] == ["round", "slices", "iters"] and "mean" in header
    for name in ("bone", "tooth", "lesion"):
        assert name in header
    assert "suggested next" in text and "focused score" in text
    # the suggested slices were unannotated, and their true labels were revealed
    first, second = result.rounds
    assert len(first.suggestions) == 2
    assert second.annotated_slices == first.annotated_slices + 2
    for name, z, score in first.suggestions:
        labels = read_volume(out / "train" / "labelsTr" / f"{name}.nii.gz").array
        truth = read_volume(out / "train" / "groundtruth" / f"{name}.nii.gz").array
        np.testing.assert_array_equal(labels[z], truth[z])
        assert score >= 0.0
    assert second.iterations == 20 and result.rounds[1].model_path.exists()


def test_random_pick_column_reveals_as_many_random_slices_from_the_same_start(demo):
    """The baseline starts from round 0's model and slices, reveals as many unannotated slices
    as were suggested (into its own label maps, not the suggestions'), and is scored the same."""
    result, text, out = demo
    first, second = result.rounds
    assert first.random_dice == first.mean_dice and first.gain == 0.0  # one model at round 0
    assert second.random_dice is not None and second.gain == pytest.approx(second.mean_dice - second.random_dice)
    assert len(first.random_picks) == len(first.suggestions) == 2
    header = text.split("after each round:")[1].strip().splitlines()[0]
    assert "random pick" in header and "gain" in header
    start = {}
    for path in sorted((out / "train" / "imagesTr").glob("*.nii.gz")):
        name = path.name.split(".")[0]
        rand = out / "random_pick" / "labelsTr" / path.name
        truth = read_volume(out / "train" / "groundtruth" / path.name).array
        lab = read_volume(rand).array if rand.exists() else np.full(truth.shape, 255, np.uint8)
        start[name] = lab
    n_random = sum(int((lab != 255).any(axis=(1, 2)).sum()) for lab in start.values())
    assert n_random == second.annotated_slices  # as many slices as the suggestions' arm
    for name, z in first.random_picks:
        truth = read_volume(out / "train" / "groundtruth" / f"{name}.nii.gz").array
        np.testing.assert_array_equal(start[name][z], truth[z])
    assert (out / "random_pick" / "round_1").is_dir()


def test_trained_model_beats_chance_on_held_out_phantom(demo):
    result, _, out = demo
    truth = read_volume(out / "test" / "groundtruth" / "phantom_000.nii.gz").array
    chance = _chance_dice(truth, 4, np.random.default_rng(0))
    best = result.rounds[-1]
    # all-background scores 0 on every class; uniform guessing scores `chance` on average
    assert best.dice["bone"] > max(0.4, 3 * chance), best.dice
    assert best.mean_dice > chance + 0.1, (best.mean_dice, chance)


def test_table_and_sparkline_helpers(demo):
    result, _, _ = demo
    table = format_table(result.rounds, result.class_names)
    assert len(table.splitlines()) == 2 + len(result.rounds)
    line = sparkline([0.0, 0.5, 1.0, 0.25])
    assert len(line) == 4 and line[2] == "█" and line[0] == " "
    assert sparkline([]) == ""


def test_gui_flag_dispatches_to_the_plugin_launcher(monkeypatch, tmp_path):
    import importlib

    calls = []

    class FakeLaunch:
        @staticmethod
        def main(argv):
            calls.append(argv)
            return 0

    real = importlib.import_module

    def fake_import(name, *a, **k):
        if name == "napari_barl.launch":
            return FakeLaunch
        if name == "napari":
            return object()
        return real(name, *a, **k)

    monkeypatch.setattr(importlib, "import_module", fake_import)
    assert cli_main(["demo", "--gui", "--out", str(tmp_path)]) == 0
    assert calls == [["--workspace", str(tmp_path)]]

    def no_napari(name, *a, **k):
        if name == "napari":
            raise ImportError("No module named 'napari'")
        return real(name, *a, **k)

    monkeypatch.setattr(importlib, "import_module", no_napari)
    assert cli_main(["demo", "--gui"]) == 2  # a clear BarlError, not a traceback
