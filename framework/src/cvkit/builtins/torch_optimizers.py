"""Built-in plugin: torch's SGD, Adam and AdamW as ``optimizer/sgd``, ``adam`` and ``adamw``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from cvkit.hookspecs import Register, hookimpl


def sgd(
    params: Iterable[Any],
    lr: float = 1e-3,
    momentum: float = 0.0,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
) -> torch.optim.SGD:
    """Stochastic gradient descent with optional (Nesterov) momentum: torch.optim.SGD.

    Args:
        lr: learning rate.
        momentum: momentum factor (0 disables momentum).
        dampening: dampening of the momentum.
        weight_decay: L2 penalty added to the gradient (coupled, as in torch).
        nesterov: use Nesterov momentum (needs momentum > 0 and dampening 0).
    """
    return torch.optim.SGD(
        params,
        lr=lr,
        momentum=momentum,
        dampening=dampening,
        weight_decay=weight_decay,
        nesterov=nesterov,
    )


def adam(
    params: Iterable[Any],
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    amsgrad: bool = False,
) -> torch.optim.Adam:
    """Adam (Kingma & Ba, 2015): torch.optim.Adam.

    Args:
        lr: learning rate.
        betas: decay rates of the first and second moment estimates.
        eps: term added to the denominator for numerical stability.
        weight_decay: L2 penalty added to the gradient (coupled; use adamw for decoupled decay).
        amsgrad: use the AMSGrad variant.
    """
    return torch.optim.Adam(
        params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad
    )


def adamw(
    params: Iterable[Any],
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 1e-2,
    amsgrad: bool = False,
) -> torch.optim.AdamW:
    """AdamW, Adam with decoupled weight decay (Loshchilov & Hutter, 2019): torch.optim.AdamW.

    Args:
        lr: learning rate.
        betas: decay rates of the first and second moment estimates.
        eps: term added to the denominator for numerical stability.
        weight_decay: decoupled weight decay coefficient.
        amsgrad: use the AMSGrad variant.
    """
    return torch.optim.AdamW(
        params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad
    )


@hookimpl
def register_optimizers(register: Register) -> None:
    register("sgd", sgd, examples=[{"lr": 0.05, "momentum": 0.9, "nesterov": True}])
    register("adam", adam)
    register("adamw", adamw)
