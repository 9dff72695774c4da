"""cvkit plugin: CBAM, registered as ``attention/cbam``, ``attention/channel_attention`` and
``attention/spatial_attention``."""

from __future__ import annotations

from cvkit import hookimpl
from cvkit.hookspecs import Register
from cvkit_cbam.cbam import CBAM, ChannelAttention, SpatialAttention

__all__ = ["CBAM", "ChannelAttention", "SpatialAttention"]


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
        ],
    )
    register(
        "channel_attention",
        ChannelAttention,
        examples=[{}, {"reduction": 2, "pool_types": ["max"]}],
    )
    register(
        "spatial_attention",
        SpatialAttention,
        examples=[{}, {"kernel_size": 3, "pool_types": ["avg"], "batch_norm": True}],
    )
