"""The CBAM study's models: the "Sample ResNet" and a ResNet-50 with an attention head."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch import Tensor, nn

from cvkit import AttentionFactory, adapt_input_channels, torchvision_model
from cvkit_residual_attention.attention_module import AttentionModule
from cvkit_resnet import BasicBlock


class ResAttentionNet(nn.Module):
    """The study's "Sample ResNet": a small residual network with attention (about 230k parameters).

    Conv 7x7/2 - BN - ReLU - MaxPool 3x3/2, a ResAttention block (a residual basic block
    with the attention slot on its branch before the addition, as in CBAM's ResBlock), an
    AttentionModule (Wang et al.'s residual attention), a second ResAttention block with
    stride 2, global average pooling, dropout and a linear classifier. The study names the
    layers and the size; the widths are ours. With the defaults and CBAM: 229,236 trainable
    parameters for 10 classes. Input (N, in_channels, H, W), H, W >= 1 (the study: 224);
    output logits (N, num_classes).

    Args:
        widths: channels of the stem, the first and the second ResAttention block.
        attention: attention block inside both ResAttention blocks (the study: CBAM), or none.
        trunk_units: residual units of the AttentionModule's trunk branch.
        mask_depth: down-sampling levels of the AttentionModule's mask branch.
        dropout: dropout before the classifier.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        widths: Sequence[int] = (32, 56, 96),
        attention: AttentionFactory | None = None,
        trunk_units: int = 2,
        mask_depth: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if len(widths) != 3 or min(widths) < 1:
            raise ValueError(f"widths={list(widths)} must be three positive channel counts")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout={dropout} must be in [0, 1)")
        stem, first, second = widths
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(stem),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        self.block1 = BasicBlock(stem, first, attention=attention)
        self.attention_module = AttentionModule(first, trunk_units, mask_depth)
        self.block2 = BasicBlock(first, second, stride=2, attention=attention)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(second, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.block2(self.attention_module(self.block1(self.stem(x))))
        return self.fc(self.dropout(self.pool(x).flatten(1)))


class ResNetAttention(nn.Module):
    """The study's "ResNet Attention": a torchvision ResNet's features, a reducing 1x1
    convolution, a ResAttention block and a linear classifier.

    ``backbone`` is the ResNet up to layer4 (for ResNet-50: (N, 2048, H/32, W/32)); then
    conv1x1 - BN - ReLU to ``channels``, a ResAttention block (residual basic block with the
    attention slot on its branch), global average pooling, dropout and ``fc``. The study
    freezes the pretrained backbone: ``freeze = ["backbone"]``. Input (N, in_channels, H, W)
    (the study: 224 x 224, ImageNet normalization); output logits (N, num_classes).

    Args:
        arch: the torchvision ResNet (resnet18/34/50/101/152, resnext*, wide_resnet*).
        pretrained: 'imagenet' or a torchvision weights name for the backbone; none: random.
        weights_path: a local state dict for the torchvision model instead of a download.
        channels: channels after the reducing convolution.
        attention: attention block inside the ResAttention block (the study: CBAM), or none.
        dropout: dropout before the classifier.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        arch: str = "resnet50",
        pretrained: str | None = None,
        weights_path: Path | None = None,
        channels: int = 512,
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
        if channels < 1 or not 0.0 <= dropout < 1.0:
            raise ValueError(f"channels={channels} must be >= 1 and dropout={dropout} in [0, 1)")
        adapt_input_channels(resnet, in_channels)
        head = resnet.fc
        assert isinstance(head, nn.Linear)  # checked above: a torchvision ResNet
        features = head.in_features
        resnet.avgpool, resnet.fc = nn.Identity(), nn.Identity()
        self.backbone = nn.Sequential(*list(resnet.children())[:-2])  # conv1 ... layer4
        self.reduce = nn.Sequential(
            nn.Conv2d(features, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        )
        self.block = BasicBlock(channels, channels, attention=attention)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.block(self.reduce(self.backbone(x)))
        return self.fc(self.dropout(self.pool(x).flatten(1)))
