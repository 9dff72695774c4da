"""cvkit plugin: CBAM, registered as ``attention/cbam``, ``attention/cbam_lite``,
``attention/channel_attention`` and ``attention/spatial_attention``."""

from __future__ import annotations

from cvkit import Register, hookimpl
from cvkit_cbam.cbam import CBAM, ChannelAttention, SpatialAttention, cbam_lite

__all__ = ["CBAM", "ChannelAttention", "SpatialAttention", "cbam_lite"]


@hookimpl
def register_attention(register: Register) -> None:
    register(
        "cbam",
        CBAM,
        examples=[
            {},
            {
                "reduction": 4,
                "kernel_size": 3,
                "batch_norm": True,
                "min_channels": 2,
                "mlp_bias": True,
            },
            {"reduction": 2, "spatial_bias": False},
        ],
    )
    register(
        "cbam_lite",
        cbam_lite,
        examples=[{}, {"reduction": 2, "kernel_size": 3, "batch_norm": True}],
    )
    register(
        "channel_attention",
        ChannelAttention,
        examples=[{}, {"reduction": 2, "pool_types": ["max"]}],
    )
    register(
        "spatial_attention",
        SpatialAttention,
        examples=[
            {},
            {"kernel_size": 3, "pool_types": ["avg"], "batch_norm": True},
            {"bias": False},
        ],
    )
