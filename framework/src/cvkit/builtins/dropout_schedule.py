"""Built-in plugin: ``callback/dropout_schedule``, dropout probability changing over epochs."""

from __future__ import annotations

from torch import nn

from cvkit.engine.callback import Callback, TrainerView
from cvkit.errors import CvkitError
from cvkit.hookspecs import Register, hookimpl


class DropoutSchedule(Callback):
    """Change the dropout probability of the model's dropout layers linearly over epochs.

    At the start of epoch e (1-based), every ``nn.Dropout*`` layer gets
    p = start + (end - start) * min(1, (e - 1) / (epochs - 1)), e.g. 0.5 -> 0.2: strong
    regularisation early, less later. Computed from the epoch alone, so resuming restores it.

    Args:
        start: dropout probability in the first epoch.
        end: dropout probability from epoch ``epochs`` on.
        epochs: epochs over which p moves from start to end (default: the whole run).
    """

    def __init__(self, start: float = 0.5, end: float = 0.2, epochs: int | None = None) -> None:
        if not (0.0 <= start < 1.0 and 0.0 <= end < 1.0) or (epochs is not None and epochs < 1):
            raise ValueError(f"start={start} and end={end} must be in [0, 1), epochs={epochs} >= 1")
        self.start, self.end, self.epochs = start, end, epochs

    def rate(self, epoch: int, total: int) -> float:
        """p in (1-based) ``epoch`` of a ``total``-epoch run."""
        span = (self.epochs or total) - 1
        progress = 1.0 if span <= 0 else min(1.0, (epoch - 1) / span)
        return self.start + (self.end - self.start) * progress

    def on_fit_start(self, trainer: TrainerView) -> None:
        layers = [
            m for m in trainer.model.modules() if isinstance(m, nn.modules.dropout._DropoutNd)
        ]
        if not layers:
            raise CvkitError("callbacks: dropout_schedule: the model has no dropout layer")
        self.on_epoch_start(trainer)

    def on_epoch_start(self, trainer: TrainerView) -> None:
        p = self.rate(trainer.epoch + 1, trainer.epochs)
        for module in trainer.model.modules():
            if isinstance(module, nn.modules.dropout._DropoutNd):
                module.p = p


@hookimpl
def register_callbacks(register: Register) -> None:
    register(
        "dropout_schedule", DropoutSchedule, examples=[{}, {"start": 0.3, "end": 0.1, "epochs": 5}]
    )
