"""Residual blocks (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016).

Both blocks take an optional attention block, applied to the residual branch just before
the addition, as the Squeeze-and-Excitation paper places it (Hu et al., 2018, Fig. 3).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn


def _shortcut(in_channels: int, out_channels: int, stride: int, kernel_size: int) -> nn.Module:
    """Identity when shapes match, else a strided convolution (``kernel_size``) and batch norm."""
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return nn.Sequential(
        nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2, bias=False
        ),
        nn.BatchNorm2d(out_channels),
    )


class BasicBlock(nn.Module):
    """Two kxk convolutions with batch norm; ResNet-18/34 and the efficient ResNets use it.

    (N, in_channels, H, W) -> (N, channels, H / stride, W / stride).
    """

    expansion = 1

    def __init__(
        self,
        in_channels: int,
        channels: int,
        stride: int = 1,
        kernel_size: int = 3,
        shortcut_kernel_size: int = 1,
        attention: Callable[[int], nn.Module] | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(
            in_channels, channels, kernel_size, stride, padding=kernel_size // 2, bias=False
        )
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(
            channels, channels, kernel_size, 1, padding=kernel_size // 2, bias=False
        )
        self.bn2 = nn.BatchNorm2d(channels)
        self.attention = attention(channels) if attention is not None else nn.Identity()
        self.shortcut = _shortcut(in_channels, channels, stride, shortcut_kernel_size)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()

    def last_norm(self) -> nn.BatchNorm2d:
        """The batch norm closing the residual branch (zero-initialised on request)."""
        return self.bn2

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn1(self.conv1(x)).relu_()
        out = self.attention(self.bn2(self.conv2(out)))
        return self.dropout((out + self.shortcut(x)).relu_())


class Bottleneck(nn.Module):
    """1x1 reduce, kxk, 1x1 expand (x4) with batch norm; ResNet-50/101 use it.

    (N, in_channels, H, W) -> (N, 4 * channels, H / stride, W / stride).
    """

    expansion = 4

    def __init__(
        self,
        in_channels: int,
        channels: int,
        stride: int = 1,
        kernel_size: int = 3,
        shortcut_kernel_size: int = 1,
        attention: Callable[[int], nn.Module] | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(
            channels, channels, kernel_size, stride, padding=kernel_size // 2, bias=False
        )
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = nn.Conv2d(channels, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.attention = attention(out_channels) if attention is not None else nn.Identity()
        self.shortcut = _shortcut(in_channels, out_channels, stride, shortcut_kernel_size)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()

    def last_norm(self) -> nn.BatchNorm2d:
        """The batch norm closing the residual branch (zero-initialised on request)."""
        return self.bn3

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn1(self.conv1(x)).relu_()
        out = self.bn2(self.conv2(out)).relu_()
        out = self.attention(self.bn3(self.conv3(out)))
        return self.dropout((out + self.shortcut(x)).relu_())
