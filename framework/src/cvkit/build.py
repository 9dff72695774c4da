"""Build a recipe's components, in dependency order, without training."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import torch
from torch import nn

from cvkit.components import ComponentSpec
from cvkit.data import ImageDataset
from cvkit.errors import ComponentBuildError, CvkitError
from cvkit.freezing import apply_freezing
from cvkit.recipe import Recipe
from cvkit.registry import Registry


@attrs.frozen(eq=False)
class Components:
    """The built components of a recipe (the dataset is built first, see :func:`build_dataset`)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    loss: nn.Module
    train_augment: list[nn.Module]
    eval_augment: list[nn.Module]
    callbacks: list[Any]


def trainable_parameters(model: nn.Module) -> int:
    """Number of parameters with ``requires_grad`` (shared tensors counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def build_dataset(recipe: Recipe, registry: Registry) -> ImageDataset:
    """The recipe's dataset object (cheap: no data is read yet)."""
    dataset = registry.build(recipe.data.dataset)
    for attribute in ("num_classes", "in_channels", "splits", "load"):
        if not hasattr(dataset, attribute):
            raise ComponentBuildError(
                f"{recipe.data.dataset.key} returned an object without {attribute!r}"
            )
    return dataset


def build_model(
    recipe: Recipe,
    registry: Registry,
    *,
    num_classes: int,
    in_channels: int,
    load_weights: bool = True,
) -> nn.Module:
    """The recipe's model for ``num_classes`` classes and ``in_channels`` input channels, with
    the parameters that ``model.freeze`` / ``model.trainable`` select frozen / trainable.
    ``load_weights=False``: the architecture only, no pretrained weights read or downloaded."""
    model = registry.build(
        recipe.model, num_classes=num_classes, in_channels=in_channels, load_weights=load_weights
    )
    params = recipe.model.params
    where = recipe.model.where or "model"
    apply_freezing(model, params.get("freeze", ()), params.get("trainable", ()), where)
    return model


def build_components(
    recipe: Recipe,
    registry: Registry,
    dataset: ImageDataset,
    *,
    steps_per_epoch: int,
    load_weights: bool = True,
    model: nn.Module | None = None,
) -> Components:
    """Model, optimizer, scheduler (sized by ``steps_per_epoch``), loss, augmentations, callbacks.

    ``load_weights=False`` builds the model without its pretrained weights (see build_model).
    ``model``: use this module instead of building the recipe's (``model.freeze`` and
    ``model.trainable`` are applied to it)."""
    if model is None:
        model = build_model(
            recipe,
            registry,
            num_classes=dataset.num_classes,
            in_channels=dataset.in_channels,
            load_weights=load_weights,
        )
    else:
        params = recipe.model.params
        where = recipe.model.where or "model"
        apply_freezing(model, params.get("freeze", ()), params.get("trainable", ()), where)
    check_parameter_budget(recipe, model)
    # Every parameter: frozen ones get no gradient, so the optimizer skips them until a
    # callback (unfreeze) makes them trainable.
    optimizer = registry.build(recipe.optimizer, list(model.parameters()))
    if getattr(optimizer, "requires_closure", False) and recipe.experiment.precision == "fp16":
        raise CvkitError(
            f"{recipe.optimizer.key} steps with a closure, which fp16 gradient scaling does not support; "
            "use experiment.precision = 'bf16' or 'fp32'"
        )
    scheduler = None
    if recipe.scheduler is not None:
        scheduler = registry.build(
            recipe.scheduler,
            optimizer,
            epochs=recipe.experiment.epochs,
            steps_per_epoch=steps_per_epoch,
        )
    eval_augment = build_augmentations(recipe.augment.eval, registry, dataset.num_classes)
    for spec, augmentation in zip(recipe.augment.eval, eval_augment, strict=True):
        if getattr(augmentation, "soft_targets", False):
            where = f"{spec.where}: " if spec.where else ""
            raise CvkitError(
                f"{where}augment.eval: {spec.key} mixes labels, which only training batches may do; "
                "move it to augment.train"
            )
    return Components(
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        loss=registry.build(recipe.loss),
        train_augment=build_augmentations(recipe.augment.train, registry, dataset.num_classes),
        eval_augment=eval_augment,
        callbacks=[registry.build(spec) for spec in recipe.callbacks],
    )


def build_augmentations(
    specs: Sequence[ComponentSpec], registry: Registry, num_classes: int
) -> list[nn.Module]:
    """The augmentations of one list; those that mix labels learn ``num_classes``."""
    return [registry.build(spec, num_classes=num_classes) for spec in specs]


def check_parameter_budget(recipe: Recipe, model: nn.Module) -> None:
    """Raise if the model has more trainable parameters than its ``max_params``."""
    budget = recipe.model.params.get("max_params")
    count = trainable_parameters(model)
    if budget is not None and count > budget:
        where = f"{recipe.model.where}: " if recipe.model.where else ""
        raise CvkitError(
            f"{where}{recipe.model.key} has {count:,} trainable parameters, more than "
            f"model.max_params = {budget:,}"
        )


def resolve_device(name: str) -> torch.device:
    """``auto``: CUDA when available, else CPU; otherwise the named device, which must exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CvkitError(
            f"experiment.device = {name!r} but CUDA is not available here; use 'auto' or 'cpu'"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise CvkitError(
            f"experiment.device = {name!r} but MPS is not available here; use 'auto' or 'cpu'"
        )
    return device
