"""The results JSON file of a benchmark: config, split, sessions and runs, rewritten after every run."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .machine import machine_info


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def clean_nan(obj: Any) -> Any:
    """JSON has no NaN: write ``null`` so any reader can parse the file."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: clean_nan(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean_nan(v) for v in obj]
    return obj


def write_results(path: str | os.PathLike, data: Mapping) -> Path:
    """Write a results dict as JSON (NaN as ``null``) through a temporary file and a rename.

    A results file holds hours of CPU: an interrupted rewrite must leave the old file whole.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(clean_nan(data), indent=1, default=_json_default) + "\n")
    os.replace(tmp, path)
    return path


@dataclass
class ResultsStore:
    """A results JSON file rewritten (atomically) after every run, so a partial run leaves a table.

    Layout: ``{"benchmark", "config", "split", "sessions": [machine_info + timing],
    "runs": {key: record}, "summary": {...}}``.
    """

    path: Path
    benchmark: str
    data: dict = field(default_factory=dict)
    _t0: float = field(default_factory=time.perf_counter)

    @classmethod
    def open(
        cls,
        path: str | os.PathLike,
        benchmark: str,
        *,
        resume: bool,
        config: Mapping,
        must_match: Sequence[str] = (),
    ) -> ResultsStore:
        """Start a results file, or continue one with ``resume``.

        ``must_match`` names config keys that must equal the stored ones when resuming
        (runs with another schedule or network must not be mixed into one table).
        """
        p = Path(path)
        data: dict = {}
        if resume and p.is_file():
            data = json.loads(p.read_text())
            if data.get("benchmark") not in (None, benchmark):
                raise ValueError(f"{p} holds results of {data.get('benchmark')!r}, not {benchmark!r}")
            old = data.get("config", {})
            new = clean_nan(json.loads(json.dumps(dict(config), default=_json_default)))
            diff = [k for k in must_match if k in old and old.get(k) != new.get(k)]
            if diff:
                raise SystemExit(
                    f"{p}: cannot resume, the stored runs used other settings for "
                    + ", ".join(f"{k} ({old.get(k)} vs {new.get(k)})" for k in diff)
                    + "; use another --out or drop --resume"
                )
        data.setdefault("benchmark", benchmark)
        data.setdefault("runs", {})
        data.setdefault("sessions", [])
        data["config"] = dict(config)
        session = machine_info()
        session["elapsed_s"] = 0.0
        session["finished"] = False
        data["sessions"].append(session)
        store = cls(path=p, benchmark=benchmark, data=data)
        store.save()
        return store

    @property
    def runs(self) -> dict:
        return self.data["runs"]

    def has(self, key: str) -> bool:
        return key in self.runs

    def add_run(self, key: str, record: Mapping) -> None:
        self.runs[key] = dict(record)
        self.save()

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.save()

    def save(self, *, finished: bool = False) -> None:
        session = self.data["sessions"][-1]
        session["elapsed_s"] = round(time.perf_counter() - self._t0, 2)
        session["finished"] = finished
        write_results(self.path, self.data)
