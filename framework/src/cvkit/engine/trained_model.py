"""Trained models: checkpoints found from run directories, and models rebuilt from a
checkpoint, which carries its recipe."""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import torch
from torch import nn

from cvkit.data.batches import BatchLoader, evaluation_loader
from cvkit.data.splits import load_splits
from cvkit.engine.build import build_augmentations, build_dataset, build_model
from cvkit.engine.checkpoint import checkpoint_weights, load_checkpoint, load_model_weights
from cvkit.errors import CheckpointError
from cvkit.recipe.loading import validate_recipe
from cvkit.recipe.overrides import apply_override
from cvkit.recipe.reading import parse_recipe_text
from cvkit.recipe.schema import Recipe
from cvkit.registry.loading import default_registry
from cvkit.registry.registry import Registry


def checkpoint_path(source: Path, prefer: str = "best") -> Path:
    """``source`` itself, or for a run directory its best.pt (else last.pt); for the run
    directory of a multi-stage recipe, its last stage's."""
    if not source.is_dir():
        return source
    folder = source / "checkpoints"
    stages = _stage_names(source / "recipe.toml")
    if stages and not folder.is_dir():
        folder = source / "stages" / stages[-1] / "checkpoints"
    for name in (f"{prefer}.pt", "last.pt", "best.pt"):
        if (folder / name).is_file():
            return folder / name
    raise CheckpointError(f"{source}: no checkpoints/best.pt or checkpoints/last.pt")


def _stage_names(recipe_file: Path) -> list[str]:
    """The stage names of a run directory's resolved recipe, in order ([] for none)."""
    try:
        data = tomllib.loads(recipe_file.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return []
    return [stage["name"] for stage in data.get("stages", []) if isinstance(stage, dict)]


def checkpoint_recipe(
    checkpoint: dict[str, Any], path: Path, overrides: Sequence[str], registry: Registry
) -> Recipe:
    """The recipe stored in ``checkpoint``, with ``overrides`` applied."""
    raw = parse_recipe_text(checkpoint["recipe"], f"{path} (recipe)")
    for assignment in overrides:
        apply_override(raw, assignment)
    return validate_recipe(raw, registry)


def model_from_checkpoint(
    checkpoint: dict[str, Any], path: Path, recipe: Recipe, registry: Registry
) -> nn.Module:
    """The recipe's model with the checkpoint's weights (its EMA weights, when it kept an EMA)."""
    model = build_model(
        recipe,
        registry,
        num_classes=len(checkpoint["classes"]),
        in_channels=checkpoint["in_channels"],
        load_weights=False,  # the checkpoint has them
    )
    load_model_weights(model, checkpoint_weights(checkpoint), path)
    return model


@attrs.frozen(eq=False)
class TrainedModel:
    """A model rebuilt from a checkpoint, with the checkpoint and the recipe it carries."""

    path: Path
    checkpoint: dict[str, Any]
    recipe: Recipe
    model: nn.Module

    @property
    def classes(self) -> list[str]:
        """Class names, index i naming output i."""
        return list(self.checkpoint["classes"])


def restore(source: Path, registry: Registry, overrides: Sequence[str] = ()) -> TrainedModel:
    """The trained model of ``source``, a run directory (its best checkpoint, else its last)
    or a checkpoint file, built by ``registry`` from the checkpoint's recipe (with
    ``overrides`` applied) and loaded with its weights (EMA weights when it kept an EMA)."""
    path = checkpoint_path(source)
    checkpoint = load_checkpoint(path)
    recipe = checkpoint_recipe(checkpoint, path, overrides, registry)
    return TrainedModel(
        path, checkpoint, recipe, model_from_checkpoint(checkpoint, path, recipe, registry)
    )


def load_trained_model(source: Path, registry: Registry | None = None) -> nn.Module:
    """The trained model of ``source`` (a run directory or a checkpoint file, see
    :func:`restore`), ready to use: in eval mode, on the CPU. ``registry`` builds it (a
    factory declaring ``registry`` receives the one building it); default: the registry of
    the installed plugins."""
    return restore(source, registry or default_registry()).model.eval()


def evaluation_batches(
    trained: TrainedModel,
    split: str = "val",
    *,
    registry: Registry | None = None,
    device: torch.device | None = None,
) -> BatchLoader | None:
    """Batches of (images (N, C, H, W) float, labels (N,) int64) of ``split`` ('val' or
    'test') of the trained model's data, as its recipe splits and evaluates them (the same
    validation images as in training, through its evaluation augmentations), on ``device``
    (default: the CPU); None when the recipe has no such split."""
    if split not in ("val", "test"):
        raise ValueError(f"split {split!r}: expected 'val' or 'test'")
    registry = registry or default_registry()
    recipe = trained.recipe
    splits = load_splits(recipe.data, build_dataset(recipe, registry))
    images = splits.val if split == "val" else splits.test
    if images is None:
        return None
    augment = build_augmentations(recipe.augment.eval, registry, len(trained.classes))
    return evaluation_loader(
        images, recipe.data, device=device or torch.device("cpu"), augmentations=augment
    )
