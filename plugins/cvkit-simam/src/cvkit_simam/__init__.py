"""cvkit plugin: SimAM, parameter-free attention (Yang et al., ICML 2021), registered as
``attention/simam``."""

from __future__ import annotations

from cvkit import Register, hookimpl
from cvkit_simam.simam import SimAM

__all__ = ["SimAM"]


@hookimpl
def register_attention(register: Register) -> None:
    register("simam", SimAM, constraints={"min_size": 2}, examples=[{}, {"e_lambda": 0.1}])
