"""cvkit plugin: the CBAM study's models, registered as ``model/res_attention_net`` and
``model/resnet50_attention``."""

from __future__ import annotations

from cvkit import Register, hookimpl
from cvkit_residual_attention.attention_module import AttentionModule, ResidualUnit
from cvkit_residual_attention.models import ResAttentionNet, ResNetAttention

__all__ = ["AttentionModule", "ResAttentionNet", "ResNetAttention", "ResidualUnit"]


@hookimpl
def register_models(register: Register) -> None:
    register(
        "res_attention_net",
        ResAttentionNet,
        examples=[
            {"widths": [4, 8, 8]},
            {
                "widths": [4, 8, 12],
                "attention": {"name": "se", "reduction": 2},
                "mask_depth": 1,
                "dropout": 0.1,
            },
        ],
    )
    register(
        "resnet50_attention",
        ResNetAttention,
        examples=[{"arch": "resnet18", "channels": 8}],
    )
