"""Test components, registered as a plugin (CVKIT_PLUGINS=engine_plugin).

The fault callbacks of :mod:`cvkit.testing.faults` (poison the learning rate, send SIGINT,
SIGTERM or SIGKILL at a chosen (epoch, batch), once), registered here too.
``attention/gate`` is a second attention block with SE's ``reduction`` parameter, to swap
blocks in recipes.

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
from cvkit.testing.faults import Interrupt, Kill, PoisonLR, Terminate, register_callbacks

__all__ = ["Gate", "Interrupt", "Kill", "PoisonLR", "Terminate", "register_callbacks"]


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
