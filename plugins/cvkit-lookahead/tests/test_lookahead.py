"""cvkit-lookahead against the paper's update rule, with schedulers, state and resume."""

from __future__ import annotations

import copy

import pytest
import torch

from cvkit_lookahead import Lookahead


def toy(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(32, 4, generator=generator)
    y = x @ torch.randn(4, 1, generator=generator)
    w = torch.zeros(4, 1, requires_grad=True)
    return w, x, y


def gradient(w: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> None:
    w.grad = None
    torch.nn.functional.mse_loss(x @ w, y).backward()


def test_lookahead_follows_the_papers_algorithm_step_by_step() -> None:
    """Algorithm 1 of Zhang et al. (2019), written out with plain SGD as the inner optimizer."""
    k, alpha, lr = 5, 0.5, 0.1
    w, x, y = toy()
    optimizer = Lookahead(torch.optim.SGD([w], lr=lr), k=k, alpha=alpha)
    fast, _, _ = toy()
    slow = fast.detach().clone()
    for t in range(1, 23):
        gradient(w, x, y)
        optimizer.step()
        gradient(fast, x, y)
        with torch.no_grad():
            fast -= lr * fast.grad  # inner update
            if t % k == 0:
                slow += alpha * (fast - slow)  # phi <- phi + alpha (theta - phi)
                fast.copy_(slow)  # theta <- phi
        assert torch.allclose(w, fast, atol=1e-7), f"step {t}"


def test_schedulers_act_on_the_inner_learning_rate() -> None:
    w, _, _ = toy()
    inner = torch.optim.SGD([w], lr=0.1)
    optimizer = Lookahead(inner, k=2)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    w.grad = torch.zeros_like(w)
    optimizer.step()
    scheduler.step()
    assert (
        inner.param_groups[0]["lr"] == pytest.approx(0.05)
        and optimizer.param_groups is inner.param_groups
    )
    optimizer.load_state_dict(optimizer.state_dict())  # replaces the inner groups
    scheduler.step()
    assert (
        inner.param_groups[0]["lr"] == pytest.approx(0.025)
        and optimizer.param_groups is inner.param_groups
    )


def test_state_dict_round_trips_with_the_slow_weights() -> None:
    w, x, y = toy()
    optimizer = Lookahead(torch.optim.SGD([w], lr=0.1, momentum=0.9), k=3)
    for _ in range(4):
        gradient(w, x, y)
        optimizer.step()
    state = copy.deepcopy(optimizer.state_dict())
    twin = w.detach().clone().requires_grad_(True)
    restored = Lookahead(torch.optim.SGD([twin], lr=0.1, momentum=0.9), k=3)
    restored.load_state_dict(state)
    assert torch.equal(restored.slow[0][0], optimizer.slow[0][0]) and restored.steps == 4
    for _ in range(5):
        gradient(w, x, y)
        optimizer.step()
        gradient(twin, x, y)
        restored.step()
    assert torch.equal(w, twin)


def test_a_closure_passes_through_to_an_inner_optimizer_that_needs_one() -> None:
    class NeedsClosure(torch.optim.SGD):
        requires_closure = True
        calls = 0

        def step(self, closure=None):
            assert closure is not None
            NeedsClosure.calls += 1
            closure()
            return super().step()

    w, x, y = toy()
    optimizer = Lookahead(NeedsClosure([w], lr=0.1))
    assert optimizer.requires_closure
    optimizer.step(lambda: gradient(w, x, y))
    assert NeedsClosure.calls == 1
