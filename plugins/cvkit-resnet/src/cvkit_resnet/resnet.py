"""CIFAR-style residual networks: a 3x3 stem without max-pool, stages of residual blocks,
average pooling, dropout and a linear classifier.

:class:`ResidualNetwork` holds every knob; ``ResNet18`` ... ``ResNet101`` fix He et al.'s
depths, and :func:`efficient_resnet` exposes all of them (Thakur, Chauhan, Gupta,
"Efficient ResNets: Residual Network Design", arXiv:2306.12100).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar, Literal

from torch import Tensor, nn

from cvkit import AttentionFactory
from cvkit_resnet.blocks import BasicBlock, Bottleneck

Placement = Literal["block", "stem"]


class ResidualNetwork(nn.Module):
    """A residual network for small images: stem, stages, pooling, dropout, classifier.

    Stage i has ``blocks[i]`` blocks with ``channels * 2**i`` channels (times the block's
    expansion); the first stage keeps the resolution, every later one halves it. Input
    (N, in_channels, H, W) float; output (N, num_classes) logits.

    ``attention_placement``: 'block' puts the attention block inside every residual block,
    on the residual branch before the addition (the SE paper); 'stem' puts it once after
    the stem (the Efficient ResNets code). ``pool_kernel``: none for global average
    pooling (any input size); an int for an average pool of that kernel, whose output size
    follows from ``input_size``, as in the Efficient ResNets code.
    """

    def __init__(
        self,
        *,
        num_classes: int,
        in_channels: int,
        block: type[BasicBlock] | type[Bottleneck],
        blocks: Sequence[int],
        channels: int = 64,
        conv_kernel_sizes: Sequence[int] | None = None,
        shortcut_kernel_sizes: Sequence[int] | None = None,
        attention: AttentionFactory | None = None,
        attention_placement: Placement = "block",
        dropout: float = 0.0,
        block_dropout: float = 0.0,
        pool_kernel: int | None = None,
        input_size: int = 32,
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        stages = len(blocks)
        conv_kernel_sizes = list(conv_kernel_sizes or [3] * stages)
        shortcut_kernel_sizes = list(shortcut_kernel_sizes or [1] * stages)
        if not blocks or min(blocks) < 1:
            raise ValueError(f"blocks={list(blocks)} must be a non-empty list of positive counts")
        if len(conv_kernel_sizes) != stages or len(shortcut_kernel_sizes) != stages:
            raise ValueError(
                f"conv_kernel_sizes {conv_kernel_sizes} and shortcut_kernel_sizes {shortcut_kernel_sizes} "
                f"need one entry per stage ({stages})"
            )
        if any(k < 1 or k % 2 == 0 for k in conv_kernel_sizes + shortcut_kernel_sizes):
            raise ValueError("kernel sizes must be positive odd numbers")
        if channels < 1 or not 0.0 <= dropout < 1.0 or not 0.0 <= block_dropout < 1.0:
            raise ValueError(f"channels={channels} must be >= 1 and dropouts in [0, 1)")
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, 1, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        )
        self.stem_attention = (
            attention(channels)
            if attention is not None and attention_placement == "stem"
            else nn.Identity()
        )
        block_attention = attention if attention_placement == "block" else None
        layers: list[BasicBlock | Bottleneck] = []
        in_planes = channels
        for i, count in enumerate(blocks):
            planes = channels * 2**i
            for j in range(count):
                stride = 2 if i > 0 and j == 0 else 1
                layers.append(
                    block(
                        in_planes,
                        planes,
                        stride,
                        conv_kernel_sizes[i],
                        shortcut_kernel_sizes[i],
                        attention=block_attention,
                        dropout=block_dropout,
                    )
                )
                in_planes = planes * block.expansion
        self.stages = nn.Sequential(*layers)
        if pool_kernel is None:
            self.pool: nn.Module = nn.AdaptiveAvgPool2d(1)
            features = in_planes
        else:
            side = math.ceil(input_size / 2 ** (stages - 1)) // pool_kernel
            if side < 1:
                raise ValueError(
                    f"pool_kernel={pool_kernel} is larger than the last feature map of a {input_size}-pixel input"
                )
            self.pool = nn.AvgPool2d(pool_kernel)
            features = in_planes * side * side
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.classifier = nn.Linear(features, num_classes)
        if zero_init_residual:
            for layer in layers:
                nn.init.zeros_(layer.last_norm().weight)

    def forward(self, x: Tensor) -> Tensor:
        """(N, C, H, W) -> (N, num_classes)."""
        x = self.stages(self.stem_attention(self.stem(x)))
        return self.classifier(self.dropout(self.pool(x).flatten(1)))


class CifarResNet(ResidualNetwork):
    """A ResNet of He et al. (2016) for 32x32 images: 3x3 stem with stride 1, no max-pool.

    Four stages of width, 2x, 4x and 8x width channels (times 4 in bottleneck blocks),
    global average pooling, dropout, linear classifier. Any input size >= 1.

    Args:
        attention: attention block (any registered one, e.g. se) or none.
        attention_placement: 'block': inside every residual block, on the residual branch
            before the addition (as in the SE paper); 'stem': once after the stem.
        dropout: dropout probability before the classifier.
        block_dropout: dropout probability after every residual block.
        width: channels of the first stage (64 in the paper).
        zero_init_residual: start every residual branch's last batch-norm scale at zero.
    """

    block: ClassVar[type[BasicBlock] | type[Bottleneck]]
    layers: ClassVar[tuple[int, ...]]

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        attention: AttentionFactory | None = None,
        attention_placement: Placement = "block",
        dropout: float = 0.0,
        block_dropout: float = 0.0,
        width: int = 64,
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__(
            num_classes=num_classes,
            in_channels=in_channels,
            block=self.block,
            blocks=self.layers,
            channels=width,
            attention=attention,
            attention_placement=attention_placement,
            dropout=dropout,
            block_dropout=block_dropout,
            zero_init_residual=zero_init_residual,
        )


class ResNet18(CifarResNet):
    """ResNet-18 for CIFAR (He et al., 2016): basic blocks [2, 2, 2, 2], 11.2M parameters."""

    block = BasicBlock
    layers = (2, 2, 2, 2)


class ResNet34(CifarResNet):
    """ResNet-34 for CIFAR (He et al., 2016): basic blocks [3, 4, 6, 3], 21.3M parameters."""

    block = BasicBlock
    layers = (3, 4, 6, 3)


class ResNet50(CifarResNet):
    """ResNet-50 for CIFAR (He et al., 2016): bottleneck blocks [3, 4, 6, 3], 23.5M parameters."""

    block = Bottleneck
    layers = (3, 4, 6, 3)


class ResNet101(CifarResNet):
    """ResNet-101 for CIFAR (He et al., 2016): bottleneck blocks [3, 4, 23, 3], 42.5M parameters."""

    block = Bottleneck
    layers = (3, 4, 23, 3)


def efficient_resnet(
    num_classes: int,
    in_channels: int,
    blocks: list[int] = [4, 4, 3],  # noqa: B006 - never mutated; shown as the default
    conv_kernel_sizes: list[int] = [3, 3, 3],  # noqa: B006
    shortcut_kernel_sizes: list[int] = [1, 1, 1],  # noqa: B006
    channels: int = 64,
    pool_kernel: int | None = 8,
    input_size: int = 32,
    dropout: float = 0.0,
    block_dropout: float = 0.0,
    attention: AttentionFactory | None = None,
    attention_placement: Placement = "stem",
    zero_init_residual: bool = False,
) -> ResidualNetwork:
    """Efficient ResNet (Thakur, Chauhan, Gupta, arXiv:2306.12100): every design knob exposed.

    A CIFAR ResNet of basic blocks whose stages, kernel sizes, width and pooling are
    parameters. The defaults with attention = { name = "se", reduction = 16 } are the
    paper's model: stages [4, 4, 3], 3x3 convolutions, 1x1 shortcuts, 64 base channels,
    SE once after the stem, average-pool kernel 8: 4,697,742 trainable parameters.
    Input (N, in_channels, input_size, input_size) when pool_kernel is set.

    Args:
        blocks: residual blocks per stage (the number of stages is its length).
        conv_kernel_sizes: kernel size of the blocks' convolutions, per stage (odd).
        shortcut_kernel_sizes: kernel size of the projection shortcuts, per stage (odd).
        channels: channels of the first stage; each later stage doubles them.
        pool_kernel: average-pool kernel after the last stage; none for global pooling.
        input_size: input height and width the classifier is sized for (with pool_kernel).
        dropout: dropout probability before the classifier.
        block_dropout: dropout probability after every residual block.
        attention: attention block (any registered one, e.g. se) or none.
        attention_placement: 'stem': once after the stem (the paper's code); 'block': inside
            every residual block before the addition.
        zero_init_residual: start every residual branch's last batch-norm scale at zero.
    """
    return ResidualNetwork(
        num_classes=num_classes,
        in_channels=in_channels,
        block=BasicBlock,
        blocks=blocks,
        channels=channels,
        conv_kernel_sizes=conv_kernel_sizes,
        shortcut_kernel_sizes=shortcut_kernel_sizes,
        attention=attention,
        attention_placement=attention_placement,
        dropout=dropout,
        block_dropout=block_dropout,
        pool_kernel=pool_kernel,
        input_size=input_size,
        zero_init_residual=zero_init_residual,
    )
