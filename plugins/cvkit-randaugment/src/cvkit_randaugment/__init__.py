"""cvkit plugin: RandAugment (Cubuk, Zoph, Shlens, Le: "RandAugment: Practical automated data
augmentation with a reduced search space", CVPR Workshops 2020), registered as
``augmentation/randaugment``; torchvision's implementation, per image in DataLoader workers."""

from __future__ import annotations

from torch import Tensor

from cvkit import PerSampleAugmentation, Register, hookimpl

__all__ = ["RandAugment"]


class RandAugment(PerSampleAugmentation):
    """RandAugment: N operations drawn uniformly from 14, each at magnitude M.

    torchvision.transforms.v2.RandAugment on one uint8 image (C, H, W) -> (C, H, W) in a
    DataLoader worker (put it first in augment.train, before the batch augmentations).

    Args:
        num_ops: operations N applied to each image (the paper: 1 to 3; CIFAR-10: N = 3).
        magnitude: strength M of every operation, 0 to num_magnitude_bins - 1 (CIFAR-10: 5 to 9).
        num_magnitude_bins: number of magnitude levels (torchvision's default 31).
        fill: pixel value for areas outside rotated/translated images (0-255).
    """

    def __init__(
        self, num_ops: int = 2, magnitude: int = 9, num_magnitude_bins: int = 31, fill: int = 0
    ) -> None:
        super().__init__()
        if num_ops < 0 or num_magnitude_bins < 2 or not 0 <= magnitude < num_magnitude_bins:
            raise ValueError(
                f"num_ops={num_ops} >= 0 and magnitude={magnitude} in [0, num_magnitude_bins={num_magnitude_bins})"
            )
        from torchvision.transforms import (
            v2,  # torchvision loads when used: listing components stays fast
        )

        self.transform = v2.RandAugment(num_ops, magnitude, num_magnitude_bins, fill=fill)

    def forward(self, image: Tensor) -> Tensor:
        """(C, H, W) uint8 -> (C, H, W) uint8."""
        return self.transform(image)


@hookimpl
def register_augmentations(register: Register) -> None:
    register("randaugment", RandAugment, examples=[{}, {"num_ops": 3, "magnitude": 5}])
