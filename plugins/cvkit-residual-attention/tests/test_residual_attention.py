"""cvkit-residual-attention: the CBAM study's models, layer by layer, with the sizes of its
code, and the frozen backbone."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models import get_model

from cvkit_cbam import CBAM
from cvkit_residual_attention import ResAttentionBlock, ResNetAttention, SampleResNet


def study_cbam(channels: int) -> nn.Module:
    return CBAM(channels, reduction=2, spatial_bias=False)


def test_the_res_attention_block_is_the_studys_residual_attention() -> None:
    """Residual_attention.forward of the study's code, written out: shortcut = bn(conv3(x));
    out = attention(conv2(conv1(x))); relu(out + shortcut)."""
    torch.manual_seed(0)
    block = ResAttentionBlock(8, 6, ratio=2, attention=study_cbam).eval()
    x = torch.randn(2, 8, 9, 7)
    shortcut = block.shortcut[1](block.shortcut[0](x))
    expected = torch.relu(block.attention(block.conv2(block.conv1(x))) + shortcut)
    torch.testing.assert_close(block(x), expected)
    assert (block.conv1.in_channels, block.conv1.out_channels, block.conv2.out_channels) == (
        8,
        4,
        6,
    )
    assert block.conv1.bias is None and block.conv2.bias is None
    assert block.shortcut[0].kernel_size == (1, 1) and block.shortcut[0].bias is None
    with pytest.raises(ValueError, match="in_channels // ratio >= 1"):
        ResAttentionBlock(1, 4, ratio=2)


def test_the_sample_resnet_is_the_studys_arsc_net_layer_by_layer() -> None:
    model = SampleResNet(10, 3, attention=study_cbam)
    layers = [
        (
            name,
            type(module).__name__,
            tuple(module.weight.shape)
            if hasattr(module, "weight") and module.weight is not None
            else None,
        )
        for name, module in model.named_modules()
        if isinstance(module, nn.Conv2d | nn.BatchNorm2d | nn.Linear | nn.AdaptiveMaxPool2d)
    ]
    assert layers == [
        ("stem.0", "Conv2d", (64, 3, 7, 7)),
        ("stem.1", "BatchNorm2d", (64,)),
        ("stem.3", "AdaptiveMaxPool2d", None),
        ("block1.conv1", "Conv2d", (32, 64, 3, 3)),
        ("block1.conv2", "Conv2d", (128, 32, 3, 3)),
        ("block1.attention.channel.mlp.0", "Conv2d", (64, 128, 1, 1)),
        ("block1.attention.channel.mlp.2", "Conv2d", (128, 64, 1, 1)),
        ("block1.attention.spatial.conv", "Conv2d", (1, 2, 7, 7)),
        ("block1.shortcut.0", "Conv2d", (128, 64, 1, 1)),
        ("block1.shortcut.1", "BatchNorm2d", (128,)),
        ("attention.channel.mlp.0", "Conv2d", (64, 128, 1, 1)),
        ("attention.channel.mlp.2", "Conv2d", (128, 64, 1, 1)),
        ("attention.spatial.conv", "Conv2d", (1, 2, 7, 7)),
        ("block2.conv1", "Conv2d", (64, 128, 3, 3)),
        ("block2.conv2", "Conv2d", (64, 64, 3, 3)),
        ("block2.attention.channel.mlp.0", "Conv2d", (32, 64, 1, 1)),
        ("block2.attention.channel.mlp.2", "Conv2d", (64, 32, 1, 1)),
        ("block2.attention.spatial.conv", "Conv2d", (1, 2, 7, 7)),
        ("block2.shortcut.0", "Conv2d", (64, 128, 1, 1)),
        ("block2.shortcut.1", "BatchNorm2d", (64,)),
        ("fc", "Linear", (10, 64)),
    ]
    assert model.stem[0].stride == (1, 1) and model.stem[0].bias is None
    assert model.stem[3].output_size == 64
    assert all(m.bias is None for m in model.modules() if isinstance(m, nn.Conv2d))
    assert sum(p.numel() for p in model.parameters()) == 230_000
    assert model(torch.rand(2, 3, 96, 96)).shape == (2, 10)


def test_resnet_attention_has_the_studys_head_and_counts() -> None:
    model = ResNetAttention(10, 3, arch="resnet50", attention=study_cbam, load_weights=False)
    assert (model.reduce.in_channels, model.reduce.out_channels) == (2048, 256)
    assert model.reduce.kernel_size == (3, 3) and model.reduce.bias is not None
    assert (model.block.conv1.in_channels, model.block.conv2.out_channels) == (256, 64)
    assert model.fc.in_features == 64
    head = sum(p.numel() for name, p in model.named_parameters() if not name.startswith("backbone"))
    assert head == 5_108_844
    assert sum(p.numel() for p in model.parameters()) == 28_616_876


def test_resnet_attention_loads_backbone_weights_from_a_local_file(tmp_path) -> None:
    torch.manual_seed(7)
    resnet = get_model("resnet18")
    torch.save(resnet.state_dict(), tmp_path / "resnet18.pth")
    model = ResNetAttention(
        10,
        3,
        arch="resnet18",
        weights_path=tmp_path / "resnet18.pth",
        reduce_channels=16,
        channels=8,
    )
    torch.testing.assert_close(model.backbone[0].weight, resnet.conv1.weight)
    torch.testing.assert_close(model.backbone[7][1].conv2.weight, resnet.layer4[1].conv2.weight)
    assert model(torch.rand(1, 3, 64, 64)).shape == (1, 10)
    with pytest.raises(ValueError, match="not a torchvision ResNet"):
        ResNetAttention(10, 3, arch="mobilenet_v3_small")
    with pytest.raises(ValueError, match="reduce_kernel=2 odd"):
        ResNetAttention(10, 3, arch="resnet18", reduce_kernel=2, load_weights=False)


def test_channels_are_checked() -> None:
    with pytest.raises(ValueError, match="three positive"):
        SampleResNet(10, 3, channels=[8, 16])
