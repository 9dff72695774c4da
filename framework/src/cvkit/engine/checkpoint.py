"""Checkpoint files: what they hold, and loading them with clear errors.

A checkpoint is a dict of tensors, numbers, strings and containers, so it loads with
``torch.load(path, weights_only=True)``. Keys: ``format``, ``cvkit_version``, ``recipe``
(the resolved recipe as TOML text), ``classes``, ``in_channels``, ``image_size``, ``model``
(state dict), ``ema`` (or None), ``epoch``, and for resuming ``optimizer``, ``scheduler``,
``scaler``, ``loader``, ``callbacks``, ``rng``, ``batch``, ``step``, ``running``,
``metrics``, ``history``, ``stopped``. A model checkpoint (a snapshot) holds only the keys
before ``optimizer`` (see ``TrainingLoop.model_checkpoint``). Every checkpoint carries a
``checksum`` of its content (:func:`state_digest`); loading verifies it, so a damaged file
is refused instead of resuming from flipped bits.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cvkit.errors import CheckpointError
from cvkit.files import load_tensors, save_atomic

FORMAT = 1


def state_digest(state: Any) -> str:
    """SHA-256 of a checkpoint's content (tensors by dtype, shape and bytes; other values by
    their repr), in the order the checkpoint holds them; the ``checksum`` key is left out."""
    digest = hashlib.sha256()

    def feed(value: Any) -> None:
        if isinstance(value, torch.Tensor):
            tensor = value.detach().cpu().contiguous()
            digest.update(f"T{tensor.dtype}{tuple(tensor.shape)}".encode())
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(value, dict):
            digest.update(b"{")
            for key, item in value.items():
                if key != "checksum":
                    digest.update(repr(key).encode())
                    feed(item)
            digest.update(b"}")
        elif isinstance(value, list | tuple):
            digest.update(b"[")
            for item in value:
                feed(item)
            digest.update(b"]")
        else:
            digest.update(repr(value).encode())

    feed(state)
    return digest.hexdigest()


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write ``state`` with its ``checksum`` to ``path`` atomically."""
    save_atomic({**state, "checksum": state_digest(state)}, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint at ``path`` (weights_only); CheckpointError if it is missing, foreign or
    damaged (its checksum, when it has one, does not match)."""
    checkpoint = load_tensors(path, "checkpoint", CheckpointError)
    if not isinstance(checkpoint, dict) or "model" not in checkpoint or "recipe" not in checkpoint:
        raise CheckpointError(f"{path}: not a cvkit checkpoint (no model weights and recipe)")
    if "checksum" in checkpoint and checkpoint["checksum"] != state_digest(checkpoint):
        raise CheckpointError(
            f"{path}: damaged checkpoint: its content does not match its checksum"
        )
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
