"""Training callbacks: the event set, named priorities, the base class every callback derives
from, and :class:`TrainerView`, what a callback may read and set on the trainer."""

from __future__ import annotations

import enum
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import torch
from torch import nn

from cvkit.errors import CvkitError
from cvkit.recipe.schema import Recipe

if TYPE_CHECKING:  # the loader's module is not needed to define (or list) callbacks
    from cvkit.data.batches import BatchLoader

EVENTS: tuple[str, ...] = (
    "on_fit_start",
    "on_epoch_start",
    "on_batch_end",
    "on_validation_end",
    "on_epoch_end",
    "on_fit_end",
    "on_evaluation_end",
    "on_exception",
)
"""Every event, in the order they first occur during a fit."""


class Priority(enum.IntEnum):
    """When a callback runs at each event, relative to the others: ascending values run
    first, and callbacks of equal priority keep the recipe's order (as mmengine's priorities).

    The built-ins use: ``HIGHEST`` the progress display (its epoch line comes first),
    ``VERY_HIGH`` metrics.jsonl, ``HIGH`` TensorBoard, ``NORMAL`` (the default) everything that
    acts on training, ``VERY_LOW`` reporting to an outside search (``cvkit tune``), ``LOWEST``
    checkpoints, written once every other callback's state is final for the epoch.
    """

    HIGHEST = 0
    VERY_HIGH = 10
    HIGH = 20
    ABOVE_NORMAL = 40
    NORMAL = 50
    BELOW_NORMAL = 60
    LOW = 70
    VERY_LOW = 90
    LOWEST = 100


class TrainerView(Protocol):
    """What callbacks may read on the trainer (``cvkit.engine.trainer.TrainingLoop``) and,
    where noted, set.

    Counters: ``epoch`` (epochs completed), ``batch`` (batches done in the current epoch),
    ``step`` (optimizer steps in all), ``epochs``, ``steps_per_epoch``. ``metrics``: the last
    finished epoch's (plus ``train/*`` of the epoch in progress after it ends); ``history``:
    every epoch's. ``should_stop``: set it to True to end after this epoch. ``train_loader``:
    its ``image_size`` may be set between epochs (progressive resizing). ``model``'s
    parameters may be frozen and unfrozen; ``optimizer``'s learning rates changed.
    ``training_images(count)``: training images for data-dependent initialisation (see
    :meth:`cvkit.engine.trainer.TrainingLoop.training_images`), e.g. in ``on_fit_start``.
    """

    epoch: int
    batch: int
    step: int
    epochs: int
    steps_per_epoch: int
    metrics: dict[str, float]
    history: list[dict[str, float]]
    batch_images: torch.Tensor | None
    batch_loss: torch.Tensor | None
    grad_norm: torch.Tensor | None
    evaluation: dict[str, Any] | None
    should_stop: bool
    resumed: bool
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    run_dir: Path | None
    recipe: Recipe | None
    train_loader: BatchLoader

    @property
    def lr(self) -> float:
        """The first parameter group's current learning rate."""
        ...

    def running_metrics(self) -> dict[str, float]:
        """Mean loss and accuracy of the current epoch so far (synchronises with the device)."""
        ...

    def metric_names(self) -> list[str]:
        """The keys ``metrics`` will have after an epoch."""
        ...

    def training_images(self, count: int) -> torch.Tensor:
        """``count`` training images chosen with the run's seed, through the evaluation
        augmentations: float (count, C, H, W) on the device."""
        ...

    def running_loss_is_finite(self) -> bool:
        """Whether the weights are still trustworthy (no NaN/inf loss so far this epoch)."""
        ...

    def checkpointable(self) -> str | None:
        """Why the current state must not be saved (a step cut in the middle, a non-finite
        loss or weight), or None when a checkpoint of it resumes exactly."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly: the content of a checkpoint."""
        ...

    def model_checkpoint(self) -> dict[str, Any]:
        """A checkpoint of the model alone (weights, EMA, recipe, classes; no optimizer state):
        enough for ``cvkit eval``, ``predict`` and :func:`cvkit.load_trained_model`."""
        ...


class Callback:
    """Base class of callbacks: every event method is a no-op until overridden.

    Each event receives the trainer (see :class:`TrainerView`). Callbacks run in ascending
    ``priority`` (a :class:`Priority`; default ``NORMAL``); ties keep the recipe's order. A
    subclass defining an ``on_*`` method that is not an event is rejected when the class is
    created, so a typo cannot silently disable a callback.
    """

    priority: ClassVar[int] = Priority.NORMAL

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        unknown = [name for name in vars(cls) if name.startswith("on_") and name not in EVENTS]
        if unknown:
            raise TypeError(
                f"{cls.__name__} defines unknown events {unknown}; events: {', '.join(EVENTS)}"
            )

    def on_fit_start(self, trainer: TrainerView) -> None:
        """Before the first epoch (also after resuming)."""

    def on_epoch_start(self, trainer: TrainerView) -> None:
        """Before each training epoch."""

    def on_batch_end(self, trainer: TrainerView) -> None:
        """After each optimizer step."""

    def on_validation_end(self, trainer: TrainerView) -> None:
        """After each validation pass; the validation metrics are on the trainer."""

    def on_epoch_end(self, trainer: TrainerView) -> None:
        """After each epoch, its training and validation metrics complete."""

    def on_fit_end(self, trainer: TrainerView) -> None:
        """After the last epoch or an early stop."""

    def on_evaluation_end(self, trainer: TrainerView) -> None:
        """After the final evaluation of the trained model (``trainer.evaluation``); a
        procedure that does not evaluate through :func:`cvkit.train_stage` never calls it."""

    def on_exception(self, trainer: TrainerView, error: BaseException) -> None:
        """When training fails with ``error`` (re-raised after every callback has run)."""

    def state_dict(self) -> dict[str, Any]:
        """What the checkpoint keeps of this callback, to resume it."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


def check_monitor(owner: str, monitor: str, trainer: TrainerView) -> None:
    """Raise CvkitError naming callback ``owner`` unless ``monitor`` is a metric of the run."""
    if monitor not in trainer.metric_names():
        raise CvkitError(
            f"callback {owner}: monitor {monitor!r} is not a metric of this run; metrics: "
            f"{', '.join(trainer.metric_names())}"
        )


def improved(value: float, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
    """Whether ``value`` beats ``best`` by more than ``min_delta`` ('max': larger is better,
    'min': smaller); any finite value beats no best (None)."""
    if best is None:
        return math.isfinite(value)
    return value > best + min_delta if mode == "max" else value < best - min_delta
