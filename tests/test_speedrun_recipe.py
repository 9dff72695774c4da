"""The speedrun recipe against airbench94_muon.py, setting by setting (the optimizers, their
groups and schedules; the network is checked in plugins/cvkit-airbench/tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cvkit.engine.build import build_model, build_optimizer, build_scheduler
from cvkit.recipe.loading import load_recipe

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def test_the_speedrun_recipe_builds_airbenchs_optimizers_and_schedules(registry) -> None:
    recipe = load_recipe(RECIPES / "speedrun_cifar10.toml", registry=registry)
    model = build_model(recipe, registry, num_classes=10, in_channels=3)
    optimizer = build_optimizer(recipe, registry, model)
    scheduler = build_scheduler(recipe, registry, optimizer, steps_per_epoch=25)
    assert [type(o).__name__ for o in optimizer.optimizers] == ["SGD", "Muon"]
    name = {id(p): n for n, p in model.named_parameters()}
    groups = {g["name"]: g for g in optimizer.param_groups}
    assert [name[id(p)] for p in groups["whiten_bias"]["params"]] == ["whiten.bias"]
    assert [name[id(p)] for p in groups["head"]["params"]] == ["head.weight"]
    filters = [name[id(p)] for p in groups["filters"]["params"]]
    assert len(filters) == 7 and all(
        n.endswith("conv1.weight") or n.endswith("conv2.weight") or n == "whiten.weight"
        for n in filters
    )
    assert all("norm" in name[id(p)] for p in groups["default"]["params"])
    # airbench: SGD rates x batch 2000 (mean instead of summed loss), decays / 2000
    batch = recipe.data.batch_size
    for group, lr in (("whiten_bias", 0.053), ("default", 0.053), ("head", 0.67)):
        assert groups[group]["lr"] == pytest.approx(lr * batch)
        assert groups[group]["lr"] * groups[group]["weight_decay"] == pytest.approx(2e-6 * batch)
    assert groups["filters"]["lr"] == 0.24 and groups["filters"]["ns_steps"] == 3
    rates = []
    for _ in range(8 * 25):
        rates.append({n: g["lr"] / g["initial_lr"] for n, g in groups.items()})
        optimizer.step()
        scheduler.step()
    assert rates[74]["whiten_bias"] == pytest.approx(1 - 74 / 75) and rates[75]["whiten_bias"] == 0
    assert rates[199]["filters"] == pytest.approx(1 - 199 / 200) == rates[199]["head"]
