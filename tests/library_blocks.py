"""Attention blocks written the way libraries write them, registered as a plugin
(CVKIT_PLUGINS=library_blocks) for the tests of third-party blocks: the channel argument
named ``dim``, assertions without messages on their inputs, a class as a default, a
``functools.partial`` factory, a block whose output is NaN, a class without docstring or
annotations (its docs, types and constraints given at registration, torch's device and dtype
arguments)."""

from __future__ import annotations

import functools

import torch
from torch import nn

from cvkit import Register, hookimpl


class Blocked(nn.Module):
    """Halo-style: channels split over heads, sizes a multiple of a block size (asserted).

    Args:
        num_heads: heads; the channels must be a multiple.
        block_size: the sizes must be a multiple.
        act_layer: the activation's class.
    """

    def __init__(
        self, dim: int, num_heads: int = 4, block_size: int = 2, act_layer: type = nn.ReLU
    ) -> None:
        super().__init__()
        assert dim % num_heads == 0
        self.block_size = block_size
        self.proj = nn.Conv2d(dim, dim, 1, groups=num_heads)
        self.act = act_layer()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[-2] % self.block_size == 0 and x.shape[-1] % self.block_size == 0
        return x + self.act(self.proj(x))


class NotANumber(nn.Module):
    """Gives NaN everywhere (SimAM's 0/0 on 1x1 maps, say)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale * torch.tensor(float("nan"))


class Undocumented(nn.Module):
    def __init__(self, in_channels, heads=2, scale=None, device=None, dtype=None):
        """Args:
        heads: groups of the 1x1 convolution.
        """
        super().__init__()
        self.proj = nn.Conv2d(in_channels, in_channels, 1, groups=heads, device=device, dtype=dtype)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.proj(x) * (self.scale or 1.0)


def gated(channels: int, gain: float = 1.0, bias: bool = True) -> nn.Module:
    """A 1x1 gate (a partial of it is what timm's get_attn returns)."""
    return nn.Sequential(nn.Conv2d(channels, channels, 1, bias=bias), nn.Identity())


@hookimpl
def register_attention(register: Register) -> None:
    register(
        "lib_blocked",
        Blocked,
        runtime={"channels": "dim"},
        constraints={"channels_multiple_of": "num_heads", "size_multiple_of": "block_size"},
        examples=[{}, {"num_heads": 2, "block_size": 3}],
    )
    register("lib_blocked_undeclared", Blocked, runtime={"channels": "dim"}, examples=[])
    register("lib_nan", NotANumber, examples=[])
    register("lib_partial", functools.partial(gated, gain=2.0))
    register(
        "lib_undocumented",
        Undocumented,
        runtime={"channels": "in_channels"},
        constraints={"channels_multiple_of": "heads", "min_channels": 4},
        doc="""A block its library left without a class docstring or annotations.

        Args:
            heads (int): groups of the 1x1 convolution; the channels must be a multiple.
            scale (float | None): weight of the convolution's output (none: 1).
        """,
    )
