"""cvkit plugin: the lightweight-CNN study's joint classifier, registered as
``model/feature_fusion``."""

from __future__ import annotations

from cvkit import Register, hookimpl
from cvkit_dual_model.fusion import FeatureFusion, classification_layer

__all__ = ["FeatureFusion", "classification_layer"]


@hookimpl
def register_models(register: Register) -> None:
    register(
        "feature_fusion",
        FeatureFusion,
        examples=[
            {"branches": [{"name": "simple_cnn", "widths": [4]}] * 2},
            {
                "branches": [{"name": "simple_cnn", "widths": [4, 8]}] * 3,
                "hidden": 8,
                "dropout": 0.1,
            },
        ],
    )
