"""Colour jitter on whole batches, with independent random factors per image."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from cvkit import BatchAugmentation


class ColorJitter(BatchAugmentation):
    """Random brightness, contrast, saturation and hue per image, batched on the device.

    Each image gets its own factors, drawn uniformly as torchvision's ColorJitter draws
    them: brightness, contrast, saturation in [max(0, 1 - v), 1 + v], hue in [-v, v] (a
    fraction of the colour circle). They apply in this fixed order with torchvision's
    formulas (blends with black, the grey mean and the greyscale image; hue shift in HSV),
    so one image equals torchvision.transforms.v2.functional's adjust_* with the same
    factors. Images (N, C, H, W) float in [0, 1]: place it before normalize. Saturation and
    hue need RGB (C = 3). Targets unchanged.

    Args:
        brightness: brightness jitter v (0 for none).
        contrast: contrast jitter v (0 for none).
        saturation: saturation jitter v (0 for none).
        hue: hue jitter v in [0, 0.5] (0 for none).
        p: probability of jittering each image.
    """

    def __init__(
        self,
        brightness: float = 0.4,
        contrast: float = 0.4,
        saturation: float = 0.4,
        hue: float = 0.1,
        p: float = 1.0,
    ) -> None:
        super().__init__()
        if min(brightness, contrast, saturation, hue) < 0 or hue > 0.5 or not 0.0 <= p <= 1.0:
            raise ValueError(
                "brightness, contrast, saturation must be >= 0, hue in [0, 0.5], p in [0, 1]"
            )
        self.brightness, self.contrast, self.saturation, self.hue, self.p = (
            brightness,
            contrast,
            saturation,
            hue,
            p,
        )

    def sample_factors(self, n: int, device: torch.device) -> dict[str, Tensor]:
        """Per-image factors (N,); images left alone (probability 1 - p) get neutral ones."""
        apply = torch.rand(n, device=device) < self.p
        factors = {}
        for name, amount, neutral in (
            ("brightness", self.brightness, 1.0),
            ("contrast", self.contrast, 1.0),
            ("saturation", self.saturation, 1.0),
            ("hue", self.hue, 0.0),
        ):
            if amount:
                low = -amount if name == "hue" else max(0.0, 1.0 - amount)
                high = amount if name == "hue" else 1.0 + amount
                drawn = torch.empty(n, device=device).uniform_(low, high)
                factors[name] = torch.where(apply, drawn, torch.full_like(drawn, neutral))
        return factors

    def adjust(self, images: Tensor, factors: dict[str, Tensor]) -> Tensor:
        """``images`` (N, C, H, W) with the given per-image factors (N,) applied in order."""
        if images.shape[1] != 3 and ("saturation" in factors or "hue" in factors):
            raise ValueError(
                f"saturation and hue jitter need RGB images, got {images.shape[1]} channels"
            )
        # kornia and torchvision load when used: listing components stays fast
        from kornia.enhance import adjust_hue
        from torchvision.transforms.v2 import functional as TF

        x = images
        if "brightness" in factors:
            x = (x * _per_image(factors["brightness"], x)).clamp(0, 1)
        if "contrast" in factors:
            grey = TF.rgb_to_grayscale(x) if x.shape[1] == 3 else x
            mean = grey.mean(dim=(1, 2, 3), keepdim=True)
            c = _per_image(factors["contrast"], x)
            x = (c * x + (1 - c) * mean).clamp(0, 1)
        if "saturation" in factors:
            s = _per_image(factors["saturation"], x)
            x = (s * x + (1 - s) * TF.rgb_to_grayscale(x)).clamp(0, 1)
        if "hue" in factors:
            x = adjust_hue(x, (factors["hue"] * 2 * math.pi).to(x.dtype))
        return x

    def forward(self, images: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        return self.adjust(images, self.sample_factors(images.shape[0], images.device)), targets


def _per_image(factor: Tensor, images: Tensor) -> Tensor:
    return factor.to(images.dtype).view(-1, 1, 1, 1)
