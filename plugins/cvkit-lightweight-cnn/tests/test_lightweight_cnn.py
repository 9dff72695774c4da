"""cvkit-lightweight-cnn: the study's sizes, the parameter budgets and the blocks."""

from __future__ import annotations

import pytest
import torch

from cvkit_lightweight_cnn import BaseSubModel, LightweightCNN, SeparableResidualBlock
from cvkit_squeeze_excitation import SqueezeExcitation


def trainable_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def se16(channels: int) -> torch.nn.Module:
    return SqueezeExcitation(channels, reduction=16)


def test_the_base_sub_model_has_the_studys_layers_and_size() -> None:
    model = BaseSubModel(10, 3)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [10, 20]
    assert model.classifier[1].out_features == 128 and model.classifier[3].p == 0.3
    assert trainable_parameters(model) == 95_678
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError, match="too small"):
        BaseSubModel(10, 3, image_size=8)


def batch_norm(c: int) -> int:
    return 2 * c  # weight and bias


def separable_block(c_in: int, c_out: int) -> int:
    """Depthwise 3x3 + BN, pointwise 1x1 + BN (no biases), and a 1x1 + BN shortcut when
    the width changes (identity otherwise)."""
    shortcut = c_in * c_out + batch_norm(c_out) if c_in != c_out else 0
    return 9 * c_in + batch_norm(c_in) + c_in * c_out + batch_norm(c_out) + shortcut


def se(c: int, reduction: int = 16) -> int:
    hidden = max(c // reduction, 1)
    return 2 * c * hidden + hidden + c  # two 1x1 convolutions with biases


def test_the_enhanced_models_fit_the_20k_and_30k_budgets() -> None:
    """The counts follow from the layers: a 3x3 stem 3->24 + BN, separable blocks 24->48
    and 48->96 (one SE after each block with attention), a 1x1 head 96->10 with a bias."""
    stem, head = 3 * 24 * 9 + batch_norm(24), 96 * 10 + 10
    plain = stem + separable_block(24, 48) + separable_block(48, 96) + head
    with_se = plain + se(48) + se(96)
    deeper = with_se + separable_block(96, 96) + se(96)
    assert (plain, with_se, deeper) == (14_554, 16_147, 27_865)  # under 20k, 20k and 30k
    assert trainable_parameters(LightweightCNN(10, 3)) == plain
    assert trainable_parameters(LightweightCNN(10, 3, attention=se16)) == with_se
    assert trainable_parameters(LightweightCNN(10, 3, blocks=[1, 2], attention=se16)) == deeper


def test_a_separable_block_is_depthwise_then_pointwise_with_a_residual() -> None:
    torch.manual_seed(0)
    block = SeparableResidualBlock(8, 8).eval()
    depthwise = block.branch[0]
    assert depthwise.groups == 8 and depthwise.kernel_size == (3, 3)
    x = torch.randn(2, 8, 6, 6)
    torch.testing.assert_close(block(x), (block.branch(x) + x).relu())
    down = SeparableResidualBlock(8, 16, stride=2)
    assert down(x).shape == (2, 16, 3, 3)


def test_stochastic_depth_rises_linearly_and_noise_acts_in_training_only() -> None:
    model = LightweightCNN(10, 3, blocks=[2, 2], stochastic_depth=0.3, feature_noise=0.5)
    rates = [block.drop.p for block in model.stages]
    assert rates == pytest.approx([0.0, 0.1, 0.2, 0.3])
    x = torch.rand(4, 3, 16, 16)
    model.eval()
    torch.testing.assert_close(model(x), model(x))  # no noise, no dropped branches
    model.train()
    torch.manual_seed(0)
    noisy = model(x)
    torch.manual_seed(1)
    assert not torch.allclose(noisy, model(x))


def test_strides_set_each_stages_resolution_without_changing_the_parameters() -> None:
    default = LightweightCNN(10, 3, blocks=[1, 2], attention=se16)
    strided = LightweightCNN(10, 3, blocks=[1, 2], strides=[2, 2], attention=se16)
    assert trainable_parameters(strided) == trainable_parameters(default)
    x = torch.rand(2, 3, 32, 32)
    assert default.stages(default.stem(x)).shape == (2, 96, 16, 16)
    assert strided.stages(strided.stem(x)).shape == (2, 96, 8, 8)
    assert [block.branch[0].stride for block in strided.stages] == [(2, 2), (2, 2), (1, 1)]
    with pytest.raises(ValueError, match=r"strides=\[2\] must be 1 or 2 for each of the 2"):
        LightweightCNN(10, 3, strides=[2])
