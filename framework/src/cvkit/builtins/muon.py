"""Built-in plugin: ``optimizer/muon``, torch.optim.Muon for matrices and convolution filters."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar

import torch
from torch import Tensor

from cvkit.hookspecs import Register, hookimpl


@contextlib.contextmanager
def _as_matrices(params: Iterable[Tensor]) -> Iterator[None]:
    """Inside the block, every parameter (and its gradient) of more than two dimensions is
    seen as a matrix (rows: the first dimension, e.g. a filter's output channels; columns:
    the rest); its values are written back at the end (a channels-last filter is a copy)."""
    saved = []
    for p in params:
        if p.ndim == 2:
            continue
        data, grad = p.data, p.grad
        p.data = data.reshape(data.shape[0], -1)
        if grad is not None:
            p.grad = grad.reshape(grad.shape[0], -1)
        saved.append((p, data, grad))
    try:
        yield
    finally:
        for p, data, grad in saved:
            if p.data.data_ptr() != data.data_ptr():
                data.copy_(p.data.view(data.shape))
            p.data = data
            p.grad = grad


class Muon(torch.optim.Muon):
    """Muon (Jordan et al., 2024): momentum SGD whose update is orthogonalised by Newton-Schulz
    iterations; torch.optim.Muon, extended from matrices to convolution filters.

    A parameter of shape (rows, ...) is updated as the matrix (rows, rest), as the reference
    implementation does for filters (out_channels, in_channels * kh * kw). Only parameters of
    two or more dimensions: give biases and norm weights another optimizer through
    ``optimizer.groups`` (see docs/recipes.md).

    Args:
        lr: learning rate.
        momentum: momentum factor (torch's: an exponential average of the gradients, which
            the orthogonalisation makes equivalent to the classic sum).
        nesterov: use Nesterov momentum.
        weight_decay: decoupled weight decay.
        ns_steps: Newton-Schulz iterations per step.
        adjust_lr_fn: torch's rule to scale lr by the matrix shape: none or 'original'
            (max(1, rows / columns) ** 0.5), 'match_rms_adamw' (0.2 * max(rows, columns) ** 0.5).
        normalize_weights: before each step, rescale each parameter that has a gradient to
            Frobenius norm sqrt(rows) (airbench's variant).
    """

    matrices_only: ClassVar[bool] = True

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.02,
        momentum: float = 0.95,
        nesterov: bool = True,
        weight_decay: float = 0.0,
        ns_steps: int = 5,
        adjust_lr_fn: str | None = None,
        normalize_weights: bool = False,
    ) -> None:
        params = list(params)
        tensors = [
            p for item in params for p in (item["params"] if isinstance(item, dict) else [item])
        ]
        for p in tensors:
            if p.ndim < 2:
                raise ValueError(
                    f"muon updates matrices and filters only, not a parameter of shape "
                    f"{tuple(p.shape)}; give biases and norm weights another optimizer "
                    "through optimizer.groups"
                )
        with _as_matrices(tensors):
            super().__init__(
                params,
                lr=lr,
                momentum=momentum,
                nesterov=nesterov,
                weight_decay=weight_decay,
                ns_steps=ns_steps,
                adjust_lr_fn=adjust_lr_fn,
            )
        self.normalize_weights = normalize_weights

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        stepped = [p for g in self.param_groups for p in g["params"] if p.grad is not None]
        if self.normalize_weights:
            for p in stepped:
                p.mul_(math.sqrt(p.shape[0]) / p.norm())
        with _as_matrices(stepped):
            super().step()
        return loss


@hookimpl
def register_optimizers(register: Register) -> None:
    register(
        "muon",
        Muon,
        examples=[{}, {"lr": 0.05, "momentum": 0.6, "ns_steps": 3, "normalize_weights": True}],
    )
