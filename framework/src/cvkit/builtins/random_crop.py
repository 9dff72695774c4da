"""Built-in plugin: ``augmentation/random_crop``, padding and a random crop per image, batched
on the device."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from cvkit.data.augmentation import BatchAugmentation
from cvkit.hookspecs import Register, hookimpl


class RandomCrop(BatchAugmentation):
    """Pad each image by `padding` pixels, then crop it back to its size at a random offset.

    Every sample gets its own offset, drawn uniformly in [0, 2 * padding] on both axes.
    Input and output (N, C, H, W) with the same shape and dtype; targets unchanged.

    Args:
        padding: pixels added on each side before cropping.
        padding_mode: 'constant' (filled with ``fill``), 'reflect' or 'replicate'.
        fill: value of constant padding, in the images' units (0 is black before normalize).
    """

    def __init__(
        self,
        padding: int = 4,
        padding_mode: Literal["constant", "reflect", "replicate"] = "constant",
        fill: float = 0.0,
    ) -> None:
        super().__init__()
        if padding < 0:
            raise ValueError(f"padding={padding} must be >= 0")
        self.padding, self.padding_mode, self.fill = padding, padding_mode, fill
        if padding_mode == "reflect":
            self.min_size = padding + 1  # a reflection cannot reach past the far edge

    def forward(self, images: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        if self.padding == 0:
            return images, targets
        n, c, h, w = images.shape
        p = self.padding
        if min(h, w) < self.min_size:
            raise ValueError(
                f"reflect padding {p} needs images of {self.min_size}+ pixels, got {h}x{w}"
            )
        value = self.fill if self.padding_mode == "constant" else None
        padded = F.pad(
            images, (p, p, p, p), mode=self.padding_mode, value=value
        )  # (N, C, H+2p, W+2p)
        dy = torch.randint(0, 2 * p + 1, (n, 1, 1), device=images.device)
        dx = torch.randint(0, 2 * p + 1, (n, 1, 1), device=images.device)
        rows = dy + torch.arange(h, device=images.device)[:, None]  # (N, H, 1)
        cols = dx + torch.arange(w, device=images.device)  # (N, 1, W)
        # One gather over the flattened padded images: no per-offset loop, no device sync.
        index = (rows * (w + 2 * p) + cols).view(n, 1, h * w).expand(n, c, h * w)
        return padded.flatten(2).gather(2, index).view(n, c, h, w), targets


@hookimpl
def register_augmentations(register: Register) -> None:
    register("random_crop", RandomCrop, examples=[{}, {"padding": 2, "padding_mode": "reflect"}])
