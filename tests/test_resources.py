"""The shipped example configs must stay equal to the code's presets."""

import json
from pathlib import Path

import pytest

from barl_core.training.config import TrainConfig, preset

CONFIGS = Path(__file__).resolve().parents[1] / "resources" / "configs"


@pytest.mark.parametrize("name", ["quick", "full"])
def test_config_file_matches_preset(name):
    data = json.loads((CONFIGS / f"{name}.json").read_text())
    assert data == preset(name).to_dict()
    assert TrainConfig.from_dict(data).to_dict() == data
