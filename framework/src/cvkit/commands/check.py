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
from cvkit.engine.agreement import Agreement, check_agreement, describe_block
from cvkit.engine.build import (
    BuiltComponents,
    build_components,
    build_dataset,
    trainable_parameters,
)
from cvkit.engine.contracts import ATTENTION_PROBE, ComponentRaised, attention_case
from cvkit.engine.stage import check_init_modules
from cvkit.errors import CvkitError
from cvkit.hookspecs import capability
from cvkit.recipe.loading import load_recipe_noting
from cvkit.recipe.schema import Recipe, StageSettings
from cvkit.registry.registry import ComponentBuilder, Registry
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
    agreement = forward_pass(recipe, built, dataset)
    if agreement is not None:  # each block at the input the model gives it
        probed = set()
        for block in agreement.attention:
            key = (id(block.built.builder), block.shape[1:])  # each builder once per input
            if key not in probed:
                probed.add(key)
                check_attention_block(
                    block.built.builder, block.shape[1:], describe_block(recipe, block)
                )
    else:  # the image size is unknown before reading data: a probe within its constraints
        for spec in _attention_specs(recipe.model.params):
            builder = registry.bind(spec)
            where = f"{spec.where}: {spec.key}" if spec.where else spec.key
            check_attention_block(builder, builder.constraints.probe(ATTENTION_PROBE)[1:], where)
    return StageCheck(
        name=settings.name if settings is not None else "",
        model=recipe.model.key,
        params=trainable_parameters(built.model),
        total_params=sum(p.numel() for p in built.model.parameters()),
        input_shape=agreement.input_shape if agreement is not None else None,
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


def check_attention_block(builder: ComponentBuilder, shape: tuple[int, ...], where: str) -> None:
    """The attention contract of ``builder``'s block on one input of 4 images of ``shape``
    (C, H, W); CvkitError naming ``where`` (the block), the input, what failed (an exception
    the block raised: its type and text) and its declared constraints."""
    x = torch.randn((4, *shape), generator=torch.Generator().manual_seed(0))
    declared = builder.constraints
    constraints = f" (it declares {declared})" if declared.declared else ""
    try:
        attention_case(builder, x, parameters_move=False)
    except AssertionError as error:
        raise CvkitError(f"{where} breaks the attention contract: {error}{constraints}") from None
    except ComponentRaised as error:
        raise CvkitError(
            f"{where} fails on an input {tuple(x.shape)}: {error}{constraints}"
        ) from None


def forward_pass(
    recipe: Recipe, components: BuiltComponents, dataset: ImageDataset
) -> Agreement | None:
    """Check that the recipe agrees with its data (:func:`cvkit.engine.agreement.check_agreement`)
    on 2 random images of the dataset's size (its ``image_size``, else ``data.image_size``);
    returns what it saw (the evaluation batches' shape, the attention blocks' inputs), or
    None when the size is unknown before reading data."""
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
