"""Meta-tests: every hook specification is documented, tied to a kind, and exercised."""

from __future__ import annotations

import inspect
import types

import pytest
import torch
from torch import nn

from cvkit import hookimpl, hookspecs
from cvkit.augment import BatchAugmentation
from cvkit.builtins.datasets import SyntheticImages
from cvkit.callbacks import Callback
from cvkit.kinds import KINDS, get_kind
from cvkit.plugins import load_registry
from cvkit.stages import StandardProcedure
from cvkit.testing import CHECKS

SPECS = {
    name: fn
    for name, fn in vars(hookspecs).items()
    if inspect.isfunction(fn) and hookspecs.hookspec.project_name + "_spec" in vars(fn)
}


def test_every_hookspec_is_a_documented_kind() -> None:
    assert set(SPECS) == {kind.hook for kind in KINDS.values()}
    for name, spec in SPECS.items():
        assert list(inspect.signature(spec).parameters) == ["register"], name
        doc = inspect.getdoc(spec) or ""
        assert "factory(" in doc, f"{name} does not state the factory's call signature"


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
    from cvkit.builtins import models, optimizers, schedulers

    factories = {
        "model": models.SimpleCNN,
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
