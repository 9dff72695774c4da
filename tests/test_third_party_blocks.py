"""Blocks written as libraries write them register and are checked as they are: their
channel argument by its own name, their input constraints declared and used by the contract
tests, cvkit check and cvkit run alike, partials and classes as defaults shown, their
exceptions and NaN outputs named (library_blocks.py)."""

from __future__ import annotations

import json

import library_blocks  # noqa: F401  (imported by CVKIT_PLUGINS; here for ruff's isort)
import pytest
import torch

from cvkit.engine.contracts import ComponentRaised, attention_case
from cvkit.errors import CvkitError
from cvkit.registry.loading import load_registry
from cvkit.testing import check_attention, contract_cases, feature_maps

from helpers import RECIPES


@pytest.fixture
def blocks(monkeypatch):
    monkeypatch.setenv("CVKIT_PLUGINS", "library_blocks")
    return load_registry(modules=["library_blocks"])


def builder(registry, name: str, **params):
    return registry.bind(registry.spec("attention", {"name": name, **params}))


def test_a_library_class_registers_as_it_is_with_its_channel_argument_named(blocks) -> None:
    """Its factory's parameter is ``dim``: runtime={"channels": "dim"} (it needed a wrapper)."""
    block = builder(blocks, "lib_blocked")(8)
    assert block.proj.in_channels == 8
    assert [p.name for p in blocks.get("attention", "lib_blocked").params] == [
        "num_heads",
        "block_size",
        "act_layer",
    ]


def test_declared_constraints_narrow_the_contract_s_inputs(blocks) -> None:
    """Without them the contract draws 7x6 and 5-channel inputs the block asserts against
    (the only way out was examples=[]); with them every example passes."""
    for case in contract_cases(blocks, kinds=("attention",), plugin=None):
        if case.component.name == "lib_blocked":
            case.run(blocks)
    with pytest.raises(CvkitError, match="could not be built: AssertionError: \\(no message\\)"):
        attention_case(builder(blocks, "lib_blocked_undeclared"), torch.randn(2, 5, 7, 6))
    with pytest.raises(ComponentRaised, match="forward pass on an input \\(2, 8, 7, 6\\): Assert"):
        attention_case(builder(blocks, "lib_blocked_undeclared"), torch.randn(2, 8, 7, 6))
    check_attention(builder(blocks, "lib_blocked", num_heads=2, block_size=3), max_examples=10)


def test_feature_maps_keep_to_the_constraints(blocks) -> None:
    from hypothesis import given, settings

    limits = builder(blocks, "lib_blocked", num_heads=3, block_size=4).constraints
    assert (
        str(limits) == "channels_multiple_of=3 (num_heads = 3), size_multiple_of=4 (block_size = 4)"
    )

    @settings(max_examples=40, deadline=None)
    @given(x=feature_maps(constraints=limits))
    def run(x: torch.Tensor) -> None:
        assert x.shape[1] % 3 == 0 and x.shape[2] % 4 == 0 and x.shape[3] % 4 == 0

    run()


@pytest.mark.parametrize(
    ("sets", "exit_code", "message"),
    [
        ([], 0, "ok: "),  # sizes 8, 4, 2 are multiples of 2: check agrees with run
        (
            ["model.attention.block_size=3"],
            2,
            "model: attention/lib_blocked at model.features.3 (input 2x32x8x8) failed on its "
            "input from the 2x1x8x8 images augment.train makes from data.dataset "
            "(dataset/digits: 1-channel 8x8 images, 10 classes): AssertionError: (no message); "
            "it declares channels_multiple_of=4 (num_heads = 4), size_multiple_of=3 "
            "(block_size = 3), and this input breaks it: its size 8x8 is not a multiple of 3 "
            "(block_size = 3)",
        ),
        (
            ["model.attention.num_heads=3"],
            2,
            "model.attention: attention/lib_blocked cannot be built: 32 channels are not a "
            "multiple of 3 (num_heads = 3)",
        ),
    ],
)
def test_check_probes_each_block_at_the_input_the_model_gives_it(
    blocks, run_cli, sets, exit_code, message
) -> None:
    """It probed a fixed (4, 64, 7, 6), refusing a block size of 2 that run trains with, and
    said "breaks the attention contract: " with nothing after the colon."""
    args = ["--set", "model.attention.name=lib_blocked", *(a for s in sets for a in ("--set", s))]
    result = run_cli("check", str(RECIPES / "quickstart.toml"), *args)
    assert result.exit_code == exit_code, result.output
    assert message in result.output


