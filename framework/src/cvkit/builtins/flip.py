"""Built-in plugin: ``augmentation/hflip``, a random left-right flip per image, batched on the
device."""

from __future__ import annotations

import torch
from torch import Tensor

from cvkit.data.augmentation import BatchAugmentation
from cvkit.hookspecs import Register, hookimpl


class HorizontalFlip(BatchAugmentation):
    """Mirror each image left-right with probability p, independently per sample.

    Args:
        p: probability of flipping each image.
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p={p} must be in [0, 1]")
        self.p = p

    def forward(self, images: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        flip = torch.rand(images.shape[0], device=images.device) < self.p
        from torchvision.transforms.v2 import (
            functional as TF,  # torchvision loads when used: listing components stays fast
        )

        return torch.where(flip[:, None, None, None], TF.horizontal_flip(images), images), targets


@hookimpl
def register_augmentations(register: Register) -> None:
    register("hflip", HorizontalFlip, examples=[{}, {"p": 1.0}])
