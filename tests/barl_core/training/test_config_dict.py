"""The typed dict round trip of config dataclasses (barl_core.training.config_dict)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pytest

from barl_core.errors import TrainingError
from barl_core.training.config_dict import from_dict, plain


@dataclass
class Inner:
    size: tuple[int, int] = (1, 2)
    name: str = "a"


@dataclass
class Outer:
    rate: float = 0.5
    inner: Inner = field(default_factory=Inner)
    names: tuple[str, ...] | None = None


def test_plain_and_back_is_the_same_dataclass():
    cfg = Outer(rate=np.float32(0.25).item(), inner=Inner((3, 4), "b"), names=("x", "y"))
    data = plain(asdict(cfg))
    assert data == {"rate": 0.25, "inner": {"size": [3, 4], "name": "b"}, "names": ["x", "y"]}
    assert from_dict(Outer, data, "cfg") == cfg
    assert plain({"n": np.int64(3)}) == {"n": 3} and type(plain({"n": np.int64(3)})["n"]) is int


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"rat": 1.0}, "cfg: unknown field"),
        ({"inner": {"name": 3}}, "cfg.inner.name"),
        ({"rate": "fast"}, "cfg.rate"),
        (["not", "an", "object"], "expected an object"),
    ],
)
def test_unknown_keys_and_wrong_types_are_named(data, message):
    with pytest.raises(TrainingError, match=message):
        from_dict(Outer, data, "cfg")
