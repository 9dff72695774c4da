"""CBAM: Convolutional Block Attention Module (Woo, Park, Lee, Kweon, ECCV 2018).

Channel attention  M_c(F) = sigmoid(MLP(AvgPool(F)) + MLP(MaxPool(F))), (N, C, 1, 1);
spatial attention  M_s(F) = sigmoid(conv_kxk([mean_c(F); max_c(F)])), (N, 1, H, W);
CBAM               F' = M_c(F) * F,  F'' = M_s(F') * F'.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

Pool = Literal["avg", "max"]


def _pool(x: Tensor, kind: str, dims: int | tuple[int, ...]) -> Tensor:
    return x.mean(dims, keepdim=True) if kind == "avg" else x.amax(dims, keepdim=True)


def _check_pools(pool_types: Sequence[str]) -> list[str]:
    pools = list(pool_types)
    if not pools or len(set(pools)) != len(pools) or not set(pools) <= {"avg", "max"}:
        raise ValueError(f"pool_types={pools} must be a non-empty subset of ['avg', 'max']")
    return pools


class ChannelAttention(nn.Module):
    """CBAM's channel attention: one weight in (0, 1) per channel from pooled descriptors.

    Each pooled descriptor (N, C, 1, 1) goes through a shared MLP C -> C/r -> C (1x1
    convolutions with ReLU between, no biases as in the paper's equation); the results are
    summed and gated by a sigmoid. Input and output (N, C, H, W), the input scaled per
    channel. Parameters: 2 * C * hidden (+ hidden + C with biases), with
    hidden = max(min_channels, C // reduction).

    Args:
        channels: channels C of the input.
        reduction: reduction ratio r of the MLP (the paper uses 16).
        pool_types: global poolings whose descriptors are summed: 'avg' and/or 'max'.
        min_channels: lower bound on the MLP's hidden width, for narrow layers.
        mlp_bias: give the MLP's layers biases (the authors' code does; the paper and timm do not).
        light: average the pooled descriptors and pass them through the MLP once (timm's
            "light" variant, the CBAM-lite of lightweight models).
    """

    def __init__(
        self,
        channels: int,
        reduction: int = 16,
        pool_types: Sequence[Pool] = ("avg", "max"),
        min_channels: int = 1,
        mlp_bias: bool = False,
        light: bool = False,
    ) -> None:
        super().__init__()
        if channels < 1 or reduction < 1 or min_channels < 1:
            raise ValueError(
                f"channels={channels}, reduction={reduction} and min_channels={min_channels} must be >= 1"
            )
        self.pool_types, self.light = _check_pools(pool_types), light
        hidden = max(min_channels, channels // reduction)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=mlp_bias),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1, bias=mlp_bias),
        )

    def weights(self, x: Tensor) -> Tensor:
        """M_c(x): (N, C, H, W) -> (N, C, 1, 1), values in (0, 1)."""
        pooled = [_pool(x, p, (2, 3)) for p in self.pool_types]
        if self.light:
            return torch.sigmoid(self.mlp(sum(pooled) / len(pooled)))
        return torch.sigmoid(sum(self.mlp(p) for p in pooled))

    def forward(self, x: Tensor) -> Tensor:
        """(N, C, H, W) -> (N, C, H, W)."""
        return x * self.weights(x)


class SpatialAttention(nn.Module):
    """CBAM's spatial attention: one weight in (0, 1) per position from channel-pooled maps.

    The channel-wise mean and/or max maps (N, 1, H, W) are concatenated and convolved by a
    kernel_size x kernel_size convolution (zero padding keeps H, W) to one map, gated by a
    sigmoid. Input and output (N, C, H, W), the input scaled per position.

    Args:
        channels: channels of the input (the block works for any; kept for the attention slot).
        kernel_size: odd size of the convolution (the paper uses 7).
        pool_types: channel poolings stacked as the convolution's input: 'avg' and/or 'max'.
        batch_norm: batch-normalise the map before the sigmoid, as the authors' code and timm
            do (the paper's equation has no normalisation).
        light: average the pooled maps into one before the convolution (timm's "light" variant).
        bias: give the convolution a bias; by default it has one exactly when there is no
            batch norm (false without batch norm: the paper's f^{7x7} alone, as some code has it).
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int = 7,
        pool_types: Sequence[Pool] = ("avg", "max"),
        batch_norm: bool = False,
        light: bool = False,
        bias: bool | None = None,
    ) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size={kernel_size} must be odd and >= 1")
        if bias and batch_norm:
            raise ValueError(
                "bias=True with batch_norm=True: the batch norm's shift replaces the bias"
            )
        self.pool_types, self.light = _check_pools(pool_types), light
        self.conv = nn.Conv2d(
            1 if light else len(self.pool_types),
            1,
            kernel_size,
            padding=kernel_size // 2,
            bias=not batch_norm if bias is None else bias,
        )
        self.norm = nn.BatchNorm2d(1) if batch_norm else nn.Identity()

    def weights(self, x: Tensor) -> Tensor:
        """M_s(x): (N, C, H, W) -> (N, 1, H, W), values in (0, 1)."""
        pooled = [_pool(x, p, 1) for p in self.pool_types]
        # (N, 1 or pools, H, W)
        maps = sum(pooled) / len(pooled) if self.light else torch.cat(pooled, 1)
        return torch.sigmoid(self.norm(self.conv(maps)))

    def forward(self, x: Tensor) -> Tensor:
        """(N, C, H, W) -> (N, C, H, W)."""
        return x * self.weights(x)


class CBAM(nn.Module):
    """Convolutional Block Attention Module: channel attention, then spatial attention.

    Input and output (N, C, H, W). With the defaults it is the paper's block; placed on a
    residual branch before the addition it is the paper's CBAM-ResNet.

    Args:
        channels: channels C of the input.
        reduction: reduction ratio of the channel MLP (the paper uses 16).
        kernel_size: odd size of the spatial convolution (the paper uses 7).
        pool_types: poolings of both attentions: 'avg' and/or 'max' (the paper uses both).
        spatial: apply the spatial attention (false: channel attention only, the paper's
            ablation).
        batch_norm: batch-normalise the spatial map, as the authors' code and timm do.
        min_channels: lower bound on the channel MLP's hidden width.
        mlp_bias: give the channel MLP biases (as the authors' code).
        light: both attentions average their pooled descriptors first (CBAM-lite, timm's
            LightCbamModule): fewer operations, a 1-channel spatial convolution.
        spatial_bias: give the spatial convolution a bias; by default it has one exactly when
            there is no batch norm.
    """

    def __init__(
        self,
        channels: int,
        reduction: int = 16,
        kernel_size: int = 7,
        pool_types: Sequence[Pool] = ("avg", "max"),
        spatial: bool = True,
        batch_norm: bool = False,
        min_channels: int = 1,
        mlp_bias: bool = False,
        light: bool = False,
        spatial_bias: bool | None = None,
    ) -> None:
        super().__init__()
        self.channel = ChannelAttention(
            channels, reduction, pool_types, min_channels, mlp_bias, light
        )
        self.spatial = (
            SpatialAttention(channels, kernel_size, pool_types, batch_norm, light, spatial_bias)
            if spatial
            else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        """(N, C, H, W) -> (N, C, H, W)."""
        return self.spatial(self.channel(x))


def cbam_lite(
    channels: int,
    reduction: int = 16,
    kernel_size: int = 7,
    batch_norm: bool = False,
    min_channels: int = 1,
) -> CBAM:
    """CBAM-lite: CBAM whose attentions average the avg- and max-pooled descriptors first.

    One MLP pass instead of two, and a kxk convolution over one map instead of two, as
    timm's LightCbamModule; for lightweight models. (N, C, H, W) -> (N, C, H, W).

    Args:
        channels: channels C of the input.
        reduction: reduction ratio of the channel MLP.
        kernel_size: odd size of the spatial convolution.
        batch_norm: batch-normalise the spatial map (timm's definition).
        min_channels: lower bound on the channel MLP's hidden width.
    """
    return CBAM(
        channels,
        reduction,
        kernel_size,
        batch_norm=batch_norm,
        min_channels=min_channels,
        light=True,
    )
