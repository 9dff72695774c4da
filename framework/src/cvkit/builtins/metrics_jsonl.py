"""Built-in plugin: ``callback/metrics_jsonl``, every epoch's metrics as a JSON line."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from cvkit.engine.callback import Callback, Priority, TrainerView
from cvkit.files import json_text
from cvkit.hookspecs import Register, hookimpl
from cvkit.registry.specs import RunFile


class MetricsJSONL(Callback):
    """Metrics as JSON lines: one object per epoch in the run directory.

    Each line holds epoch, step, wall time and every metric (train/loss, train/acc,
    val/loss, val/acc, val/top5, lr, images_per_second, ...). On resume, lines written
    after the checkpoint (epochs that are redone) are dropped.

    Args:
        filename: file name inside the run directory (a path that leaves it is refused).
    """

    priority = Priority.VERY_HIGH
    main_process_only = True  # rank 0 alone writes in a run of several processes

    def __init__(self, filename: RunFile = "metrics.jsonl") -> None:
        self.filename = filename
        self.offset = 0

    def on_fit_start(self, trainer: TrainerView) -> None:
        self.path = Path(trainer.run_dir) / self.filename if trainer.run_dir else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path is not None and self.path.exists() and self.path.stat().st_size > self.offset:
            with self.path.open("r+b") as stream:  # epochs after the checkpoint are redone
                stream.truncate(self.offset)

    def on_epoch_end(self, trainer: TrainerView) -> None:
        if self.path is None:
            return
        record = {
            "epoch": trainer.epoch,
            "step": trainer.step,
            "time": time.time(),
            **trainer.metrics,
        }
        with self.path.open("a", encoding="utf-8") as stream:
            stream.write(json_text(record, indent=None) + "\n")
            stream.flush()
            os.fsync(stream.fileno())  # on disk before the checkpoint that records the offset
            self.offset = stream.tell()

    def state_dict(self) -> dict[str, Any]:
        return {"offset": self.offset}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.offset = state["offset"]


@hookimpl
def register_callbacks(register: Register) -> None:
    register("metrics_jsonl", MetricsJSONL)
