"""Built-in plugin: ``callback/early_stopping``, stop when a metric stops improving."""

from __future__ import annotations

import logging
from typing import Any, Literal

from cvkit.engine.callback import Callback, TrainerView, check_monitor, improved
from cvkit.hookspecs import Register, hookimpl

log = logging.getLogger("cvkit")


class EarlyStopping(Callback):
    """Stop when the monitored metric has not improved for ``patience`` epochs.

    Args:
        monitor: metric to watch (e.g. val/acc, val/loss).
        mode: 'max' if larger is better, 'min' if smaller is better.
        patience: validations without improvement before stopping (epochs, unless
            trainer.val_every skips some).
        min_delta: smallest change that counts as an improvement.
    """

    def __init__(
        self,
        monitor: str = "val/acc",
        mode: Literal["max", "min"] = "max",
        patience: int = 10,
        min_delta: float = 0.0,
    ) -> None:
        if patience < 1 or min_delta < 0:
            raise ValueError(f"patience={patience} must be >= 1 and min_delta={min_delta} >= 0")
        self.monitor, self.mode, self.patience, self.min_delta = monitor, mode, patience, min_delta
        self.best: float | None = None
        self.waited = 0

    def on_fit_start(self, trainer: TrainerView) -> None:
        check_monitor("early_stopping", self.monitor, trainer)

    def on_epoch_end(self, trainer: TrainerView) -> None:
        value = trainer.metrics.get(self.monitor)
        if value is None:  # an epoch without validation (trainer.val_every)
            return
        if improved(value, self.best, self.mode, self.min_delta):
            self.best, self.waited = value, 0
            return
        self.waited += 1
        if self.waited >= self.patience:
            trainer.should_stop = True
            log.info(
                "early stopping: %s has not improved for %d epochs (best %.4f)",
                self.monitor,
                self.waited,
                self.best if self.best is not None else float("nan"),
            )

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "waited": self.waited}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.waited = state["best"], state["waited"]


@hookimpl
def register_callbacks(register: Register) -> None:
    register("early_stopping", EarlyStopping, examples=[{}, {"patience": 3, "min_delta": 0.01}])
