"""cvkit's pytest plugin (entry point ``pytest11``): fixtures for tests of cvkit and of any
cvkit plugin, available once cvkit is installed, as pytest ships ``pytester``.

- ``registry``: the registry of the installed plugins (built once per session).
- ``run_cli``: invoke ``cvkit ARGS...`` in-process; stdout and stderr kept apart.
- ``tiny_recipe``: a recipe file that trains a tiny CNN on synthetic images in about a second.
- ``clean_plugin_env``: unset cvkit's plugin environment variables for the test (make it
  autouse in a conftest.py to test exactly the installed plugins).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from click.testing import Result

    from cvkit.registry.registry import Registry

PLUGIN_ENVIRONMENT = (
    "CVKIT_DISABLE_PLUGIN_AUTOLOAD",
    "CVKIT_PLUGINS",
    "CVKIT_DISABLE_PLUGINS",
    "CVKIT_STRICT_PLUGINS",
)
"""The environment variables that change which plugins load (see cvkit.registry.loading)."""

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
"""A recipe template (``{runs}``: the output directory) training a tiny CNN on 96 synthetic
8x8 images of 4 classes for 3 epochs."""


@pytest.fixture
def clean_plugin_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset cvkit's plugin environment variables for this test."""
    for name in PLUGIN_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def registry() -> Registry:
    """Built-ins and every installed plugin."""
    from cvkit.registry.loading import default_registry

    return default_registry()


@pytest.fixture
def run_cli() -> Callable[..., Result]:
    """Invoke ``cvkit ARGS...`` in-process; stdout and stderr are kept apart."""
    from click.testing import CliRunner

    from cvkit.cli import cli

    def invoke(*args: str, env: Mapping[str, str] | None = None) -> Result:
        return CliRunner().invoke(cli, list(args), env=dict(env or {}), prog_name="cvkit")

    return invoke


@pytest.fixture
def tiny_recipe(tmp_path: Path) -> Path:
    """A recipe that trains a tiny CNN on 96 synthetic 8x8 images for 3 epochs (about a second)."""
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_RECIPE.format(runs=(tmp_path / "runs").as_posix()))
    return path
