"""Built-in plugin: ``callback/checkpoint``, last.pt every epoch and best.pt on the best metric."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

from cvkit.engine.callback import Callback, Priority, TrainerView, improved
from cvkit.engine.checkpoint import save_checkpoint
from cvkit.hookspecs import Register, hookimpl

log = logging.getLogger("cvkit")


class Checkpoint(Callback):
    """Checkpoints in <run_dir>/checkpoints: last.pt every epoch, best.pt on the best metric.

    Files are written to a temporary file and renamed, so a crash never leaves a corrupt
    checkpoint; best.pt is written before last.pt, so the best checkpoint is never older
    than the one last.pt's state names. On Ctrl-C or SIGTERM, last.pt is saved at the end of
    the current batch, so resuming continues from there; a second one, a NaN/inf loss or
    non-finite weights save nothing and the previous last.pt stays. Checkpoints hold
    everything to resume and a checksum (see cvkit.engine.checkpoint).

    Args:
        monitor: metric deciding the best checkpoint (e.g. val/acc, val/loss, train/loss).
        mode: 'max' if larger is better, 'min' if smaller is better.
        save_last: write last.pt at the end of every epoch.
        save_best: write best.pt when the monitored metric improves.
    """

    priority = Priority.LOWEST  # every other callback's state is final for the epoch
    main_process_only = True  # rank 0 alone writes in a run of several processes

    def __init__(
        self,
        monitor: str = "val/acc",
        mode: Literal["max", "min"] = "max",
        save_last: bool = True,
        save_best: bool = True,
    ) -> None:
        self.monitor, self.mode = monitor, mode
        self.save_last, self.save_best = save_last, save_best
        self.best: float | None = None
        self.best_epoch = 0

    def on_fit_start(self, trainer: TrainerView) -> None:
        self.folder = Path(trainer.run_dir) / "checkpoints" if trainer.run_dir else None
        if self.save_best and self.monitor not in trainer.metric_names():
            log.warning(
                "checkpoint: no %s metric in this run (no validation split?); best.pt is not written",
                self.monitor,
            )
            self.save_best = False

    def on_epoch_end(self, trainer: TrainerView) -> None:
        if self.folder is None:
            return
        value = trainer.metrics.get(self.monitor)
        better = self.save_best and value is not None and improved(value, self.best, self.mode)
        if better:
            self.best, self.best_epoch = value, trainer.epoch
        if not (self.save_last or better):
            return
        state = trainer.state_dict()  # after updating best, so the saved state includes it
        if better:  # first: a last.pt naming this best epoch always has its best.pt
            save_checkpoint(state, self.folder / "best.pt")
        if self.save_last:
            save_checkpoint(state, self.folder / "last.pt")

    def on_exception(self, trainer: TrainerView, error: BaseException) -> None:
        if self.folder is None or not isinstance(error, KeyboardInterrupt):
            return
        reason = trainer.checkpointable()
        if reason is not None:
            log.warning("not saving last.pt: %s; the previous last.pt (if any) stays", reason)
            return
        save_checkpoint(trainer.state_dict(), self.folder / "last.pt")
        log.info(
            "saved %s (epoch %d, batch %d)",
            self.folder / "last.pt",
            trainer.epoch + 1,
            trainer.batch,
        )

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]


@hookimpl
def register_callbacks(register: Register) -> None:
    register("checkpoint", Checkpoint, examples=[{}, {"monitor": "val/loss", "mode": "min"}])
