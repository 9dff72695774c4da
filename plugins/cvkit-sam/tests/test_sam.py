"""cvkit-sam: a reference two-step SAM on a toy problem, ASAM, state, and the trainer's second
pass leaving batch-norm statistics alone."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from cvkit.testing import train_least_squares
from cvkit_lookahead import Lookahead
from cvkit_sam import SAM


def toy():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(32, 5, generator=generator)
    y = torch.sin(x @ torch.randn(5, 1, generator=generator))
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 1)), x, y


def reference_sam(model, x, y, lr, rho, adaptive, steps):
    """Foret et al., Algorithm 1 with plain SGD, written out (ASAM: Kwon et al., eq. 9)."""
    params = list(model.parameters())
    for _ in range(steps):
        grads = torch.autograd.grad(nn.functional.mse_loss(model(x), y), params)
        with torch.no_grad():
            scaled = [(p.abs() * g if adaptive else g) for p, g in zip(params, grads, strict=True)]
            norm = torch.sqrt(sum((s**2).sum() for s in scaled))
            eps = [
                rho * (p**2 if adaptive else 1.0) * g / (norm + 1e-12)
                for p, g in zip(params, grads, strict=True)
            ]
            for p, e in zip(params, eps, strict=True):
                p.add_(e)
        sharp = torch.autograd.grad(nn.functional.mse_loss(model(x), y), params)
        with torch.no_grad():
            for p, e, g in zip(params, eps, sharp, strict=True):
                p.sub_(e).sub_(lr * g)


@pytest.mark.parametrize("adaptive", [False, True])
def test_sam_is_the_reference_two_step_update(adaptive) -> None:
    model, x, y = toy()
    twin = copy.deepcopy(model)
    rho = 0.5 if adaptive else 0.05
    train_least_squares(
        model, SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho, adaptive), x, y, 10
    )
    reference_sam(twin, x, y, lr=0.1, rho=rho, adaptive=adaptive, steps=10)
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_state_round_trips_and_lookahead_composes() -> None:
    model, x, y = toy()
    optimizer = Lookahead(SAM(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)), k=3)
    assert optimizer.requires_closure
    train_least_squares(model, optimizer, x, y, 4)
    twin = copy.deepcopy(model)
    restored = Lookahead(SAM(torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9)), k=3)
    restored.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    train_least_squares(model, optimizer, x, y, 5)
    train_least_squares(twin, restored, x, y, 5)
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    with pytest.raises(RuntimeError, match="closure"):
        SAM(torch.optim.SGD(model.parameters(), lr=0.1)).step()
    with pytest.raises(ValueError, match="rho"):
        SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=0)
