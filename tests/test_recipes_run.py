"""Every bundled recipe trains for a couple of steps on synthetic data, through --set alone."""

from __future__ import annotations

import json

import pytest

from cvkit.recipe.loading import load_recipe

from helpers import RECIPES, fake_imagenet_weights, synthetic_overrides

RECIPE_FILES = sorted(RECIPES.glob("*.toml"))


@pytest.fixture(scope="module")
def torch_home(tmp_path_factory) -> str:
    return fake_imagenet_weights(tmp_path_factory.mktemp("torch"))


@pytest.mark.slow
@pytest.mark.parametrize("recipe", RECIPE_FILES, ids=lambda p: p.stem)
def test_recipe_runs_on_synthetic_data(
    recipe, registry, tmp_path, run_cli, torch_home, monkeypatch
) -> None:
    resolved = load_recipe(recipe, registry=registry)
    overrides, backbone = synthetic_overrides(
        resolved, train_size=12, test_size=4, val_split=4, epochs=2, batch_size=4
    )  # two epochs: the quickstart warms up for one
    if backbone:
        monkeypatch.setenv("TORCH_HOME", torch_home)  # its "ImageNet" weights, no download
    args = [x for o in overrides for x in ("--set", o)]
    result = run_cli("run", str(recipe), "--output", str(tmp_path / "run"), *args)
    assert result.exit_code == 0, result.output
    evaluation = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert evaluation["test"]["samples"] == 4 and evaluation["val"]["samples"] == 4
    # the run trained the recipe as written, with only these overrides
    ran = load_recipe(tmp_path / "run" / "recipe.toml", registry=registry)
    assert ran == load_recipe(recipe, overrides, registry=registry)
    assert evaluation["model"]["trainable_parameters"] > 0


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
        "cbam_sample_resnet",
        "cbam_resnet50_finetune",
        "cbam_resnet50_scratch",
        "cbam_resnet50_attention",
        "cbam_resnet50_attention_scratch",
        "lightweight_cnn",
        "lightweight_cnn_augmented",
        "lightweight_cnn_residual",
        "lightweight_cnn_enhanced",
    }
