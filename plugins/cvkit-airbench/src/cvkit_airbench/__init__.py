"""cvkit plugin: airbench94's network as ``model/airbench`` and its alternating flip as
``augmentation/alternating_flip``."""

from __future__ import annotations

from cvkit import Register, hookimpl
from cvkit_airbench.flip import AlternatingFlip
from cvkit_airbench.network import AirbenchNet, BatchNorm, Conv, ConvGroup

__all__ = ["AirbenchNet", "AlternatingFlip", "BatchNorm", "Conv", "ConvGroup"]


@hookimpl
def register_models(register: Register) -> None:
    register(
        "airbench",
        AirbenchNet,
        examples=[
            {"widths": [8, 16, 16]},
            {"widths": [8, 8, 16], "attention": {"name": "se", "reduction": 4}},
        ],
    )


@hookimpl
def register_augmentations(register: Register) -> None:
    register("alternating_flip", AlternatingFlip)
