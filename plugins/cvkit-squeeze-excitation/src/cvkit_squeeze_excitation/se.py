"""The Squeeze-and-Excitation block (Hu, Shen, Sun: "Squeeze-and-Excitation Networks", CVPR 2018)."""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn


class SqueezeExcitation(nn.Module):
    """Squeeze-and-Excitation channel attention (Hu et al., CVPR 2018).

    Squeeze: global average pooling, (N, C, H, W) -> (N, C, 1, 1). Excitation: a bottleneck
    of two fully connected layers (as 1x1 convolutions), C -> C/r -> C with ReLU between, and
    a gate giving one weight in (0, 1) per channel. The input is multiplied by those weights,
    so the output has the input's shape (N, C, H, W) and dtype. Parameters:
    2 * C * hidden + hidden + C, with hidden = max(min_channels, C // reduction).

    Args:
        channels: channels C of the input.
        reduction: reduction ratio r of the bottleneck (the paper uses 16).
        min_channels: lower bound on the bottleneck width, for narrow layers.
        gate: 'sigmoid' (the paper) or 'hard_sigmoid' (cheaper, as in MobileNetV3).
    """

    def __init__(
        self,
        channels: int,
        reduction: int = 16,
        min_channels: int = 1,
        gate: Literal["sigmoid", "hard_sigmoid"] = "sigmoid",
    ) -> None:
        super().__init__()
        if channels < 1 or reduction < 1 or min_channels < 1:
            raise ValueError(
                f"channels={channels}, reduction={reduction} and min_channels={min_channels} must be >= 1"
            )
        hidden = max(min_channels, channels // reduction)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1)
        self.gate = nn.Sigmoid() if gate == "sigmoid" else nn.Hardsigmoid()

    def forward(self, x: Tensor) -> Tensor:
        """(N, C, H, W) -> (N, C, H, W): ``x`` scaled by one learned weight per channel."""
        weights = self.gate(self.fc2(self.act(self.fc1(self.pool(x)))))
        return x * weights
