"""TrainConfig: presets, validation messages and the JSON round trip."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from barl_core.errors import TrainingError
from barl_core.networks.unet import NetworkConfig
from barl_core.training.config import LOSS_TERMS, TrainConfig, parse_disable, preset


def test_json_round_trip_restores_nested_dataclasses_and_tuples():
    cfg = preset(
        "quick", method="cps", iterations=7, target_spacing=(1.0, 0.5, 0.5), class_names=None
    ).with_classes(["background", "tooth", "canal"])
    cfg = replace(cfg, disable=(), seed=3)
    text = json.dumps(cfg.to_dict())
    back = TrainConfig.from_dict(json.loads(text))
    assert back == cfg
    assert isinstance(back.patch_size, tuple) and isinstance(back.target_spacing, tuple)
    assert isinstance(back.network, NetworkConfig) and back.network.num_classes == 3
    assert back.class_names == ("background", "tooth", "canal")


def test_presets_differ_in_size():
    quick, full = preset("quick"), preset("full")
    assert quick.network.base_channels == 8 and full.network.base_channels == 16
    assert max(quick.patch_size) <= 64 and full.patch_size == (96, 96, 96)
    assert full.iterations > quick.iterations
    # one method at two scales: everything but compute is the same
    compute = {"iterations", "patch_size", "checkpoint_every", "network"}
    q, f = quick.to_dict(), full.to_dict()
    assert {k: v for k, v in q.items() if k not in compute} == {k: v for k, v in f.items() if k not in compute}
    assert {k: v for k, v in q["network"].items() if k != "base_channels"} == {
        k: v for k, v in f["network"].items() if k != "base_channels"}


def test_preset_overrides_and_network_changes():
    cfg = preset("quick", iterations=5, network={"base_channels": 4}, disable="dpr, region")
    assert cfg.iterations == 5 and cfg.network.base_channels == 4
    assert cfg.disable == ("dpr", "region")


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"method": "fixmatch"}, "unknown training method"),
        ({"disable": ("dpr", "bogus")}, "cannot disable 'bogus'"),
        ({"patch_size": (20, 64, 64)}, "not divisible by 8"),
        ({"iterations": 0}, "iterations"),
        ({"device": "tpu"}, "unknown device"),
        ({"class_names": ("a", "b", "c")}, "3 class names"),
        ({"method": "cps", "disable": ("dpr",)}, "BARL's loss terms only"),
        ({"batch_labeled": 0}, "batch_labeled"),
        ({"optimizer": "adam"}, "unknown optimizer 'adam'"),
        ({"foreground_fraction": 1.5}, "foreground_fraction"),
    ],
)
def test_validation_errors_are_clear(changes, message):
    with pytest.raises(TrainingError, match=message):
        replace(preset("quick"), **changes).validate()


def test_from_dict_rejects_unknown_fields():
    data = preset("quick").to_dict()
    data["network"]["widht"] = 3
    with pytest.raises(TrainingError, match="widht"):
        TrainConfig.from_dict(data)


def test_unknown_preset_and_parse_disable():
    with pytest.raises(TrainingError, match="unknown preset"):
        preset("huge")
    assert parse_disable("PCBC,,instance") == ("pcbc", "instance")
    assert set(LOSS_TERMS) == {"dpr", "pcbc", "region", "instance"}


def test_optimizer_defaults_to_sgd_and_adamw_round_trips():
    assert TrainConfig().optimizer == "sgd"  # the design note's default
    assert preset("full").optimizer == "adamw"  # the presets share the method settings
    assert (preset("quick").optimizer, preset("quick").lr) == ("adamw", 3e-3)  # short CPU runs
    cfg = preset("full", optimizer="adamw", lr=2e-3, foreground_fraction=0.5)
    back = TrainConfig.from_dict(cfg.to_dict())
    assert back == cfg and back.optimizer == "adamw" and back.foreground_fraction == 0.5
    old = cfg.to_dict()
    del old["optimizer"], old["foreground_fraction"]  # a config written before these fields
    assert TrainConfig.from_dict(old).optimizer == "sgd"
