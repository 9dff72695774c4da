"""Every bundled recipe trains for a couple of steps on synthetic data, through --set alone."""

from __future__ import annotations

import json

import pytest
import torch
from torchvision.models import get_model, get_model_weights

from cvkit.models.pretrained import weights_file
from cvkit.recipe.loading import load_recipe

from helpers import RECIPES

RECIPE_FILES = sorted(RECIPES.glob("*.toml"))


@pytest.fixture(scope="module")
def torch_home(tmp_path_factory) -> str:
    """A torch.hub cache holding (random) "ImageNet" weights for resnet18: no download."""
    home = tmp_path_factory.mktemp("torch")
    with pytest.MonkeyPatch.context() as patch:  # weights_file reads TORCH_HOME
        patch.setenv("TORCH_HOME", str(home))
        path = weights_file(get_model_weights("resnet18").DEFAULT)
    path.parent.mkdir(parents=True)
    torch.save(get_model("resnet18").state_dict(), path)
    return str(home)


@pytest.mark.slow
@pytest.mark.parametrize("recipe", RECIPE_FILES, ids=lambda p: p.stem)
def test_recipe_runs_on_synthetic_data(
    recipe, registry, tmp_path, run_cli, torch_home, monkeypatch
) -> None:
    resolved = load_recipe(recipe, registry=registry)
    normalize = [a for a in resolved.augment.eval if a.name == "normalize"]
    channels = len(normalize[0].params["mean"] or [0, 0, 0]) if normalize else 3
    overrides = [
        f'data.dataset={{ name = "synthetic", num_classes = 10, image_size = 32, channels = {channels}, '
        "train_size = 12, test_size = 4 }",
        "data.batch_size=4",
        "data.eval_batch_size=4",
        "data.val_split=4",
        "data.workers=0",
        "experiment.epochs=2",  # the quickstart warms up for one
    ]
    if resolved.scheduler is not None and "cycles" in resolved.scheduler.params:
        overrides.append("scheduler.cycles=2")  # cycles must divide the 2 epochs
        overrides += [
            f"callbacks[{i}].cycles=2"
            for i, c in enumerate(resolved.callbacks)
            if "cycles" in c.params
        ]
    if resolved.data.image_size is not None:
        overrides.append("data.image_size=32")  # eval batches; training crops keep their size
    if "arch" in resolved.model.params:  # torchvision backbones: resnet18 is enough here
        overrides.append("model.arch=resnet18")
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
