"""cvkit plugin: knowledge distillation, registered as ``loss/distillation``."""

from __future__ import annotations

from cvkit import Register, hookimpl
from cvkit_distillation.distillation import KnowledgeDistillation, distillation_loss, load_teacher

__all__ = ["KnowledgeDistillation", "distillation_loss", "load_teacher"]


@hookimpl
def register_losses(register: Register) -> None:
    # no examples: the teacher is a checkpoint on disk (the plugin's tests train one)
    register("distillation", KnowledgeDistillation, examples=[])
