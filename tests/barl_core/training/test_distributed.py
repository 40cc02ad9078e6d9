"""Multi-process training (DDP under torchrun) on CPU with the gloo backend.

The two-process tests run the real launcher (``python -m torch.distributed.run``) on the
``barl`` command, as a user would, with ``BARL_DEBUG_DUMP_WEIGHTS`` asking every rank to
save its final weights and a digest of the patches it drew.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.nn.parallel import DistributedDataParallel

from barl_core.data.dataset import load_dataset
from barl_core.errors import TrainingError
from barl_core.networks.unet import BiBranchNet
from barl_core.training import distributed
from barl_core.training.checkpoint import build_model, load_checkpoint
from barl_core.training.prepare import dataset_class_names, prepare_training_data
from barl_core.training.trainer import DEBUG_DUMP_ENV, Trainer

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def dataset(tiny_phantom_dataset):
    return tiny_phantom_dataset("ddp")


def _states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("method", ["barl"])  # the other methods: the one-rank test below
def test_two_ranks_end_identical_and_rank0_writes_a_normal_model(
    dataset, tmp_path, method, tiny_config
):
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(json.dumps(tiny_config(method=method, checkpoint_every=2).to_dict()))
    dump, run = tmp_path / "dump", tmp_path / "run"
    env = {
        **os.environ,
        DEBUG_DUMP_ENV: str(dump),
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(REPO_ROOT),
    }
    for name in distributed.TORCHRUN_VARIABLES:
        env.pop(name, None)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "barl_core",
            "train",
            "--images",
            str(dataset),
            "--out",
            str(run),
            "--config",
            str(cfg_path),
            "--device",
            "cpu",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    # only rank 0 printed the summary and wrote the run folder
    assert proc.stdout.count("trained 4 iterations") == 1
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 4
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["ckpt_000002.pt"]
    r0, r1 = (torch.load(dump / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert (r0["rank"], r1["rank"], r0["world_size"]) == (0, 1, 2)
    assert r0["iteration"] == r1["iteration"] == 4
    # each rank drew its own patches ...
    assert r0["batch_sums"] != r1["batch_sums"] and len(r0["batch_sums"]) == 4
    # ... yet both started and ended with the same weights (gradients were averaged)
    assert _states_equal(r0["initial_state"], r1["initial_state"])
    assert _states_equal(r0["model_state"], r1["model_state"])
    # training progressed
    moved = max(
        (r0["model_state"][k].float() - r0["initial_state"][k].float()).abs().max().item()
        for k in r0["model_state"]
    )
    assert moved > 1e-4
    # the model file is an ordinary, unwrapped checkpoint
    ckpt = load_checkpoint(run / "model.pt")
    assert ckpt["iteration"] == 4 and ckpt["method"] == method
    assert not any(k.startswith("module.") or ".module." in k for k in ckpt["model_state"])
    assert _states_equal(ckpt["model_state"], r0["model_state"])
    model = build_model(ckpt)
    assert isinstance(model, BiBranchNet)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def one_rank_group(monkeypatch):
    """This process as rank 0 of a one-process torchrun world (gloo)."""
    for name, value in (
        ("RANK", "0"),
        ("WORLD_SIZE", "1"),
        ("LOCAL_RANK", "0"),
        ("MASTER_ADDR", "127.0.0.1"),
        ("MASTER_PORT", str(_free_port())),
    ):
        monkeypatch.setenv(name, value)
    yield
    assert not torch.distributed.is_initialized(), "the trainer must leave the process group"


@pytest.mark.parametrize("method", ["supervised", "mean-teacher", "cps", "barl"])
def test_every_method_wraps_only_its_trainable_networks(
    dataset, tmp_path, one_rank_group, method, tiny_config
):
    cfg = tiny_config(method=method, iterations=2).with_classes(dataset_class_names(dataset))
    volumes, stats, names = prepare_training_data(load_dataset(dataset), cfg)
    trainer = Trainer(cfg.with_classes(names), volumes, tmp_path / "run")
    try:
        trainer.initialize()
        assert trainer.dist.enabled and trainer.dist.backend == "gloo" and trainer.dist.is_main
        result = trainer.run_training()
        runners = trainer.method._runners
        expected = {"supervised": {"net"}, "mean-teacher": {"student"}}.get(method, {"a", "b"})
        assert set(runners) == expected
        assert all(isinstance(m, DistributedDataParallel) for m in runners.values())
        if method == "mean-teacher":  # the teacher is neither wrapped nor optimised
            teacher = trainer.method.teacher
            assert all(r.module is not teacher for r in runners.values())
            assert not any(p.requires_grad for p in teacher.parameters())
    finally:
        trainer.close()
    ckpt = load_checkpoint(result.model_path)
    assert not any(k.startswith("module.") for k in ckpt["model_state"])
    build_model(ckpt)


def test_torchrun_environment_detection_and_refusals(monkeypatch):
    env = {
        "RANK": "0",
        "WORLD_SIZE": "2",
        "LOCAL_RANK": "0",
        "MASTER_ADDR": "h",
        "MASTER_PORT": "1",
    }
    assert distributed.launched_by_torchrun(env)
    assert not distributed.launched_by_torchrun({**env, "MASTER_PORT": ""})
    assert distributed.rank_seed(7, 0) == 7 and distributed.rank_seed(
        7, 1
    ) != distributed.rank_seed(7, 2)
    ctx, dev = distributed.setup(torch.device("cpu"))  # not under torchrun: nothing happens
    assert not ctx.enabled and dev.type == "cpu" and distributed.is_main_process()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(TrainingError, match="MPS"):
        distributed.setup(torch.device("mps"))
    with pytest.raises(TrainingError, match="LOCAL_RANK"):
        distributed.setup(torch.device("cuda", 1), explicit_index=True)
