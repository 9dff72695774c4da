"""cvkit plugin: timm's attention layers (Ross Wightman, PyTorch Image Models,
github.com/huggingface/pytorch-image-models), registered as they are as
``attention/timm_<type>`` with the input constraints they assert declared."""

from __future__ import annotations

from cvkit import Register, hookimpl
from cvkit_timm_attention.blocks import BLOCKS, LEFT_OUT, Block

__all__ = ["BLOCKS", "LEFT_OUT", "Block"]


@hookimpl
def register_attention(register: Register) -> None:
    for block in BLOCKS:
        register(
            block.name,
            block.factory,
            runtime=block.runtime,
            constraints=block.constraints,
            examples=list(block.examples),
            doc=block.doc,
        )
