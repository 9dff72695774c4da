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


@pytest.mark.parametrize("k", [1, 3, 5])
def test_after_first_step_follows_the_alphadl_implementation(k: int) -> None:
    """The implementation the Efficient ResNets code uses (alphadl/lookahead.pytorch), written
    out: a counter per group; at counter 0 the slow weights are created from the fast ones
    (first call) and updated; the counter wraps at k. Synchronisations: steps 1, k+1, 2k+1."""
    alpha, lr = 0.5, 0.1
    w, x, y = toy()
    optimizer = Lookahead(torch.optim.SGD([w], lr=lr), k=k, alpha=alpha, sync="after_first_step")
    fast, _, _ = toy()
    slow: torch.Tensor | None = None
    counter, synced = 0, []
    for t in range(1, 18):
        gradient(w, x, y)
        optimizer.step()
        gradient(fast, x, y)
        with torch.no_grad():
            fast -= lr * fast.grad
            if counter == 0:
                slow = fast.detach().clone() if slow is None else slow
                slow += (fast - slow) * alpha
                fast.copy_(slow)
                synced.append(t)
            counter = (counter + 1) % k
        assert torch.allclose(w, fast, atol=1e-7), f"step {t}"
    assert synced[:3] == [1, 1 + k, 1 + 2 * k]


def test_the_two_syncs_differ_and_a_bad_one_is_refused() -> None:
    # (on a quadratic loss with SGD the two coincide after step k + 1: the updates are affine)
    weights = []
    for sync in ("every_k", "after_first_step"):
        w, x, y = toy()
        optimizer = Lookahead(torch.optim.SGD([w], lr=0.5), k=5, sync=sync)
        for _ in range(6):
            w.grad = None
            (x @ w - y).abs().pow(3).mean().backward()
            optimizer.step()
        weights.append(w.detach().clone())
    assert not torch.allclose(*weights)
    with pytest.raises(ValueError, match="sync='paper' must be one of every_k, after_first_step"):
        Lookahead(torch.optim.SGD([toy()[0]], lr=0.1), sync="paper")  # type: ignore[arg-type]


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


@pytest.mark.parametrize("sync", ["every_k", "after_first_step"])
def test_state_dict_round_trips_with_the_slow_weights(sync) -> None:
    w, x, y = toy()
    optimizer = Lookahead(torch.optim.SGD([w], lr=0.1, momentum=0.9), k=3, sync=sync)
    for _ in range(4):
        gradient(w, x, y)
        optimizer.step()
    state = copy.deepcopy(optimizer.state_dict())
    twin = w.detach().clone().requires_grad_(True)
    restored = Lookahead(torch.optim.SGD([twin], lr=0.1, momentum=0.9), k=3)
    restored.load_state_dict(state)
    assert torch.equal(restored.slow[0][0], optimizer.slow[0][0]) and restored.steps == 4
    assert restored.sync == sync
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
