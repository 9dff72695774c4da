"""Built-in plugin: ``augmentation/resize`` and ``augmentation/random_resized_crop``, batched on
the device."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from cvkit.data.augmentation import BatchAugmentation
from cvkit.hookspecs import Register, hookimpl
from cvkit.registry.parameters import crop_ranges, height_width


class Resize(BatchAugmentation):
    """Resize the whole batch to a fixed size (bilinear, antialiased when shrinking).

    Input (N, C, H, W) float, output (N, C, height, width), same dtype; targets unchanged.

    Args:
        size: target size: an int for square images, or [height, width].
        antialias: low-pass filter when downsampling, as PIL does.
    """

    changes_size = True
    random = False

    def __init__(self, size: int | list[int] = 224, antialias: bool = True) -> None:
        super().__init__()
        size = height_width(size)
        self.size, self.antialias = size, antialias

    def forward(self, images: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        if list(images.shape[-2:]) == self.size:
            return images, targets
        from torchvision.transforms.v2 import (
            functional as TF,  # torchvision loads when used: listing components stays fast
        )

        return TF.resize(images, self.size, antialias=self.antialias), targets


class RandomResizedCrop(BatchAugmentation):
    """Crop a random area and aspect ratio of each image and resize it to ``size``.

    The Inception crop (Szegedy et al., CVPR 2015) as torchvision's ``RandomResizedCrop``
    draws it, batched: per image, up to ``tries`` draws of an area fraction in ``scale``
    and a log-uniform aspect ratio (width / height) in ``ratio``, the first that fits at a
    uniform position; else the central crop of the nearest ratio. All crops are resampled
    in one ``torchvision.ops.roi_align`` call: bilinear, ceil(crop / output) samples per
    output pixel and axis (averaged, so shrinking is anti-aliased). Pixels within half a
    pixel of a crop's edge may blend with the image pixels just outside it, where
    ``resized_crop`` repeats the edge. Input (N, C, H, W) float, output (N, C, *size).

    Args:
        size: output size: an int for square images, or [height, width].
        scale: [min, max] fraction of the image's area to crop.
        ratio: [min, max] aspect ratio (width / height) of the crop.
        tries: draws per image before falling back to the central crop.
    """

    changes_size = True

    def __init__(
        self,
        size: int | list[int] = 224,
        scale: Sequence[float] = (0.08, 1.0),
        ratio: Sequence[float] = (3 / 4, 4 / 3),
        tries: int = 10,
    ) -> None:
        super().__init__()
        size = height_width(size)
        self.scale, self.ratio = crop_ranges(scale, ratio)
        if tries < 1:
            raise ValueError(f"tries={tries} must be >= 1")
        self.size, self.tries = size, tries

    def boxes(self, n: int, height: int, width: int, device: torch.device) -> Tensor:
        """Crop boxes (N, 4) as [top, left, height, width] in pixels, int64."""
        area = height * width * torch.empty(n, self.tries, device=device).uniform_(*self.scale)
        log_ratio = torch.empty(n, self.tries, device=device).uniform_(
            math.log(self.ratio[0]), math.log(self.ratio[1])
        )
        aspect = log_ratio.exp()
        w = (area * aspect).sqrt().round().long()
        h = (area / aspect).sqrt().round().long()
        fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
        first = fits.int().argmax(1, keepdim=True)  # the first draw that fits (0 if none)
        w, h = w.gather(1, first)[:, 0], h.gather(1, first)[:, 0]
        top = (torch.rand(n, device=device) * (height - h + 1)).long()
        left = (torch.rand(n, device=device) * (width - w + 1)).long()
        # torchvision's fallback: the central crop with the ratio clamped into range
        in_ratio = width / height
        if in_ratio < self.ratio[0]:
            fw, fh = width, round(width / self.ratio[0])
        elif in_ratio > self.ratio[1]:
            fw, fh = round(height * self.ratio[1]), height
        else:
            fw, fh = width, height
        fallback = torch.tensor([(height - fh) // 2, (width - fw) // 2, fh, fw])
        fallback = fallback.to(device, non_blocking=True)  # a blocking copy would wait for the GPU
        drawn = torch.stack([top, left, h, w], 1)
        return torch.where(fits.any(1, keepdim=True), drawn, fallback)

    def forward(self, images: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        n, _, height, width = images.shape
        top, left, h, w = self.boxes(n, height, width, images.device).to(images.dtype).unbind(1)
        index = torch.arange(n, device=images.device, dtype=images.dtype)
        rois = torch.stack([index, left, top, left + w, top + h], 1)  # (N, 5): i, x1, y1, x2, y2
        from torchvision.ops import (
            roi_align,  # torchvision loads when used: listing components stays fast
        )

        crops = roi_align(
            images, rois, self.size, spatial_scale=1.0, sampling_ratio=-1, aligned=True
        )
        return crops, targets


@hookimpl
def register_augmentations(register: Register) -> None:
    register("resize", Resize, examples=[{"size": 12}, {"size": [7, 5], "antialias": False}])
    register(
        "random_resized_crop",
        RandomResizedCrop,
        examples=[{"size": 12}, {"size": [9, 6], "scale": [0.8, 1.0], "ratio": [1.0, 1.0]}],
    )
