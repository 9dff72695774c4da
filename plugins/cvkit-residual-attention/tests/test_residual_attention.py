"""cvkit-residual-attention: the CBAM study's models, their sizes and the frozen backbone."""

from __future__ import annotations

import pytest
import torch
from torchvision.models import get_model

from cvkit_residual_attention import AttentionModule, ResAttentionNet, ResNetAttention


def test_the_attention_module_scales_the_trunk_by_one_plus_a_soft_mask() -> None:
    torch.manual_seed(0)
    module = AttentionModule(8, trunk_units=1, mask_depth=2).eval()
    x = torch.randn(2, 8, 13, 9)  # odd sizes: the mask is upsampled back to them
    first = module.first(x)
    mask = module.mask(first)
    assert mask.shape == first.shape and ((mask > 0) & (mask < 1)).all()
    torch.testing.assert_close(module(x), module.last((1 + mask) * module.trunk(first)))


def test_resnet_attention_loads_backbone_weights_from_a_local_file(tmp_path) -> None:
    torch.manual_seed(7)
    resnet = get_model("resnet18")
    torch.save(resnet.state_dict(), tmp_path / "resnet18.pth")
    model = ResNetAttention(
        10, 3, arch="resnet18", weights_path=tmp_path / "resnet18.pth", channels=8
    )
    torch.testing.assert_close(model.backbone[0].weight, resnet.conv1.weight)
    torch.testing.assert_close(model.backbone[7][1].conv2.weight, resnet.layer4[1].conv2.weight)
    with pytest.raises(ValueError, match="not a torchvision ResNet"):
        ResNetAttention(10, 3, arch="mobilenet_v3_small")


def test_widths_are_checked() -> None:
    with pytest.raises(ValueError, match="three positive"):
        ResAttentionNet(10, 3, widths=[8, 16])
