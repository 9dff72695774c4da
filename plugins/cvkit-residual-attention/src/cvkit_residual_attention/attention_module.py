"""The attention module of Residual Attention Networks (Wang et al., "Residual Attention
Network for Image Classification", CVPR 2017), built from pre-activation bottleneck units."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class ResidualUnit(nn.Module):
    """Pre-activation bottleneck unit (He et al., ECCV 2016), the unit of Wang et al.

    BN-ReLU-conv1x1 (C -> C/4), BN-ReLU-conv3x3, BN-ReLU-conv1x1 (-> C), plus the input.
    (N, C, H, W) -> (N, C, H, W).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        hidden = max(1, channels // 4)
        self.branch = nn.Sequential(
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, padding=1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1, bias=False),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.branch(x)


class SoftMask(nn.Module):
    """Bottom-up, top-down mask features: max-pool, units, (a deeper level plus a skip
    unit), units, bilinear upsampling back to the input's size. (N, C, H, W) -> same."""

    def __init__(self, channels: int, depth: int) -> None:
        super().__init__()
        self.down = ResidualUnit(channels)
        self.inner = SoftMask(channels, depth - 1) if depth > 1 else None
        self.skip = ResidualUnit(channels) if depth > 1 else None  # with inner, never alone
        self.up = ResidualUnit(channels)

    def forward(self, x: Tensor) -> Tensor:
        y = self.down(F.max_pool2d(x, 3, stride=2, padding=1))
        if self.inner is not None and self.skip is not None:
            y = self.inner(y) + self.skip(y)
        y = self.up(y)
        return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)


class AttentionModule(nn.Module):
    """Residual attention: trunk features T scaled by (1 + M), M a soft mask in (0, 1).

    One unit, then a trunk branch (``trunk_units`` units) and a mask branch (``mask_depth``
    max-pool levels with skip connections, upsampled, then BN-ReLU-conv1x1 twice and a
    sigmoid); their combination (1 + M) * T goes through one more unit. M weights every
    channel at every position: channel and spatial attention at once.
    (N, C, H, W) -> (N, C, H, W), any H, W >= 1.

    Args:
        channels: channels C.
        trunk_units: residual units of the trunk branch (the paper's t = 2).
        mask_depth: down-sampling levels of the mask branch (1 to 3 in the paper's stages).
    """

    def __init__(self, channels: int, trunk_units: int = 2, mask_depth: int = 1) -> None:
        super().__init__()
        if channels < 1 or trunk_units < 0 or mask_depth < 1:
            raise ValueError(
                f"channels={channels} and mask_depth={mask_depth} must be >= 1, trunk_units={trunk_units} >= 0"
            )
        self.first = ResidualUnit(channels)
        self.trunk = nn.Sequential(*(ResidualUnit(channels) for _ in range(trunk_units)))
        self.mask = nn.Sequential(
            SoftMask(channels, mask_depth),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 1),
            nn.Sigmoid(),
        )
        self.last = ResidualUnit(channels)

    def forward(self, x: Tensor) -> Tensor:
        x = self.first(x)
        return self.last((1 + self.mask(x)) * self.trunk(x))
