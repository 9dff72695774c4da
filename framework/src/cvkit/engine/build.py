"""Build a recipe's components, in dependency order, without training."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import torch
from torch import nn

from cvkit.data.tensors import ImageDataset
from cvkit.engine.param_groups import GroupedOptimizer, assign_parameters, parse_groups
from cvkit.errors import ComponentBuildError, CvkitError
from cvkit.hookspecs import capability
from cvkit.models.freezing import apply_freezing
from cvkit.recipe.schema import Recipe
from cvkit.registry.registry import Registry
from cvkit.registry.specs import ComponentSpec


@attrs.frozen(eq=False)
class BuiltComponents:
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
    freeze_as_recipe_says(recipe, model)
    return model


def freeze_as_recipe_says(recipe: Recipe, model: nn.Module) -> None:
    """Apply the model table's ``freeze`` and ``trainable`` patterns to ``model``."""
    params = recipe.model.params
    where = recipe.model.where or "model"
    apply_freezing(model, params.get("freeze", ()), params.get("trainable", ()), where)


def build_components(
    recipe: Recipe,
    registry: Registry,
    dataset: ImageDataset,
    *,
    steps_per_epoch: int,
    load_weights: bool = True,
    model: nn.Module | None = None,
) -> BuiltComponents:
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
        freeze_as_recipe_says(recipe, model)
    check_parameter_budget(recipe, model)
    optimizer = build_optimizer(recipe, registry, model)
    scheduler = build_scheduler(recipe, registry, optimizer, steps_per_epoch)
    eval_augment = build_eval_augmentations(recipe, registry, dataset.num_classes)
    return BuiltComponents(
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        loss=registry.build(recipe.loss),
        train_augment=build_augmentations(recipe.augment.train, registry, dataset.num_classes),
        eval_augment=eval_augment,
        callbacks=[registry.build(spec) for spec in recipe.callbacks],
    )


def build_optimizer(recipe: Recipe, registry: Registry, model: nn.Module) -> torch.optim.Optimizer:
    """The recipe's optimizer over every parameter of ``model``: frozen ones get no gradient,
    so it skips them until a callback (unfreeze) makes them trainable. An optimizer that
    steps with a closure is refused with fp16 precision (gradient scaling cannot do that)."""
    optimizer: torch.optim.Optimizer = (
        grouped_optimizer(recipe.optimizer, registry, model)
        if recipe.optimizer.params.get("groups")
        else registry.build(recipe.optimizer, list(model.parameters()))
    )
    if capability(optimizer, "requires_closure") and recipe.experiment.precision == "fp16":
        raise CvkitError(
            f"{recipe.optimizer.key} steps with a closure, which fp16 gradient scaling does not support; "
            "use experiment.precision = 'bf16' or 'fp32'"
        )
    return optimizer


def grouped_optimizer(
    spec: ComponentSpec, registry: Registry, model: nn.Module
) -> torch.optim.Optimizer:
    """The optimizer of ``spec`` with its ``groups`` (see :mod:`cvkit.engine.param_groups`):
    one optimizer over the default group and the groups without their own, plus one per
    group that names its own optimizer, stepped together as a GroupedOptimizer."""
    where = f"{spec.where}: optimizer.groups" if spec.where else "optimizer.groups"
    rules = parse_groups(spec.params["groups"], where)
    chosen, rest = assign_parameters(model, rules, where)
    shared = [{"params": rest, "name": "default"}] if rest else []
    own = []
    for i, (rule, params) in enumerate(zip(rules, chosen, strict=True)):
        target = spec
        if rule.optimizer is not None:
            target = registry.spec("optimizer", rule.optimizer, key=f"{where}[{i}].optimizer")
            if target.params.get("groups"):
                raise CvkitError(f"{where}[{i}].optimizer: a group's optimizer has no groups")
        known = {p.name for p in registry.get("optimizer", target.name).params} - {"groups"}
        unknown = sorted(set(rule.options) - known)
        if unknown:
            raise CvkitError(
                f"{where}[{i}] ({rule.name}): {target.key} has no parameter "
                f"{', '.join(unknown)}; its parameters: {', '.join(sorted(known))}"
            )
        group = {"params": params, "name": rule.name, **rule.options}
        if rule.optimizer is None:
            shared.append(group)
        else:
            own.append(registry.build(target, [group]))
    optimizers = ([registry.build(spec, shared)] if shared else []) + own
    for optimizer in optimizers:
        if capability(optimizer, "requires_closure"):
            raise CvkitError(
                f"{where}: {type(optimizer).__name__} steps with a closure, which cannot share a "
                "step with other optimizers"
            )
    return optimizers[0] if len(optimizers) == 1 else GroupedOptimizer(optimizers)


def build_scheduler(
    recipe: Recipe, registry: Registry, optimizer: torch.optim.Optimizer, steps_per_epoch: int
) -> Any:
    """The recipe's learning-rate schedule over ``optimizer``, or None without one."""
    if recipe.scheduler is None:
        return None
    return registry.build(
        recipe.scheduler,
        optimizer,
        epochs=recipe.experiment.epochs,
        steps_per_epoch=steps_per_epoch,
    )


def build_augmentations(
    specs: Sequence[ComponentSpec], registry: Registry, num_classes: int
) -> list[nn.Module]:
    """The augmentations of one list; those that mix labels learn ``num_classes``."""
    return [registry.build(spec, num_classes=num_classes) for spec in specs]


def build_eval_augmentations(
    recipe: Recipe, registry: Registry, num_classes: int
) -> list[nn.Module]:
    """``augment.eval``; an augmentation that mixes labels is refused there."""
    augmentations = build_augmentations(recipe.augment.eval, registry, num_classes)
    for spec, augmentation in zip(recipe.augment.eval, augmentations, strict=True):
        if capability(augmentation, "soft_targets"):
            where = f"{spec.where}: " if spec.where else ""
            raise CvkitError(
                f"{where}augment.eval: {spec.key} mixes labels, which only training batches may do; "
                "move it to augment.train"
            )
    return augmentations


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
