"""Fault callbacks for tests of stopping and continuing, registered as a plugin with
``CVKIT_PLUGINS=cvkit.testing.faults`` (in the environment of the ``cvkit`` process under
test): ``poison_lr`` sets the learning rate to infinity, ``interrupt`` sends SIGINT (as
Ctrl-C), ``terminate`` SIGTERM (as SLURM), ``kill`` SIGKILL, each at a chosen (epoch,
batch), once (``rank``: only in the process of that rank of a multi-process run; -1, the
default: every process). A ``marker`` file makes "once" hold across processes and
commands: it is created when the callback fires, and it does not fire while the file
exists. :func:`fault_callbacks` writes the ``--set callbacks=[...]`` value and
:func:`cvkit_with_faults` runs a ``cvkit`` command with them registered;
:func:`stopped_and_continued` runs one whole, stopped, and continued."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cvkit.engine.callback import Callback
from cvkit.hookspecs import Register, hookimpl

__all__ = [
    "Interrupt",
    "Kill",
    "PoisonLR",
    "Terminate",
    "cvkit_with_faults",
    "fault_callbacks",
    "register_callbacks",
    "stopped_and_continued",
]


class _AtBatch(Callback):
    """Acts once at (``epoch``, ``batch``): 1-based epoch, batches done in it; ``marker``:
    a file created when it acts (it does not act while the file exists); ``rank``: only in
    the process of that rank (-1: every process)."""

    def __init__(self, epoch: int = 2, batch: int = 2, marker: str = "", rank: int = -1) -> None:
        self.epoch, self.batch, self.marker, self.rank = epoch, batch, marker, rank
        self.fired = False

    def act(self, trainer: Any) -> None:
        raise NotImplementedError

    def on_batch_end(self, trainer: Any) -> None:
        if self.fired or (trainer.epoch + 1, trainer.batch) != (self.epoch, self.batch):
            return
        if self.rank >= 0 and int(os.environ.get("RANK", "0")) != self.rank:
            return
        if self.marker and Path(self.marker).exists():
            return
        self.fired = True
        if self.marker:
            Path(self.marker).touch()
        self.act(trainer)

    def state_dict(self) -> dict[str, Any]:
        return {"fired": self.fired}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.fired = state["fired"]


class PoisonLR(_AtBatch):
    """Set the learning rate to infinity at (epoch, batch): the loss turns NaN."""

    def act(self, trainer: Any) -> None:
        for group in trainer.optimizer.param_groups:
            group["lr"] = float("inf")


class _Signal(_AtBatch):
    """Send :attr:`SIGNAL` to this process at (epoch, batch)."""

    SIGNAL = signal.SIGINT

    def act(self, trainer: Any) -> None:
        os.kill(os.getpid(), self.SIGNAL)


class Interrupt(_Signal):
    """Send SIGINT to this process at (epoch, batch), as Ctrl-C would."""


class Terminate(_Signal):
    """Send SIGTERM to this process at (epoch, batch), as SLURM or Kubernetes would."""

    SIGNAL = signal.SIGTERM


class Kill(_Signal):
    """SIGKILL this process at (epoch, batch): no handler runs, nothing is saved."""

    SIGNAL = signal.SIGKILL


@hookimpl
def register_callbacks(register: Register) -> None:
    register("poison_lr", PoisonLR)
    register("interrupt", Interrupt)
    register("terminate", Terminate)
    register("kill", Kill)


def fault_callbacks(name: str, *, epoch: int, batch: int, marker: Path) -> str:
    """``callbacks=[...]`` for ``--set``: the fault ``name`` (interrupt, terminate, kill,
    poison_lr) at (``epoch``, ``batch``) with ``marker``, then metrics_jsonl and the
    checkpoint callback (so that an interrupted run has a last.pt to continue from)."""
    return (
        f'callbacks=[{{ name = "{name}", epoch = {epoch}, batch = {batch}, '
        f'marker = "{marker.as_posix()}" }}, {{ name = "metrics_jsonl" }}, {{ name = "checkpoint" }}]'
    )


def cvkit_with_faults(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python -m cvkit ARGS`` in ``cwd`` with these callbacks registered
    (``CVKIT_PLUGINS``), its output captured as text."""
    env = {**os.environ, "CVKIT_PLUGINS": "cvkit.testing.faults"}
    return subprocess.run(
        [sys.executable, "-m", "cvkit", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env=env,
    )


Command = Callable[[Path], subprocess.CompletedProcess]


def stopped_and_continued(
    command: Command, marker: Path, folder: Path
) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess, subprocess.CompletedProcess]:
    """``command(out)`` (a cvkit command writing to ``out`` whose recipe has a fault with
    ``marker``) three times: into ``folder/whole`` with the marker present, so nothing
    fires; into ``folder/cut``, where the fault fires; into ``folder/cut`` again, to
    continue. Returns the three completed processes (whole, cut, again)."""
    marker.write_text("")
    whole = command(folder / "whole")
    marker.unlink()
    cut = command(folder / "cut")
    return whole, cut, command(folder / "cut")
