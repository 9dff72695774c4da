"""cvkit-simam: SimAM against the paper's energy function, and why it declares a minimum size."""

from __future__ import annotations

import math

import pytest
import torch

from cvkit_simam import SimAM


def simam_from_the_paper(x: torch.Tensor, e_lambda: float) -> torch.Tensor:
    """Yang et al. (2021), one neuron t at a time: the inverse of its minimal energy is
    (t - mu)^2 / (4 (sigma^2 + lambda)) + 0.5, mu the mean of its channel's H * W neurons and
    sigma^2 = sum (x_i - mu)^2 / n with n = H * W - 1 (as the paper's code listing divides);
    the output is t * sigmoid(1 / e*)."""
    out = torch.empty_like(x)
    batch, channels, height, width = x.shape
    n = height * width - 1
    for b in range(batch):
        for c in range(channels):
            values = [float(v) for v in x[b, c].flatten()]
            mu = sum(values) / len(values)
            variance = sum((v - mu) ** 2 for v in values) / n
            for i in range(height):
                for j in range(width):
                    t = float(x[b, c, i, j])
                    inverse_energy = (t - mu) ** 2 / (4 * (variance + e_lambda)) + 0.5
                    out[b, c, i, j] = t / (1 + math.exp(-inverse_energy))
    return out


@pytest.mark.parametrize(("shape", "e_lambda"), [((2, 3, 4, 5), 1e-4), ((1, 2, 2, 1), 0.1)])
def test_simam_equals_the_papers_energy_function(shape, e_lambda) -> None:
    x = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    expected = simam_from_the_paper(x, e_lambda)
    assert torch.allclose(SimAM(shape[1], e_lambda=e_lambda)(x), expected, atol=1e-12)


def test_a_1x1_map_is_0_over_0_hence_the_declared_minimum_size(run_cli) -> None:
    """The published formula divides by n = H * W - 1 = 0: NaN, which the contract names."""
    assert torch.isnan(SimAM(4)(torch.randn(2, 4, 1, 1))).all()
    result = run_cli("info", "attention/simam")
    assert "inputs (at the default parameters): min_size=2\n" in result.output
    assert not list(SimAM(4).parameters())  # parameter-free


def test_e_lambda_must_be_positive() -> None:
    with pytest.raises(ValueError, match="e_lambda must be > 0, got 0"):
        SimAM(4, e_lambda=0)
