"""Checkpoint files: what they hold, and loading them with clear errors.

A checkpoint is a dict of tensors, numbers, strings and containers, so it loads with
``torch.load(path, weights_only=True)``. Keys: ``format``, ``cvkit_version``, ``recipe``
(the resolved recipe as TOML text), ``classes``, ``in_channels``, ``image_size``, ``model``
(state dict), ``ema`` (or None), ``epoch``, and for resuming ``optimizer``, ``scheduler``,
``scaler``, ``loader``, ``callbacks``, ``rng``, ``batch``, ``step``, ``running``,
``metrics``, ``history``. A model checkpoint (a snapshot) holds only the keys before
``optimizer`` (see ``TrainingLoop.model_checkpoint``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from cvkit.errors import CheckpointError
from cvkit.files import load_tensors

FORMAT = 1


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint at ``path`` (weights_only); CheckpointError if it is missing or foreign."""
    checkpoint = load_tensors(path, "checkpoint", CheckpointError)
    if not isinstance(checkpoint, dict) or "model" not in checkpoint or "recipe" not in checkpoint:
        raise CheckpointError(f"{path}: not a cvkit checkpoint (no model weights and recipe)")
    return checkpoint


def checkpoint_weights(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The model weights of a checkpoint: its EMA weights when it kept an EMA."""
    if checkpoint.get("ema") is None:
        return checkpoint["model"]
    return {
        k.removeprefix("module."): v
        for k, v in checkpoint["ema"].items()
        if k.startswith("module.")
    }


def load_model_weights(
    model: nn.Module, weights: dict[str, torch.Tensor], source: Path | str
) -> None:
    """Load ``weights`` into ``model``, or say which keys and shapes differ."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    shapes = [
        f"{k} {tuple(weights[k].shape)} vs {tuple(expected[k].shape)}"
        for k in sorted(set(expected) & set(weights))
        if weights[k].shape != expected[k].shape
    ]
    if missing or unexpected or shapes:
        parts = []
        for label, items in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("shape differs", shapes),
        ):
            if items:
                shown = ", ".join(items[:5]) + (
                    f", ... ({len(items)} in all)" if len(items) > 5 else ""
                )
                parts.append(f"{label}: {shown}")
        raise CheckpointError(
            f"{source}: weights do not fit {type(model).__name__} ({'; '.join(parts)})"
        )
    model.load_state_dict(weights)
