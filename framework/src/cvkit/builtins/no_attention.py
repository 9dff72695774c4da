"""Built-in plugin: ``attention/none``, the identity, to leave an attention slot empty by name."""

from __future__ import annotations

from torch import nn

from cvkit.hookspecs import Register, hookimpl


def no_attention(channels: int) -> nn.Module:
    """No attention: the identity, (N, channels, H, W) -> the same tensor.

    ``attention = "none"`` is the same as leaving a model's attention slot out; it lets an
    ablation name the empty slot as a value (``--set model.attention=none``, ``cvkit study
    --vary model.attention.name=none,se,cbam``).
    """
    return nn.Identity()


@hookimpl
def register_attention(register: Register) -> None:
    register("none", no_attention)
