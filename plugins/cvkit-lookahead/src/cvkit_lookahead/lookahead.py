"""Lookahead (Zhang, Lucas, Hinton, Ba: "Lookahead Optimizer: k steps forward, 1 step back",
NeurIPS 2019)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
from torch.optim import Optimizer

from cvkit import OptimizerWrapper

Sync = Literal["every_k", "after_first_step"]
SYNCS: tuple[Sync, ...] = ("every_k", "after_first_step")


class Lookahead(OptimizerWrapper):
    """Wraps an optimizer: every k of its steps, the slow weights move alpha of the way to
    the fast weights, and the fast weights restart from there.

    The inner ("fast") optimizer steps as usual. The wrapper's ``param_groups`` are the
    inner optimizer's (also after it loads a state), so learning-rate schedulers, gradient
    clipping and scalers act on the inner optimizer through it. ``state_dict`` holds the
    inner optimizer's state, the slow weights and the step counter, so a resumed run
    continues exactly. Optimizers that need a closure (SAM) keep working: the closure is
    passed through.

    ``sync`` says when the slow weights start and synchronise:

    - ``every_k`` (the paper's Algorithm 1): the slow weights are the initial weights, and
      the synchronisations follow inner steps k, 2k, 3k, ...
    - ``after_first_step`` (the widely copied alphadl/lookahead.pytorch implementation, which
      the Efficient ResNets code uses): the slow weights are taken after the first inner
      step, and the synchronisations follow steps 1 (a no-op), k + 1, 2k + 1, ...; one
      step later than the paper's, from a start one step further on.
    """

    def __init__(
        self, optimizer: Optimizer, k: int = 5, alpha: float = 0.5, sync: Sync = "every_k"
    ) -> None:
        if k < 1 or not 0.0 < alpha <= 1.0:
            raise ValueError(f"k={k} must be >= 1 and alpha={alpha} in (0, 1]")
        if sync not in SYNCS:
            raise ValueError(f"sync={sync!r} must be one of {', '.join(SYNCS)}")
        super().__init__(optimizer)
        self.k, self.alpha, self.sync = k, alpha, sync
        self.steps = 0
        with torch.no_grad():
            self.slow = [
                [p.detach().clone() for p in group["params"]] for group in self.param_groups
            ]

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One inner step; every k-th (see ``sync``) also synchronises slow and fast weights."""
        loss = self.optimizer.step(closure) if closure is not None else self.optimizer.step()
        self.steps += 1
        offset = 1 if self.sync == "after_first_step" else 0
        if offset and self.steps == 1:
            self._copy_fast_to_slow()
        elif (self.steps - offset) % self.k == 0:
            with torch.no_grad():
                for group, slow_weights in zip(self.param_groups, self.slow, strict=True):
                    for fast, slow in zip(group["params"], slow_weights, strict=True):
                        slow.lerp_(fast, self.alpha)  # slow += alpha * (fast - slow)
                        fast.copy_(slow)
        return loss

    @torch.no_grad()
    def _copy_fast_to_slow(self) -> None:
        for group, slow_weights in zip(self.param_groups, self.slow, strict=True):
            for fast, slow in zip(group["params"], slow_weights, strict=True):
                slow.copy_(fast)

    def state_dict(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(),
            "slow": [[w.clone() for w in group] for group in self.slow],
            "steps": self.steps,
            "k": self.k,
            "alpha": self.alpha,
            "sync": self.sync,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state_dict["optimizer"])
        with torch.no_grad():
            for mine, saved in zip(self.slow, state_dict["slow"], strict=True):
                for weight, value in zip(mine, saved, strict=True):
                    weight.copy_(value)
        self.steps, self.k, self.alpha = state_dict["steps"], state_dict["k"], state_dict["alpha"]
        self.sync = state_dict.get("sync", "every_k")  # checkpoints from before the option

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        with torch.no_grad():
            self.slow.append([p.detach().clone() for p in self.param_groups[-1]["params"]])

    def __repr__(self) -> str:
        return f"Lookahead(k={self.k}, alpha={self.alpha}, sync={self.sync}, {self.optimizer!r})"
