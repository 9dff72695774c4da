"""Finished tiny runs shared by the report plugin's tests (trained once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cvkit import train
from cvkit.testing import TINY_RECIPE

STAGES = """
[[stages]]
name = "first"
epochs = 2

[[stages]]
name = "second"
epochs = 1
init = "first"
optimizer = { name = "adam", lr = 1e-3 }
"""


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory: pytest.TempPathFactory, registry) -> dict[str, Path]:
    """Run directories: ``base`` (the tiny recipe), ``fast`` (optimizer.lr=0.1, seed 1),
    ``staged`` (two stages, the second starting from the first)."""
    folder = tmp_path_factory.mktemp("report-runs")
    recipe = folder / "tiny.toml"
    recipe.write_text(TINY_RECIPE.format(runs=(folder / "runs").as_posix()))
    staged = folder / "staged.toml"
    staged.write_text(TINY_RECIPE.format(runs=(folder / "runs").as_posix()) + STAGES)
    return {
        "base": train(recipe, registry=registry, output=folder / "runs" / "base").run_dir,
        "fast": train(
            recipe,
            overrides=["optimizer.lr=0.1", "experiment.seed=1"],
            registry=registry,
            output=folder / "runs" / "fast",
        ).run_dir,
        "staged": train(staged, registry=registry, output=folder / "staged" / "run").run_dir,
    }
