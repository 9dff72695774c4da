"""Sharpness-Aware Minimization (Foret, Kleiner, Mobahi, Neyshabur: "Sharpness-Aware
Minimization for Efficiently Improving Generalization", ICLR 2021), with the adaptive
variant of ASAM (Kwon, Kim, Park, Choi, ICML 2021)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.optim import Optimizer

from cvkit import OptimizerWrapper


class SAM(OptimizerWrapper):
    """Wraps an optimizer: it steps with the gradient taken at the worst nearby weights.

    ``step(closure)`` calls ``closure`` (which zeroes the gradients, computes the loss and
    backpropagates) for the gradient g at the weights w, moves to w + e with
    e = rho * g / ||g|| (adaptive: e = rho * w^2 * g / ||w * g||, elementwise,
    scale-invariant), calls ``closure`` again for the gradient there (cvkit's trainer
    leaves batch-norm running statistics alone in that second pass), moves back to w and
    lets the inner optimizer step with the second gradient. Two forward/backward passes per
    step; ``requires_closure = True``; returns the loss at w.

    Args:
        optimizer: the inner optimizer (the paper: SGD with momentum).
        rho: radius of the neighbourhood (the paper: 0.05; adaptive uses larger, e.g. 2.0).
        adaptive: ASAM's parameter-scaled neighbourhood.
    """

    requires_closure = True

    def __init__(self, optimizer: Optimizer, rho: float = 0.05, adaptive: bool = False) -> None:
        if rho <= 0:
            raise ValueError(f"rho={rho} must be > 0")
        super().__init__(optimizer)
        self.requires_closure = True
        self.rho, self.adaptive = rho, adaptive

    def _params(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(parameter, gradient) of every parameter that has a gradient."""
        return [
            (p, p.grad)
            for group in self.param_groups
            for p in group["params"]
            if p.grad is not None
        ]

    @torch.no_grad()
    def ascent(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Move every parameter with a gradient to w + e; returns (parameter, e) pairs."""
        params = self._params()
        if not params:
            return []
        scaled = [(p.abs() * g if self.adaptive else g) for p, g in params]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in scaled]))
        scale = self.rho / (norm + 1e-12)
        moves = []
        for p, g in params:
            e = (p.square() if self.adaptive else 1.0) * g * scale
            p.add_(e)
            moves.append((p, e))
        return moves

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One SAM step; ``closure`` recomputes the loss and gradients (required)."""
        if closure is None:
            raise RuntimeError("SAM needs a closure that recomputes the loss and its gradients")
        with torch.enable_grad():
            loss = closure()
        moves = self.ascent()
        with torch.enable_grad():
            closure()
        with torch.no_grad():
            for p, e in moves:
                p.sub_(e)
        self.optimizer.step()
        return loss

    def state_dict(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(),
            "rho": self.rho,
            "adaptive": self.adaptive,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state_dict["optimizer"])
        self.rho, self.adaptive = state_dict["rho"], state_dict["adaptive"]

    def __repr__(self) -> str:
        return f"SAM(rho={self.rho}, adaptive={self.adaptive}, {self.optimizer!r})"
