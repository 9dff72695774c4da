"""Batch augmentations: the base class built-in and plugin augmentations derive from."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn


class BatchAugmentation(nn.Module):
    """An augmentation of a whole batch on the training device.

    Subclasses implement ``forward(images, targets) -> (images, targets)``:
    ``images`` float (N, C, H, W), dtype kept; ``targets`` int64 (N,) or float (N, K) soft.
    Class attributes declare what the engine and the contract tests may expect.

    Attributes:
        soft_targets: the output targets are soft (N, K) even for hard input (MixUp, CutMix).
        changes_size: the output spatial size may differ from the input's (resize, crop to size).
        min_size: the smallest height and width the augmentation accepts (per instance).
    """

    soft_targets: ClassVar[bool] = False
    changes_size: ClassVar[bool] = False
    min_size: int = 1

    def forward(
        self, images: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError(f"{type(self).__name__} must implement forward(images, targets)")


def soft_targets(targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``targets`` as class probabilities (N, num_classes) float32: hard labels (N,) become
    one-hot rows, soft targets pass through."""
    if targets.ndim == 2:
        if targets.shape[1] != num_classes:
            raise ValueError(
                f"soft targets have {targets.shape[1]} classes, expected {num_classes}"
            )
        return targets.float()
    return torch.nn.functional.one_hot(targets, num_classes).float()
