"""The core's shape: layers that only import downwards, no import cycle (imports inside
functions and under TYPE_CHECKING included), and bundled plugins that import only the
declared plugin API (docs/architecture.md)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import cvkit

from helpers import ROOT

CORE = ROOT / "framework" / "src"

LAYERS: list[list[str]] = [
    ["cvkit.version", "cvkit.errors"],
    ["cvkit.files", "cvkit.hookspecs", "cvkit.distributed"],
    ["cvkit.progress"],
    ["cvkit.registry"],
    ["cvkit.recipe"],
    ["cvkit.data", "cvkit.models"],
    ["cvkit.engine"],
    ["cvkit.commands", "cvkit.builtins"],
    ["cvkit.cli"],
    ["cvkit.testing", "cvkit.__main__"],
    ["cvkit"],
]
"""Lowest first. A module may import modules of its own group (one name of a row), and of
any group in a lower row; groups in the same row are independent of each other."""


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def core_modules() -> dict[str, Path]:
    return {module_name(p, CORE): p for p in sorted((CORE / "cvkit").rglob("*.py"))}


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """Every cvkit module ``path`` imports anywhere: at the top, in functions, under
    TYPE_CHECKING. ``from cvkit.a import b`` counts as cvkit.a.b when that is a module."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            submodules = {f"{node.module}.{alias.name}" for alias in node.names} & known
            found |= submodules
            if len(submodules) < len(node.names):  # some names are attributes of the module
                found.add(node.module)
    return {name for name in found if name == "cvkit" or name.startswith("cvkit.")}


def group_of(module: str) -> tuple[int, str]:
    """(row, group) of a module: the longest group name that is it or a package above it."""
    matches = [
        (len(group), row, group)
        for row, groups in enumerate(LAYERS)
        for group in groups
        if module == group or module.startswith(group + ".")
    ]
    assert matches, f"{module} is in no layer; add it to LAYERS and docs/architecture.md"
    _, row, group = max(matches)
    return row, group


