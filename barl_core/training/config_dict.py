"""Typed dict round trip of config dataclasses: plain JSON out, checked dataclasses back in.

A ``config.json`` or a checkpoint's ``"config"`` is user-editable text: reading it back must
refuse unknown keys (a typo must not pass silently) and values of the wrong type with the
field's dotted name, before any training starts. Kept apart from
:mod:`~barl_core.training.config` because it knows nothing of training.
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import fields, is_dataclass
from typing import Any

from barl_core.errors import TrainingError

__all__ = ["plain", "from_dict"]


def plain(obj: Any) -> Any:
    """Return ``obj`` as plain JSON types (tuples become lists, numpy scalars Python numbers)."""
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):  # numpy scalars
        return obj.item()
    return obj


def _tupled(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tupled(v) for v in value)
    return value


def from_dict(cls: type, data: dict[str, Any], where: str) -> Any:
    """Build dataclass ``cls`` from ``data``, nested dataclasses included, every value type-checked.

    Raises
    ------
    TrainingError
        Not an object, an unknown key, or a value of the wrong type (named ``where.field``).
    """
    if not isinstance(data, dict):
        raise TrainingError(f"{where}: expected an object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls) if f.init}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise TrainingError(f"{where}: unknown field(s) {', '.join(unknown)}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        hint = hints.get(name)
        sub = _dataclass_in(hint)
        if sub is not None and isinstance(value, dict):
            kwargs[name] = from_dict(sub, value, f"{where}.{name}")
        elif "tuple" in str(hint) and isinstance(value, list):
            kwargs[name] = _tupled(value)
        else:
            kwargs[name] = value
        if sub is None:
            _check_type(kwargs[name], hint, f"{where}.{name}")
    return cls(**kwargs)


def _check_type(value: Any, hint: Any, where: str) -> None:
    """Refuse a JSON value of the wrong type before it reaches the trainer.

    Why: ``"iterations": "abc"`` ended in a traceback deep in the loop, ``1e999`` (JSON's
    infinity) made training never end, and ``"patch_size": 5`` failed far from its cause.
    """
    if hint is None or hint is Any:
        return
    args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                _check_type(value, option, where)
                return
            except TrainingError as exc:
                errors.append(str(exc))
        raise TrainingError(errors[0] if errors else f"{where}: unexpected value {value!r}")
    if origin is tuple:
        if not isinstance(value, (tuple, list)):
            raise TrainingError(f"{where}: expected a list, got {value!r}")
        item = args[0] if args else Any
        if len(args) > 1 and args[-1] is not Ellipsis and len(value) != len(args):
            raise TrainingError(f"{where}: expected {len(args)} values, got {len(value)}")
        for v in value:
            _check_type(v, item, where)
        return
    if hint is bool:
        if not isinstance(value, bool):
            raise TrainingError(f"{where}: expected true or false, got {value!r}")
    elif hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TrainingError(f"{where}: expected a whole number, got {value!r}")
    elif hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise TrainingError(f"{where}: expected a finite number, got {value!r}")
    elif hint is str and not isinstance(value, str):
        raise TrainingError(f"{where}: expected a string, got {value!r}")


def _dataclass_in(hint: Any) -> type | None:
    if hint is None:
        return None
    if is_dataclass(hint) and isinstance(hint, type):
        return hint
    for arg in typing.get_args(hint):
        if is_dataclass(arg) and isinstance(arg, type):
            return arg
    return None
