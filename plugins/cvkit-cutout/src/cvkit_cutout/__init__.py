"""cvkit plugin: Cutout, registered as ``augmentation/cutout``."""

from __future__ import annotations

from cvkit import Register, hookimpl
from cvkit_cutout.cutout import Cutout

__all__ = ["Cutout"]


@hookimpl
def register_augmentations(register: Register) -> None:
    register("cutout", Cutout, examples=[{}, {"size": 3, "p": 0.5, "fill": 0.5}])
