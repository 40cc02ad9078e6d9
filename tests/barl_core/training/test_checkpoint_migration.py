"""Checkpoint format versions: old files are upgraded on load, newer or hopeless ones refused."""

from __future__ import annotations

from dataclasses import asdict

import pytest
import torch

from barl_core.errors import CheckpointError
from barl_core.networks.unet import NetworkConfig, UNet3D
from barl_core.training import checkpoint as ck

NET = NetworkConfig(num_classes=2, base_channels=4, depth=2, proj_dim=4)


def _version0(model: UNet3D) -> dict:
    """What a pre-release (version 0) file held: no format_version, no predict/resume extras."""
    return {
        "format": ck.FORMAT,
        "method": "supervised",
        "n_branches": 1,
        "model_state": model.state_dict(),
        "network": asdict(NET),
        "class_names": ["background", "tooth"],
        "config": {"patch_size": [16, 32, 32], "iterations": 40, "ignore_index": 255},
    }


def test_version_0_is_upgraded_on_load_and_builds(tmp_path):
    model = UNet3D(NET)
    path = tmp_path / "v0.pt"
    torch.save(_version0(model), path)
    data = ck.load_checkpoint(path)
    assert data["format_version"] == ck.FORMAT_VERSION == 1
    assert data["patch_size"] == [16, 32, 32] and data["total_iterations"] == 40
    assert data["ignore_index"] == 255 and data["normalization"] is None
    assert (
        data["target_spacing"] is None and data["optimizer_state"] is None and data["history"] == []
    )
    assert data["norm_config"]["mode"] == "percentile_zscore"
    rebuilt = ck.build_model(data)
    for k, v in model.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[k], v)
    # an upgraded model saves as the current version and loads back unchanged
    again = ck.load_checkpoint(ck.save_checkpoint(tmp_path / "v1.pt", data))
    assert again["format_version"] == 1 and again["patch_size"] == [16, 32, 32]
    assert torch.load(path, weights_only=True).get("format_version") is None  # file untouched


def test_every_version_below_current_has_a_migration():
    assert set(ck.MIGRATIONS) == set(range(ck.FORMAT_VERSION))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"format_version": 2}, "format version 2 is not supported.*upgrade napari-barl"),
        ({"format_version": "1"}, "format version '1' is not supported"),
        ({"format_version": -1}, "format version -1 is not supported"),
        ({"model_state": None}, "lacks model_state.*cannot be upgraded; retrain"),
    ],
)
def test_newer_malformed_or_hopeless_versions_are_refused_clearly(tmp_path, change, message):
    data = _version0(UNet3D(NET))
    for key, value in change.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    torch.save(data, tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match=message):
        ck.load_checkpoint(tmp_path / "m.pt")
