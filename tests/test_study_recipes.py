"""The bundled plugins in the studies' recipes: attention blocks that swap in with one --set,
parameter budgets, the studies' model sizes. (Each plugin's own tests sit in its folder.)"""

from __future__ import annotations

import pytest
import torch

from cvkit.engine.build import build_model, check_parameter_budget, trainable_parameters
from cvkit.errors import CvkitError
from cvkit.recipe.loading import load_recipe
from cvkit.recipe.writing import recipe_differences
from cvkit.registry.loading import load_registry
from cvkit_cbam import CBAM, ChannelAttention, SpatialAttention
from cvkit_squeeze_excitation import SqueezeExcitation

import engine_plugin
from helpers import RECIPES


@pytest.mark.parametrize("block", ["cbam", "channel_attention", "spatial_attention"])
@pytest.mark.parametrize(
    ("recipe", "count"), [("se_resnet18_cifar10.toml", 8), ("efficient_resnet.toml", 1)]
)
def test_every_cbam_block_drops_into_the_resnets_with_one_set(
    registry, block, recipe, count
) -> None:
    # cbam and channel_attention take the recipes' `reduction = 16` as they are; spatial
    # attention has no reduction, so its whole table is set
    override = (
        f'model.attention={{ name = "{block}" }}'
        if block == "spatial_attention"
        else f"model.attention.name={block}"
    )
    resolved = load_recipe(RECIPES / recipe, [override], registry=registry)
    model = registry.build(resolved.model, num_classes=10, in_channels=3)
    classes = {
        "cbam": CBAM,
        "channel_attention": ChannelAttention,
        "spatial_attention": SpatialAttention,
    }
    found = [m for m in model.modules() if type(m) is classes[block]]
    assert len(found) == count
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_max_params_guards_the_budget(registry) -> None:
    recipe = load_recipe(
        RECIPES / "quickstart.toml",
        [
            'model={ name = "lightweight_cnn", blocks = [1, 2], attention = { name = "se" }, max_params = 20000 }'
        ],
        registry=registry,
    )
    model = registry.build(recipe.model, num_classes=10, in_channels=3)
    with pytest.raises(Exception, match=r"more than model\.max_params = 20,000"):
        check_parameter_budget(recipe, model)


def test_the_sample_resnet_has_the_studys_230000_parameters(registry) -> None:
    recipe = load_recipe(RECIPES / "cbam_sample_resnet.toml", registry=registry)
    model = build_model(recipe, registry, num_classes=10, in_channels=3)
    assert trainable_parameters(model) == 230_000
    # one per ResAttention block, one between them (the study's "AttentionModule")
    assert sum(isinstance(m, CBAM) for m in model.modules()) == 3
    assert model(torch.rand(2, 3, 224, 224)).shape == (2, 10)


def test_resnet_attention_freezes_its_backbone_from_the_recipe(registry) -> None:
    recipe = load_recipe(
        RECIPES / "cbam_resnet50_attention.toml",
        ["model.arch=resnet18", "model.channels=16", "model.pretrained=IMAGENET1K_V1"],
        registry=registry,
    )
    model = build_model(recipe, registry, num_classes=10, in_channels=3, load_weights=False)
    frozen = {n.split(".")[0] for n, p in model.named_parameters() if not p.requires_grad}
    trainable = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert frozen == {"backbone"} and trainable == {"reduce", "block", "fc"}
    assert model(torch.rand(2, 3, 64, 64)).shape == (2, 10)


def test_the_parameter_budget_passes_at_the_papers_limit_and_fails_below(registry) -> None:
    recipe = load_recipe(RECIPES / "efficient_resnet.toml", registry=registry)
    model = registry.build(recipe.model, num_classes=10, in_channels=3)
    assert recipe.model.params["max_params"] == 5_000_000
    check_parameter_budget(recipe, model)
    tight = load_recipe(
        RECIPES / "efficient_resnet.toml", ["model.max_params=4697741"], registry=registry
    )
    with pytest.raises(
        CvkitError, match=r"4,697,742 trainable parameters, more than model\.max_params = 4,697,741"
    ):
        check_parameter_budget(tight, model)


def test_the_attention_block_of_a_study_swaps_with_one_set_and_nothing_else(
    tmp_path, run_cli, monkeypatch
) -> None:
    registry = load_registry(modules=[engine_plugin])
    recipe = RECIPES / "se_resnet18_cifar10.toml"
    original = load_recipe(recipe, registry=registry)
    swapped = load_recipe(recipe, ["model.attention.name=gate"], registry=registry)
    differences = recipe_differences(original, swapped)
    # the block's name, and se's own defaults (gate, min_channels) that gate does not take
    assert "model.attention.name" in differences
    assert all(key.startswith("model.attention.") for key in differences), differences
    assert swapped.model.params["attention"].params["reduction"] == 16
    model = registry.build(swapped.model, num_classes=10, in_channels=3)
    assert (
        sum(isinstance(m, engine_plugin.Gate) for m in model.modules()) == 8
    )  # one per residual block
    assert not any(isinstance(m, SqueezeExcitation) for m in model.modules())

    monkeypatch.setenv("CVKIT_PLUGINS", "engine_plugin")
    synthetic = (
        'data.dataset={ name = "synthetic", image_size = 32, train_size = 12, test_size = 4 }'
    )
    result = run_cli(
        "run",
        str(recipe),
        "--output",
        str(tmp_path / "run"),
        "--set",
        "model.attention.name=gate",
        "--set",
        synthetic,
        "--set",
        "data.batch_size=4",
        "--set",
        "data.val_split=4",
        "--set",
        "experiment.epochs=1",
        "--set",
        "data.workers=0",
    )
    assert result.exit_code == 0, result.output
    assert 'name = "gate"' in (tmp_path / "run" / "recipe.toml").read_text()


def test_se_in_a_recipe_model(registry) -> None:
    recipe = load_recipe(
        RECIPES / "quickstart.toml", ["model.attention.reduction=8"], registry=registry
    )
    model = registry.build(recipe.model, num_classes=10, in_channels=3)
    blocks = [m for m in model.modules() if isinstance(m, SqueezeExcitation)]
    widths = recipe.model.params["widths"]
    assert [b.fc1.in_channels for b in blocks] == widths
    assert [b.fc1.out_channels for b in blocks] == [w // 8 for w in widths]
