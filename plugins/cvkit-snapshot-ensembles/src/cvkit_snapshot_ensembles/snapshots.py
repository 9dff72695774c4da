"""Snapshot ensembles (Huang, Li, Pleiss, Liu, Hopcroft, Weinberger: "Snapshot Ensembles:
Train 1, get M for free", ICLR 2017): a cyclic cosine schedule that restarts M times, and a
snapshot of the weights at the end of every cycle, when the rate is at its lowest."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingWarmRestarts, LRScheduler

import cvkit
from cvkit import Callback, CvkitError, TrainerView

log = logging.getLogger("cvkit")


def _cycle_epochs(epochs: int, cycles: int) -> int:
    if cycles < 1 or epochs % cycles:
        raise ValueError(f"cycles={cycles} must be >= 1 and divide the {epochs} epochs")
    return epochs // cycles


def cosine_restarts(
    optimizer: Optimizer,
    *,
    epochs: int,
    steps_per_epoch: int,
    cycles: int = 5,
    min_lr: float = 0.0,
) -> LRScheduler:
    """Cyclic cosine annealing with restarts (Huang et al., 2017, eq. 2), stepped per batch.

    The run's epochs are split into ``cycles`` equal cycles; in each, the rate falls from
    the optimizer's rate to ``min_lr`` along a cosine and then restarts (torch's
    CosineAnnealingWarmRestarts). Pair it with the ``snapshot`` callback.

    Args:
        cycles: number of cycles M; must divide experiment.epochs.
        min_lr: rate at the end of each cycle.
    """
    steps = _cycle_epochs(epochs, cycles) * steps_per_epoch
    return CosineAnnealingWarmRestarts(optimizer, T_0=steps, eta_min=min_lr)


class Snapshot(Callback):
    """Save the model at the end of every cycle to <run>/snapshots/epoch-<E>.pt.

    A snapshot is a cvkit checkpoint without optimizer state (the model weights, their EMA
    when the run keeps one, the recipe and the class names), so ``cvkit eval --ensemble
    <run>/snapshots`` averages the softmax outputs of all snapshots, and ``cvkit eval`` or
    ``predict`` take any one of them.

    Args:
        cycles: number of cycles; a snapshot is taken every experiment.epochs / cycles
            epochs (the same cycles as the ``cosine_restarts`` schedule).
    """

    main_process_only = True  # rank 0 alone writes in a run of several processes

    def __init__(self, cycles: int = 5) -> None:
        if cycles < 1:
            raise ValueError(f"cycles={cycles} must be >= 1")
        self.cycles = cycles
        self.saved: list[str] = []

    def on_fit_start(self, trainer: TrainerView) -> None:
        try:
            self.every = _cycle_epochs(trainer.epochs, self.cycles)
        except ValueError as error:
            raise CvkitError(f"callback snapshot: {error}") from None
        self.folder = Path(trainer.run_dir) / "snapshots" if trainer.run_dir else None

    def on_epoch_end(self, trainer: TrainerView) -> None:
        if self.folder is None or trainer.epoch % self.every:
            return
        path = self.folder / f"epoch-{trainer.epoch}.pt"
        cvkit.save_checkpoint(trainer.model_checkpoint(), path)  # loads on first use
        self.saved.append(path.name)
        log.info("snapshot %d of %d: %s", len(self.saved), self.cycles, path)

    def state_dict(self) -> dict[str, Any]:
        return {"saved": list(self.saved)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.saved = list(state["saved"])
