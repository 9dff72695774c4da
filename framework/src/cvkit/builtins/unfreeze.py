"""Built-in plugin: ``callback/unfreeze`` and ``callback/freeze``, making parts of the model
trainable or frozen from given epochs on, by module-name patterns."""

from __future__ import annotations

import logging
from typing import ClassVar

from cvkit.engine.callback import Callback, TrainerView
from cvkit.hookspecs import Register, hookimpl
from cvkit.models.freezing import selected_parameters, set_trainable

log = logging.getLogger("cvkit")


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

    trainable: ClassVar[bool] = True

    def __init__(self, schedule: dict[str, list[str]] | None = None) -> None:
        self.schedule: dict[int, list[str]] = {}
        for epoch, patterns in (schedule or {}).items():
            if not str(epoch).isdigit() or int(epoch) < 1:
                raise ValueError(f"schedule key {epoch!r} must be an epoch number >= 1")
            self.schedule[int(epoch)] = list(patterns)

    def on_fit_start(self, trainer: TrainerView) -> None:
        for epoch, patterns in self.schedule.items():  # fail before training, not at epoch N
            for pattern in patterns:
                selected_parameters(trainer.model, pattern, self._where(epoch))
        self._apply(trainer)  # a run resumed in the middle of an epoch gets no on_epoch_start

    def on_epoch_start(self, trainer: TrainerView) -> None:
        self._apply(trainer)

    def _apply(self, trainer: TrainerView) -> None:
        current = trainer.epoch + 1
        for epoch, patterns in sorted(self.schedule.items()):
            if epoch <= current:
                changed = set_trainable(trainer.model, patterns, self.trainable, self._where(epoch))
                if changed:
                    log.info(
                        "epoch %d: %s %d parameter tensors (%s)",
                        current,
                        "unfroze" if self.trainable else "froze",
                        changed,
                        ", ".join(patterns),
                    )

    def _where(self, epoch: int) -> str:
        name = "unfreeze" if self.trainable else "freeze"
        return f"callbacks: {name}: schedule.{epoch}"


class Freeze(Unfreeze):
    """Freeze parts of the model from given epochs on (e.g. airbench's whitening bias after
    its first epochs).

    ``schedule`` maps an epoch (1-based, as a TOML key) to module-name patterns (as in
    ``model.freeze``) whose parameters stop training at the start of that epoch, e.g.
    ``{ 4 = ["whiten.bias"] }``: they get no gradient from then on, so the optimizer leaves
    them as they are (no momentum or weight decay either). On resume, the patterns of every
    epoch already reached are applied again.

    Args:
        schedule: epoch -> patterns of the parameters to freeze at its start.
    """

    trainable: ClassVar[bool] = False


@hookimpl
def register_callbacks(register: Register) -> None:
    register("unfreeze", Unfreeze, examples=[{}, {"schedule": {"2": ["*"]}}])
    register("freeze", Freeze, examples=[{}, {"schedule": {"2": ["*"]}}])
