"""Built-in plugin: ``callback/progress``, the live progress line and one line per epoch."""

from __future__ import annotations

import logging
import sys
import time
from typing import Literal

from cvkit.engine.callback import Callback, Priority, TrainerView
from cvkit.hookspecs import Register, hookimpl

log = logging.getLogger("cvkit")


def epoch_summary(trainer: TrainerView) -> str:
    """``epoch 3/10  train loss 0.5123 acc 82.14%  val loss ...  lr 0.041  2,345 img/s  12.3 s``."""
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
    """Progress display: a live line on a terminal, and one summary line per epoch.

    The live line (epoch and step, running loss and accuracy, images/s, ETA) is drawn on
    stderr only when it is a terminal, so logs and CI output get just the epoch summaries.

    Args:
        refresh_seconds: minimum time between redraws of the live line.
        live: 'auto' (only on a terminal), 'always' or 'never'.
    """

    priority = Priority.HIGHEST
    main_process_only = True  # rank 0 alone writes in a run of several processes

    def __init__(
        self, refresh_seconds: float = 0.5, live: Literal["auto", "always", "never"] = "auto"
    ) -> None:
        self.refresh_seconds, self.live = refresh_seconds, live
        self._last_draw = 0.0

    def on_fit_start(self, trainer: TrainerView) -> None:
        self.interactive = self.live == "always" or (self.live == "auto" and sys.stderr.isatty())
        self._started, self._batches_at_start = time.perf_counter(), self._batches(trainer)

    @staticmethod
    def _batches(trainer: TrainerView) -> int:
        """Batches trained since the run began (several per step with accumulate_steps)."""
        return trainer.epoch * len(trainer.train_loader) + trainer.batch

    def on_batch_end(self, trainer: TrainerView) -> None:
        now = time.perf_counter()
        if not self.interactive or now - self._last_draw < self.refresh_seconds:
            return
        self._last_draw = now
        running = trainer.running_metrics()
        per_epoch = len(trainer.train_loader)
        done = self._batches(trainer) - self._batches_at_start
        remaining = trainer.epochs * per_epoch - self._batches(trainer)
        eta = (now - self._started) / done * remaining if done else 0.0
        rate = done * trainer.train_loader.batch_size / (now - self._started)
        line = (
            f"epoch {trainer.epoch + 1}/{trainer.epochs} [{trainer.batch:>{len(str(per_epoch))}}/"
            f"{per_epoch}]  loss {running['train/loss']:.4f}  acc {running['train/acc']:.2%}  "
            f"{rate:,.0f} img/s  ETA {time.strftime('%H:%M:%S', time.gmtime(eta))}"
        )
        sys.stderr.write(f"\r\033[K{line}")
        sys.stderr.flush()

    def on_epoch_end(self, trainer: TrainerView) -> None:
        if self.interactive:
            sys.stderr.write("\r\033[K")
        log.info(epoch_summary(trainer))

    def on_exception(self, trainer: TrainerView, error: BaseException) -> None:
        if getattr(self, "interactive", False):
            sys.stderr.write("\n")


@hookimpl
def register_callbacks(register: Register) -> None:
    register("progress", Progress)
