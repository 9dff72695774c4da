"""The airbench94 network (Jordan, "94% on CIFAR-10 in 3.29 seconds on a single GPU",
arXiv:2404.00498; airbench94_muon.py), with an attention slot after each conv group."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cvkit import AttentionFactory


class BatchNorm(nn.BatchNorm2d):
    """Batch norm with a fixed scale of 1 (only the bias trains), airbench's low
    running-statistics momentum and a tiny epsilon.

    Args:
        momentum: weight of the running statistics (airbench's 0.6; torch's momentum is 1 - it).
        eps: added to the variance.
    """

    def __init__(self, channels: int, momentum: float = 0.6, eps: float = 1e-12) -> None:
        super().__init__(channels, eps=eps, momentum=1 - momentum)
        self.weight.requires_grad = False


class Conv(nn.Conv2d):
    """3x3 convolution, 'same' padding, no bias; its first ``in_channels`` filters start as
    identities (Dirac), the rest as torch's default."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, kernel_size=3, padding="same", bias=False)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        w = self.weight.data
        nn.init.dirac_(w[: w.size(1)])


class ConvGroup(nn.Module):
    """conv - 2x2 max-pool - BN - GELU - conv - BN - GELU - attention: (N, C_in, H, W) ->
    (N, C_out, H / 2, W / 2)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        bn_momentum: float,
        attention: AttentionFactory | None,
    ) -> None:
        super().__init__()
        self.conv1 = Conv(in_channels, out_channels)
        self.pool = nn.MaxPool2d(2)
        self.norm1 = BatchNorm(out_channels, bn_momentum)
        self.conv2 = Conv(out_channels, out_channels)
        self.norm2 = BatchNorm(out_channels, bn_momentum)
        self.activ = nn.GELU()
        self.attention = attention(out_channels) if attention is not None else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        x = self.activ(self.norm1(self.pool(self.conv1(x))))
        x = self.activ(self.norm2(self.conv2(x)))
        return self.attention(x)


class AirbenchNet(nn.Module):
    """airbench94's CIFAR-10 network, with an attention slot after each conv group.

    ``whiten``: a 2x2 convolution without padding whose filters are the eigenvectors of the
    covariance of 2x2 patches of ``data_init_images`` training images, scaled by
    1 / sqrt(eigenvalue + whiten_eps), and their negatives (2 * C * 4 channels, 24 for RGB);
    its weight never trains, its bias does (airbench freezes it after 3 epochs: the
    ``freeze`` callback). Then GELU, three :class:`ConvGroup` (widths 64, 256, 256 in
    airbench94), a 3x3 max-pool (at 32 x 32 input: the top-left 3x3 of the 4x4 map, as in
    airbench), and a bias-free linear head whose weight starts at unit standard deviation and
    whose output is divided by the last width. Input (N, in_channels, 32, 32) float,
    normalised; output logits (N, num_classes). At the default widths (RGB, 10 classes):
    1,972,792 parameters, 1,971,352 of them trainable. An ``attention`` block (default
    none) follows each group.

    Args:
        widths: output channels of the three conv groups.
        whiten_kernel: height and width of the whitening filters.
        whiten_eps: added to the eigenvalues before scaling (airbench: 5e-4).
        bn_momentum: weight of the batch-norm running statistics (airbench: 0.6).
        data_init_images: training images the whitening filters are computed from
            (airbench: 5000).
        attention: attention block after each conv group (none: airbench as it is).
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        widths: Sequence[int] = (64, 256, 256),
        whiten_kernel: int = 2,
        whiten_eps: float = 5e-4,
        bn_momentum: float = 0.6,
        data_init_images: int = 5000,
        attention: AttentionFactory | None = None,
    ) -> None:
        super().__init__()
        if len(widths) != 3 or min(widths) < 1:
            raise ValueError(f"widths={list(widths)} must be three positive channel counts")
        if whiten_kernel < 1 or whiten_eps <= 0 or data_init_images < 1:
            raise ValueError("whiten_kernel, whiten_eps and data_init_images must be positive")
        if not 0.0 <= bn_momentum < 1.0:
            raise ValueError(f"bn_momentum={bn_momentum} must be in [0, 1)")
        self.whiten_eps, self.data_init_images = whiten_eps, data_init_images
        whiten_width = 2 * in_channels * whiten_kernel**2
        self.whiten = nn.Conv2d(in_channels, whiten_width, whiten_kernel, padding=0, bias=True)
        self.whiten.weight.requires_grad = False
        channels = [whiten_width, *widths]
        self.layers = nn.Sequential(
            nn.GELU(),
            *[ConvGroup(channels[i], channels[i + 1], bn_momentum, attention) for i in range(3)],
            nn.MaxPool2d(3),
        )
        self.head = nn.Linear(widths[-1], num_classes, bias=False)
        with torch.no_grad():
            self.head.weight.mul_(1 / self.head.weight.std())

    @torch.no_grad()
    def init_from_data(self, images: Tensor) -> None:
        """Set the whitening filters from ``images`` (N, C, H, W), normalised training images."""
        c, (h, w) = images.shape[1], self.whiten.weight.shape[2:]
        patches = images.unfold(2, h, 1).unfold(3, w, 1).transpose(1, 3).reshape(-1, c, h, w)
        flat = patches.float().reshape(len(patches), -1)
        covariance = (flat.T @ flat) / len(flat)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance, UPLO="U")
        scaled = eigenvectors.T.reshape(-1, c, h, w) / torch.sqrt(
            eigenvalues.view(-1, 1, 1, 1) + self.whiten_eps
        )
        self.whiten.weight.copy_(torch.cat((scaled, -scaled)))

    def forward(self, x: Tensor) -> Tensor:
        x = self.layers(F.conv2d(x, self.whiten.weight, self.whiten.bias))
        x = x.view(len(x), -1)
        return self.head(x) / x.size(-1)
