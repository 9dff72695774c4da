"""cvkit plugin: timm's image models (Ross Wightman, PyTorch Image Models,
github.com/huggingface/pytorch-image-models), registered as ``model/timm``."""

from __future__ import annotations

from cvkit import Register, hookimpl
from cvkit_timm.models import timm_model

__all__ = ["timm_model"]


@hookimpl
def register_models(register: Register) -> None:
    register(
        "timm",
        timm_model,
        examples=[{"arch": "test_convnext"}, {"arch": "test_efficientnet", "drop_rate": 0.1}],
    )
