"""Shared fixtures: CLI invocation and throwaway plugin distributions."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cvkit.cli import cli
from cvkit.plugins import ENV_DISABLE_AUTOLOAD, ENV_PLUGINS, ENV_STRICT, default_registry
from cvkit.registry import Registry

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"


@pytest.fixture(autouse=True)
def _clean_plugin_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start from the installed plugins only, whatever the caller's environment says."""
    for name in (ENV_DISABLE_AUTOLOAD, ENV_PLUGINS, ENV_STRICT):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def registry() -> Registry:
    """Built-ins and every installed plugin."""
    return default_registry()


@pytest.fixture
def run_cli() -> Callable[..., Result]:
    """Invoke ``cvkit ARGS...`` in-process; stdout and stderr are kept apart."""

    def invoke(*args: str, env: Mapping[str, str] | None = None) -> Result:
        return CliRunner().invoke(cli, list(args), env=dict(env or {}), prog_name="cvkit")

    return invoke


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
) -> Path:
    """Write an installed distribution into ``site`` (dist-info with ``cvkit`` entry points).

    importlib.metadata finds it once ``site`` is on sys.path (or PYTHONPATH), exactly as it
    finds a pip-installed plugin. ``modules`` maps file names to Python source.
    """
    site.mkdir(parents=True, exist_ok=True)
    for filename, source in modules.items():
        (site / filename).write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[cvkit]\n{lines}")
    return site


TINY_RECIPE = """
[experiment]
name = "tiny"
seed = 0
epochs = 3
output_dir = "{runs}"

[data]
dataset = {{ name = "synthetic", num_classes = 4, image_size = 8, train_size = 96, test_size = 32, noise = 0.3 }}
batch_size = 16
val_split = 16
workers = 0

[model]
name = "simple_cnn"
widths = [8, 16]

[optimizer]
name = "sgd"
lr = 0.05
momentum = 0.9

[scheduler]
name = "cosine"

[loss]
name = "cross_entropy"

[[augment.train]]
name = "random_crop"
padding = 1

[[augment.train]]
name = "hflip"

[[augment.train]]
name = "normalize"
mean = [0.5, 0.5, 0.5]
std = [0.25, 0.25, 0.25]

[[augment.eval]]
name = "normalize"
mean = [0.5, 0.5, 0.5]
std = [0.25, 0.25, 0.25]
"""


@pytest.fixture
def tiny_recipe(tmp_path: Path) -> Path:
    """A recipe that trains a tiny CNN on 96 synthetic 8x8 images for 3 epochs (about a second)."""
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_RECIPE.format(runs=(tmp_path / "runs").as_posix()))
    return path
