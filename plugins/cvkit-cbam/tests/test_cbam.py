"""cvkit-cbam: the paper's equations, timm's CbamModule, and the attention slot of the ResNets."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cvkit_cbam import CBAM, ChannelAttention, SpatialAttention, cbam_lite


def paper_cbam(x, w0, w1, conv_weight, conv_bias):
    """Woo et al., eqs. (1)-(3), written out: M_c = sigma(W1 relu(W0 avg) + W1 relu(W0 max)),
    F' = M_c * F; M_s = sigma(f7x7([avg_c(F'); max_c(F')])), F'' = M_s * F'."""
    avg, mx = x.mean((2, 3)), x.amax((2, 3))  # (N, C)
    mc = torch.sigmoid(F.relu(avg @ w0.T) @ w1.T + F.relu(mx @ w0.T) @ w1.T)
    f1 = x * mc[:, :, None, None]
    maps = torch.stack([f1.mean(1), f1.amax(1)], 1)  # (N, 2, H, W)
    ms = torch.sigmoid(F.conv2d(maps, conv_weight, conv_bias, padding=conv_weight.shape[-1] // 2))
    return f1 * ms


def test_cbam_is_the_papers_equations() -> None:
    torch.manual_seed(0)
    block = CBAM(32, reduction=16, kernel_size=7)
    x = torch.randn(3, 32, 9, 11)
    w0 = block.channel.mlp[0].weight[:, :, 0, 0]  # (C/r, C)
    w1 = block.channel.mlp[2].weight[:, :, 0, 0]  # (C, C/r)
    expected = paper_cbam(x, w0, w1, block.spatial.conv.weight, block.spatial.conv.bias)
    torch.testing.assert_close(block(x), expected)
    assert block.channel.mlp[0].bias is None  # the equation's MLP has no biases


def test_the_spatial_convolution_bias_is_optional() -> None:
    assert CBAM(8).spatial.conv.bias is not None
    assert CBAM(8, spatial_bias=False).spatial.conv.bias is None
    assert CBAM(8, batch_norm=True).spatial.conv.bias is None
    assert SpatialAttention(8, bias=False).conv.bias is None
    # the CBAM study's block (reduction 2, no biases anywhere): 2 * C * C/2 + 2 * 49 parameters
    assert (
        sum(p.numel() for p in CBAM(64, reduction=2, spatial_bias=False).parameters()) == 4096 + 98
    )
    with pytest.raises(ValueError, match="the batch norm's shift replaces the bias"):
        SpatialAttention(8, batch_norm=True, bias=True)


def test_the_parts_are_the_halves_of_cbam() -> None:
    torch.manual_seed(0)
    block = CBAM(16, reduction=4, kernel_size=3)
    channel, spatial = ChannelAttention(16, reduction=4), SpatialAttention(16, kernel_size=3)
    channel.load_state_dict(block.channel.state_dict())
    spatial.load_state_dict(block.spatial.state_dict())
    x = torch.randn(2, 16, 5, 5)
    torch.testing.assert_close(block(x), spatial(channel(x)))
    only_channel = CBAM(16, reduction=4, spatial=False)
    only_channel.channel.load_state_dict(block.channel.state_dict())
    torch.testing.assert_close(only_channel(x), channel(x))


def test_pool_types_choose_the_descriptors() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 8, 4, 4)
    avg_only = ChannelAttention(8, reduction=2, pool_types=["avg"])
    expected = x * torch.sigmoid(avg_only.mlp(x.mean((2, 3), keepdim=True)))
    torch.testing.assert_close(avg_only(x), expected)
    max_map = SpatialAttention(8, kernel_size=1, pool_types=["max"])
    assert max_map.conv.in_channels == 1
    with pytest.raises(ValueError, match="subset of"):
        ChannelAttention(8, pool_types=["avg", "lse"])
    with pytest.raises(ValueError, match="odd"):
        SpatialAttention(8, kernel_size=4)


def test_cbam_equals_timms_cbam_module_given_the_same_weights() -> None:
    layers = pytest.importorskip("timm.layers.cbam")
    torch.manual_seed(0)
    # timm normalises the spatial map (conv without bias + BatchNorm) and has no MLP biases:
    # the same definition as batch_norm = true, mlp_bias = false.
    ours = CBAM(64, reduction=16, kernel_size=7, batch_norm=True)
    theirs = layers.CbamModule(64, rd_ratio=1 / 16, spatial_kernel_size=7)
    theirs.channel.fc1.weight.data.copy_(ours.channel.mlp[0].weight)
    theirs.channel.fc2.weight.data.copy_(ours.channel.mlp[2].weight)
    theirs.spatial.conv.conv.weight.data.copy_(ours.spatial.conv.weight)
    theirs.spatial.conv.bn.load_state_dict(ours.spatial.norm.state_dict())
    x = torch.randn(4, 64, 8, 8)
    for mode in ("train", "eval"):
        getattr(ours, mode)(), getattr(theirs, mode)()
        torch.testing.assert_close(ours(x), theirs(x))


def test_cbam_lite_equals_timms_light_cbam_module_given_the_same_weights() -> None:
    layers = pytest.importorskip("timm.layers.cbam")
    torch.manual_seed(0)
    ours = cbam_lite(32, reduction=16, kernel_size=7, batch_norm=True)
    theirs = layers.LightCbamModule(32, rd_ratio=1 / 16, spatial_kernel_size=7)
    theirs.channel.fc1.weight.data.copy_(ours.channel.mlp[0].weight)
    theirs.channel.fc2.weight.data.copy_(ours.channel.mlp[2].weight)
    theirs.spatial.conv.conv.weight.data.copy_(ours.spatial.conv.weight)
    x = torch.randn(4, 32, 6, 6)
    for mode in ("train", "eval"):
        getattr(ours, mode)(), getattr(theirs, mode)()
        torch.testing.assert_close(ours(x), theirs(x))
    assert ours.spatial.conv.in_channels == 1
