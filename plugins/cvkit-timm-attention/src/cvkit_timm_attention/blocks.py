"""timm's attention layers (``timm.layers``, the 20 of ``create_attn``'s 21 types that timm
can build), each named ``timm_<type>`` after its ``create_attn`` type, with the paper it
implements, the input constraints it asserts, and small examples for the contract tests."""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from cvkit_timm_attention.docs import docstring

# timm.layers re-exports the function create_attn under the module's name
_timm = importlib.import_module("timm.layers.create_attn")


@attrs.frozen
class Block:
    """One registration: ``factory`` as timm defines it, its channel argument's name, its
    constraints (see cvkit.registry.constraints), examples and docs."""

    name: str
    """``timm_`` and the block's ``timm.layers.create_attn`` type."""
    factory: Callable[..., Any]
    summary: str
    body: str
    constraints: Any = None
    examples: Sequence[Mapping[str, Any]] = ({},)

    @property
    def runtime(self) -> dict[str, str]:
        channels = _first_parameter(self.factory)
        return {} if channels == "channels" else {"channels": channels}

    @property
    def doc(self) -> str:
        return docstring(self.factory, self.summary, self.body)


def _first_parameter(factory: Callable[..., Any]) -> str:
    return next(iter(inspect.signature(factory).parameters))


def _selective_kernel(params: Mapping[str, Any]) -> dict[str, int]:
    """SK splits the channels over its branches (one per kernel size, two by default), each
    branch's convolution grouped by ``groups``."""
    kernels = params.get("kernel_size")
    paths = len(kernels) if isinstance(kernels, list) else 2
    groups = params.get("groups") or 1
    return {"channels_multiple_of": paths * groups if params.get("split_input", True) else groups}


def _split_attention(params: Mapping[str, Any]) -> dict[str, int]:
    """SplAt's convolution has groups * radix groups."""
    return {"channels_multiple_of": (params.get("groups") or 1) * (params.get("radix") or 1)}


def _lambda(params: Mapping[str, Any]) -> dict[str, Any]:
    """Heads split the channels; without a local context (r none) positions are embedded for
    one feat_size."""
    limits: dict[str, Any] = {"channels_multiple_of": params.get("num_heads") or 1}
    if params.get("r") is None:
        limits["fixed_size"] = params.get("feat_size")
    return limits


_SAME_SHAPE = "Maps (N, C, H, W) to the same shape."

