"""cvkit plugin: Lookahead, registered as ``optimizer/lookahead``, wrapping any registered optimizer."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cvkit import OptimizerFactory, Register, hookimpl
from cvkit_lookahead.lookahead import Lookahead

__all__ = ["Lookahead", "lookahead"]


def lookahead(
    params: Iterable[Any], optimizer: OptimizerFactory, k: int = 5, alpha: float = 0.5
) -> Lookahead:
    """Lookahead (Zhang et al., NeurIPS 2019): k fast steps of an inner optimizer, 1 step back.

    Every k steps of the inner optimizer, the slow weights move alpha of the way towards the
    fast weights, which then restart from the slow weights. Schedulers act on the inner
    optimizer's learning rate.

    Args:
        optimizer: the inner optimizer's table, e.g. { name = "sgd", lr = 0.1, momentum = 0.9 }.
        k: inner steps between synchronisations.
        alpha: slow-weight step size in (0, 1].
    """
    return Lookahead(optimizer(params), k=k, alpha=alpha)


@hookimpl
def register_optimizers(register: Register) -> None:
    register(
        "lookahead",
        lookahead,
        examples=[
            {"optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9}},
            {"optimizer": {"name": "adamw"}, "k": 3, "alpha": 0.8},
        ],
    )
