"""Built-in plugin: ``augmentation/normalize``, per-channel standardisation with dataset presets."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from cvkit.data.augmentation import BatchAugmentation
from cvkit.hookspecs import Register, hookimpl

NORMALIZATION_PRESETS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    # Per-channel mean and standard deviation of the training images, values in [0, 1].
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


class Normalize(BatchAugmentation):
    """Standardise each channel: (x - mean) / std, with a named preset or explicit values.

    Images are expected in [0, 1]; presets: cifar10, cifar100, imagenet. Give either
    ``preset`` or both ``mean`` and ``std`` (one value per channel).

    Args:
        preset: name of a dataset's statistics.
        mean: per-channel mean, values in [0, 1].
        std: per-channel standard deviation, values > 0.
    """

    random = False

    def __init__(
        self,
        preset: Literal["cifar10", "cifar100", "imagenet"] | None = None,
        mean: list[float] | None = None,
        std: list[float] | None = None,
    ) -> None:
        super().__init__()
        if preset is not None:
            if mean is not None or std is not None:
                raise ValueError("give either preset or mean and std, not both")
            mean, std = (list(v) for v in NORMALIZATION_PRESETS[preset])
        elif mean is None or std is None:
            raise ValueError("give a preset, or both mean and std")
        if len(mean) != len(std) or min(std) <= 0:
            raise ValueError(f"mean {mean} and std {std} need one value per channel, std > 0")
        # (C, 1, 1) tensors that move with the module: made once, not per batch (torchvision's
        # normalize makes them from lists at every call: a blocking host-to-GPU copy, a sync)
        self.mean: Tensor
        self.std: Tensor
        self.register_buffer("mean", torch.tensor(mean).view(-1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(-1, 1, 1), persistent=False)

    def forward(self, images: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """(N, C, H, W) float images -> (images - mean) / std, same dtype; targets unchanged."""
        mean, std = self.mean, self.std
        if images.shape[1] != mean.shape[0]:
            raise ValueError(
                f"normalize has {mean.shape[0]} channel values, images have {images.shape[1]}"
            )
        if mean.dtype != images.dtype:
            mean, std = mean.to(images.dtype), std.to(images.dtype)
        return images.sub(mean).div_(std), targets


@hookimpl
def register_augmentations(register: Register) -> None:
    register(
        "normalize",
        Normalize,
        examples=[{"preset": "cifar10"}, {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}],
    )
