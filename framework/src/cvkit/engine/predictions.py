"""Per-image predictions of a final evaluation, kept beside eval.json as ``predictions.npz``,
so that two runs can be tested on the same images (``cvkit compare --test``) and a study
can pool per-image evidence.

For each evaluated split ``S`` (``val``, ``test``) the file holds ``S_predicted`` (N,) int64,
the predicted class; ``S_true_probability`` (N,) float32, the softmax probability of the
true class; ``S_labels`` (N,) int64, the true classes; images in the split's order.
eval.json's ``predictions`` block names the file and gives each split's image count and
``split_hash``: a SHA-256 of what selects the split's images (the dataset table but its
folders, the split, ``data.val_split`` and ``data.split_seed`` for the validation split) and
of their labels in order, so runs on different images are not paired by accident."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cvkit.files import json_text, write_bytes_atomic
from cvkit.recipe.schema import Recipe

FILE = "predictions.npz"


def split_hash(recipe: Recipe, split: str, labels: torch.Tensor) -> str:
    """The identity of the images of ``split`` in a run of ``recipe`` with ``labels``
    (N,): a SHA-256 hex digest (see the module's docstring)."""
    dataset = recipe.data.dataset
    params = {  # folders differ between machines holding the same data: the labels check it
        key: value for key, value in dataset.params.items() if not isinstance(value, Path)
    }
    selection: dict[str, Any] = {
        "dataset": {"name": dataset.name, "params": params},
        "split": split,
    }
    if split == "val":
        selection |= {"val_split": recipe.data.val_split, "split_seed": recipe.data.split_seed}
    digest = hashlib.sha256(json_text(selection, indent=None).encode("utf-8"))
    digest.update(labels.to(torch.int64).contiguous().numpy().tobytes())
    return digest.hexdigest()


def write_predictions(
    run_dir: Path,
    outputs: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
    recipe: Recipe,
) -> dict[str, Any]:
    """Write ``run_dir/predictions.npz`` from each split's (logits (N, K), labels (N,)) and
    return eval.json's ``predictions`` block: the file name and, per split, ``images`` and
    ``split_hash``."""
    arrays: dict[str, Any] = {}  # name -> (N,) array
    block: dict[str, Any] = {"file": FILE}
    for split, (logits, labels) in outputs.items():
        probabilities = torch.softmax(logits.float(), dim=1)
        arrays[f"{split}_predicted"] = logits.argmax(dim=1).numpy()
        arrays[f"{split}_true_probability"] = (
            probabilities.gather(1, labels.view(-1, 1)).view(-1).numpy().astype(np.float32)
        )
        arrays[f"{split}_labels"] = labels.numpy()
        block[split] = {"images": len(labels), "split_hash": split_hash(recipe, split, labels)}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    write_bytes_atomic(run_dir / FILE, lambda stream: stream.write(buffer.getvalue()))
    return block


def read_predictions(
    run_dir: Path, evaluation: Mapping[str, Any], split: str
) -> dict[str, np.ndarray] | None:
    """``predicted``, ``true_probability`` and ``labels`` of ``split`` from the run's
    predictions file (eval.json's ``predictions.file``, relative to ``run_dir``); None when
    the run has none, or none for that split."""
    block = evaluation.get("predictions") or {}
    path = run_dir / block.get("file", FILE)
    if split not in block or not path.is_file():
        return None
    with np.load(path) as stored:
        return {
            name: stored[f"{split}_{name}"] for name in ("predicted", "true_probability", "labels")
        }
