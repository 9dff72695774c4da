"""The lightweight CNNs of "Building Efficient Lightweight CNN Models" (Isong, arXiv:2501.15547)
and the enhanced model of its reproduction."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from cvkit import AttentionFactory


class BaseSubModel(nn.Module):
    """The study's sub-model: Conv(10) - pool - Conv(20) - pool - Dense(128) - dropout - classifier.

    3x3 convolutions without padding (as Keras' default 'valid') with ReLU, 2x2 max-pooling,
    flatten, a 128-unit dense layer with ReLU, dropout and a linear classifier. Input
    (N, in_channels, image_size, image_size) float; output logits (N, num_classes). On
    32 x 32 CIFAR-10 images: 95,678 trainable parameters, 92,288 of them in the dense layer.

    Args:
        widths: filters of the two convolutions (the study: 10, 20).
        hidden: units of the dense layer (the study: 128).
        dropout: dropout before the classifier (the study: 0.3).
        image_size: input height and width the dense layer is sized for.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        widths: Sequence[int] = (10, 20),
        hidden: int = 128,
        dropout: float = 0.3,
        image_size: int = 32,
    ) -> None:
        super().__init__()
        if len(widths) != 2 or min(widths) < 1 or hidden < 1 or not 0.0 <= dropout < 1.0:
            raise ValueError(
                f"widths={list(widths)} must be two positive counts, hidden={hidden} >= 1, dropout={dropout} in [0, 1)"
            )
        side = ((image_size - 2) // 2 - 2) // 2
        if side < 1:
            raise ValueError(
                f"image_size={image_size} is too small for two conv-pool stages (>= 10)"
            )
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(widths[0], widths[1], 3),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(widths[1] * side * side, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


class SeparableResidualBlock(nn.Module):
    """Depthwise-separable residual block: depthwise 3x3 (stride s) - BN - ReLU - pointwise
    1x1 - BN, optional attention on the branch, plus the shortcut (1x1 conv - BN when the
    shape changes), ReLU. In training, stochastic depth (Huang et al., ECCV 2016;
    torchvision's StochasticDepth) drops the whole branch of a sample with probability
    ``drop_rate``. (N, in_channels, H, W) -> (N, channels, H / s, W / s)."""

    def __init__(
        self,
        in_channels: int,
        channels: int,
        stride: int = 1,
        attention: AttentionFactory | None = None,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.branch = nn.Sequential(
            nn.Conv2d(in_channels, in_channels, 3, stride, 1, groups=in_channels, bias=False),
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
        )
        self.attention = attention(channels) if attention is not None else nn.Identity()
        from torchvision.ops import StochasticDepth  # loads when used: listing stays fast

        self.drop = StochasticDepth(drop_rate, "row")
        self.shortcut = (
            nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride, bias=False), nn.BatchNorm2d(channels)
            )
            if stride != 1 or in_channels != channels
            else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        return (self.drop(self.attention(self.branch(x))) + self.shortcut(x)).relu_()


class GaussianNoise(nn.Module):
    """Feature-level Gaussian noise: adds N(0, std^2) to every element in training mode only.
    Any shape in, the same shape out."""

    def __init__(self, std: float) -> None:
        super().__init__()
        if std < 0:
            raise ValueError(f"feature_noise={std} must be >= 0")
        self.std = std

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.std == 0:
            return x
        return x + torch.randn_like(x) * self.std


class LightweightCNN(nn.Module):
    """The enhanced lightweight CNN: residual depthwise-separable stages with attention and a
    global-average-pool + 1x1 classification head.

    Stem conv3x3 - BN - ReLU to ``widths[0]``; per stage, ``blocks`` separable residual
    blocks (the first of each with the stage's stride) with the attention slot on each
    branch; global average pooling, dropout and a 1x1 convolution to the classes.
    Input (N, in_channels, H, W), any H, W >= 1; output logits (N, num_classes).

    Args:
        widths: channels of the stem and of each stage.
        blocks: residual blocks per stage (one entry per width after the first).
        strides: stride of each stage's first block; by default 1 for the first stage and 2
            for the others. ``[2, 2]`` halves the resolution in every stage: about 3x less
            work per image on 32 x 32 inputs, with the same parameters.
        attention: attention block in every residual block (the study: SE, r = 16, or a
            CBAM-lite), or none.
        dropout: dropout before the classification head.
        stochastic_depth: drop rate of the last residual block's branch; earlier blocks get
            rates rising linearly from 0 (Huang et al.'s linear decay rule).
        feature_noise: standard deviation of Gaussian noise added to the pooled features
            before the head, in training only.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        widths: Sequence[int] = (24, 48, 96),
        blocks: Sequence[int] = (1, 1),
        strides: list[int] | None = None,
        attention: AttentionFactory | None = None,
        dropout: float = 0.2,
        stochastic_depth: float = 0.0,
        feature_noise: float = 0.0,
    ) -> None:
        super().__init__()
        if len(widths) < 2 or min(widths) < 1 or len(blocks) != len(widths) - 1 or min(blocks) < 1:
            raise ValueError(
                f"widths={list(widths)} needs a stem width and one per stage, "
                f"blocks={list(blocks)} one count >= 1 per stage"
            )
        if strides is None:
            strides = [1] + [2] * (len(blocks) - 1)
        if len(strides) != len(blocks) or not all(s in (1, 2) for s in strides):
            raise ValueError(
                f"strides={list(strides)} must be 1 or 2 for each of the {len(blocks)} stages"
            )
        if not 0.0 <= dropout < 1.0 or not 0.0 <= stochastic_depth < 1.0:
            raise ValueError(
                f"dropout={dropout} and stochastic_depth={stochastic_depth} must be in [0, 1)"
            )
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        stages: list[nn.Module] = []
        total = sum(blocks)
        for i, (width, count, first_stride) in enumerate(
            zip(widths[1:], blocks, strides, strict=True)
        ):
            previous = widths[i]
            for j in range(count):
                stride = first_stride if j == 0 else 1
                rate = stochastic_depth * len(stages) / max(1, total - 1)
                stages.append(SeparableResidualBlock(previous, width, stride, attention, rate))
                previous = width
        self.stages = nn.Sequential(*stages)
        self.noise = GaussianNoise(feature_noise)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Conv2d(widths[-1], num_classes, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stages(self.stem(x))
        # pooling first: the same logits as a 1x1 head before pooling (both are linear), and
        # dropout and noise act on (N, C, 1, 1) instead of the whole feature map
        return self.head(self.dropout(self.noise(self.pool(x)))).flatten(1)
