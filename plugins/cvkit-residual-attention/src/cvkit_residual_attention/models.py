"""The CBAM study's models: the "Sample ResNet" and a ResNet with a ResAttention head."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch import Tensor, nn

from cvkit import AttentionFactory, adapt_input_channels, torchvision_model
from cvkit_residual_attention.blocks import ResAttentionBlock


class SampleResNet(nn.Module):
    """The study's "Sample ResNet" (``ARSC_NET`` in its code): 230,000 parameters with CBAM.

    conv7x7 (stride 1, no bias) - BN - ReLU - adaptive max-pool to ``pool_size`` x
    ``pool_size``, a ResAttention block (channels[0] -> channels[1]), the attention block
    alone (the study's "AttentionModule": CBAM), a ResAttention block (channels[1] ->
    channels[2]), global average pooling, a linear classifier. Everything after the pool is
    stride 1. With the defaults and attention = { name = "cbam", reduction = 2,
    spatial_bias = false }: 230,000 trainable parameters for 10 classes. Input
    (N, in_channels, H, W), any H, W (the study: 224); output logits (N, num_classes) (the
    study's code ends in log-softmax, which cross-entropy applies itself).

    Args:
        channels: channels of the stem and of the two ResAttention blocks' outputs.
        pool_size: side of the adaptive max-pool after the stem.
        ratio: each ResAttention block's first convolution divides its input channels by it.
        attention: attention block in both ResAttention blocks and between them (the study:
            CBAM, reduction 2, no bias in the spatial convolution), or none.
        dropout: dropout before the classifier (the study has none).
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        channels: Sequence[int] = (64, 128, 64),
        pool_size: int = 64,
        ratio: int = 2,
        attention: AttentionFactory | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if len(channels) != 3 or min(channels) < 1:
            raise ValueError(f"channels={list(channels)} must be three positive channel counts")
        if pool_size < 1 or not 0.0 <= dropout < 1.0:
            raise ValueError(f"pool_size={pool_size} must be >= 1 and dropout={dropout} in [0, 1)")
        stem, first, second = channels
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem, 7, stride=1, padding=3, bias=False),
            nn.BatchNorm2d(stem),
            nn.ReLU(inplace=True),
            nn.AdaptiveMaxPool2d(pool_size),
        )
        self.block1 = ResAttentionBlock(stem, first, ratio, attention)
        self.attention = attention(first) if attention is not None else nn.Identity()
        self.block2 = ResAttentionBlock(first, second, ratio, attention)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.fc = nn.Linear(second, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """(N, C, H, W) -> (N, num_classes)."""
        x = self.block2(self.attention(self.block1(self.stem(x))))
        return self.fc(self.dropout(self.pool(x).flatten(1)))


class ResNetAttention(nn.Module):
    """The study's "ResNet Attention": a torchvision ResNet up to layer4, a reducing
    convolution, a ResAttention block and a linear classifier.

    ``backbone`` is the ResNet up to layer4 (for ResNet-50: (N, 2048, H/32, W/32)); then
    ``reduce``, a reduce_kernel x reduce_kernel convolution with bias to ``reduce_channels``
    (nothing after it, as in the study's code), a ResAttention block to ``channels``, global
    average pooling and ``fc``. The study freezes the pretrained backbone
    (``freeze = ["backbone"]``): with ResNet-50, CBAM (reduction 2, no spatial bias) and the
    defaults, 5,108,844 of 28,616,876 parameters are then trainable. Input
    (N, in_channels, H, W) (the study: 224 x 224, ImageNet normalization); output logits
    (N, num_classes).

    Args:
        arch: the torchvision ResNet (resnet18/34/50/101/152, resnext*, wide_resnet*).
        pretrained: 'imagenet' or a torchvision weights name for the backbone (the study's
            code: IMAGENET1K_V1); none: random.
        weights_path: a local state dict for the torchvision model instead of a download.
        reduce_channels: channels of the reducing convolution.
        reduce_kernel: its odd kernel size (the study: 3, padding keeps the size).
        channels: channels of the ResAttention block's output (the classifier's input).
        ratio: the ResAttention block's first convolution divides its input channels by it.
        attention: attention block inside the ResAttention block (the study: CBAM), or none.
        dropout: dropout before the classifier (the study has none).
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        arch: str = "resnet50",
        pretrained: str | None = None,
        weights_path: Path | None = None,
        reduce_channels: int = 256,
        reduce_kernel: int = 3,
        channels: int = 64,
        ratio: int = 2,
        attention: AttentionFactory | None = None,
        dropout: float = 0.0,
        load_weights: bool = True,
    ) -> None:
        super().__init__()
        resnet = torchvision_model(
            arch, pretrained=pretrained, weights_path=weights_path, load_weights=load_weights
        )
        if not all(hasattr(resnet, name) for name in ("layer4", "fc", "avgpool")):
            raise ValueError(f"arch={arch!r} is not a torchvision ResNet (no layer4/avgpool/fc)")
        if min(reduce_channels, channels) < 1 or reduce_kernel < 1 or reduce_kernel % 2 == 0:
            raise ValueError(
                f"reduce_channels={reduce_channels} and channels={channels} must be >= 1, "
                f"reduce_kernel={reduce_kernel} odd"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout={dropout} must be in [0, 1)")
        adapt_input_channels(resnet, in_channels)
        head = resnet.fc
        assert isinstance(head, nn.Linear)  # checked above: a torchvision ResNet
        self.backbone = nn.Sequential(*list(resnet.children())[:-2])  # conv1 ... layer4
        self.reduce = nn.Conv2d(
            head.in_features, reduce_channels, reduce_kernel, padding=reduce_kernel // 2
        )
        self.block = ResAttentionBlock(reduce_channels, channels, ratio, attention)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """(N, C, H, W) -> (N, num_classes)."""
        x = self.block(self.reduce(self.backbone(x)))
        return self.fc(self.dropout(self.pool(x).flatten(1)))
