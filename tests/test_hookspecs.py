"""Meta-tests: every hook specification is documented, tied to a kind, and exercised."""

from __future__ import annotations

import inspect
import types

import pytest
import torch
from torch import nn

from cvkit import hookimpl, hookspecs
from cvkit.builtins.standard_procedure import StandardProcedure
from cvkit.builtins.synthetic import SyntheticImages
from cvkit.data.augmentation import BatchAugmentation, PerSampleAugmentation
from cvkit.engine.callback import Callback
from cvkit.registry.kinds import KINDS, get_kind
from cvkit.registry.loading import load_registry
from cvkit.testing import CHECKS

SPECS = {
    name: fn
    for name, fn in vars(hookspecs).items()
    if inspect.isfunction(fn) and hookspecs.hookspec.project_name + "_spec" in vars(fn)
}


def test_every_hookspec_is_a_documented_kind_or_the_commands_hook() -> None:
    assert set(SPECS) == {kind.hook for kind in KINDS.values()} | {"register_commands"}
    for kind in KINDS.values():
        spec = SPECS[kind.hook]
        assert list(inspect.signature(spec).parameters) == ["register"], kind.hook
        doc = inspect.getdoc(spec) or ""
        assert "factory(" in doc, f"{kind.hook} does not state the factory's call signature"
    assert list(inspect.signature(SPECS["register_commands"]).parameters) == ["cli"]


def test_every_capability_is_declared_once_for_a_kind_and_read_through_the_table() -> None:
    for capability in hookspecs.CAPABILITIES.values():
        assert capability.kind in KINDS and capability.doc, capability
    assert hookspecs.capability(object(), "priority") == hookspecs.CAPABILITIES["priority"].default
    with pytest.raises(KeyError):
        hookspecs.capability(object(), "soft_target")  # a misspelt flag is no silent default


def test_base_classes_declare_the_table_defaults() -> None:
    table = hookspecs.CAPABILITIES
    assert Callback.priority == table["priority"].default
    for name in ("soft_targets", "changes_size", "per_sample", "min_size"):
        assert getattr(BatchAugmentation, name) == table[name].default, name
    assert PerSampleAugmentation.per_sample is True


def test_kinds_accept_plurals_and_reject_unknown_names() -> None:
    assert get_kind("models") is KINDS["model"]
    with pytest.raises(LookupError, match="did you mean 'attention'"):
        get_kind("atention")


class Scale(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels, 1, 1))

    def forward(self, x):
        return x * self.weight


class Identity(BatchAugmentation):
    def forward(self, images, targets):
        return images, targets


class Quiet(Callback):
    pass


def _plugin_for_every_hook() -> types.ModuleType:
    """A plugin implementing every registration hook, one small real component each."""
    from cvkit.builtins import schedules as schedulers, simple_cnn, torch_optimizers as optimizers

    factories = {
        "model": simple_cnn.SimpleCNN,
        "attention": Scale,
        "augmentation": Identity,
        "optimizer": optimizers.sgd,
        "scheduler": schedulers.constant,
        "loss": nn.CrossEntropyLoss,
        "dataset": lambda: SyntheticImages(train_size=20, test_size=0, image_size=4),
        "callback": Quiet,
        "procedure": StandardProcedure,
    }
    module = types.ModuleType("every_hook_plugin")
    for kind, factory in factories.items():

        def implementation(register, kind=kind, factory=factory):
            register(f"meta_{kind}", factory)

        implementation.__name__ = KINDS[kind].hook
        setattr(module, KINDS[kind].hook, hookimpl(implementation))
    return module


def test_every_hook_registers_a_component_that_keeps_its_contract() -> None:
    registry = load_registry(autoload=False, modules=[_plugin_for_every_hook()])
    for kind in KINDS:
        component = registry.get(kind, f"meta_{kind}")
        assert component.plugin == "every_hook_plugin"
        CHECKS[kind](registry.bind(registry.spec(kind, {"name": component.name})))
