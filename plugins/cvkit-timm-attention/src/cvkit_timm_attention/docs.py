"""Docs for timm's attention layers, whose docstrings mostly leave their arguments
undocumented: one line per parameter name (timm uses the same names across its layers),
assembled into a Google-style docstring per block for ``cvkit info``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

PARAMETERS = {
    "rd_ratio": "channels of the reduced (bottleneck) layer as a fraction of the input channels.",
    "rd_channels": "channels of the reduced layer (none: rd_ratio times the input channels, "
    "rounded to rd_divisor).",
    "rd_divisor": "the reduced layer's channels are rounded to a multiple of this.",
    "act_layer": "the activation's class (or, where timm allows it, its name).",
    "gate_layer": "the gate: a name timm knows ('sigmoid', 'hard_sigmoid', 'tanh', ...) or a "
    "class.",
    "norm_layer": "the normalisation layer's class (none: no normalisation).",
    "bias": "whether the convolutions have a bias.",
    "mlp_bias": "whether the channel MLP's convolutions have a bias.",
    "add_maxpool": "squeeze by the mean plus the max over positions, not the mean alone.",
    "has_skip": "add the input to the gated output (x * gate + x).",
    "kernel_size": "kernel size of the attention's convolution.",
    "spatial_kernel_size": "kernel size of the spatial attention's convolution.",
    "gamma": "ECA's adaptive kernel size: k = |log2(C) / gamma + beta / gamma|, made odd, "
    "when kernel_size is none.",
    "beta": "ECA's adaptive kernel size offset (see gamma).",
    "use_mlp": "a channel MLP in place of the 1-D convolution across channels.",
    "use_attn": "pool by learned attention weights over positions (else the mean).",
    "fuse_add": "add the transformed context to the input.",
    "fuse_scale": "scale the input by the sigmoid of the transformed context.",
    "init_last_zero": "start the last convolution at zero (the block starts as the identity "
    "where it fuses by addition).",
    "se_factor": "reduction of the squeeze-excitation part relative to rd_ratio.",
    "use_conv": "a depthwise convolution on the pooled strips.",
    "use_scale": "scale the attention logits by 1/sqrt(channels).",
    "dim_out": "output channels (none: the input's; another value changes the shape, which an "
    "attention slot refuses).",
    "out_channels": "output channels (none: the input's; another value changes the shape, which "
    "an attention slot refuses).",
    "stride": "stride (1 in an attention slot; 2 halves the size, which the slot refuses).",
    "feat_size": "the feature map's (H, W), required where positions are embedded absolutely.",
    "num_heads": "attention heads; the channels must be a multiple of it.",
    "dim_head": "channels per head of queries and keys (none: from the channels and qk_ratio).",
    "qk_ratio": "query/key channels as a fraction of the output channels.",
    "qkv_bias": "whether the query/key/value projection has a bias.",
    "scale_pos_embed": "scale the relative position logits like the content logits.",
    "block_size": "side of the blocks the map is cut into; H and W must be multiples of it.",
    "halo_size": "pixels each block's keys reach beyond its sides.",
    "avg_down": "downsample by average pooling instead of strided queries (when stride is 2).",
    "r": "side of the local context of the position lambdas (none: global, then feat_size is "
    "required).",
    "dilation": "dilation of the branch convolutions.",
    "groups": "groups of each convolution; the channels must be a multiple of it.",
    "keep_3x3": "every branch a 3x3 convolution, larger kernels made by dilation.",
    "split_input": "split the input channels evenly over the branches.",
    "aa_layer": "anti-aliasing layer's class for strided convolutions (none: none).",
    "drop_layer": "a spatial dropout layer's class for the convolutions (none: none).",
    "padding": "padding of the convolution (none: 'same' for its kernel and dilation).",
    "radix": "splits per group, weighted by the split attention; the channels must be a "
    "multiple of radix times groups.",
    "drop_rate": "probability of Dropout2d on the attention output, in training.",
}


UNANNOTATED_NONE = {"rd_channels": "int | None"}
"""Types of unannotated parameters that default to None (timm's NonLocalAttn)."""


def docstring(factory: Callable[..., Any], summary: str, body: str) -> str:
    """``summary`` and ``body``, then an ``Args:`` entry for each of ``factory``'s parameters
    after the first (the channels) that :data:`PARAMETERS` describes; a parameter timm does
    not annotate gets its type in the entry (``name (float): ...``), from its default."""
    parameters = list(inspect.signature(factory).parameters.values())[1:]
    args = "\n".join(
        f"    {p.name}{_type_of(p)}: {PARAMETERS[p.name]}"
        for p in parameters
        if p.name in PARAMETERS
    )
    return f"{summary}\n\n{body}\n\nArgs:\n{args}\n"


def _type_of(parameter: inspect.Parameter) -> str:
    if parameter.annotation is not inspect.Parameter.empty:
        return ""
    if parameter.default is None:
        return (
            f" ({UNANNOTATED_NONE[parameter.name]})" if parameter.name in UNANNOTATED_NONE else ""
        )
    return f" ({type(parameter.default).__name__})"
