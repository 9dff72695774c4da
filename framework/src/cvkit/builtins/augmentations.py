"""Built-in batch augmentations: random crop with padding, horizontal flip, normalization.

All run on whole batches on the images' device, with an independent draw per sample.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

from cvkit.augment import BatchAugmentation

NORMALIZATION_PRESETS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    # Per-channel mean and standard deviation of the training images, values in [0, 1].
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


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
        n, _, h, w = images.shape
        p = self.padding
        if min(h, w) < self.min_size:
            raise ValueError(
                f"reflect padding {p} needs images of {self.min_size}+ pixels, got {h}x{w}"
            )
        value = self.fill if self.padding_mode == "constant" else None
        padded = F.pad(images, (p, p, p, p), mode=self.padding_mode, value=value)
        dy = torch.randint(0, 2 * p + 1, (n, 1), device=images.device)
        dx = torch.randint(0, 2 * p + 1, (n, 1), device=images.device)
        rows = (dy + torch.arange(h, device=images.device))[:, :, None]  # (N, H, 1)
        cols = (dx + torch.arange(w, device=images.device))[:, None, :]  # (N, 1, W)
        batch = torch.arange(n, device=images.device)[:, None, None]
        # Advanced indexing around the channel slice gives (N, H, W, C).
        return padded[batch, :, rows, cols].permute(0, 3, 1, 2).contiguous(), targets


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
        return torch.where(flip[:, None, None, None], TF.horizontal_flip(images), images), targets


class Normalize(BatchAugmentation):
    """Standardise each channel: (x - mean) / std, with a named preset or explicit values.

    Images are expected in [0, 1]; presets: cifar10, cifar100, imagenet. Give either
    ``preset`` or both ``mean`` and ``std`` (one value per channel).

    Args:
        preset: name of a dataset's statistics.
        mean: per-channel mean, values in [0, 1].
        std: per-channel standard deviation, values > 0.
    """

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
        self.mean, self.std = list(mean), list(std)

    def forward(self, images: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        if images.shape[1] != len(self.mean):
            raise ValueError(
                f"normalize has {len(self.mean)} channel values, images have {images.shape[1]}"
            )
        return TF.normalize(images, self.mean, self.std), targets
