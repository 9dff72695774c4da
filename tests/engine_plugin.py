"""Test components, registered as a plugin (CVKIT_PLUGINS=engine_plugin).

Callbacks for the engine's fault tests act at a chosen (epoch, batch): poison the learning
rate, send SIGINT, SIGTERM or SIGKILL to the process (``rank``: only in the process of
that rank of a multi-process run; -1, the default: in every process). Each fires once; ``marker`` files make
that hold across processes. ``attention/gate`` is a second attention block with SE's
``reduction`` parameter, to swap blocks in recipes.

Faults that no callback can reach are injected when this module is imported, from the
environment (each fires once, then creates its marker file):

- ``CVKIT_TEST_KILL_IN_SAVE=NAME:EPOCH:MARKER``: SIGKILL in the middle of writing the
  checkpoint NAME (best.pt, last.pt) of EPOCH, its temporary file half written.
- ``CVKIT_TEST_KILL_IN_EVALUATION=MARKER``: SIGKILL during the final evaluation.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cvkit import hookimpl
from cvkit.engine.callback import Callback


class _AtBatch(Callback):
    def __init__(self, epoch: int = 2, batch: int = 2, marker: str = "", rank: int = -1) -> None:
        self.epoch, self.batch, self.marker, self.rank = epoch, batch, marker, rank
        self.fired = False

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
    """Set the learning rate to infinity at (epoch, batch): the loss turns NaN.

    Args:
        epoch: 1-based epoch.
        batch: batches done in that epoch.
        marker: file created when it fires; it does not fire if the file exists.
    """

    def act(self, trainer: Any) -> None:
        for group in trainer.optimizer.param_groups:
            group["lr"] = float("inf")


class Interrupt(_AtBatch):
    """Send SIGINT to this process at (epoch, batch), as Ctrl-C would.

    Args:
        epoch: 1-based epoch.
        batch: batches done in that epoch.
        marker: file created when it fires; it does not fire if the file exists.
    """

    def act(self, trainer: Any) -> None:
        os.kill(os.getpid(), signal.SIGINT)


class Terminate(_AtBatch):
    """Send SIGTERM to this process at (epoch, batch), as SLURM or Kubernetes would.

    Args:
        epoch: 1-based epoch.
        batch: batches done in that epoch.
        marker: file created when it fires; it does not fire if the file exists.
    """

    def act(self, trainer: Any) -> None:
        os.kill(os.getpid(), signal.SIGTERM)


class Kill(_AtBatch):
    """SIGKILL this process at (epoch, batch): no handler runs, nothing is saved.

    Args:
        epoch: 1-based epoch.
        batch: batches done in that epoch.
        marker: file created when it fires; it does not fire if the file exists.
    """

    def act(self, trainer: Any) -> None:
        os.kill(os.getpid(), signal.SIGKILL)


@hookimpl
def register_callbacks(register):
    register("poison_lr", PoisonLR)
    register("interrupt", Interrupt)
    register("terminate", Terminate)
    register("kill", Kill)


class Gate(nn.Module):
    """A per-channel gate from pooled features through one linear map: a minimal attention block.

    Args:
        channels: channels of the input.
        reduction: kept for drop-in compatibility with se; the gate's width is channels // reduction.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.squeeze = nn.Linear(channels, hidden)
        self.expand = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (
            x
            * torch.sigmoid(self.expand(torch.tanh(self.squeeze(x.mean((2, 3))))))[:, :, None, None]
        )


@hookimpl
def register_attention(register):
    register("gate", Gate)


class Twice:
    """Train the stage's model with the standard loop twice, the second time from the first
    result's weights, keeping both evaluations: a minimal plugin procedure.

    Args:
        note: written to <stage dir>/procedure.txt, so tests see which procedure ran.
    """

    def __init__(self, note: str = "twice") -> None:
        self.note = note

    def run(self, stage: Any) -> dict[str, Any]:
        import attrs

        from cvkit.engine.stage import train_stage

        (stage.run_dir / "procedure.txt").write_text(self.note)
        first = train_stage(attrs.evolve(stage, run_dir=stage.run_dir / "first"))
        start = {"": stage.run_dir / "first" / "checkpoints" / "last.pt"}
        return train_stage(attrs.evolve(stage, init=start)) | {"first": first}


@hookimpl
def register_procedures(register):
    register("twice", Twice)


def _once(marker: str) -> bool:
    """True the first time for ``marker`` (then the file exists)."""
    if Path(marker).exists():
        return False
    Path(marker).touch()
    return True


def _inject_faults() -> None:
    """Patch the engine as the CVKIT_TEST_* variables ask (see the module docstring)."""
    from cvkit.engine import checkpoint as checkpoint_module, stage as stage_module

    spec = os.environ.get("CVKIT_TEST_KILL_IN_SAVE")
    if spec:
        name, epoch, marker = spec.split(":", 2)
        save = checkpoint_module.save_atomic

        def save_or_die(state, path):
            if path.name == name and state.get("epoch") == int(epoch) and _once(marker):
                (path.parent / f".{path.name}.half.tmp").write_bytes(b"half a checkpoint")
                os.kill(os.getpid(), signal.SIGKILL)
            save(state, path)

        checkpoint_module.save_atomic = save_or_die
    evaluation_marker = os.environ.get("CVKIT_TEST_KILL_IN_EVALUATION")
    if evaluation_marker:
        collect = stage_module.collect_logits

        def collect_or_die(*args, **kwargs):
            if _once(evaluation_marker):
                os.kill(os.getpid(), signal.SIGKILL)
            return collect(*args, **kwargs)

        stage_module.collect_logits = collect_or_die


_inject_faults()
