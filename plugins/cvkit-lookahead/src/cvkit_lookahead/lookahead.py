"""Lookahead (Zhang, Lucas, Hinton, Ba: "Lookahead Optimizer: k steps forward, 1 step back",
NeurIPS 2019)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.optim import Optimizer

from cvkit import OptimizerWrapper


class Lookahead(OptimizerWrapper):
    """Wraps an optimizer: every k of its steps, the slow weights move alpha of the way to
    the fast weights, and the fast weights restart from there.

    The inner ("fast") optimizer steps as usual. The wrapper's ``param_groups`` are the
    inner optimizer's (also after it loads a state), so learning-rate schedulers, gradient
    clipping and scalers act on the inner optimizer through it. ``state_dict`` holds the
    inner optimizer's state, the slow weights and the step counter, so a resumed run
    continues exactly. Optimizers that need a closure (SAM) keep working: the closure is
    passed through.
    """

    def __init__(self, optimizer: Optimizer, k: int = 5, alpha: float = 0.5) -> None:
        if k < 1 or not 0.0 < alpha <= 1.0:
            raise ValueError(f"k={k} must be >= 1 and alpha={alpha} in (0, 1]")
        super().__init__(optimizer)
        self.k, self.alpha = k, alpha
        self.steps = 0
        with torch.no_grad():
            self.slow = [
                [p.detach().clone() for p in group["params"]] for group in self.param_groups
            ]

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One inner step; every k-th also synchronises slow and fast weights."""
        loss = self.optimizer.step(closure) if closure is not None else self.optimizer.step()
        self.steps += 1
        if self.steps % self.k == 0:
            with torch.no_grad():
                for group, slow_weights in zip(self.param_groups, self.slow, strict=True):
                    for fast, slow in zip(group["params"], slow_weights, strict=True):
                        slow.lerp_(fast, self.alpha)  # slow += alpha * (fast - slow)
                        fast.copy_(slow)
        return loss

    def state_dict(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(),
            "slow": [[w.clone() for w in group] for group in self.slow],
            "steps": self.steps,
            "k": self.k,
            "alpha": self.alpha,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state_dict["optimizer"])
        with torch.no_grad():
            for mine, saved in zip(self.slow, state_dict["slow"], strict=True):
                for weight, value in zip(mine, saved, strict=True):
                    weight.copy_(value)
        self.steps, self.k, self.alpha = state_dict["steps"], state_dict["k"], state_dict["alpha"]

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        with torch.no_grad():
            self.slow.append([p.detach().clone() for p in self.param_groups[-1]["params"]])

    def __repr__(self) -> str:
        return f"Lookahead(k={self.k}, alpha={self.alpha}, {self.optimizer!r})"
