"""Every bundled recipe trains for a couple of steps on synthetic data, through --set alone."""

from __future__ import annotations

import json

import pytest

from cvkit.recipe import load_recipe

from conftest import RECIPES

RECIPE_FILES = sorted(RECIPES.glob("*.toml"))


@pytest.mark.slow
@pytest.mark.parametrize("recipe", RECIPE_FILES, ids=lambda p: p.stem)
def test_recipe_runs_on_synthetic_data(recipe, registry, tmp_path, run_cli) -> None:
    channels = len(
        next(
            a for a in load_recipe(recipe, registry=registry).augment.eval if a.name == "normalize"
        ).params["mean"]
        or [0, 0, 0]
    )
    overrides = [
        f'data.dataset={{ name = "synthetic", num_classes = 10, image_size = 32, channels = {channels}, '
        "train_size = 12, test_size = 4 }",
        "data.batch_size=4",
        "data.eval_batch_size=4",
        "data.val_split=4",
        "data.workers=0",
        "experiment.epochs=2",  # the quickstart warms up for one
    ]
    args = [x for o in overrides for x in ("--set", o)]
    result = run_cli("run", str(recipe), "--output", str(tmp_path / "run"), *args)
    assert result.exit_code == 0, result.output
    evaluation = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert evaluation["test"]["samples"] == 4 and evaluation["val"]["samples"] == 4


def test_every_recipe_is_covered() -> None:
    assert {p.stem for p in RECIPE_FILES} >= {
        "quickstart",
        "efficient_resnet",
        "efficient_resnet_paper",
        "se_resnet18_cifar10",
        "se_resnet34_cifar10",
        "se_resnet18_cifar100",
        "se_resnet18_cifar10_no_se",
        "se_resnet18_cifar10_no_dropout",
        "se_resnet18_cifar10_basic_aug",
    }
