"""Grad-CAM in `cvkit report` looks at a spatial feature map of every bundled recipe's model
(issue 24): the last convolution run was, in every attention model, the block's 1 x 1
excitation, whose map has no spatial heat."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cvkit.engine.build import build_dataset, build_model
from cvkit.hookspecs import capability
from cvkit.recipe.loading import load_recipe
from cvkit.testing import contract_cases
from cvkit_report.model_panels import gradcam_layer

from helpers import RECIPES


def spatial_size(model: nn.Module, layer: nn.Module, image: torch.Tensor) -> tuple[int, int]:
    """(H, W) of ``layer``'s output in a forward pass of ``model`` over ``image``."""
    shapes: list[torch.Size] = []
    handle = layer.register_forward_hook(lambda m, args, output: shapes.append(output.shape))
    with torch.no_grad():
        model.eval()(image)
    handle.remove()
    return tuple(shapes[-1][-2:])


@pytest.mark.parametrize("recipe", sorted(RECIPES.glob("*.toml")), ids=lambda p: p.stem)
def test_every_bundled_recipe_s_gradcam_layer_is_a_spatial_map(recipe, registry) -> None:
    resolved = load_recipe(recipe, registry=registry)
    dataset = build_dataset(resolved, registry)
    size = resolved.data.input_size or capability(dataset, "image_size") or [32, 32]
    model = build_model(
        resolved,
        registry,
        num_classes=dataset.num_classes,
        in_channels=dataset.in_channels,
        load_weights=False,
    )
    image = torch.rand(1, dataset.in_channels, *size)
    name, layer = gradcam_layer(model, image)
    height, width = spatial_size(model, layer, image)
    assert height * width > 1, (name, height, width)


class Named(nn.Module):
    """A model that names its Grad-CAM layer (the ``gradcam_layer`` capability)."""

    gradcam_layer = "early"

    def __init__(self) -> None:
        super().__init__()
        self.early, self.late = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.late(self.early(x)).mean((2, 3)))


def test_a_model_may_name_its_gradcam_layer_and_others_get_the_last_spatial_map() -> None:
    model = Named()
    assert gradcam_layer(model, torch.rand(1, 3, 8, 8)) == ("early", model.early)
    del Named.gradcam_layer
    try:
        assert gradcam_layer(model, torch.rand(1, 3, 8, 8)) == ("late", model.late)
    finally:
        Named.gradcam_layer = "early"


@pytest.mark.parametrize("case", contract_cases(kinds=("model",)), ids=lambda case: str(case))
def test_every_registered_model_s_gradcam_layer_is_a_spatial_map(case, registry) -> None:
    """Each installed model with each of its examples, at 32 x 32 RGB (the bundled models'
    smallest usual input; a model of a fixed other size declares it in its examples)."""
    spec = registry.spec("model", {"name": case.component.name, **case.example})
    model = registry.build(spec, num_classes=10, in_channels=3, load_weights=False)
    image = torch.rand(1, 3, 32, 32)
    found = gradcam_layer(model, image)
    assert found is not None  # every bundled model has spatial feature maps
    name, layer = found
    height, width = spatial_size(model, layer, image)
    assert height * width > 1, (name, height, width)
