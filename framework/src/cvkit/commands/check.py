"""``cvkit check``: validate a recipe and build every component of every stage, then run one
small forward pass of the model and the attention contract of each attention block, so a
component that breaks its contract fails here rather than hours into a run."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import torch
from torch import nn

from cvkit.data.batches import check_order
from cvkit.data.memory import check_fits
from cvkit.data.tensors import ImageDataset
from cvkit.engine.build import build_components, build_dataset, trainable_parameters
from cvkit.engine.contracts import ATTENTION_PROBE, attention_case
from cvkit.engine.stage import check_init_modules
from cvkit.errors import CvkitError
from cvkit.hookspecs import capability
from cvkit.recipe.loading import load_recipe
from cvkit.recipe.schema import Recipe, StageSettings
from cvkit.registry.registry import Registry
from cvkit.registry.specs import ComponentSpec

ACTIVATION_FACTOR = 64
"""A rough bound of a CNN's activations per input value, to refuse absurd input sizes."""


@attrs.frozen
class StageCheck:
    """What ``cvkit check`` found for one stage ("" for a recipe without stages)."""

    name: str
    model: str
    params: int
    total_params: int
    input_shape: tuple[int, ...] | None
    """(N, C, H, W) of the forward pass; None when the image size is unknown before reading data."""


@attrs.frozen
class CheckReport:
    """A validated recipe, its dataset and one :class:`StageCheck` per stage."""

    recipe: Recipe
    dataset: ImageDataset
    stages: list[StageCheck]


def check_recipe(
    path: Path, overrides: Sequence[str], registry: Registry, unset: Sequence[str] = ()
) -> CheckReport:
    """Validate the recipe at ``path`` (without the ``unset`` keys, with the ``overrides``)
    and build and probe every stage's components (without pretrained weights and with one
    step per epoch); CvkitError on the first failure."""
    recipe = load_recipe(path, overrides, registry=registry, unset=unset)
    dataset = build_dataset(recipe, registry)
    stages: list[tuple[StageSettings | None, Recipe]] = [
        (s, recipe.stage_recipe(s)) for s in recipe.stages
    ] or [(None, recipe)]
    return CheckReport(
        recipe,
        dataset,
        [
            _check_stage(settings, index, stage, registry, dataset)
            for index, (settings, stage) in enumerate(stages)
        ],
    )


def _check_stage(
    settings: StageSettings | None,
    index: int,
    recipe: Recipe,
    registry: Registry,
    dataset: ImageDataset,
) -> StageCheck:
    built = build_components(recipe, registry, dataset, steps_per_epoch=1, load_weights=False)
    if settings is not None and isinstance(settings.init, dict):
        check_init_modules(built.model, settings.init, f"stages[{index}].init")
    registry.build(recipe.procedure)
    check_order(built.train_augment, "augment.train")
    check_order(built.eval_augment, "augment.eval")
    for spec in _attention_specs(recipe.model.params):
        check_attention_block(spec, registry)
    return StageCheck(
        name=settings.name if settings is not None else "",
        model=recipe.model.key,
        params=trainable_parameters(built.model),
        total_params=sum(p.numel() for p in built.model.parameters()),
        input_shape=forward_pass(recipe, built.model, dataset),
    )


def _attention_specs(params: Mapping[str, Any]) -> Iterator[ComponentSpec]:
    """Every attention table nested in a component's parameters."""
    for value in params.values():
        values = value if isinstance(value, list | tuple) else [value]
        for item in values:
            if isinstance(item, ComponentSpec):
                if item.kind == "attention":
                    yield item
                yield from _attention_specs(item.params)


def check_attention_block(spec: ComponentSpec, registry: Registry) -> None:
    """The attention contract of ``spec``'s block on one input of :data:`ATTENTION_PROBE`."""
    x = torch.randn(ATTENTION_PROBE, generator=torch.Generator().manual_seed(0))
    where = f"{spec.where}: " if spec.where else ""
    try:
        attention_case(registry.bind(spec), x)
    except AssertionError as error:
        raise CvkitError(f"{where}{spec.key} breaks the attention contract: {error}") from None
    except CvkitError:
        raise
    except Exception as error:
        raise CvkitError(
            f"{where}{spec.key} fails on an input of shape {ATTENTION_PROBE}: "
            f"{type(error).__name__}: {error}"
        ) from None


def forward_pass(recipe: Recipe, model: nn.Module, dataset: ImageDataset) -> tuple[int, ...] | None:
    """Run 2 random images through ``model`` in eval mode at the recipe's input size
    (``data.image_size``, else the dataset's ``image_size``) and check the logits' shape;
    returns the input's shape, or None when the size is unknown before reading data."""
    size = recipe.data.input_size or capability(dataset, "image_size")
    if size is None:
        return None
    shape = (2, dataset.in_channels, *size)
    where = f"{recipe.model.where}: " if recipe.model.where else ""
    described = f"a forward pass of {'x'.join(map(str, shape))} images"
    # the input in float32, and its activations: a few dozen times more in a CNN
    check_fits(ACTIVATION_FACTOR * 4 * math.prod(shape), f"{where}{described}")
    try:
        with torch.no_grad():
            logits = model.eval()(torch.rand(shape))
    except Exception as error:
        raise CvkitError(
            f"{where}{recipe.model.key}: {described} failed: {type(error).__name__}: {error}"
        ) from None
    expected = (2, dataset.num_classes)
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != expected:
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise CvkitError(f"{where}{recipe.model.key}: {described} gave {got}, expected {expected}")
    return shape
