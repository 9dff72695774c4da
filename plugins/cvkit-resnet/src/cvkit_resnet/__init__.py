"""cvkit plugin: CIFAR-style ResNets with an attention slot, and the configurable efficient_resnet."""

from __future__ import annotations

from typing import Any

from cvkit import Register, hookimpl
from cvkit_resnet.blocks import BasicBlock, Bottleneck
from cvkit_resnet.resnet import (
    ResidualNetwork,
    ResNet18,
    ResNet34,
    ResNet50,
    ResNet101,
    efficient_resnet,
)

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "ResNet18",
    "ResNet34",
    "ResNet50",
    "ResNet101",
    "ResidualNetwork",
    "efficient_resnet",
]

# Contract tests build narrow versions: the structure is the same, the compute is tiny.
_NARROW: list[dict[str, Any]] = [
    {"width": 4},
    {"width": 4, "attention": {"name": "se", "reduction": 2}, "dropout": 0.1, "block_dropout": 0.1},
]


@hookimpl
def register_models(register: Register) -> None:
    register("resnet18", ResNet18, examples=_NARROW)
    register("resnet34", ResNet34, examples=_NARROW[:1])
    register("resnet50", ResNet50, examples=_NARROW[:1])
    register("resnet101", ResNet101, examples=_NARROW[:1])
    register(
        "efficient_resnet",
        efficient_resnet,
        examples=[
            {"blocks": [1, 1, 1], "channels": 4},
            {
                "blocks": [1, 2],
                "channels": 4,
                "conv_kernel_sizes": [5, 3],
                "shortcut_kernel_sizes": [1, 3],
                "pool_kernel": None,
                "attention": {"name": "se", "reduction": 2},
                "attention_placement": "block",
                "block_dropout": 0.1,
                "zero_init_residual": True,
            },
        ],
    )
