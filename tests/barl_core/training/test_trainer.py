"""The training loop on a tiny phantom: learning, methods, ablations, resume, fine-tune, cancel."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from barl_core.cli.main import main as cli_main
from barl_core.data.dataset import load_dataset
from barl_core.data.phantom import PhantomConfig, make_phantom_dataset
from barl_core.errors import CheckpointError, EmptyDatasetError, TrainingError
from barl_core.losses.config import LossConfig
from barl_core.networks.unet import BiBranchNet, UNet3D
from barl_core.runtime.cancel import CancelToken
from barl_core.runtime.device import resolve_device
from barl_core.training.checkpoint import build_model, load_checkpoint
from barl_core.training.prepare import dataset_class_names, prepare_training_data
from barl_core.training.run import train
from barl_core.training.trainer import Trainer


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("phantom")
    return make_phantom_dataset(
        root / "ds",
        3,
        config=PhantomConfig(shape=(32, 32, 32)),
        labelled_cases=2,
        slices_per_case=3,
    )


@pytest.fixture(scope="module")
def cfg_of(tiny_config):
    """Factory ``(method, iterations, **overrides)``: the shared tiny config with batches of 2."""

    def make(method="barl", iterations=2, **kw):
        return tiny_config(method=method, iterations=iterations, batch_labeled=2, batch_unlabeled=2, **kw)

    return make


def test_barl_loss_decreases(dataset, tmp_path, cfg_of):
    cfg = cfg_of(iterations=16, lr=0.02, losses=LossConfig(rampup_fraction=0.0))
    result = train(cfg, dataset, None, tmp_path / "run")
    losses = [row["loss"] for row in result.history]
    assert len(losses) == 16 and all(np.isfinite(losses))
    assert np.mean(losses[-4:]) < np.mean(losses[:4])
    assert result.status == "completed" and result.model_path == tmp_path / "run" / "model.pt"
    ckpt = load_checkpoint(result.model_path)
    assert ckpt["class_names"] == ["background", "bone", "tooth", "lesion"]  # from dataset.json
    assert ckpt["iteration"] == 16 and ckpt["n_branches"] == 2
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 16 and (tmp_path / "run" / "config.json").is_file()


@pytest.mark.parametrize(
    "method, terms, branches",
    [
        ("supervised", {"sup"}, 1),
        ("mean-teacher", {"sup", "consistency"}, 2),
        ("cps", {"sup", "cps", "disagree"}, 2),
    ],
)
def test_each_method_runs(dataset, tmp_path, method, terms, branches, cfg_of):
    seen = []
    result = train(cfg_of(method), dataset, None, tmp_path / method, callback=seen.append)
    assert [p.iteration for p in seen] == [1, 2] and seen[-1].total == 2
    assert set(seen[-1].losses) == terms | {"loss"}
    assert all(np.isfinite(v) for v in seen[-1].losses.values()) and seen[-1].lr > 0
    model = build_model(load_checkpoint(result.model_path))
    assert isinstance(model, BiBranchNet if branches == 2 else UNet3D)


def test_disable_removes_terms(dataset, tmp_path, cfg_of):
    seen = []
    train(
        cfg_of(iterations=1, disable="dpr,region"),
        dataset,
        None,
        tmp_path / "r",
        callback=seen.append,
    )
    assert set(seen[0].losses) == {"loss", "sup", "pcbc", "instance", "disagree"}


def test_seeded_runs_are_reproducible(dataset, tmp_path, cfg_of):
    runs = [
        train(cfg_of(seed=s), dataset, None, tmp_path / f"r{i}").history
        for i, s in enumerate((1, 1, 2))
    ]
    assert [r["loss"] for r in runs[0]] == [r["loss"] for r in runs[1]]
    assert [r["loss"] for r in runs[0]] != [r["loss"] for r in runs[2]]


def test_resume_continues_count_optimizer_and_rng(dataset, tmp_path, cfg_of):
    cfg = replace(cfg_of("cps", iterations=4), checkpoint_every=2)
    full = train(cfg, dataset, None, tmp_path / "full")
    run = tmp_path / "run"
    train(cfg, dataset, None, run)
    ckpt2 = run / "checkpoints" / "ckpt_000002.pt"
    saved = load_checkpoint(ckpt2)
    (run / "model.pt").unlink()
    # resume by hand to look at the restored state before it trains on
    cfg = cfg.with_classes(dataset_class_names(dataset))
    volumes, stats, names = prepare_training_data(load_dataset(dataset), cfg)
    trainer = Trainer(cfg, volumes, tmp_path / "peek")
    trainer.initialize()
    trainer.load_checkpoint(ckpt2)
    assert trainer.iteration == 2
    state = trainer.optimizer.state_dict()["state"]
    assert saved["optimizer_state"]["state"]
    for key, value in saved["optimizer_state"]["state"].items():
        assert state[key].keys() == value.keys()  # momentum (SGD) or Adam moments
        for name, tensor in value.items():
            assert torch.equal(torch.as_tensor(state[key][name]), torch.as_tensor(tensor))
    resumed = train(cfg, dataset, None, run, resume=True)
    assert resumed.iterations_done == 4 and resumed.status == "completed"
    assert [r["iteration"] for r in resumed.history] == [1, 2, 3, 4]
    assert [r["loss"] for r in resumed.history] == pytest.approx(
        [r["loss"] for r in full.history], rel=1e-5
    )


def test_adamw_is_built_trains_and_resumes_with_its_state(dataset, tmp_path, cfg_of):
    cfg = replace(cfg_of("supervised", iterations=4, optimizer="adamw", lr=3e-3), checkpoint_every=2)
    full = train(cfg, dataset, None, tmp_path / "full")
    losses = [r["loss"] for r in full.history]
    assert len(losses) == 4 and all(np.isfinite(losses))
    assert [r["lr"] for r in full.history][0] == pytest.approx(3e-3)  # the poly schedule applies
    saved = load_checkpoint(tmp_path / "full" / "checkpoints" / "ckpt_000002.pt")
    state = saved["optimizer_state"]["state"]
    assert state and all("exp_avg_sq" in v for v in state.values())  # Adam moments, not momentum
    assert saved["optimizer_state"]["param_groups"][0]["weight_decay"] == cfg.weight_decay
    run = tmp_path / "run"
    train(cfg, dataset, None, run)
    (run / "model.pt").unlink()
    resumed = train(cfg, dataset, None, run, resume=True)
    assert [r["loss"] for r in resumed.history] == pytest.approx(losses, rel=1e-5)
    sgd = train(replace(cfg, optimizer="sgd", lr=3e-3, checkpoint_every=0), dataset, None, tmp_path / "sgd")
    assert [r["loss"] for r in sgd.history][1:] != losses[1:]  # a different optimiser steps differently


def test_init_from_starts_from_the_checkpoint_weights(dataset, tmp_path, cfg_of):
    base = train(cfg_of("supervised"), dataset, None, tmp_path / "base")
    weights = load_checkpoint(base.model_path)["model_state"]

    class Spy(Trainer):
        first = None

        def train_step(self, iteration):
            if Spy.first is None:
                Spy.first = {
                    k: v.clone() for k, v in self.method.model_for_checkpoint().state_dict().items()
                }
            return super().train_step(iteration)

    cfg = cfg_of("supervised", iterations=3).with_classes(dataset_class_names(dataset))
    volumes, _, names = prepare_training_data(load_dataset(dataset), cfg)
    trainer = Spy(cfg.with_classes(names), volumes, tmp_path / "ft")
    trainer.initialize()
    trainer.init_from(base.model_path)
    result = trainer.run_training()
    assert result.iterations_done == 3 and result.history[0]["iteration"] == 1
    for k, v in weights.items():
        assert torch.equal(Spy.first[k], v), k
    # a fine-tune starts from trained pseudo-labels: no ramp-up, and a resume keeps it so
    assert trainer.method.warm_start and trainer.method.rampup(1) == 1.0
    assert load_checkpoint(result.model_path)["warm_start"] is True
    cold = Trainer(cfg.with_classes(names), volumes, tmp_path / "cold")
    cold.initialize()
    assert not cold.method.warm_start and cold.method.rampup(1) < 0.1
    # another architecture is refused clearly
    wider = replace(cfg, network=replace(cfg.network, base_channels=8))
    with pytest.raises(CheckpointError, match="base_channels"):
        train(wider, dataset, None, tmp_path / "bad", init_from=base.model_path)


def test_cancel_stops_early_with_a_checkpoint(dataset, tmp_path, cfg_of):
    token = CancelToken()

    def stop_after_two(progress):
        if progress.iteration == 2:
            token.cancel()

    result = train(
        cfg_of("supervised", iterations=50),
        dataset,
        None,
        tmp_path / "r",
        callback=stop_after_two,
        cancel=token,
    )
    assert result.status == "cancelled" and result.iterations_done == 2
    assert load_checkpoint(result.model_path)["iteration"] == 2
    flag = tmp_path / "stop"
    flag.touch()
    assert (
        CancelToken(flag_file=flag).cancelled
        and not CancelToken(flag_file=tmp_path / "no").cancelled
    )


def test_no_annotated_voxel_is_a_clear_error(dataset, cfg_of):
    cases = [
        replace(c, labels=None if c.labels is None else np.full_like(c.labels, 255))
        for c in load_dataset(dataset)
    ]
    with pytest.raises(EmptyDatasetError, match="no annotated voxel"):
        prepare_training_data(cases, cfg_of())


def test_target_spacing_and_devices(dataset, cfg_of):
    cfg = replace(cfg_of(), target_spacing=(0.8, 0.6, 0.6))
    volumes, stats, names = prepare_training_data(load_dataset(dataset), cfg)
    assert volumes[0].image.shape == (16, 16, 16) and stats is None and len(names) == 4
    assert volumes[0].labels is not None and set(np.unique(volumes[0].labels)) <= {0, 1, 2, 3, 255}
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in {"cpu", "cuda", "mps"}
    if not torch.cuda.is_available():
        with pytest.raises(TrainingError, match="no CUDA"):
            resolve_device("cuda")


def test_cli_train(dataset, tmp_path, capsys, cli_train_args):
    args = cli_train_args(dataset, 2, "--out", str(tmp_path / "cli"), "--seed", "3")
    out = tmp_path / "cli"
    assert cli_main(args) == 0
    assert (out / "model.pt").is_file() and "model written" in capsys.readouterr().out
    assert cli_main(args[:-2] + ["--disable", "nope"]) == 2
    assert "cannot disable" in capsys.readouterr().err
