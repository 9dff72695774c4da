"""``cvkit check``: validate a recipe and build every component of every stage, then run one
small forward pass of the model and the attention contract of each attention block, so a
component that breaks its contract fails here rather than hours into a run."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import torch

from cvkit.data.batches import check_order
from cvkit.data.tensors import ImageDataset
from cvkit.engine.agreement import check_agreement
from cvkit.engine.build import (
    BuiltComponents,
    build_components,
    build_dataset,
    trainable_parameters,
)
from cvkit.engine.contracts import ATTENTION_PROBE, attention_case
from cvkit.engine.stage import check_init_modules
from cvkit.errors import CvkitError
from cvkit.hookspecs import capability
from cvkit.recipe.loading import load_recipe_noting
from cvkit.recipe.schema import Recipe, StageSettings
from cvkit.registry.registry import Registry
from cvkit.registry.specs import ComponentSpec


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
    """A validated recipe, its dataset, one :class:`StageCheck` per stage and the notes of
    its loading (keys a ``--set`` of a component's name dropped)."""

    recipe: Recipe
    dataset: ImageDataset
    stages: list[StageCheck]
    notes: tuple[str, ...] = ()


def check_recipe(
    path: Path, overrides: Sequence[str], registry: Registry, unset: Sequence[str] = ()
) -> CheckReport:
    """Validate the recipe at ``path`` (without the ``unset`` keys, with the ``overrides``)
    and build and probe every stage's components (without pretrained weights and with one
    step per epoch); CvkitError on the first failure."""
    recipe, notes = load_recipe_noting(path, overrides, registry=registry, unset=unset)
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
        tuple(notes),
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
        input_shape=forward_pass(recipe, built, dataset),
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


def forward_pass(
    recipe: Recipe, components: BuiltComponents, dataset: ImageDataset
) -> tuple[int, ...] | None:
    """Check that the recipe agrees with its data (:func:`cvkit.engine.agreement.check_agreement`)
    on 2 random images of the dataset's size (its ``image_size``, else ``data.image_size``);
    returns the evaluation batches' shape, or None when the size is unknown before reading
    data."""
    size = capability(dataset, "image_size") or recipe.data.input_size
    if size is None:
        return None
    shape = (2, dataset.in_channels, *size)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator)
    return check_agreement(
        recipe,
        components.model,
        components.loss,
        {"augment.train": components.train_augment, "augment.eval": components.eval_augment},
        images,
        dataset.num_classes,
    )
