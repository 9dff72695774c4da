"""cvkit plugin: Sharpness-Aware Minimization, registered as ``optimizer/sam``, wrapping any
registered optimizer."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cvkit import OptimizerFactory, Register, hookimpl
from cvkit_sam.sam import SAM

__all__ = ["SAM", "sam"]


def sam(
    params: Iterable[Any], optimizer: OptimizerFactory, rho: float = 0.05, adaptive: bool = False
) -> SAM:
    """Sharpness-Aware Minimization (Foret et al., ICLR 2021) around any registered optimizer.

    Each step takes two forward/backward passes: the gradient at the current weights, then
    the gradient at the worst weights within distance rho, which the inner optimizer uses.
    Batch-norm running statistics are updated by the first pass only.

    Args:
        optimizer: the inner optimizer's table, e.g. { name = "sgd", lr = 0.1, momentum = 0.9 }.
        rho: neighbourhood radius (0.05 in the paper; 0.5 to 2 with adaptive).
        adaptive: ASAM's scale-invariant neighbourhood (Kwon et al., ICML 2021).
    """
    return SAM(optimizer(params), rho=rho, adaptive=adaptive)


@hookimpl
def register_optimizers(register: Register) -> None:
    register(
        "sam",
        sam,
        examples=[
            {"optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9}},
            {"optimizer": {"name": "adamw", "lr": 0.01}, "rho": 0.5, "adaptive": True},
        ],
    )
