"""Built-in plugin: ``callback/progress``, the live progress line and one line per epoch."""

from __future__ import annotations

import logging
import time
from typing import Literal

from tqdm import tqdm

from cvkit.engine.callback import Callback, Priority, TrainerView
from cvkit.hookspecs import Register, hookimpl
from cvkit.progress import LOG_EVERY_SECONDS, Meter, configure

log = logging.getLogger("cvkit")


def epoch_summary(trainer: TrainerView) -> str:
    """``epoch 3/10  train loss 0.5123 acc 82.14%  val loss ...  lr 0.041  2,345 img/s  12.3 s``;
    lr: the rate the epoch's first step trained with."""
    m = trainer.metrics
    parts = [
        f"epoch {trainer.epoch}/{trainer.epochs}",
        f"train loss {m['train/loss']:.4f} acc {m['train/acc']:.2%}",
    ]
    if "val/loss" in m:
        parts.append(f"val loss {m['val/loss']:.4f} acc {m['val/acc']:.2%}")
    parts.append(
        f"lr {m['lr']:.3g}  {m['images_per_second']:,.0f} img/s  {m['epoch_seconds']:.1f} s"
    )
    return "  ".join(parts)


class Progress(Callback):
    """Progress display: a bar per epoch and one summary line per epoch.

    On a terminal, a tqdm bar per epoch: images done, percentage, rate, the epoch's time
    remaining, the running loss and accuracy and the whole run's time remaining. When
    stderr is not a terminal (nohup, SLURM, CI), the same as a log line every
    ``log_every_seconds`` instead. Validation, the final evaluation and the first decoding
    of a dataset show their own progress the same way (:mod:`cvkit.progress`).

    Args:
        refresh_seconds: minimum time between updates of the running loss and accuracy
            (each one waits for the device).
        live: 'auto' (a bar on a terminal, log lines elsewhere), 'always' (a bar) or
            'never' (log lines).
        log_every_seconds: seconds between log lines when there is no bar (0: none).
    """

    priority = Priority.HIGHEST
    main_process_only = True  # rank 0 alone writes in a run of several processes

    def __init__(
        self,
        refresh_seconds: float = 0.5,
        live: Literal["auto", "always", "never"] = "auto",
        log_every_seconds: float = LOG_EVERY_SECONDS,
    ) -> None:
        self.refresh_seconds, self.live = refresh_seconds, live
        self.log_every_seconds = log_every_seconds
        self._last_draw = 0.0
        self._meter: Meter | None = None

    def on_fit_start(self, trainer: TrainerView) -> None:
        self._started, self._images_at_start = time.perf_counter(), self._images(trainer)
        configure(self.live, self.log_every_seconds)  # validation and evaluation follow

    @staticmethod
    def _epoch_images(trainer: TrainerView) -> int:
        loader = trainer.train_loader
        return min(len(loader) * loader.batch_size, loader.count)

    def _images(self, trainer: TrainerView) -> int:
        """Training images seen since the run began (every process's)."""
        done = min(trainer.batch * trainer.train_loader.batch_size, self._epoch_images(trainer))
        return trainer.epoch * self._epoch_images(trainer) + done

    def on_batch_end(self, trainer: TrainerView) -> None:
        per_epoch = self._epoch_images(trainer)
        done = min(trainer.batch * trainer.train_loader.batch_size, per_epoch)
        if self._meter is None:
            start = done - min(trainer.train_loader.batch_size, done)
            self._meter = Meter(
                f"epoch {trainer.epoch + 1}/{trainer.epochs}",
                per_epoch,
                live=self.live,
                every_seconds=self.log_every_seconds,
                initial=start,
            )
        now = time.perf_counter()
        postfix = None
        if now - self._last_draw >= self.refresh_seconds and self._meter.shows_soon():
            self._last_draw = now
            running = trainer.running_metrics()
            images = self._images(trainer) - self._images_at_start
            remaining = trainer.epochs * per_epoch - self._images(trainer)
            eta = (now - self._started) / images * remaining if images else 0.0
            postfix = (
                f"loss {running['train/loss']:.4f}, acc {running['train/acc']:.2%}, "
                f"run ETA {tqdm.format_interval(eta)}"
            )
        self._meter.update(done - self._meter.count, postfix)
        if trainer.batch == len(trainer.train_loader):  # validation shows its own progress
            self._meter.close()
            self._meter = None

    def on_epoch_end(self, trainer: TrainerView) -> None:
        log.info(epoch_summary(trainer))

    def on_exception(self, trainer: TrainerView, error: BaseException) -> None:
        if self._meter is not None:
            self._meter.close()
            self._meter = None


@hookimpl
def register_callbacks(register: Register) -> None:
    register("progress", Progress)