def import_graph() -> dict[str, set[str]]:
    modules = core_modules()
    return {
        name: imported_modules(path, set(modules)) & set(modules) for name, path in modules.items()
    }


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    problems = []
    for module, imports in sorted(graph.items()):
        row, group = group_of(module)
        for target in sorted(imports):
            target_row, target_group = group_of(target)
            if target_group != group and target_row >= row:
                problems.append(f"{module} ({group}) imports {target} ({target_group})")
    return problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle found by a depth-first search (each reported once, from its first module)."""
    found, state = [], dict.fromkeys(graph, 0)  # 0 new, 1 on the stack, 2 done
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for target in sorted(graph[module]):
            if state[target] == 1:
                found.append([*stack[stack.index(target) :], target])
            elif state[target] == 0:
                visit(target)
        stack.pop()
        state[module] = 2

    for module in sorted(graph):
        if state[module] == 0:
            visit(module)
    return found


def test_every_core_module_lies_in_a_layer_and_imports_only_downwards() -> None:
    assert layer_violations(import_graph()) == []


def test_the_core_has_no_import_cycle() -> None:
    assert cycles(import_graph()) == []


def test_the_checks_fail_on_an_upward_import_and_on_a_cycle() -> None:
    graph = import_graph()
    upward = graph | {
        "cvkit.registry.kinds": graph["cvkit.registry.kinds"] | {"cvkit.engine.trainer"}
    }
    assert layer_violations(upward) == [
        "cvkit.registry.kinds (cvkit.registry) imports cvkit.engine.trainer (cvkit.engine)"
    ]
    circular = graph | {
        "cvkit.registry.kinds": graph["cvkit.registry.kinds"] | {"cvkit.registry.registry"}
    }
    assert layer_violations(circular) == []  # one layer: only the cycle check sees it
    assert any(
        set(cycle) == {"cvkit.registry.kinds", "cvkit.registry.registry"}
        for cycle in cycles(circular)
    )


def test_core_modules_never_import_the_plugin_api() -> None:
    """``cvkit`` (the package) re-exports from every layer: a core module importing it would
    hide an upward import."""
    graph = import_graph()
    assert [m for m, imports in graph.items() if "cvkit" in imports and m != "cvkit"] == []


@pytest.mark.parametrize("module", ["cvkit.registry.loading", "cvkit.recipe.loading", "cvkit.cli"])
def test_each_layer_imports_alone(module: str) -> None:
    """Importing a module first, in a fresh interpreter, works: no cycle hides behind the
    order in which modules happen to be imported."""
    result = subprocess.run(
        [sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


def test_listing_components_does_not_load_the_training_engine(tmp_path) -> None:
    """``cvkit list`` with every bundled plugin loads base classes (callbacks, optimizer
    wrappers), never the loop, the loaders, the commands or Optuna: in a fresh
    ``$CVKIT_HOME``, where it builds the catalog from the plugins."""
    code = (
        "import sys; from cvkit.cli import main; sys.argv = ['cvkit', 'list']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(','.join(sorted(m for m in sys.modules if m.startswith(('cvkit', 'optuna')))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "CVKIT_HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    loaded = set(result.stdout.strip().splitlines()[-1].split(","))
    engine = {m for m in loaded if m.startswith("cvkit.engine.")}
    # base classes and the checkpoint file format, which built-in callbacks write
    assert engine <= {
        "cvkit.engine.callback",
        "cvkit.engine.optimizer_wrapper",
        "cvkit.engine.checkpoint",
    }
    light = {"cvkit.commands", "cvkit.commands.catalog", "cvkit.commands.inputs"}
    assert not {m for m in loaded if m.startswith(("cvkit.commands.", "optuna"))} - light
    assert not {"cvkit.data.batches", "cvkit.data.splits"} & loaded
    assert "cvkit.builtins.schedules" in loaded


PLUGIN_SOURCES = sorted((ROOT / "plugins").glob("*/src/**/*.py"))
PLUGIN_TESTS = sorted((ROOT / "plugins").glob("*/tests/*.py"))


def _submodules(module: str | None) -> tuple[str, ...]:
    """``(module,)`` when it is a module of cvkit, else ``()``."""
    return (module,) if module and module.startswith("cvkit.") else ()


def api_violations(path: Path, allowed_modules: tuple[str, ...]) -> list[str]:
    """Imports of cvkit in ``path`` beyond ``cvkit.__all__`` (``from cvkit import X``,
    ``cvkit.X``) and the ``allowed_modules``."""
    problems = []
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in ("cvkit", *_submodules(node.module)):
            if node.module == "cvkit":
                problems += [
                    f"from cvkit import {a.name}" for a in node.names if a.name not in cvkit.__all__
                ]
            elif node.module not in allowed_modules:
                problems.append(f"from {node.module} import ...")
        elif isinstance(node, ast.Import):
            problems += [
                f"import {a.name}"
                for a in node.names
                if a.name.startswith("cvkit.") and a.name not in allowed_modules
            ]
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "cvkit"
            and node.attr not in cvkit.__all__
        ):
            problems.append(f"cvkit.{node.attr}")
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
    return [f"{shown}: {problem}" for problem in problems]


def test_bundled_plugins_import_only_the_declared_api() -> None:
    assert PLUGIN_SOURCES
    assert [v for path in PLUGIN_SOURCES for v in api_violations(path, ())] == []


def test_bundled_plugins_tests_import_only_the_api_and_cvkit_testing() -> None:
    assert PLUGIN_TESTS
    allowed = ("cvkit.testing",)
    assert [v for path in PLUGIN_TESTS for v in api_violations(path, allowed)] == []


def test_the_api_check_catches_a_private_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from cvkit.engine.trainer import TrainingLoop\nimport cvkit\ncvkit.hidden\n")
    assert sorted(api_violations(bad, ())) == [
        "bad.py: cvkit.hidden",
        "bad.py: from cvkit.engine.trainer import ...",
    ]


def test_every_api_name_resolves_to_the_object_its_module_defines() -> None:
    """Each lazily exported name is the very object of the module it is declared from (a
    wrong module path, or a stale name shadowing it, would fail here)."""
    import importlib

    from cvkit import _EXPORTS

    assert set(cvkit.__all__) == {
        "PROJECT_NAME",
        "Register",
        "__version__",
        "capability",
        "hookimpl",
        *_EXPORTS,
    }
    for name, module in _EXPORTS.items():
        assert getattr(cvkit, name) is getattr(importlib.import_module(module), name), name
    assert cvkit.capability is importlib.import_module("cvkit.hookspecs").capability


def test_every_builtin_module_is_a_default_plugin_with_its_own_hooks() -> None:
    from cvkit.registry.loading import DEFAULT_PLUGINS

    modules = {n for n in core_modules() if n.startswith("cvkit.builtins.")}
    assert modules == set(DEFAULT_PLUGINS)
    for name in DEFAULT_PLUGINS:
        assert "@hookimpl" in core_modules()[name].read_text(), name


def test_the_architecture_page_names_every_module_and_capability() -> None:
    from cvkit.hookspecs import CAPABILITIES

    page = (ROOT / "docs" / "architecture.md").read_text()
    for name, path in core_modules().items():
        relative = path.relative_to(CORE / "cvkit").as_posix()
        if name.startswith("cvkit.builtins."):
            relative = "builtins/*.py"
        elif relative.endswith("/__init__.py"):
            continue
        assert f"`{relative}`" in page, relative
    for capability in CAPABILITIES:
        assert f"| `{capability}` |" in page, capability


def test_no_two_core_classes_share_a_name() -> None:
    seen: dict[str, list[str]] = {}
    for name, path in core_modules().items():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                seen.setdefault(node.name, []).append(name)
    assert {cls: where for cls, where in seen.items() if len(where) > 1} == {}


def test_bundled_plugins_follow_one_naming_convention() -> None:
    """cvkit-<name> distributes module cvkit_<name> under the entry point <name> ('-' as '_')."""
    import tomllib

    for pyproject in sorted((ROOT / "plugins").glob("*/pyproject.toml")):
        project = tomllib.loads(pyproject.read_text())["project"]
        name = project["name"].removeprefix("cvkit-").replace("-", "_")
        assert project["name"] == f"cvkit-{name.replace('_', '-')}", pyproject
        assert project["entry-points"]["cvkit"] == {name: f"cvkit_{name}"}, pyproject
        assert (pyproject.parent / "src" / f"cvkit_{name}" / "py.typed").is_file(), pyproject
        assert (pyproject.parent / "README.md").is_file(), pyproject
