"""cvkit plugin: Lookahead, registered as ``optimizer/lookahead``, wrapping any registered optimizer."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cvkit import OptimizerFactory, Register, hookimpl
from cvkit_lookahead.lookahead import Lookahead, Sync

__all__ = ["Lookahead", "lookahead"]


def lookahead(
    params: Iterable[Any],
    optimizer: OptimizerFactory,
    k: int = 5,
    alpha: float = 0.5,
    sync: Sync = "every_k",
) -> Lookahead:
    """Lookahead (Zhang et al., NeurIPS 2019): k fast steps of an inner optimizer, 1 step back.

    Every k steps of the inner optimizer, the slow weights move alpha of the way towards the
    fast weights, which then restart from the slow weights. Schedulers act on the inner
    optimizer's learning rate.

    Args:
        optimizer: the inner optimizer's table, e.g. { name = "sgd", lr = 0.1, momentum = 0.9 }.
        k: inner steps between synchronisations.
        alpha: slow-weight step size in (0, 1].
        sync: 'every_k': slow weights from the start, synchronised after steps k, 2k, ...
            (the paper); 'after_first_step': slow weights taken after step 1, synchronised
            after steps k + 1, 2k + 1, ... (alphadl/lookahead.pytorch, the Efficient ResNets code).
    """
    return Lookahead(optimizer(params), k=k, alpha=alpha, sync=sync)


@hookimpl
def register_optimizers(register: Register) -> None:
    register(
        "lookahead",
        lookahead,
        examples=[
            {"optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9}},
            {"optimizer": {"name": "adamw"}, "k": 3, "alpha": 0.8, "sync": "after_first_step"},
        ],
    )
