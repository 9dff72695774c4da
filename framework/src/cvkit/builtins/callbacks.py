"""Built-in callbacks: progress, metrics JSON lines, TensorBoard, checkpoints, early stopping,
progressive unfreezing, dropout schedules, progressive resizing."""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any, Literal

from torch import nn

from cvkit.callbacks import Callback
from cvkit.errors import CvkitError
from cvkit.files import save_atomic
from cvkit.freezing import selected_parameters, set_trainable

log = logging.getLogger("cvkit")


def epoch_summary(trainer: Any) -> str:
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


def _check_monitor(owner: str, monitor: str, trainer: Any) -> None:
    if monitor not in trainer.metric_names():
        raise CvkitError(
            f"callback {owner}: monitor {monitor!r} is not a metric of this run; metrics: "
            f"{', '.join(trainer.metric_names())}"
        )


def _improved(value: float, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
    if best is None:
        return math.isfinite(value)
    return value > best + min_delta if mode == "max" else value < best - min_delta


class Progress(Callback):
    """Progress display: a live line on a terminal, and one summary line per epoch.

    The live line (epoch and step, running loss and accuracy, images/s, ETA) is drawn on
    stderr only when it is a terminal, so logs and CI output get just the epoch summaries.

    Args:
        refresh_seconds: minimum time between redraws of the live line.
        live: 'auto' (only on a terminal), 'always' or 'never'.
    """

    priority = 0

    def __init__(
        self, refresh_seconds: float = 0.5, live: Literal["auto", "always", "never"] = "auto"
    ) -> None:
        self.refresh_seconds, self.live = refresh_seconds, live
        self._last_draw = 0.0

    def on_fit_start(self, trainer: Any) -> None:
        self.interactive = self.live == "always" or (self.live == "auto" and sys.stderr.isatty())
        self._started, self._step_at_start = time.perf_counter(), trainer.step

    def on_batch_end(self, trainer: Any) -> None:
        now = time.perf_counter()
        if not self.interactive or now - self._last_draw < self.refresh_seconds:
            return
        self._last_draw = now
        running = trainer.running_metrics()
        steps_done = trainer.step - self._step_at_start
        remaining = (trainer.epochs - trainer.epoch) * trainer.steps_per_epoch - trainer.batch
        eta = (now - self._started) / steps_done * remaining if steps_done else 0.0
        rate = steps_done * trainer.train_loader.batch_size / (now - self._started)
        line = (
            f"epoch {trainer.epoch + 1}/{trainer.epochs} [{trainer.batch:>{len(str(trainer.steps_per_epoch))}}/"
            f"{trainer.steps_per_epoch}]  loss {running['train/loss']:.4f}  acc {running['train/acc']:.2%}  "
            f"{rate:,.0f} img/s  ETA {time.strftime('%H:%M:%S', time.gmtime(eta))}"
        )
        sys.stderr.write(f"\r\033[K{line}")
        sys.stderr.flush()

    def on_epoch_end(self, trainer: Any) -> None:
        if self.interactive:
            sys.stderr.write("\r\033[K")
        log.info(epoch_summary(trainer))

    def on_exception(self, trainer: Any, error: BaseException) -> None:
        if getattr(self, "interactive", False):
            sys.stderr.write("\n")


class MetricsJSONL(Callback):
    """Metrics as JSON lines: one object per epoch in the run directory.

    Each line holds epoch, step, wall time and every metric (train/loss, train/acc,
    val/loss, val/acc, val/top5, lr, images_per_second, ...). On resume, lines written
    after the checkpoint (epochs that are redone) are dropped.

    Args:
        filename: file name inside the run directory.
    """

    priority = 10

    def __init__(self, filename: str = "metrics.jsonl") -> None:
        self.filename = filename
        self.offset = 0

    def on_fit_start(self, trainer: Any) -> None:
        self.path = Path(trainer.run_dir) / self.filename if trainer.run_dir else None
        if self.path is not None and self.path.exists() and self.path.stat().st_size > self.offset:
            with self.path.open("r+b") as stream:  # epochs after the checkpoint are redone
                stream.truncate(self.offset)

    def on_epoch_end(self, trainer: Any) -> None:
        if self.path is None:
            return
        record = {
            "epoch": trainer.epoch,
            "step": trainer.step,
            "time": time.time(),
            **trainer.metrics,
        }
        with self.path.open("a", encoding="utf-8") as stream:
            stream.write(json.dumps(record) + "\n")
            self.offset = stream.tell()

    def state_dict(self) -> dict[str, Any]:
        return {"offset": self.offset}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.offset = state["offset"]


class TensorBoard(Callback):
    """TensorBoard logs in <run_dir>/tensorboard: metrics per epoch, learning rate, hparams.

    Scalars are indexed by optimizer step. At the end, the recipe's scalar settings and the
    final metrics go to the HParams tab. A resumed run purges events after its checkpoint.

    Args:
        log_every: also log the running training loss and learning rate every this many
            steps (0: per epoch only; each point waits for the device).
    """

    priority = 20

    def __init__(self, log_every: int = 0) -> None:
        if log_every < 0:
            raise ValueError(f"log_every={log_every} must be >= 0")
        self.log_every = log_every
        self.writer: Any = None

    def on_fit_start(self, trainer: Any) -> None:
        if trainer.run_dir is None:
            return
        from torch.utils.tensorboard import SummaryWriter

        purge = trainer.step if trainer.resumed else None
        self.writer = SummaryWriter(str(Path(trainer.run_dir) / "tensorboard"), purge_step=purge)

    def on_batch_end(self, trainer: Any) -> None:
        if self.writer is not None and self.log_every and trainer.step % self.log_every == 0:
            self.writer.add_scalar(
                "train/running_loss", trainer.running_metrics()["train/loss"], trainer.step
            )
            self.writer.add_scalar("lr", trainer.lr, trainer.step)

    def on_epoch_end(self, trainer: Any) -> None:
        if self.writer is None:
            return
        for name, value in trainer.metrics.items():
            self.writer.add_scalar(name, value, trainer.step)
        self.writer.add_scalar("epoch", trainer.epoch, trainer.step)
        self.writer.flush()

    def on_fit_end(self, trainer: Any) -> None:
        if self.writer is None:
            return
        if trainer.recipe is not None and trainer.history:
            from cvkit.recipe import recipe_data

            hparams = _flatten(recipe_data(trainer.recipe))
            final = {
                f"hparam/{k}": v
                for k, v in trainer.history[-1].items()
                if k.startswith(("train/", "val/"))
            }
            self.writer.add_hparams(hparams, final, run_name="hparams")
        self.writer.close()

    def on_exception(self, trainer: Any, error: BaseException) -> None:
        if self.writer is not None:
            self.writer.close()


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted scalar settings for TensorBoard's HParams (lists become strings)."""
    if isinstance(data, dict):
        flat: dict[str, Any] = {}
        for key, value in data.items():
            flat |= _flatten(value, f"{prefix}.{key}" if prefix else key)
        return flat
    if isinstance(data, bool | int | float | str):
        return {prefix: data}
    return {prefix: json.dumps(data)}


class Checkpoint(Callback):
    """Checkpoints in <run_dir>/checkpoints: last.pt every epoch, best.pt on the best metric.

    Files are written to a temporary file and renamed, so a crash never leaves a corrupt
    checkpoint. On Ctrl-C, last.pt is saved at the end of the current batch, so resuming
    continues from there; after a NaN/inf loss nothing is saved and the last good
    checkpoint stays. Checkpoints hold everything to resume (see cvkit.checkpoint).

    Args:
        monitor: metric deciding the best checkpoint (e.g. val/acc, val/loss, train/loss).
        mode: 'max' if larger is better, 'min' if smaller is better.
        save_last: write last.pt at the end of every epoch.
        save_best: write best.pt when the monitored metric improves.
    """

    priority = 100  # last: every other callback's state is final for the epoch

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

    def on_fit_start(self, trainer: Any) -> None:
        self.folder = Path(trainer.run_dir) / "checkpoints" if trainer.run_dir else None
        if self.save_best and self.monitor not in trainer.metric_names():
            log.warning(
                "checkpoint: no %s metric in this run (no validation split?); best.pt is not written",
                self.monitor,
            )
            self.save_best = False

    def on_epoch_end(self, trainer: Any) -> None:
        if self.folder is None:
            return
        value = trainer.metrics.get(self.monitor)
        improved = self.save_best and value is not None and _improved(value, self.best, self.mode)
        if improved:
            self.best, self.best_epoch = value, trainer.epoch
        if not (self.save_last or improved):
            return
        state = trainer.state_dict()  # after updating best, so the saved state includes it
        if self.save_last:
            save_atomic(state, self.folder / "last.pt")
        if improved:
            save_atomic(state, self.folder / "best.pt")

    def on_exception(self, trainer: Any, error: BaseException) -> None:
        if self.folder is None or not isinstance(error, KeyboardInterrupt):
            return
        if not trainer.running_loss_is_finite():
            log.warning("not saving last.pt: the loss is not finite")
            return
        save_atomic(trainer.state_dict(), self.folder / "last.pt")
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


class EarlyStopping(Callback):
    """Stop when the monitored metric has not improved for ``patience`` epochs.

    Args:
        monitor: metric to watch (e.g. val/acc, val/loss).
        mode: 'max' if larger is better, 'min' if smaller is better.
        patience: epochs without improvement before stopping.
        min_delta: smallest change that counts as an improvement.
    """

    priority = 50

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

    def on_fit_start(self, trainer: Any) -> None:
        _check_monitor("early_stopping", self.monitor, trainer)

    def on_epoch_end(self, trainer: Any) -> None:
        value = trainer.metrics[self.monitor]
        if _improved(value, self.best, self.mode, self.min_delta):
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


class Unfreeze(Callback):
    """Progressive unfreezing: make more of the model trainable as training goes on.

    ``schedule`` maps an epoch (1-based, as a TOML key) to module-name patterns (as in
    ``model.freeze``) made trainable from the start of that epoch on, e.g.
    ``{ 3 = ["layer4"], 5 = ["layer3"] }``. The optimizer holds every parameter from the
    start, so newly trainable ones join it with their learning-rate group. On resume, the
    patterns of every epoch already reached are applied again.

    Args:
        schedule: epoch -> patterns of the parameters to unfreeze at its start.
    """

    def __init__(self, schedule: dict[str, list[str]] | None = None) -> None:
        self.schedule: dict[int, list[str]] = {}
        for epoch, patterns in (schedule or {}).items():
            if not str(epoch).isdigit() or int(epoch) < 1:
                raise ValueError(f"schedule key {epoch!r} must be an epoch number >= 1")
            self.schedule[int(epoch)] = list(patterns)

    def on_fit_start(self, trainer: Any) -> None:
        for epoch, patterns in self.schedule.items():  # fail before training, not at epoch N
            for pattern in patterns:
                selected_parameters(trainer.model, pattern, self._where(epoch))
        self._apply(trainer)  # a run resumed in the middle of an epoch gets no on_epoch_start

    def on_epoch_start(self, trainer: Any) -> None:
        self._apply(trainer)

    def _apply(self, trainer: Any) -> None:
        current = trainer.epoch + 1
        for epoch, patterns in sorted(self.schedule.items()):
            if epoch <= current:
                changed = set_trainable(trainer.model, patterns, True, self._where(epoch))
                if changed:
                    log.info(
                        "epoch %d: unfroze %d parameter tensors (%s)",
                        current,
                        changed,
                        ", ".join(patterns),
                    )

    @staticmethod
    def _where(epoch: int) -> str:
        return f"callbacks: unfreeze: schedule.{epoch}"


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

    def on_fit_start(self, trainer: Any) -> None:
        layers = [
            m for m in trainer.model.modules() if isinstance(m, nn.modules.dropout._DropoutNd)
        ]
        if not layers:
            raise CvkitError("callbacks: dropout_schedule: the model has no dropout layer")
        self.on_epoch_start(trainer)

    def on_epoch_start(self, trainer: Any) -> None:
        p = self.rate(trainer.epoch + 1, trainer.epochs)
        for module in trainer.model.modules():
            if isinstance(module, nn.modules.dropout._DropoutNd):
                module.p = p


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

    def on_fit_start(self, trainer: Any) -> None:
        self._default = trainer.train_loader.image_size
        self.on_epoch_start(trainer)  # a run resumed in the middle of an epoch

    def on_epoch_start(self, trainer: Any) -> None:
        size = self.size(trainer.epoch + 1)
        trainer.train_loader.image_size = [size, size] if size is not None else self._default
