"""cvkit plugin: snapshot ensembles, registered as ``scheduler/cosine_restarts`` and
``callback/snapshot``."""

from __future__ import annotations

from cvkit import Register, hookimpl
from cvkit_snapshot_ensembles.snapshots import Snapshot, cosine_restarts

__all__ = ["Snapshot", "cosine_restarts"]


@hookimpl
def register_schedulers(register: Register) -> None:
    register(
        "cosine_restarts", cosine_restarts, examples=[{"cycles": 1}, {"cycles": 1, "min_lr": 1e-4}]
    )


@hookimpl
def register_callbacks(register: Register) -> None:
    register("snapshot", Snapshot, examples=[{}, {"cycles": 1}])
