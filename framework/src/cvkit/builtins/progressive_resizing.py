"""Built-in plugin: ``callback/progressive_resizing``, smaller training images first."""

from __future__ import annotations

from cvkit.engine.callback import Callback, TrainerView
from cvkit.hookspecs import Register, hookimpl


class ProgressiveResizing(Callback):
    """Progressive resizing: train on smaller images first, then larger ones.

    ``schedule`` maps an epoch (1-based, as a TOML key) to the training image size from
    that epoch on, e.g. ``{ 1 = 16, 6 = 24, 11 = 32 }``; training batches are resized on the
    device (as ``data.image_size`` does), validation and test keep the recipe's size.
    Computed from the epoch alone, so resuming restores it. The model must accept every size
    (global pooling).

    Args:
        schedule: epoch -> square training image size in pixels.
    """

    def __init__(self, schedule: dict[str, int] | None = None) -> None:
        self.schedule: dict[int, int] = {}
        for epoch, size in (schedule or {}).items():
            if not str(epoch).isdigit() or int(epoch) < 1 or size < 1:
                raise ValueError(
                    f"schedule {epoch!r} = {size}: epochs >= 1 and sizes >= 1 expected"
                )
            self.schedule[int(epoch)] = size

    def size(self, epoch: int) -> int | None:
        """The training size in (1-based) ``epoch``; None before the first scheduled epoch."""
        started = [e for e in self.schedule if e <= epoch]
        return self.schedule[max(started)] if started else None

    def on_fit_start(self, trainer: TrainerView) -> None:
        self._default = trainer.train_loader.image_size
        self.on_epoch_start(trainer)  # a run resumed in the middle of an epoch

    def on_epoch_start(self, trainer: TrainerView) -> None:
        size = self.size(trainer.epoch + 1)
        trainer.train_loader.image_size = [size, size] if size is not None else self._default


@hookimpl
def register_callbacks(register: Register) -> None:
    register(
        "progressive_resizing", ProgressiveResizing, examples=[{}, {"schedule": {"1": 16, "3": 32}}]
    )
