"""Built-in plugin: ``loss/cross_entropy``, with label smoothing and class weights."""

from __future__ import annotations

import torch
from torch import nn

from cvkit.hookspecs import Register, hookimpl


def cross_entropy(
    label_smoothing: float = 0.0, weight: list[float] | None = None
) -> nn.CrossEntropyLoss:
    """Cross-entropy on logits, for class indices (N,) or class probabilities (N, K).

    torch.nn.CrossEntropyLoss: soft targets from MixUp/CutMix are accepted as they are,
    and label smoothing applies to both kinds of target. Returns the batch mean.

    Args:
        label_smoothing: amount of smoothing in [0, 1] (Szegedy et al., 2016); 0 for none.
        weight: per-class weights (length K), or none for equal weights.
    """
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing={label_smoothing} must be in [0, 1]")
    return nn.CrossEntropyLoss(
        weight=torch.tensor(weight, dtype=torch.float32) if weight is not None else None,
        label_smoothing=label_smoothing,
    )


@hookimpl
def register_losses(register: Register) -> None:
    register("cross_entropy", cross_entropy, examples=[{}, {"label_smoothing": 0.1}])
