"""cvkit-squeeze-excitation: the SE block against the paper's equations, and its use in recipes."""

from __future__ import annotations

import pytest
import torch

from cvkit_squeeze_excitation import SqueezeExcitation


def se_from_the_paper(x: torch.Tensor, w1, b1, w2, b2, gate=torch.sigmoid) -> torch.Tensor:
    """Hu et al. (2018), Eq. 2-4: z = F_sq(u); s = sigmoid(W2 relu(W1 z)); x~ = s * u."""
    z = x.mean(dim=(2, 3))  # (N, C): global average pooling
    s = gate(torch.relu(z @ w1.T + b1) @ w2.T + b2)  # (N, C)
    return x * s[:, :, None, None]


@pytest.mark.parametrize(("channels", "reduction"), [(64, 16), (32, 4), (3, 16)])
def test_se_equals_the_papers_equations(channels: int, reduction: int) -> None:
    torch.manual_seed(0)
    block = SqueezeExcitation(channels, reduction=reduction).eval()
    x = torch.randn(5, channels, 7, 6)
    w1, b1 = block.fc1.weight.flatten(1), block.fc1.bias
    w2, b2 = block.fc2.weight.flatten(1), block.fc2.bias
    assert torch.allclose(block(x), se_from_the_paper(x, w1, b1, w2, b2), atol=1e-6)


@pytest.mark.parametrize(
    ("channels", "reduction", "min_channels", "hidden"),
    [(64, 16, 1, 4), (3, 16, 1, 1), (64, 16, 8, 8)],
)
def test_se_parameter_count(channels, reduction, min_channels, hidden) -> None:
    block = SqueezeExcitation(channels, reduction=reduction, min_channels=min_channels)
    assert block.fc1.out_channels == hidden
    assert sum(p.numel() for p in block.parameters()) == 2 * channels * hidden + hidden + channels


def test_hard_sigmoid_gate_is_relu6_of_x_plus_3_over_6() -> None:
    """MobileNetV3's hard sigmoid, min(max(x + 3, 0), 6) / 6, in place of Eq. 3's sigmoid."""
    torch.manual_seed(0)
    block = SqueezeExcitation(8, reduction=2, gate="hard_sigmoid").eval()
    with torch.no_grad():  # excitations far enough from 0 that both gates' ends are reached
        block.fc2.weight.mul_(40)
    x = torch.randn(6, 8, 5, 5)
    w1, b1 = block.fc1.weight.flatten(1), block.fc1.bias
    w2, b2 = block.fc2.weight.flatten(1), block.fc2.bias

    def hard(v: torch.Tensor) -> torch.Tensor:
        return (v + 3).clamp(0, 6) / 6

    torch.testing.assert_close(block(x), se_from_the_paper(x, w1, b1, w2, b2, hard))
    assert not torch.allclose(block(x), se_from_the_paper(x, w1, b1, w2, b2), atol=1e-3)


def test_invalid_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="reduction=0"):
        SqueezeExcitation(8, reduction=0)


@pytest.mark.parametrize(("channels", "reduction"), [(64, 16), (48, 4)])
def test_se_equals_torchvisions_squeeze_excitation_with_the_same_weights(
    channels: int, reduction: int
) -> None:
    from torchvision.ops import SqueezeExcitation as TorchvisionSE

    torch.manual_seed(1)
    ours = SqueezeExcitation(channels, reduction=reduction).eval()
    theirs = TorchvisionSE(
        channels, channels // reduction
    ).eval()  # ReLU and sigmoid: the paper's block
    theirs.load_state_dict({k: v for k, v in ours.state_dict().items()})
    x = torch.randn(3, channels, 5, 4)
    assert torch.allclose(ours(x), theirs(x), atol=1e-6)