def test_a_nan_output_is_named_as_such(blocks, run_cli) -> None:
    """It was "no finite gradient reaches the input"."""
    result = run_cli(
        "check", str(RECIPES / "quickstart.toml"), "--set", "model.attention.name=lib_nan"
    )
    assert result.exit_code == 2
    assert "its output has NaN or infinite values" in result.stderr


def test_partials_and_classes_as_defaults_are_shown_by_their_names(blocks, run_cli) -> None:
    """A partial failed the whole plugin (typing.get_type_hints); a class default crashed
    ``cvkit info --json`` (not JSON serializable)."""
    partial = run_cli("info", "attention/lib_partial", "--json")
    assert partial.exit_code == 0, partial.output
    data = json.loads(partial.stdout)
    assert data["summary"].startswith("A 1x1 gate")
    assert {p["name"]: p["default"] for p in data["params"]} == {"gain": 2.0, "bias": True}
    blocked = json.loads(run_cli("info", "attention/lib_blocked", "--json").stdout)
    defaults = {p["name"]: p["default"] for p in blocked["params"]}
    assert defaults["act_layer"] == "torch.nn.modules.activation.ReLU"
    text = run_cli("info", "attention/lib_blocked").stdout
    assert "torch.nn.modules.activation.ReLU" in text


def test_a_class_without_docs_or_annotations_gets_them_at_registration(blocks) -> None:
    """``doc=`` gives the summary and the parameters' docs and types (``heads (int): ...``),
    over the class's ``__init__`` docstring; torch's ``device``/``dtype`` are not recipe
    parameters; nothing is left unchecked (no plugin warnings)."""
    component = blocks.get("attention", "lib_undocumented")
    assert component.summary == "A block its library left without a class docstring or annotations."
    params = {p.name: p for p in component.params}
    assert list(params) == ["heads", "scale"]
    assert params["heads"].type_name == "int" and params["scale"].type_name == "float | none"
    assert params["heads"].doc.startswith("groups of the 1x1 convolution; the channels")
    plugin = next(p for p in blocks.plugins if p.name == "library_blocks")
    assert not [w for w in plugin.warnings if "lib_undocumented" in w]
    with pytest.raises(CvkitError, match="expected int"):
        builder(blocks, "lib_undocumented", heads="two")


def test_min_channels_narrows_the_inputs_and_is_named_when_broken(blocks) -> None:
    from hypothesis import given, settings

    limits = builder(blocks, "lib_undocumented").constraints
    assert str(limits) == "channels_multiple_of=2 (heads = 2), min_channels=4"
    assert limits.channel_violation(2) == "2 channels are fewer than 4"
    assert limits.probe((1, 1, 3, 3)) == (1, 4, 3, 3)

    @settings(max_examples=30, deadline=None)
    @given(x=feature_maps(constraints=limits))
    def run(x: torch.Tensor) -> None:
        assert x.shape[1] >= 4 and x.shape[1] % 2 == 0

    run()
    check_attention(builder(blocks, "lib_undocumented"), max_examples=5)


def test_info_shows_the_declared_inputs_at_the_defaults(blocks, run_cli) -> None:
    shown = run_cli("info", "attention/lib_blocked")
    assert (
        "inputs (at the default parameters): channels_multiple_of=4 (num_heads = 4), "
        "size_multiple_of=2 (block_size = 2)\n" in shown.output
    )
    data = json.loads(run_cli("info", "attention/lib_undocumented", "--json").stdout)
    assert data["constraints"] == "channels_multiple_of=2 (heads = 2), min_channels=4"
    assert json.loads(run_cli("info", "attention/none", "--json").stdout)["constraints"] == ""
