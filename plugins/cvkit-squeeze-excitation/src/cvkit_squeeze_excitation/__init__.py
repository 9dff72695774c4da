"""cvkit plugin: Squeeze-and-Excitation attention, registered as ``attention/se``."""

from __future__ import annotations

from cvkit import Register, hookimpl
from cvkit_squeeze_excitation.se import SqueezeExcitation

__all__ = ["SqueezeExcitation"]


@hookimpl
def register_attention(register: Register) -> None:
    register(
        "se",
        SqueezeExcitation,
        examples=[{}, {"reduction": 4, "min_channels": 2, "gate": "hard_sigmoid"}],
    )