BLOCKS = (
    Block(
        "timm_se",
        _timm.SEModule,
        "Squeeze-and-Excitation (Hu et al., CVPR 2018) as timm's SEModule.",
        f"Global average pool, a 1x1 conv bottleneck, a sigmoid gate per channel. {_SAME_SHAPE}",
        examples=({}, {"rd_ratio": 0.25, "add_maxpool": True}),
    ),
    Block(
        "timm_ese",
        _timm.EffectiveSEModule,
        "Effective Squeeze-Excitation (Lee & Park, CenterMask, CVPR 2020), timm's "
        "EffectiveSEModule.",
        f"SE with one 1x1 conv and no reduction, gated by a hard sigmoid. {_SAME_SHAPE}",
    ),
    Block(
        "timm_eca",
        _timm.EcaModule,
        "Efficient Channel Attention (Wang et al., ECA-Net, CVPR 2020), timm's EcaModule.",
        "A 1-D convolution across the pooled channels, its kernel size adapted to the "
        f"channels (gamma, beta), and a sigmoid gate. {_SAME_SHAPE}",
        examples=({}, {"kernel_size": 5}),
    ),
    Block(
        "timm_ecam",
        functools.partial(_timm.EcaModule, use_mlp=True),
        "ECA with a channel MLP in place of its 1-D convolution (timm's 'ecam').",
        f"timm's EcaModule(use_mlp=True), as timm.layers.get_attn('ecam') builds it. {_SAME_SHAPE}",
    ),
    Block(
        "timm_ceca",
        _timm.CecaModule,
        "Circular ECA: ECA whose 1-D convolution pads the channels circularly (timm's CecaModule).",
        _SAME_SHAPE,
    ),
    Block(
        "timm_gc",
        _timm.GlobalContext,
        "Global Context block (Cao et al., GCNet, ICCVW 2019), timm's GlobalContext.",
        "Attention-pooled global context, a bottleneck transform, fused into every position "
        f"by scaling (and, with fuse_add, by addition). {_SAME_SHAPE}",
    ),
    Block(
        "timm_gca",
        functools.partial(_timm.GlobalContext, fuse_add=True, fuse_scale=False),
        "Global Context block fused by addition only (timm's 'gca').",
        f"timm's GlobalContext(fuse_add=True, fuse_scale=False), as get_attn('gca') builds it. "
        f"{_SAME_SHAPE}",
    ),
    Block(
        "timm_cbam",
        _timm.CbamModule,
        "CBAM (Woo et al., ECCV 2018) as timm's CbamModule: channel, then spatial attention.",
        f"timm's reduction is rd_ratio (1/16), its spatial kernel spatial_kernel_size. {_SAME_SHAPE}",
    ),
    Block(
        "timm_lcbam",
        _timm.LightCbamModule,
        "Light CBAM (timm's LightCbamModule): CBAM whose poolings are summed before one pass.",
        _SAME_SHAPE,
    ),
    Block(
        "timm_coord",
        _timm.CoordAttn,
        "Coordinate Attention (Hou et al., CVPR 2021), timm's CoordAttn.",
        "Pools along rows and along columns, a shared 1x1 transform, one gate per row and one "
        f"per column. {_SAME_SHAPE}",
    ),
    Block(
        "timm_scoord",
        _timm.SimpleCoordAttn,
        "Simplified Coordinate Attention (timm's SimpleCoordAttn): separate row and column gates.",
        _SAME_SHAPE,
    ),
    Block(
        "timm_ela",
        _timm.EfficientLocalAttn,
        "Efficient Local Attention (Xu & Wan, 2024), timm's EfficientLocalAttn.",
        "1-D depthwise convolutions along the row and column strips, GroupNorm, a gate per "
        "row and column. Two channels at least: GroupNorm refuses one value per group (one "
        f"channel of a 1x1 map). {_SAME_SHAPE}",
        constraints={"min_channels": 2},
    ),
    Block(
        "timm_strip",
        _timm.StripAttn,
        "Strip attention (timm's StripAttn): gates from the row and column means.",
        _SAME_SHAPE,
    ),
    Block(
        "timm_nl",
        _timm.NonLocalAttn,
        "Non-local block (Wang et al., CVPR 2018), timm's NonLocalAttn.",
        f"Self-attention over all positions, added to the input. {_SAME_SHAPE}",
    ),
    Block(
        "timm_sk",
        _timm.SelectiveKernel,
        "Selective Kernel convolution (Li et al., SKNet, CVPR 2019), timm's SelectiveKernel.",
        "Branches of 3x3 convolutions of growing dilation, weighted per channel by a softmax "
        "attention. A convolution, not a gate: it replaces what it follows. The channels "
        f"split over the branches (two by default), so they must be even. {_SAME_SHAPE}",
        constraints=_selective_kernel,
    ),
    Block(
        "timm_splat",
        _timm.SplitAttn,
        "Split-Attention convolution (Zhang et al., ResNeSt, 2020), timm's SplitAttn.",
        "A grouped 3x3 convolution into radix splits weighted by a softmax across them. The "
        f"channels must be a multiple of groups * radix (2 by default). {_SAME_SHAPE}",
        constraints=_split_attention,
    ),
    Block(
        "timm_lambda",
        _timm.LambdaLayer,
        "Lambda layer (Bello, LambdaNetworks, ICLR 2021), timm's LambdaLayer.",
        "Content and position lambdas (a local context of r x r) applied to the queries. The "
        f"channels must be a multiple of num_heads. {_SAME_SHAPE}",
        constraints=_lambda,
        examples=({}, {"num_heads": 2, "dim_head": 4, "r": 3}),
    ),
    Block(
        "timm_bottleneck",
        _timm.BottleneckAttn,
        "Bottleneck Transformer self-attention (Srinivas et al., BoTNet, CVPR 2021), timm's "
        "BottleneckAttn.",
        "Multi-head self-attention over all positions with relative position embeddings for "
        "one feature size: feat_size is required and the input must have it; the channels "
        f"must be a multiple of num_heads. {_SAME_SHAPE}",
        constraints={"channels_multiple_of": "num_heads", "fixed_size": "feat_size"},
        examples=({"feat_size": [4, 6], "num_heads": 2},),
    ),
    Block(
        "timm_halo",
        _timm.HaloAttn,
        "Halo attention (Vaswani et al., Scaling Local Self-Attention, CVPR 2021), timm's "
        "HaloAttn.",
        "Self-attention within block_size x block_size blocks whose keys reach halo_size "
        "beyond them: H and W must be multiples of block_size, the channels of num_heads. "
        f"{_SAME_SHAPE}",
        constraints={"channels_multiple_of": "num_heads", "size_multiple_of": "block_size"},
        examples=({}, {"num_heads": 2, "block_size": 2, "halo_size": 1}),
    ),
    Block(
        "timm_bat",
        _timm.BatNonLocalAttn,
        "Bilinear Attentional Transforms (Chi et al., Non-Local Networks with BAT, CVPR 2020), "
        "timm's BatNonLocalAttn.",
        "Non-local interactions by block-wise bilinear transforms, added to the input: H and W "
        f"must be multiples of block_size. {_SAME_SHAPE}",
        constraints={"size_multiple_of": "block_size"},
        examples=({}, {"block_size": 2}),
    ),
)

LEFT_OUT = {
    "ge": "timm's GatherExcite cannot be built with its defaults: it passes act_layer to "
    "ConvMlp twice (TypeError: ConvMlp.__init__() got multiple values for argument "
    "'act_layer', timm 1.0.31); only its use_mlp=False variant builds, which is not the "
    "block get_attn('ge') gives",
}
"""``create_attn`` types not registered, with the reason."""
