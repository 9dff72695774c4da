"""The registry: parameters from signatures and attrs classes, validation, binding, building."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import attrs
import pytest
import torch

from cvkit.errors import ComponentBuildError, RecipeError, UnknownComponentError
from cvkit.registry.kinds import KINDS
from cvkit.registry.parameters import REQUIRED, parse_arg_docs
from cvkit.registry.registry import ComponentBuilder, PluginInfo, Registry
from cvkit.registry.specs import ComponentSpec, OptimizerFactory

PLUGIN = PluginInfo("test", "test-dist", "9.9")


def wrapped_optimizer(
    params, optimizer: OptimizerFactory, boost: float = 1.0
) -> torch.optim.Optimizer:
    """An optimizer wrapper for tests: builds the inner optimizer and scales its lr.

    Args:
        optimizer: the inner optimizer.
        boost: learning-rate multiplier.
    """
    inner = optimizer(params)
    for group in inner.param_groups:
        group["lr"] *= boost
    return inner


def block(
    channels: int,
    mode: Literal["a", "b"] = "a",
    sizes: tuple[int, ...] = (1, 2),
    path: Path | None = None,
):
    """A block for tests.

    Args:
        mode: which mode,
            continued on a second line.
        sizes: some sizes.
    """
    if mode == "b":
        raise ValueError("mode b is not supported with these sizes")
    return torch.nn.Identity()


@attrs.define
class Settings:
    """Settings as an attrs class.

    Attributes:
        depth: how deep.
        width: how wide.
    """

    depth: int
    width: float = 1.0
    tags: list[str] = attrs.Factory(list)
    _private: int = 3


@pytest.fixture
def registry(registry) -> Registry:  # the installed registry plus this module's components
    fresh = Registry()
    for component in registry.components():
        fresh.add(component)
    fresh.registrar(KINDS["optimizer"], PLUGIN)("wrapped", wrapped_optimizer)
    fresh.registrar(KINDS["attention"], PLUGIN)("block", block)
    fresh.registrar(KINDS["callback"], PLUGIN)("settings", Settings)
    return fresh


def test_parameters_come_from_the_signature_with_types_defaults_and_docs(registry) -> None:
    component = registry.get("attention", "block")
    params = {p.name: p for p in component.params}
    assert list(params) == ["mode", "sizes", "path"]  # the runtime argument 'channels' is not one
    assert params["mode"].type_name == "'a' | 'b'" and params["mode"].default == "a"
    assert params["mode"].doc == "which mode, continued on a second line."
    assert params["sizes"].type_name == "list[int]"
    assert params["path"].type_name == "path | none"
    assert (component.plugin, component.version, component.summary) == (
        "test-dist",
        "9.9",
        "A block for tests.",
    )


def test_parameters_come_from_an_attrs_class(registry) -> None:
    params = {p.name: p for p in registry.get("callback", "settings").params}
    assert list(params) == ["depth", "width", "tags", "private"]
    assert params["depth"].default is REQUIRED and params["width"].default == 1.0
    assert params["tags"].default == [] and params["depth"].doc == "how deep."


def test_parse_arg_docs_reads_google_style_sections() -> None:
    doc = "Summary.\n\nArgs:\n    a: first.\n    b (int): second,\n        wrapped.\n\nReturns:\n    x\n"
    assert parse_arg_docs(doc) == {"a": "first.", "b": "second, wrapped."}


def test_values_are_checked_and_normalised(registry) -> None:
    spec = registry.spec("attention", {"name": "block", "sizes": [3, 4], "path": "x/y"})
    assert spec.params == {"mode": "a", "sizes": (3, 4), "path": Path("x/y")}
    assert registry.spec("optimizer", {"name": "sgd", "lr": 1}).params["lr"] == 1.0
    assert isinstance(registry.spec("optimizer", {"name": "sgd", "lr": 1}).params["lr"], float)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            {"name": "sgd", "lrr": 0.1},
            "optimizer.lrr: unknown key for optimizer/sgd (did you mean 'lr'?); valid keys: ",
        ),
        ({"name": "sgd", "lr": "fast"}, "optimizer.lr: expected float, got str 'fast'"),
        ({"name": "sgd", "nesterov": 1}, "optimizer.nesterov: expected bool, got int 1"),
        ({"name": "sgd", "lr": True}, "optimizer.lr: expected float, got bool True"),
        (
            {"name": "adam", "betas": [0.9]},
            "optimizer.betas: expected list[float, float] (2 items), got an array",
        ),
        (
            {"name": "sgdd"},
            "optimizer.name: unknown optimizer 'sgdd' (did you mean 'sgd'?); available: ",
        ),
        ({"lr": 0.1}, "optimizer: missing 'name' of the optimizer component"),
        (
            {"name": "wrapped"},
            "optimizer.optimizer: missing required parameter of optimizer/wrapped (optimizer component)",
        ),
    ],
)
def test_bad_tables_are_rejected_with_the_key_and_what_was_expected(
    registry, table, message
) -> None:
    with pytest.raises(RecipeError) as error:
        registry.spec("optimizer", table)
    assert len(error.value.lines()) == 1
    assert error.value.lines()[0].startswith(message), error.value.lines()


def test_every_problem_is_reported_before_anything_is_built(registry) -> None:
    with pytest.raises(RecipeError) as error:
        registry.spec("attention", {"name": "block", "mode": "c", "sizes": [1, "x"], "extra": 1})
    assert error.value.lines() == [
        "attention.extra: unknown key for attention/block; valid keys: mode, path, sizes",
        "attention.mode: expected one of 'a', 'b', got str 'c'",
        "attention.sizes[1]: expected int, got str 'x'",
    ]


def test_nested_components_are_validated_and_bound_as_factories(registry) -> None:
    spec = registry.spec(
        "optimizer",
        {"name": "wrapped", "boost": 2, "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9}},
    )
    inner = spec.params["optimizer"]
    assert inner == ComponentSpec("optimizer", "sgd", {**inner.params, "lr": 0.1, "momentum": 0.9})
    optimizer = registry.build(spec, [torch.nn.Parameter(torch.zeros(1))])
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.param_groups[0][
        "lr"
    ] == pytest.approx(0.2)
    bound = registry.bind(spec)
    assert isinstance(bound.params["optimizer"], ComponentBuilder)
    with pytest.raises(
        RecipeError, match=r"optimizer.optimizer.momentun: unknown key for optimizer/sgd"
    ):
        registry.spec(
            "optimizer", {"name": "wrapped", "optimizer": {"name": "sgd", "momentun": 0.9}}
        )


def test_a_component_name_alone_is_a_table(registry) -> None:
    spec = registry.spec("model", {"name": "simple_cnn", "attention": "block"})
    assert spec.params["attention"] == ComponentSpec(
        "attention", "block", {"mode": "a", "sizes": (1, 2), "path": None}
    )
    model = registry.build(spec, num_classes=4, in_channels=1)
    assert model(torch.rand(2, 1, 8, 8)).shape == (2, 4)


def test_a_factory_value_error_becomes_a_build_error_naming_the_component(registry) -> None:
    spec = registry.spec("attention", {"name": "block", "mode": "b"})
    with pytest.raises(ComponentBuildError, match="attention/block: mode b is not supported"):
        registry.build(spec, 8)


def test_context_arguments_reach_only_factories_that_declare_them(registry) -> None:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = registry.build(
        registry.spec("scheduler", "cosine"), optimizer, epochs=2, steps_per_epoch=3
    )
    assert scheduler.T_max == 6


def test_a_factory_declaring_registry_receives_the_registry_building_it(registry) -> None:
    received = []

    def recorder(channels: int, registry: Registry, gain: float = 1.0) -> torch.nn.Module:
        """Records the registry it was built with.

        Args:
            gain: unused.
        """
        received.append(registry)
        return torch.nn.Identity()

    registry.registrar(KINDS["attention"], PLUGIN)("recorder", recorder)
    component = registry.get("attention", "recorder")
    assert [p.name for p in component.params] == ["gain"] and "registry" in component.context
    registry.build(registry.spec("attention", "recorder"), 4)
    nested = registry.spec("model", {"name": "simple_cnn", "widths": [4], "attention": "recorder"})
    registry.build(nested, num_classes=2, in_channels=1)
    assert received == [registry, registry]


def test_unknown_kind_and_name_list_the_alternatives(registry) -> None:
    with pytest.raises(
        UnknownComponentError, match=r"unknown component kind 'modle' \(did you mean 'model'\?\)"
    ):
        registry.get("modle", "x")
    with pytest.raises(UnknownComponentError, match=r"available: .*simple_cnn"):
        registry.get("model", "resnet")


def test_list_filters_by_kind_and_glob(registry) -> None:
    assert [c.name for c in registry.components("optimizer", "adam*")] == ["adam", "adamw"]
    assert all(c.kind == "dataset" for c in registry.components("datasets"))


@pytest.mark.parametrize("name", ["Bad", "-x", "", "a b"])
def test_component_names_are_validated(name) -> None:
    with pytest.raises(ValueError, match="must match"):
        Registry().registrar(KINDS["loss"], PLUGIN)(name, torch.nn.CrossEntropyLoss)
