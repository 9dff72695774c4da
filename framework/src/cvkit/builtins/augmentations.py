"""Built-in augmentations: random crop with padding, flip, normalization, resize,
random resized crop, and an adapter running any torchvision.transforms.v2 transform per sample.

The batch augmentations run on whole batches on the images' device, with an independent
draw per sample.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import roi_align
from torchvision.transforms.v2 import functional as TF

from cvkit.augment import BatchAugmentation
from cvkit.params import height_width

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


class Resize(BatchAugmentation):
    """Resize the whole batch to a fixed size (bilinear, antialiased when shrinking).

    Input (N, C, H, W) float, output (N, C, height, width), same dtype; targets unchanged.

    Args:
        size: target size: an int for square images, or [height, width].
        antialias: low-pass filter when downsampling, as PIL does.
    """

    changes_size = True

    def __init__(self, size: int | list[int] = 224, antialias: bool = True) -> None:
        super().__init__()
        size = height_width(size)
        self.size, self.antialias = size, antialias

    def forward(self, images: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        if list(images.shape[-2:]) == self.size:
            return images, targets
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
        scale: list[float] = (0.08, 1.0),
        ratio: list[float] = (3 / 4, 4 / 3),
        tries: int = 10,
    ) -> None:
        super().__init__()
        size = height_width(size)
        if len(scale) != 2 or not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(f"scale={list(scale)} must be [min, max] with 0 < min <= max <= 1")
        if len(ratio) != 2 or not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"ratio={list(ratio)} must be [min, max] with 0 < min <= max")
        if tries < 1:
            raise ValueError(f"tries={tries} must be >= 1")
        self.size, self.scale, self.ratio, self.tries = size, list(scale), list(ratio), tries

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
        fallback = torch.tensor([(height - fh) // 2, (width - fw) // 2, fh, fw], device=device)
        drawn = torch.stack([top, left, h, w], 1)
        return torch.where(fits.any(1, keepdim=True), drawn, fallback)

    def forward(self, images: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        n, _, height, width = images.shape
        top, left, h, w = self.boxes(n, height, width, images.device).to(images.dtype).unbind(1)
        index = torch.arange(n, device=images.device, dtype=images.dtype)
        rois = torch.stack([index, left, top, left + w, top + h], 1)  # (N, 5): i, x1, y1, x2, y2
        crops = roi_align(
            images, rois, self.size, spatial_scale=1.0, sampling_ratio=-1, aligned=True
        )
        return crops, targets


class TorchvisionTransform(nn.Module):
    """Any torchvision.transforms.v2 transform, applied to each image in DataLoader workers.

    For operations that only exist per image (RandAugment, AutoAugment, ColorJitter on
    uint8, ...). It receives and returns one uint8 image (C, H, W); it must come before the
    batch augmentations in augment.train, and the images it returns must all have one size.

    Args:
        transform: class name in torchvision.transforms.v2, e.g. 'RandAugment'.
        kwargs: the transform's arguments, e.g. { num_ops = 2, magnitude = 9 }.
    """

    per_sample = True
    changes_size = True

    def __init__(self, transform: str, kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        from torchvision.transforms import v2

        cls = getattr(v2, transform, None)
        if not (isinstance(cls, type) and issubclass(cls, v2.Transform)):
            raise ValueError(f"torchvision.transforms.v2 has no transform {transform!r}")
        try:
            self.transform = cls(**(kwargs or {}))
        except (TypeError, ValueError) as error:
            raise ValueError(f"{transform}({kwargs or {}}): {error}") from error

    def forward(self, image: Tensor) -> Tensor:
        """(C, H, W) uint8 -> (C, H', W') uint8."""
        return self.transform(image)
