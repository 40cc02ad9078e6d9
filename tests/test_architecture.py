"""The import rules of docs/architecture.md, read from the code (ast), and the dependency list.

Every ``import`` of every module counts, lazy ones inside functions too: a lazy import is
still a dependency, it only moves the cost. A rule names what a package may import; a more
specific key (a module) overrides its package's rule.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: What each part of barl_core may import from barl_core (besides itself). Keep in step with
#: the table in docs/architecture.md.
RULES: dict[str, set[str]] = {
    "errors": set(),
    # data.labels is a leaf (the ignore value; it imports only errors)
    "io": {"errors", "data.labels"},
    "data": {"errors", "io"},
    "networks": {"errors"},
    "losses": {"errors", "data"},
    "evaluation": {"errors", "io", "data"},
    "runtime": {"errors"},
    # the job definitions sit above the engine they run
    "runtime.jobs": {"errors", "runtime", "training", "inference"},
    # inference reads the checkpoint format, nothing else of training
    "inference": {"errors", "io", "data", "networks", "runtime", "training.checkpoint"},
    "training": {"errors", "io", "data", "networks", "losses", "runtime", "evaluation",
                 "inference"},
    "active": {"errors", "data"},
    "workspace": {"errors", "io", "data", "evaluation", "inference", "runtime", "active"},
    "demo": {"errors", "io", "data", "evaluation", "inference", "training", "active",
             "runtime"},
    "cli": {"errors", "io", "data", "networks", "evaluation", "inference", "training", "active",
            "runtime", "workspace", "demo", "__init__"},
    "__init__": {"errors"},
    "__main__": {"cli"},
}
#: Never imported by barl_core: the engine runs without a GUI.
GUI_MODULES = {"qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "napari", "magicgui", "vispy",
               "superqt", "napari_barl"}
#: Imported only inside ``try``, with a fallback (not a dependency).
OPTIONAL = {"psutil"}
#: Import name -> distribution name, where they differ.
DISTRIBUTION = {"SimpleITK": "SimpleITK"}


def _modules(package: str) -> list[tuple[str, Path]]:
    out = []
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        out.append((".".join(p for p in parts if p != "__init__") or package, path))
    return out


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def _rule_key(module: str) -> str:
    """The most specific key of RULES for ``barl_core.x.y`` (``x.y``, then ``x``)."""
    rest = module.split(".")[1:] or ["__init__"]
    for n in range(len(rest), 0, -1):
        key = ".".join(rest[:n])
        if key in RULES:
            return key
    raise KeyError(f"{module}: no import rule; add its package to RULES and docs/architecture.md")


def _allowed(target: str, own: str, allowed: set[str]) -> bool:
    """Say whether part ``own`` may import ``target`` (``barl_core.x.y[.name]``)."""
    rest = target.split(".")[1:]
    top = ROOT / "barl_core" / (rest[0] if rest else "")
    if not rest or not (top.is_dir() or top.with_suffix(".py").is_file()):
        return own == "__init__" or "__init__" in allowed  # a name of barl_core/__init__.py
    if rest[0] == own.split(".")[0]:
        return True  # inside its own package
    return any(".".join(rest[:n]) in allowed for n in range(1, len(rest) + 1))


@pytest.mark.parametrize("module,path", _modules("barl_core"), ids=lambda v: str(v))
def test_barl_core_imports_follow_the_rules(module, path):
    key = _rule_key(module)
    allowed = RULES[key]
    engine = {t for t in _imports(path) if t == "barl_core" or t.startswith("barl_core.")}
    bad = sorted(t for t in engine if not _allowed(t, key, allowed))
    assert not bad, f"{module} ({key}) may import only {sorted(allowed)}; it imports {bad}"


@pytest.mark.parametrize("module,path", _modules("barl_core"), ids=lambda v: str(v))
def test_barl_core_never_imports_a_gui(module, path):
    gui = sorted(t for t in _imports(path) if t.split(".")[0] in GUI_MODULES)
    assert not gui, f"{module} imports {gui}: barl_core must run without Qt or napari"


def test_every_module_has_a_rule():
    for module, _path in _modules("barl_core"):
        _rule_key(module)


def test_the_rule_check_can_fail():
    assert not _allowed("barl_core.workspace.session", "data", RULES["data"])
    assert not _allowed("barl_core.training.trainer.train", "inference", RULES["inference"])
    assert _allowed("barl_core.training.checkpoint.build_model", "inference", RULES["inference"])
    assert not _allowed("barl_core.training.train", "inference", RULES["inference"])


def _third_party() -> set[str]:
    found = set()
    for package in ("barl_core", "napari_barl"):
        for _module, path in _modules(package):
            for name in _imports(path):
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("barl_core", "napari_barl"):
                    found.add(top)
    return found


def test_runtime_dependencies_are_what_the_code_imports():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {re.split(r"[<>=!~ \[]", d, maxsplit=1)[0].lower()
                for d in meta["dependencies"]}
    imported = {DISTRIBUTION.get(m, m).lower() for m in _third_party() - OPTIONAL}
    assert imported == declared, (
        f"imported but not declared: {sorted(imported - declared)}; "
        f"declared but never imported: {sorted(declared - imported)}"
    )
