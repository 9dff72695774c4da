"""cvkit-resnet: parameter counts, attention placement, dropout, pooling, budgets."""

from __future__ import annotations

import pytest
import torch

from cvkit_resnet import ResNet18, ResNet50, efficient_resnet
from cvkit_squeeze_excitation import SqueezeExcitation


def trainable(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def se16(channels: int) -> torch.nn.Module:
    return SqueezeExcitation(channels, reduction=16)


def test_the_papers_efficient_resnet_has_exactly_its_parameter_count() -> None:
    model = efficient_resnet(10, 3, attention=se16)
    assert trainable(model) == 4_697_742
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    assert (
        trainable(efficient_resnet(10, 3)) == 4_697_742 - 580
    )  # the SE block after the stem: 2*64*4 + 4 + 64


def test_resnet_parameter_counts_match_the_known_cifar_resnets() -> None:
    assert trainable(ResNet18(10, 3)) == 11_173_962  # the common CIFAR ResNet-18 count
    assert trainable(ResNet50(100, 3)) == 23_705_252


def test_attention_placement_block_puts_one_block_in_every_residual_block() -> None:
    model = ResNet18(10, 3, attention=se16)
    blocks = [m for m in model.modules() if isinstance(m, SqueezeExcitation)]
    assert [b.fc1.in_channels for b in blocks] == [64, 64, 128, 128, 256, 256, 512, 512]
    assert isinstance(model.stem_attention, torch.nn.Identity)
    stem = ResNet18(10, 3, attention=se16, attention_placement="stem")
    assert isinstance(stem.stem_attention, SqueezeExcitation)
    assert sum(isinstance(m, SqueezeExcitation) for m in stem.modules()) == 1
    bottleneck = ResNet50(10, 3, attention=se16, width=8)
    assert [b.fc1.in_channels for b in bottleneck.modules() if isinstance(b, SqueezeExcitation)][
        :3
    ] == [32, 32, 32]


def test_attention_acts_on_the_residual_branch_before_the_addition() -> None:
    model = ResNet18(10, 3, width=4, attention=lambda c: ZeroGate()).eval()
    block = model.stages[0]
    x = torch.rand(2, 4, 8, 8)
    assert torch.allclose(
        block(x), torch.relu(x)
    )  # branch zeroed: only the identity shortcut is left


class ZeroGate(torch.nn.Module):
    def forward(self, x):
        return x * 0


def test_dropout_options_and_zero_init() -> None:
    model = efficient_resnet(10, 3, dropout=0.2, block_dropout=0.1, zero_init_residual=True)
    assert isinstance(model.dropout, torch.nn.Dropout) and model.dropout.p == 0.2
    assert all(b.dropout.p == 0.1 for b in model.stages)
    assert all(torch.count_nonzero(b.bn2.weight) == 0 for b in model.stages)


def test_efficient_resnet_kernel_sizes_and_pooling() -> None:
    model = efficient_resnet(
        10,
        3,
        blocks=[2, 1],
        conv_kernel_sizes=[5, 3],
        shortcut_kernel_sizes=[1, 3],
        channels=8,
        pool_kernel=4,
    )
    assert model.stages[0].conv1.kernel_size == (5, 5) and model.stages[2].shortcut[
        0
    ].kernel_size == (3, 3)
    assert model.classifier.in_features == 16 * 4 * 4  # 16x16 map after two stages, pooled by 4
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError, match="one entry per stage"):
        efficient_resnet(10, 3, blocks=[1, 1], conv_kernel_sizes=[3])
    with pytest.raises(ValueError, match="odd"):
        efficient_resnet(10, 3, conv_kernel_sizes=[3, 4, 3])
    with pytest.raises(ValueError, match="pool_kernel=64"):
        efficient_resnet(10, 3, pool_kernel=64)
