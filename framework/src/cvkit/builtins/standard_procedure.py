"""Built-in plugin: ``procedure/standard``, one model trained by the explicit loop."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cvkit.hookspecs import Register, hookimpl

if TYPE_CHECKING:
    from cvkit.engine.stage import StageContext


class StandardProcedure:
    """One model trained with the recipe's optimizer, schedule, loss and augmentations."""

    def run(self, stage: StageContext) -> dict[str, Any]:
        """Train ``stage`` with :func:`cvkit.engine.stage.train_stage`; its evaluation."""
        # Imported when a stage trains: listing or inspecting components must not load the engine.
        from cvkit.engine.stage import train_stage

        return train_stage(stage)


@hookimpl
def register_procedures(register: Register) -> None:
    register("standard", StandardProcedure)
