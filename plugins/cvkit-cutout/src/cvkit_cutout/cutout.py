"""Cutout (DeVries & Taylor, 2017) as a batch augmentation on the training device."""

from __future__ import annotations

import torch
from torch import Tensor

from cvkit import BatchAugmentation


class Cutout(BatchAugmentation):
    """Cutout (DeVries & Taylor, 2017): blank a size x size square at a random centre per image.

    The centre is uniform over the image, so the square may be cut off at the border, as in
    the paper. Input and output (N, C, H, W), same dtype; targets unchanged.

    Args:
        size: side of the square in pixels.
        p: probability of applying it to each image.
        fill: value written into the square, in the images' units (0 is black before normalize,
            the mean after it).
    """

    def __init__(self, size: int = 16, p: float = 1.0, fill: float = 0.0) -> None:
        super().__init__()
        if size < 1 or not 0.0 <= p <= 1.0:
            raise ValueError(f"size={size} must be >= 1 and p={p} in [0, 1]")
        self.size, self.p, self.fill = size, p, fill

    def forward(self, images: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        n, _, h, w = images.shape
        device = images.device
        top = torch.randint(0, h, (n, 1, 1), device=device) - self.size // 2
        left = torch.randint(0, w, (n, 1, 1), device=device) - self.size // 2
        rows = torch.arange(h, device=device)[None, :, None]
        cols = torch.arange(w, device=device)[None, None, :]
        inside = (
            (rows >= top) & (rows < top + self.size) & (cols >= left) & (cols < left + self.size)
        )
        apply = (torch.rand(n, 1, 1, device=device) < self.p) & inside  # (N, H, W)
        return images.masked_fill(apply[:, None], self.fill), targets
