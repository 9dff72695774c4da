"""Built-in plugin: ``callback/tensorboard``, TensorBoard logs of the run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch.utils.tensorboard import SummaryWriter

from cvkit.engine.callback import Callback, Priority, TrainerView
from cvkit.hookspecs import Register, hookimpl
from cvkit.recipe.writing import flat_settings, recipe_data


class TensorBoard(Callback):
    """TensorBoard logs in <run_dir>/tensorboard: metrics per epoch, learning rate, hparams.

    Scalars are indexed by optimizer step. At the end, the recipe's scalar settings and the
    final metrics go to the HParams tab. A resumed (or restarted) run purges the events after
    its checkpoint (all of them when it starts again from scratch).

    Args:
        log_every: also log the running training loss and learning rate every this many
            steps (0: per epoch only; each point waits for the device).
    """

    priority = Priority.HIGH

    def __init__(self, log_every: int = 0) -> None:
        if log_every < 0:
            raise ValueError(f"log_every={log_every} must be >= 0")
        self.log_every = log_every
        self.writer: Any = None

    def on_fit_start(self, trainer: TrainerView) -> None:
        if trainer.run_dir is None:
            return
        folder = Path(trainer.run_dir) / "tensorboard"
        self.writer = SummaryWriter(str(folder), purge_step=trainer.step)

    def on_batch_end(self, trainer: TrainerView) -> None:
        if self.writer is not None and self.log_every and trainer.step % self.log_every == 0:
            self.writer.add_scalar(
                "train/running_loss", trainer.running_metrics()["train/loss"], trainer.step
            )
            self.writer.add_scalar("lr", trainer.lr, trainer.step)

    def on_epoch_end(self, trainer: TrainerView) -> None:
        if self.writer is None:
            return
        for name, value in trainer.metrics.items():
            self.writer.add_scalar(name, value, trainer.step)
        self.writer.add_scalar("epoch", trainer.epoch, trainer.step)
        self.writer.flush()

    def on_fit_end(self, trainer: TrainerView) -> None:
        if self.writer is None:
            return
        if trainer.recipe is not None and trainer.history:
            hparams = {
                key: value if isinstance(value, bool | int | float | str) else json.dumps(value)
                for key, value in flat_settings(recipe_data(trainer.recipe)).items()
            }
            final = {
                f"hparam/{k}": v
                for k, v in trainer.history[-1].items()
                if k.startswith(("train/", "val/"))
            }
            self.writer.add_hparams(hparams, final, run_name="hparams")
        self.writer.close()

    def on_exception(self, trainer: TrainerView, error: BaseException) -> None:
        if self.writer is not None:
            self.writer.close()


@hookimpl
def register_callbacks(register: Register) -> None:
    register("tensorboard", TensorBoard)
