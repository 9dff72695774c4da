"""The base of optimizers that wrap another one (Lookahead, SAM, ...)."""

from __future__ import annotations

from typing import Any

from torch.optim import Optimizer

from cvkit.hookspecs import capability


class OptimizerWrapper(Optimizer):
    """An optimizer acting through an inner one, whose parameter groups it shares.

    ``param_groups``, ``defaults`` and ``state`` are the inner optimizer's, looked up each
    time (its ``load_state_dict`` replaces them), so learning-rate schedulers, gradient
    clipping and scalers act on the inner optimizer through the wrapper. ``requires_closure``
    is inherited from the inner optimizer unless the wrapper sets it. Subclasses implement
    ``step``, ``state_dict`` and ``load_state_dict``.
    """

    def __init__(self, optimizer: Optimizer) -> None:
        # Optimizer.__init__ would rebuild the groups; sharing the inner ones is the point.
        self.optimizer = optimizer
        self.requires_closure = bool(capability(optimizer, "requires_closure"))

    @property
    def param_groups(self) -> list[dict[str, Any]]:  # type: ignore[override]
        """The inner optimizer's groups."""
        return self.optimizer.param_groups

    @property
    def defaults(self) -> dict[str, Any]:  # type: ignore[override]
        return self.optimizer.defaults

    @property
    def state(self) -> Any:  # type: ignore[override]
        """The inner optimizer's per-parameter state."""
        return self.optimizer.state

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        self.optimizer.add_param_group(param_group)
