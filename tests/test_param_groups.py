"""Optimizer groups chosen by rule, Muon for filters, the linear schedule's per-group lengths."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from cvkit.builtins.muon import Muon
from cvkit.builtins.schedules import linear
from cvkit.engine.build import grouped_optimizer
from cvkit.engine.param_groups import GroupedOptimizer
from cvkit.errors import CvkitError


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 3),
    )


def build(registry, model: nn.Module, table: dict) -> torch.optim.Optimizer:
    return grouped_optimizer(registry.spec("optimizer", table, "optimizer"), registry, model)


def names_of(optimizer: torch.optim.Optimizer, model: nn.Module) -> dict[str, list[str]]:
    name = {id(p): n for n, p in model.named_parameters()}
    return {g["name"]: [name[id(p)] for p in g["params"]] for g in optimizer.param_groups}


def test_each_parameter_joins_the_first_group_it_matches(registry) -> None:
    model = small_net()
    optimizer = build(
        registry,
        model,
        {
            "name": "sgd",
            "lr": 0.1,
            "weight_decay": 5e-4,
            "groups": [
                {"name": "head", "params": ["4"], "lr": 0.5},
                {"name": "no_decay", "norm": True, "weight_decay": 0.0},
                {"name": "biases", "ndim": 1, "weight_decay": 0.0},
            ],
        },
    )
    assert isinstance(optimizer, torch.optim.SGD)
    assert names_of(optimizer, model) == {
        "default": ["0.weight"],
        "head": ["4.weight", "4.bias"],
        "no_decay": ["1.weight", "1.bias"],
        "biases": ["0.bias"],
    }
    settings = {g["name"]: (g["lr"], g["weight_decay"]) for g in optimizer.param_groups}
    assert settings == {
        "default": (0.1, 5e-4),
        "head": (0.5, 5e-4),
        "no_decay": (0.1, 0.0),
        "biases": (0.1, 0.0),
    }


@pytest.mark.parametrize(
    ("group", "message"),
    [
        (
            {"name": "x", "params": ["nothing*"]},
            r"optimizer.groups\[0\] \(x\) selects no parameter",
        ),
        ({"name": "x", "ndim": 1, "betas": [0.9, 0.9]}, "sgd has no parameter betas"),
        ({"name": "x", "lr": 0.1}, "select parameters with at least one of params, ndim, norm"),
        ({"name": "default", "ndim": 1}, "expected a name other than 'default'"),
        ({"name": "x", "ndim": "four"}, "ndim: expected a number of dimensions"),
    ],
)
def test_bad_groups_are_refused_with_their_key(registry, group, message) -> None:
    with pytest.raises(CvkitError, match=message):
        build(registry, small_net(), {"name": "sgd", "groups": [group]})


def test_repeated_group_names_are_refused(registry) -> None:
    groups = [{"name": "a", "ndim": 1}, {"name": "a", "ndim": 4}]
    with pytest.raises(CvkitError, match="'a' repeated"):
        build(registry, small_net(), {"name": "sgd", "groups": groups})


def test_a_group_with_its_own_optimizer_steps_with_the_rest_and_resumes_exactly(registry) -> None:
    table = {
        "name": "sgd",
        "lr": 0.05,
        "momentum": 0.9,
        "nesterov": True,
        "groups": [
            {
                "name": "filters",
                "ndim": [2, 4],
                "optimizer": {"name": "muon", "lr": 0.02, "momentum": 0.6, "ns_steps": 3},
            }
        ],
    }
    model = small_net()
    optimizer = build(registry, model, table)
    assert isinstance(optimizer, GroupedOptimizer)
    assert [type(o).__name__ for o in optimizer.optimizers] == ["SGD", "Muon"]
    assert names_of(optimizer, model) == {
        "default": ["0.bias", "1.weight", "1.bias", "4.bias"],
        "filters": ["0.weight", "4.weight"],
    }
    x, y = torch.randn(8, 3, 4, 4), torch.randint(0, 3, (8,))

    def steps(model: nn.Module, optimizer: torch.optim.Optimizer, count: int) -> None:
        for _ in range(count):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()

    before = copy.deepcopy(model.state_dict())
    steps(model, optimizer, 3)
    assert all(
        not torch.equal(before[k], v) for k, v in model.state_dict().items() if "weight" in k
    )
    twin = copy.deepcopy(model)
    restored = build(registry, twin, table)
    restored.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    steps(model, optimizer, 2)
    steps(twin, restored, 2)
    for (name, a), b in zip(model.state_dict().items(), twin.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_a_group_optimizer_that_needs_a_closure_is_refused(registry) -> None:
    table = {
        "name": "sgd",
        "groups": [{"name": "f", "ndim": 4, "optimizer": {"name": "sam", "optimizer": "sgd"}}],
    }
    if "sam" not in {c.name for c in registry.components("optimizer")}:
        pytest.skip("the SAM plugin is not installed")
    with pytest.raises(CvkitError, match="closure"):
        build(registry, small_net(), table)


def test_muon_updates_a_filter_as_torch_muon_updates_its_matrix() -> None:
    torch.manual_seed(0)
    filters = nn.Parameter(torch.randn(8, 4, 3, 3))
    matrix = nn.Parameter(filters.detach().reshape(8, 36).clone())
    ours = Muon([filters], lr=0.1, momentum=0.6, nesterov=True, ns_steps=3)
    theirs = torch.optim.Muon(
        [matrix], lr=0.1, momentum=0.6, nesterov=True, ns_steps=3, weight_decay=0.0
    )
    for _ in range(3):
        grad = torch.randn(8, 4, 3, 3)
        filters.grad, matrix.grad = grad.clone(), grad.reshape(8, 36).clone()
        ours.step()
        theirs.step()
    assert filters.shape == (8, 4, 3, 3)
    torch.testing.assert_close(filters.detach().reshape(8, 36), matrix.detach())


def test_muon_works_on_channels_last_filters_and_can_renormalise_them() -> None:
    torch.manual_seed(0)
    filters = nn.Parameter(torch.randn(8, 4, 3, 3).contiguous(memory_format=torch.channels_last))
    optimizer = Muon([filters], lr=0.0, normalize_weights=True)
    filters.grad = torch.randn(8, 4, 3, 3)
    optimizer.step()
    assert filters.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(filters.norm(), torch.tensor(8.0**0.5))  # sqrt(rows), lr 0


def test_muon_refuses_biases_and_the_contract_gives_it_a_model_without_one() -> None:
    with pytest.raises(ValueError, match="give biases and norm weights another optimizer"):
        Muon([nn.Parameter(torch.zeros(3))])


def test_the_linear_schedule_decays_named_groups_over_their_own_epochs() -> None:
    a, b = nn.Parameter(torch.zeros(1)), nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD(
        [{"params": [a], "name": "bias", "lr": 1.0}, {"params": [b], "name": "rest", "lr": 2.0}]
    )
    scheduler = linear(optimizer, epochs=4, steps_per_epoch=2, group_epochs={"bias": 1})
    rates = []
    for _ in range(8):
        rates.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    assert [r[0] for r in rates] == pytest.approx([1.0, 0.5, 0, 0, 0, 0, 0, 0])
    assert [r[1] for r in rates] == pytest.approx([2 * (1 - s / 8) for s in range(8)])
    with pytest.raises(ValueError, match="no group 'whiten'"):
        linear(optimizer, epochs=4, steps_per_epoch=2, group_epochs={"whiten": 1})
