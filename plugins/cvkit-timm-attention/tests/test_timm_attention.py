"""cvkit-timm-attention: timm's attention layers registered as they are, every create_attn
type either registered or left out with its reason, constraints that name the slot."""

from __future__ import annotations

import functools
import importlib
from pathlib import Path

import pytest
import torch
from timm.layers import get_attn

from cvkit_timm_attention import BLOCKS, LEFT_OUT

TIMM_TYPES = (
    "se",
    "ese",
    "eca",
    "ecam",
    "ceca",
    "ge",
    "gc",
    "gca",
    "cbam",
    "lcbam",
    "coord",
    "scoord",
    "ela",
    "strip",
    "sk",
    "splat",
    "lambda",
    "bottleneck",
    "halo",
    "nl",
    "bat",
)
"""The 21 types of timm.layers.create_attn (timm 1.0.31's get_attn)."""
RECIPES = Path(__file__).resolve().parents[3] / "recipes"


def _same_factory(ours, timms) -> bool:
    if isinstance(ours, functools.partial):
        return (
            isinstance(timms, functools.partial)
            and ours.func is timms.func
            and ours.keywords == timms.keywords
        )
    return ours is timms


def test_every_timm_type_is_registered_as_timm_builds_it_or_left_out_with_a_reason() -> None:
    registered = {block.name.removeprefix("timm_"): block for block in BLOCKS}
    assert set(registered) | set(LEFT_OUT) == set(TIMM_TYPES)
    assert not set(registered) & set(LEFT_OUT)
    for kind, block in registered.items():
        assert _same_factory(block.factory, get_attn(kind)), kind


def test_gather_excite_is_left_out_because_timm_cannot_build_it() -> None:
    """When timm fixes GatherExcite this fails: register it then."""
    gather_excite = importlib.import_module("timm.layers.gather_excite").GatherExcite
    with pytest.raises(TypeError, match="multiple values for argument 'act_layer'"):
        gather_excite(8)


def test_a_registered_block_is_timm_s_own_class_with_its_channel_argument_mapped(
    registry,
) -> None:
    spec = registry.spec("attention", {"name": "timm_halo", "num_heads": 2, "block_size": 2})
    block = registry.bind(spec)(16)
    assert type(block).__name__ == "HaloAttn" and type(block).__module__.startswith("timm.")
    assert block(torch.randn(2, 16, 4, 6)).shape == (2, 16, 4, 6)
    assert registry.get("attention", "timm_halo").runtime_names == {"channels": "dim"}
    assert registry.get("attention", "timm_se").runtime_names == {}


@pytest.mark.parametrize(
    ("block", "constraints"),
    [
        (
            "timm_halo",
            "channels_multiple_of=8 (num_heads = 8), size_multiple_of=8 (block_size = 8)",
        ),
        ("timm_sk", "channels_multiple_of=2"),
        ("timm_splat", "channels_multiple_of=2"),
        ("timm_lambda", "channels_multiple_of=4"),
        ("timm_bat", "size_multiple_of=7 (block_size = 7)"),
        ("timm_ela", "min_channels=2"),
    ],
)
def test_info_shows_the_inputs_a_block_takes(run_cli, block, constraints) -> None:
    result = run_cli("info", f"attention/{block}")
    assert result.exit_code == 0, result.output
    assert f"inputs (at the default parameters): {constraints}\n" in result.output
    assert "device" not in result.output.split("\n\n")[1]  # torch's factory arguments: hidden


def test_a_block_that_does_not_fit_a_slot_is_named_with_the_constraint_it_breaks(
    run_cli,
) -> None:
    """The quickstart's feature maps are 8, 4 and 2 pixels: halo's blocks of 4 fit the first
    two, not the third."""
    result = run_cli(
        "check",
        str(RECIPES / "quickstart.toml"),
        "--set",
        'model.attention={ name = "timm_halo", num_heads = 4, block_size = 4 }',
    )
    assert result.exit_code == 2
    assert (
        "model: attention/timm_halo at model.features.13 (input 2x128x2x2) failed" in result.stderr
    )
    assert (
        "AssertionError: (no message); it declares channels_multiple_of=4 (num_heads = 4), "
        "size_multiple_of=4 (block_size = 4), and this input breaks it: its size 2x2 is not a "
        "multiple of 4 (block_size = 4)" in result.stderr
    )
