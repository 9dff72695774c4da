"""Training callbacks: the event set and the base class every callback derives from."""

from __future__ import annotations

from typing import Any, ClassVar

EVENTS: tuple[str, ...] = (
    "on_fit_start",
    "on_epoch_start",
    "on_batch_end",
    "on_validation_end",
    "on_epoch_end",
    "on_fit_end",
    "on_exception",
)
"""Every event, in the order they first occur during a fit."""


class Callback:
    """Base class of callbacks: every event method is a no-op until overridden.

    Each event receives the trainer (the loop's state: epoch, step, metrics, model). Callbacks
    run in ascending ``priority``; ties keep the recipe's order. A subclass defining an
    ``on_*`` method that is not an event is rejected when the class is created, so a typo
    cannot silently disable a callback.
    """

    priority: ClassVar[int] = 0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        unknown = [name for name in vars(cls) if name.startswith("on_") and name not in EVENTS]
        if unknown:
            raise TypeError(
                f"{cls.__name__} defines unknown events {unknown}; events: {', '.join(EVENTS)}"
            )

    def on_fit_start(self, trainer: Any) -> None:
        """Before the first epoch (also after resuming)."""

    def on_epoch_start(self, trainer: Any) -> None:
        """Before each training epoch."""

    def on_batch_end(self, trainer: Any) -> None:
        """After each optimizer step."""

    def on_validation_end(self, trainer: Any) -> None:
        """After each validation pass; the validation metrics are on the trainer."""

    def on_epoch_end(self, trainer: Any) -> None:
        """After each epoch, its training and validation metrics complete."""

    def on_fit_end(self, trainer: Any) -> None:
        """After the last epoch or an early stop."""

    def on_exception(self, trainer: Any, error: BaseException) -> None:
        """When training fails with ``error`` (re-raised after every callback has run)."""

    def state_dict(self) -> dict[str, Any]:
        """What the checkpoint keeps of this callback, to resume it."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
