"""Build every component of a recipe, in dependency order, without training."""

from __future__ import annotations

from typing import Any

import attrs
from torch import nn

from cvkit.data import ImageDataset
from cvkit.errors import ComponentBuildError
from cvkit.recipe import Recipe
from cvkit.registry import Registry


@attrs.frozen(eq=False)
class Components:
    """The built components of a recipe."""

    dataset: ImageDataset
    model: nn.Module
    optimizer: Any
    scheduler: Any
    loss: nn.Module
    train_augment: list[nn.Module]
    eval_augment: list[nn.Module]
    callbacks: list[Any]


def trainable_parameters(model: nn.Module) -> int:
    """Number of parameters with ``requires_grad`` (shared tensors counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def build_components(recipe: Recipe, registry: Registry, *, steps_per_epoch: int) -> Components:
    """Dataset, model (on CPU), optimizer, scheduler, loss, augmentations and callbacks.

    ``steps_per_epoch`` sizes per-step schedules. Raises CvkitError subclasses for bad input.
    """
    dataset = registry.build(recipe.data.dataset)
    for attribute in ("num_classes", "in_channels", "splits"):
        if not hasattr(dataset, attribute):
            raise ComponentBuildError(
                f"{recipe.data.dataset.key} returned an object without {attribute!r}"
            )
    model = registry.build(
        recipe.model, num_classes=dataset.num_classes, in_channels=dataset.in_channels
    )
    optimizer = registry.build(recipe.optimizer, [p for p in model.parameters() if p.requires_grad])
    scheduler = (
        registry.build(
            recipe.scheduler,
            optimizer,
            epochs=recipe.experiment.epochs,
            steps_per_epoch=steps_per_epoch,
        )
        if recipe.scheduler is not None
        else None
    )
    return Components(
        dataset=dataset,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        loss=registry.build(recipe.loss),
        train_augment=[registry.build(spec) for spec in recipe.augment.train],
        eval_augment=[registry.build(spec) for spec in recipe.augment.eval],
        callbacks=[registry.build(spec) for spec in recipe.callbacks],
    )
