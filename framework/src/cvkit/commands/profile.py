"""What a recipe's model, or a trained one, costs on a device: the figures of
:mod:`cvkit.engine.profiling` for one model (the ``cvkit profile`` command's content)."""

from __future__ import annotations

import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cvkit.engine.agreement import evaluation_input_shape
from cvkit.engine.build import build_dataset, build_eval_augmentations, build_model
from cvkit.engine.device import resolve_device
from cvkit.engine.profiling import (
    forward_flops,
    latency_ms,
    parameter_counts,
    peak_memory_megabytes,
    state_dict_megabytes,
    throughput,
    training_step_flops,
)
from cvkit.engine.stage import model_input_shape
from cvkit.engine.trained_model import restore
from cvkit.errors import CvkitError
from cvkit.hookspecs import capability
from cvkit.recipe.loading import load_recipe
from cvkit.registry.loading import default_registry
from cvkit.registry.registry import Registry


def profile_model(
    source: Path,
    *,
    overrides: Sequence[str] = (),
    batch_size: int = 64,
    device: str = "cpu",
    repeats: int = 100,
    threads: int | None = None,
    image_size: Sequence[int] | None = None,
    registry: Registry | None = None,
) -> dict[str, Any]:
    """The costs of the model of ``source``: a recipe file (its model with initial weights,
    ``overrides`` applied) or a run directory or checkpoint (the trained model).

    Returns parameters, FLOPs per image (forward; forward and backward of a training step),
    weight size in MB, batch-1 latency in ms, batch-``batch_size`` inference and training
    throughput in images/s and peak memory in MB, on ``device`` with ``threads`` CPU
    threads. The input is the shape the evaluation augmentations make (a run's, from its
    checkpoint); ``image_size`` [H, W] sets the model's input size instead (needed when the
    recipe's dataset does not know its size before reading its files)."""
    registry = registry or default_registry()
    if batch_size < 2:
        raise CvkitError(f"--batch {batch_size}: expected at least 2 (batch norm trains on >= 2)")
    model, shape, num_classes, described = _model_of(source, overrides, image_size, registry)
    target = resolve_device(device)
    model = model.to(target).eval()
    one = torch.rand(1, *shape, device=target)
    batch = torch.rand(batch_size, *shape, device=target)
    sizes = state_dict_megabytes(model)
    return described | {
        "device": str(target),
        "threads": threads or torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "input_shape": list(shape),
        "batch_size": batch_size,
        "parameters": parameter_counts(model),
        "flops_per_image": {
            "forward": forward_flops(model, one),
            "training_step": training_step_flops(model, batch[:2], num_classes) // 2,
        },
        "size_mb": sizes,
        "latency_ms": latency_ms(model, one, repeats=repeats, threads=threads),
        "images_per_second": throughput(
            model, batch, num_classes, repeats=max(3, repeats // 10), threads=threads
        ),
        "peak_memory_mb": peak_memory_megabytes(model, batch, num_classes),
    }


def _model_of(
    source: Path,
    overrides: Sequence[str],
    image_size: Sequence[int] | None,
    registry: Registry,
) -> tuple[nn.Module, tuple[int, ...], int, dict[str, Any]]:
    """The model, its input shape (C, H, W), its number of classes, and what it is."""
    if source.suffix == ".toml" and source.is_file():
        recipe = load_recipe(source, overrides, registry=registry)
        dataset = build_dataset(recipe, registry)
        model = build_model(
            recipe,
            registry,
            num_classes=dataset.num_classes,
            in_channels=dataset.in_channels,
            load_weights=False,
        )
        size = recipe.data.input_size or capability(dataset, "image_size")
        if image_size:
            shape: tuple[int, ...] = (dataset.in_channels, *image_size)
        elif size is None:
            raise CvkitError(
                f"{source}: the dataset's image size is unknown before reading its files; "
                "pass --image-size H W (or set data.image_size)"
            )
        else:  # as the evaluation augmentations make it (a resize changes it)
            eval_augment = build_eval_augmentations(recipe, registry, dataset.num_classes)
            shape = evaluation_input_shape(recipe, eval_augment, dataset.in_channels, size)
        return model, shape, dataset.num_classes, {"recipe": str(source), "model": recipe.model.key}
    if not source.exists():
        raise CvkitError(f"{source}: no such recipe, run directory or checkpoint")
    trained = restore(source, registry, overrides)
    checkpoint = trained.checkpoint
    shape = (
        (checkpoint["in_channels"], *image_size)
        if image_size
        else tuple(model_input_shape(checkpoint, trained.recipe))
    )
    described = {
        "checkpoint": str(trained.path),
        "model": trained.recipe.model.key,
        "checkpoint_mb": trained.path.stat().st_size / 1e6,
    }
    return trained.model, shape, len(trained.classes), described
