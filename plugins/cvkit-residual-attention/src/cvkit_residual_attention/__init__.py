"""cvkit plugin: the CBAM study's models, registered as ``model/sample_resnet`` and
``model/resnet50_attention``."""

from __future__ import annotations

from cvkit import Register, hookimpl
from cvkit_residual_attention.blocks import ResAttentionBlock
from cvkit_residual_attention.models import ResNetAttention, SampleResNet

__all__ = ["ResAttentionBlock", "ResNetAttention", "SampleResNet"]

_CBAM = {"name": "cbam", "reduction": 2, "spatial_bias": False}


@hookimpl
def register_models(register: Register) -> None:
    register(
        "sample_resnet",
        SampleResNet,
        examples=[
            {"channels": [4, 8, 4], "pool_size": 8},
            {"channels": [4, 8, 6], "pool_size": 6, "attention": _CBAM, "dropout": 0.1},
        ],
    )
    register(
        "resnet50_attention",
        ResNetAttention,
        examples=[
            {"arch": "resnet18", "reduce_channels": 8, "channels": 4, "attention": _CBAM},
        ],
    )
