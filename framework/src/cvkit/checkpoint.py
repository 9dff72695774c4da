"""Checkpoint files: what they hold, random-generator states, and loading with clear errors.

A checkpoint is a dict of tensors, numbers, strings and containers, so it loads with
``torch.load(path, weights_only=True)``. Keys: ``format``, ``cvkit_version``, ``recipe``
(the resolved recipe as TOML text), ``classes``, ``in_channels``, ``image_size``, ``model``
(state dict), and for resuming ``optimizer``, ``scheduler``, ``scaler``, ``ema``, ``loader``,
``callbacks``, ``rng``, ``epoch``, ``batch``, ``step``, ``running``, ``metrics``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cvkit.errors import CvkitError
from cvkit.files import load_tensors

FORMAT = 1


class CheckpointError(CvkitError):
    """A checkpoint that cannot be read or does not fit the model."""


def rng_state() -> dict[str, Any]:
    """States of Python's, NumPy's and torch's (CPU and CUDA) global generators."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    random.setstate(_tuples(state["python"]))
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuples(value: Any) -> Any:
    """random.setstate needs tuples where a round trip may have produced lists."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list | tuple) else value


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
