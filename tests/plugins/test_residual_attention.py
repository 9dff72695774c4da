"""cvkit-residual-attention: the CBAM study's models, their sizes and the frozen backbone."""

from __future__ import annotations

import pytest
import torch
from torchvision.models import get_model

from cvkit.build import build_model, trainable_parameters
from cvkit.recipe import load_recipe
from cvkit_cbam import CBAM
from cvkit_residual_attention import AttentionModule, ResAttentionNet, ResNetAttention

from conftest import RECIPES


def test_the_sample_resnet_is_within_ten_percent_of_the_studys_230k(registry) -> None:
    recipe = load_recipe(RECIPES / "cbam_sample_resnet.toml", registry=registry)
    model = build_model(recipe, registry, num_classes=10, in_channels=3)
    count = trainable_parameters(model)
    assert abs(count - 230_000) <= 23_000, count
    assert count == 229_236  # as documented
    assert sum(isinstance(m, CBAM) for m in model.modules()) == 2  # one per ResAttention block
    assert model(torch.rand(2, 3, 224, 224)).shape == (2, 10)


def test_the_attention_module_scales_the_trunk_by_one_plus_a_soft_mask() -> None:
    torch.manual_seed(0)
    module = AttentionModule(8, trunk_units=1, mask_depth=2).eval()
    x = torch.randn(2, 8, 13, 9)  # odd sizes: the mask is upsampled back to them
    first = module.first(x)
    mask = module.mask(first)
    assert mask.shape == first.shape and ((mask > 0) & (mask < 1)).all()
    torch.testing.assert_close(module(x), module.last((1 + mask) * module.trunk(first)))


def test_resnet_attention_freezes_its_backbone_from_the_recipe(registry) -> None:
    recipe = load_recipe(
        RECIPES / "cbam_resnet50_attention.toml",
        ["model.arch=resnet18", "model.channels=16", "model.pretrained=IMAGENET1K_V1"],
        registry,
    )
    model = build_model(recipe, registry, num_classes=10, in_channels=3, load_weights=False)
    frozen = {n.split(".")[0] for n, p in model.named_parameters() if not p.requires_grad}
    trainable = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert frozen == {"backbone"} and trainable == {"reduce", "block", "fc"}
    assert model(torch.rand(2, 3, 64, 64)).shape == (2, 10)


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
