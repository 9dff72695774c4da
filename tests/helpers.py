"""Helpers of the core's tests, imported as `helpers` (a module, not a conftest.py, so that
any way of invoking pytest finds them: `pytest`, `pytest .`, `pytest plugins tests`).

The fixtures (registry, run_cli, tiny_recipe) come from cvkit's pytest plugin,
cvkit.testing.fixtures; the repository's conftest.py cleans the plugin environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"


def run_cvkit(
    *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """Run ``python -m cvkit ARGS...`` in a subprocess: real exit codes and tracebacks."""
    return subprocess.run(
        [sys.executable, "-m", "cvkit", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=300,
    )


def make_distribution(
    site: Path,
    dist: str,
    version: str,
    entry_points: Mapping[str, str],
    modules: Mapping[str, str],
    *,
    requires: Sequence[str] = (),
    group: str = "cvkit",
) -> Path:
    """Write an installed distribution into ``site`` (dist-info with entry points in ``group``
    and ``Requires-Dist`` lines for ``requires``).

    importlib.metadata finds it once ``site`` is on sys.path (or PYTHONPATH), exactly as it
    finds a pip-installed plugin. ``modules`` maps file names to Python source.
    """
    site.mkdir(parents=True, exist_ok=True)
    for filename, source in modules.items():
        (site / filename).write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    required = "".join(f"Requires-Dist: {r}\n" for r in requires)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n{required}"
    )
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{group}]\n{lines}")
    return site
