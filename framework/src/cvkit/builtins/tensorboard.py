"""Built-in plugin: ``callback/tensorboard``, TensorBoard logs of the run."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

from cvkit.engine.callback import Callback, Priority, TrainerView
from cvkit.hookspecs import Register, hookimpl
from cvkit.recipe.writing import flat_settings, recipe_data

log = logging.getLogger("cvkit")

CELL_PIXELS = 24
"""Side of one cell of the confusion-matrix image, in pixels."""


class TensorBoard(Callback):
    """TensorBoard logs in <run_dir>/tensorboard, indexed by optimizer step.

    Every epoch: its metrics (``train/*``, ``val/*``, ``lr``, ``images_per_second``, ...).
    Every ``log_every`` steps: ``step/lr``, ``step/loss`` (that step's loss),
    ``step/images_per_second`` (since the previous point of the epoch) and, when
    ``trainer.clip_grad_norm`` is set, ``step/grad_norm`` (before clipping); the values stay
    on the device and are read once per epoch, so logging does not wait for the device at
    each point. Once per run: a grid of the first training batch as augmented
    (``train/augmented_batch``) and, with ``graph``, the model graph. After the final
    evaluation: the recipe's scalar settings with ``final/*`` metrics (validation, test, best
    validation accuracy) in the HParams tab of this run's own event file, and the confusion
    matrix of the test split (else validation) as an image and as a table (Text tab). A
    resumed (or restarted) run purges the events after its checkpoint.

    Args:
        log_every: log the per-step scalars every this many optimizer steps (0: per epoch only).
        images: images in the grid of augmented training images (0: no grid).
        graph: add the model graph (traced with torch.jit on one training image).
    """

    priority = Priority.HIGH
    main_process_only = True  # rank 0 alone writes in a run of several processes

    def __init__(self, log_every: int = 50, images: int = 32, graph: bool = False) -> None:
        if log_every < 0:
            raise ValueError(f"log_every={log_every} must be >= 0")
        if images < 0:
            raise ValueError(f"images={images} must be >= 0")
        self.log_every, self.images, self.graph = log_every, images, graph
        self.writer: Any = None
        self._points: list[tuple[int, float, float, torch.Tensor, torch.Tensor | None]] = []
        self._since: tuple[int, float] = (0, 0.0)
        self._first_batch = True

    def on_fit_start(self, trainer: TrainerView) -> None:
        if trainer.run_dir is None:
            return
        folder = Path(trainer.run_dir) / "tensorboard"
        self.writer = SummaryWriter(str(folder), purge_step=trainer.step)
        self._first_batch = trainer.step == 0
        self._since = (trainer.step, time.perf_counter())  # a run resumed mid-epoch

    def on_epoch_start(self, trainer: TrainerView) -> None:
        self._since = (trainer.step, time.perf_counter())

    def on_batch_end(self, trainer: TrainerView) -> None:
        if self.writer is None:
            return
        if self._first_batch:
            self._first_batch = False
            self._log_batch(trainer)
        if self.log_every and trainer.step % self.log_every == 0 and trainer.batch_loss is not None:
            now = time.perf_counter()
            step, then = self._since
            images = (trainer.step - step) * _batch_size(trainer)
            speed = images / (now - then) if now > then else float("nan")
            self._points.append(
                (trainer.step, trainer.lr, speed, trainer.batch_loss, trainer.grad_norm)
            )
            self._since = (trainer.step, now)

    def _log_batch(self, trainer: TrainerView) -> None:
        """The grid of augmented training images (and the graph), once per run."""
        batch = trainer.batch_images
        if batch is None:
            return
        if self.images:
            import torchvision

            shown = batch[: self.images].detach().float().cpu()
            grid = torchvision.utils.make_grid(shown[:, :3], normalize=True, scale_each=True)
            self.writer.add_image("train/augmented_batch", grid, trainer.step)
        if self.graph:
            try:
                self.writer.add_graph(trainer.model, batch[:1])
            except Exception as error:  # tracing fails on some models: say so, train on
                log.warning("tensorboard: the model graph could not be traced: %s", error)

    def _write_points(self) -> None:
        """Write the per-step points, reading their device values at once."""
        if not self._points:
            return
        losses = torch.stack([loss for _, _, _, loss, _ in self._points]).double().tolist()
        norms = [norm for *_, norm in self._points]
        known = [n for n in norms if n is not None]
        values = iter(torch.stack(known).double().tolist()) if known else iter(())
        for (step, lr, speed, _, norm), loss in zip(self._points, losses, strict=True):
            self.writer.add_scalar("step/lr", lr, step)
            self.writer.add_scalar("step/loss", loss, step)
            self.writer.add_scalar("step/images_per_second", speed, step)
            if norm is not None:
                self.writer.add_scalar("step/grad_norm", next(values), step)
        self._points.clear()

    def on_epoch_end(self, trainer: TrainerView) -> None:
        if self.writer is None:
            return
        self._write_points()
        for name, value in trainer.metrics.items():
            self.writer.add_scalar(name, value, trainer.step)
        self.writer.add_scalar("epoch", trainer.epoch, trainer.step)
        self.writer.flush()

    def on_fit_end(self, trainer: TrainerView) -> None:
        if self.writer is not None:
            self._write_points()
            self.writer.flush()

    def on_evaluation_end(self, trainer: TrainerView) -> None:
        if self.writer is None or trainer.evaluation is None:
            return
        evaluation = trainer.evaluation
        final = final_metrics(evaluation, trainer.history)
        settings = recipe_settings(trainer)
        for summary in hparams(settings, final):
            self.writer.file_writer.add_summary(summary)
        for name, value in final.items():
            self.writer.add_scalar(name, value, trainer.step)
        split = "test" if evaluation.get("test") else "val"
        metrics = evaluation.get(split)
        if metrics:
            matrix = torch.tensor(metrics["confusion_matrix"], dtype=torch.float64)
            self.writer.add_image(
                f"{split}/confusion_matrix", confusion_image(matrix), trainer.step
            )
            self.writer.add_text(
                f"{split}/confusion_matrix",
                confusion_table(matrix, metrics["classes"]),
                trainer.step,
            )
        self.writer.close()
        self.writer = None

    def on_exception(self, trainer: TrainerView, error: BaseException) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _batch_size(trainer: TrainerView) -> int:
    return trainer.batch_images.shape[0] if trainer.batch_images is not None else 0


def recipe_settings(trainer: TrainerView) -> dict[str, Any]:
    """The recipe's settings as HParams values: scalars as they are, the rest as JSON."""
    if trainer.recipe is None:
        return {}
    return {
        key: value if isinstance(value, bool | int | float | str) else json.dumps(value)
        for key, value in flat_settings(recipe_data(trainer.recipe)).items()
    }


def final_metrics(evaluation: dict[str, Any], history: list[dict[str, float]]) -> dict[str, float]:
    """``final/*`` metrics: top-1, top-5, loss and macro-F1 of each evaluated split, and the
    best validation accuracy of any epoch."""
    final = {}
    for split in ("val", "test"):
        metrics = evaluation.get(split)
        if metrics:
            for name in ("top1", "top5", "loss", "macro_f1"):
                final[f"final/{split}_{name}"] = float(metrics[name])
    accuracies = [epoch["val/acc"] for epoch in history if "val/acc" in epoch]
    if accuracies:
        final["final/best_val_acc"] = max(accuracies)
    return final


def confusion_image(matrix: torch.Tensor) -> torch.Tensor:
    """The row-normalised confusion matrix (K, K) as an RGB image (3, K x CELL, K x CELL):
    white for 0 through dark blue for 1 (no plotting library needed)."""
    rows = matrix.sum(1, keepdim=True).clamp(min=1)
    share = (matrix / rows).float()
    white, blue = torch.tensor([1.0, 1.0, 1.0]), torch.tensor([0.03, 0.19, 0.42])
    image = white[:, None, None] + (blue - white)[:, None, None] * share[None]
    return image.repeat_interleave(CELL_PIXELS, 1).repeat_interleave(CELL_PIXELS, 2)


def confusion_table(matrix: torch.Tensor, classes: list[str]) -> str:
    """The confusion matrix as a markdown table (rows: true class, columns: predicted)."""
    head = "| true \\ predicted | " + " | ".join(classes) + " |"
    rule = "|" + " --- |" * (len(classes) + 1)
    body = [
        f"| {name} | " + " | ".join(str(int(v)) for v in row) + " |"
        for name, row in zip(classes, matrix.tolist(), strict=True)
    ]
    return "\n".join([head, rule, *body])


@hookimpl
def register_callbacks(register: Register) -> None:
    register("tensorboard", TensorBoard)
