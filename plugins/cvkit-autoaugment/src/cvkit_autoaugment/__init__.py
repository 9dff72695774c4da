"""cvkit plugin: AutoAugment (Cubuk, Zoph, Mane, Vasudevan, Le: "AutoAugment: Learning
Augmentation Strategies from Data", CVPR 2019), registered as ``augmentation/autoaugment``;
torchvision's learned policies, per image in DataLoader workers."""

from __future__ import annotations

from typing import Literal

from torch import Tensor

from cvkit import PerSampleAugmentation, Register, hookimpl

__all__ = ["AutoAugment"]

POLICIES = ("cifar10", "imagenet", "svhn")
"""The learned policies, named after torchvision's AutoAugmentPolicy members."""


class AutoAugment(PerSampleAugmentation):
    """AutoAugment: one of the policy's 25 learned sub-policies (two operations each) per image.

    torchvision.transforms.v2.AutoAugment on one uint8 image (C, H, W) -> (C, H, W) in a
    DataLoader worker (put it first in augment.train, before the batch augmentations).

    Args:
        policy: the policy learned on 'cifar10', 'imagenet' or 'svhn'.
        fill: pixel value for areas outside rotated/translated images (0-255).
    """

    def __init__(
        self, policy: Literal["cifar10", "imagenet", "svhn"] = "cifar10", fill: int = 0
    ) -> None:
        super().__init__()
        from torchvision.transforms import (
            v2,  # torchvision loads when used: listing components stays fast
        )

        self.transform = v2.AutoAugment(v2.AutoAugmentPolicy[policy.upper()], fill=fill)

    def forward(self, image: Tensor) -> Tensor:
        """(C, H, W) uint8 -> (C, H, W) uint8."""
        return self.transform(image)


@hookimpl
def register_augmentations(register: Register) -> None:
    register("autoaugment", AutoAugment, examples=[{}, {"policy": "svhn", "fill": 128}])
