"""Checkpoints: atomic writes, code-free loading, format and compatibility checks."""

from __future__ import annotations

import pickle
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from barl_core.errors import CheckpointError
from barl_core.networks.unet import BiBranchNet, NetworkConfig, UNet3D
from barl_core.training import checkpoint as ck

NET = NetworkConfig(num_classes=3, base_channels=4, depth=2, proj_dim=4)
NAMES = ["background", "bone", "tooth"]


def _ckpt(model=None, n_branches=2):
    model = model or BiBranchNet(NET)
    return {
        "method": "barl" if n_branches == 2 else "supervised",
        "n_branches": n_branches,
        "model_state": model.state_dict(),
        "network": asdict(NET),
        "class_names": list(NAMES),
        "ignore_index": 255,
        "normalization": None,
        "patch_size": [8, 8, 8],
        "iteration": 3,
        "total_iterations": 10,
        "rng_state": {"torch": torch.get_rng_state(), "python": (3, tuple(range(5)), None)},
    }


def test_round_trip_and_build_model(tmp_path):
    model = BiBranchNet(NET)
    path = ck.save_checkpoint(tmp_path / "m.pt", _ckpt(model))
    data = ck.load_checkpoint(path)
    assert data["format"] == ck.FORMAT and data["format_version"] == ck.FORMAT_VERSION
    rebuilt = ck.build_model(data)
    assert isinstance(rebuilt, BiBranchNet)
    for (k, a), b in zip(model.state_dict().items(), rebuilt.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    single = ck.load_checkpoint(ck.save_checkpoint(tmp_path / "s.pt", _ckpt(UNet3D(NET), 1)))
    assert isinstance(ck.build_model(single), UNet3D)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt", "s.pt"]  # no temporaries left


def test_write_is_atomic(tmp_path, monkeypatch):
    path = ck.save_checkpoint(tmp_path / "model.pt", _ckpt())
    before = path.read_bytes()

    def broken_save(obj, f, *a, **k):
        Path(f).write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(CheckpointError, match="disk full"):
        ck.save_checkpoint(path, _ckpt())
    assert path.read_bytes() == before  # the old model is intact
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temporary left


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_pickled_code_is_refused_and_never_runs(tmp_path, writer):
    marker = tmp_path / "pwned"
    data = {**_ckpt(), "format": ck.FORMAT, "format_version": 1, "payload": _Evil(marker)}
    path = tmp_path / "evil.pt"
    if writer == "torch":
        torch.save(data, path)
    else:
        with open(path, "wb") as fh:
            pickle.dump(data, fh)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="may execute code"):
        ck.load_checkpoint(path)
    assert not marker.exists()


def test_format_and_version_checks(tmp_path):
    newer = {**_ckpt(), "format": ck.FORMAT, "format_version": 99}
    torch.save(newer, tmp_path / "newer.pt")
    with pytest.raises(CheckpointError, match="version 99"):
        ck.load_checkpoint(tmp_path / "newer.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a napari-barl checkpoint"):
        ck.load_checkpoint(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"\x00not a torch file")
    with pytest.raises(CheckpointError, match="not a readable"):
        ck.load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="no such model file"):
        ck.load_checkpoint(tmp_path / "missing.pt")


def test_architecture_and_class_mismatch(tmp_path):
    data = ck.load_checkpoint(ck.save_checkpoint(tmp_path / "m.pt", _ckpt()))
    ck.check_compatible(data, NET, NAMES)  # the same: fine
    other = NetworkConfig(num_classes=3, base_channels=8, depth=2, proj_dim=4)
    with pytest.raises(CheckpointError, match="base_channels"):
        ck.check_compatible(data, other, None)
    with pytest.raises(CheckpointError, match="classes"):
        ck.check_compatible(data, None, ["background", "tooth", "bone"])
    wrong = {**data, "network": asdict(other)}
    with pytest.raises(CheckpointError, match="do not fit"):
        ck.build_model(wrong)
