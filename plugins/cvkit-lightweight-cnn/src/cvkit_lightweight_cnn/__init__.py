"""cvkit plugin: the lightweight-CNN study's models, registered as ``model/lightweight_base``
and ``model/lightweight_cnn``."""

from __future__ import annotations

from cvkit import Register, hookimpl
from cvkit_lightweight_cnn.models import (
    BaseSubModel,
    GaussianNoise,
    LightweightCNN,
    SeparableResidualBlock,
)

__all__ = ["BaseSubModel", "GaussianNoise", "LightweightCNN", "SeparableResidualBlock"]


@hookimpl
def register_models(register: Register) -> None:
    register("lightweight_base", BaseSubModel, examples=[{}, {"widths": [4, 6], "hidden": 8}])
    register(
        "lightweight_cnn",
        LightweightCNN,
        examples=[
            {"widths": [4, 8, 8]},
            {
                "widths": [4, 8],
                "blocks": [2],
                "strides": [2],
                "attention": {"name": "se", "reduction": 2},
                "stochastic_depth": 0.2,
                "feature_noise": 0.1,
            },
        ],
    )
