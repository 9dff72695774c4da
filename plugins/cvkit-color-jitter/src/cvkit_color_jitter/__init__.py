"""cvkit plugin: batched colour jitter, registered as ``augmentation/color_jitter``."""

from __future__ import annotations

from cvkit import Register, hookimpl
from cvkit_color_jitter.jitter import ColorJitter

__all__ = ["ColorJitter"]


@hookimpl
def register_augmentations(register: Register) -> None:
    register(
        "color_jitter",
        ColorJitter,
        examples=[{}, {"brightness": 0.2, "contrast": 0.0, "hue": 0.0, "p": 0.5}],
    )
