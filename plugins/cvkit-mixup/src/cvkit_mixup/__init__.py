"""cvkit plugin: MixUp, registered as ``augmentation/mixup``."""

from __future__ import annotations

from cvkit import Register, hookimpl
from cvkit_mixup.mixup import MixUp, draw_lambda

__all__ = ["MixUp", "draw_lambda"]


@hookimpl
def register_augmentations(register: Register) -> None:
    register("mixup", MixUp, examples=[{}, {"alpha": 1.0, "p": 0.5}])
