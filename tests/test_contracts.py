"""Every registered component, with each of its examples, keeps its kind's contract.

Installing a plugin adds its components here with no change to the tests.
"""

from __future__ import annotations

import pytest

from cvkit.registry.kinds import KINDS
from cvkit.registry.loading import default_registry
from cvkit.registry.registry import Registry
from cvkit.testing import CHECKS, ContractCase, contract_cases

CASES = contract_cases(default_registry())


@pytest.mark.parametrize("case", CASES, ids=str)
def test_component_keeps_its_contract(case: ContractCase, registry: Registry) -> None:
    case.run(registry)


def test_every_kind_has_a_contract_check() -> None:
    assert set(CHECKS) == set(KINDS)


def test_every_component_is_checked_or_declares_why_not(registry: Registry) -> None:
    checked = {case.component.key for case in CASES}
    unchecked = {c.key for c in registry.components() if c.key not in checked}
    # Only components that need outside files opt out (examples=[]); each has its own tests
    # (distillation's teacher is a trained run: tests/plugins/test_distillation.py).
    assert unchecked == {
        "dataset/cifar10",
        "dataset/cifar100",
        "dataset/imagefolder",
        "dataset/shards",  # a shard folder: plugins/cvkit-shards/tests
        "loss/distillation",
    }


def test_every_component_is_documented(registry: Registry) -> None:
    for component in registry.components():
        assert component.summary, f"{component.key} has no docstring"
        undocumented = [p.name for p in component.params if not p.doc]
        assert not undocumented, f"{component.key}: parameters without docs: {undocumented}"
