"""`cvkit check` agrees with `cvkit run` (issue 26): on every bundled recipe whose model has
an attention slot, swapped with each installed attention block, check exits 0 exactly when
a one-step run on synthetic data succeeds.

Recipes that differ only in what cannot decide whether a block fits its slot (optimizer,
schedule, loss, augmentations that keep the size, dropout rates, frozen parameters, data
sizes) are one case, run on the first of them; a recipe whose model, trainer settings,
precision or callbacks differ is a case of its own. The I/O callbacks (progress, metrics,
tensorboard, checkpoint) are left out of the runs: they cannot fail on a block, and
checkpoints are most of a one-step run's time. A run that trained its step to a loss that is
not finite (exit 3: the speedrun's learning rate of 106 with timm's additive global context)
ran: whether a block's training diverges is not what check decides."""

from __future__ import annotations

import json

import pytest

from cvkit.recipe.loading import load_recipe
from cvkit.recipe.schema import DEFAULT_CALLBACKS
from cvkit.recipe.writing import recipe_data
from cvkit.registry.loading import default_registry

from helpers import RECIPES, fake_imagenet_weights, synthetic_overrides

SLOT_NEUTRAL = {
    "attention",
    "dropout",
    "block_dropout",
    "stochastic_depth",
    "feature_noise",
    "freeze",
    "trainable",
    "max_params",
    "pretrained",
    "weights_path",
}
"""Model parameters that cannot decide whether an attention block fits the model."""

SWAPPABLE = {
    "se_resnet18_cifar10": ("timm_eca", "timm_coord", "simam"),
    "speedrun_cifar10": ("timm_eca", "timm_coord", "simam"),
}
"""Blocks the issue asks to be swappable into these recipes: check and run both succeed."""


def _cases() -> dict[str, list[str]]:
    """Recipe -> the recipes it stands for (its case), for recipes with an attention slot."""
    registry = default_registry()
    cases: dict[str, list[str]] = {}
    for path in sorted(RECIPES.glob("*.toml")):
        recipe = load_recipe(path, registry=registry)
        if not any(p.name == "attention" for p in registry.get("model", recipe.model.name).params):
            continue
        data = recipe_data(recipe)
        model = {k: v for k, v in data["model"].items() if k not in SLOT_NEUTRAL}
        callbacks = [c["name"] for c in data.get("callbacks") or []]
        precision = data["experiment"]["precision"]
        key = json.dumps(
            [model, data.get("trainer"), precision, callbacks], sort_keys=True, default=str
        )
        cases.setdefault(key, []).append(path.stem)
    return {members[0]: members for members in cases.values()}


CASES = _cases()
BLOCKS = [c.name for c in default_registry().components("attention")]


def _toml(value: object) -> str:
    """``value`` (recipe data) as a TOML inline value; None entries of tables are left out."""
    if isinstance(value, dict):
        items = ", ".join(
            f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items() if v is not None
        )
        return "{ " + items + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


@pytest.fixture(scope="module")
def torch_home(tmp_path_factory) -> str:
    return fake_imagenet_weights(tmp_path_factory.mktemp("torch"))


@pytest.mark.slow
@pytest.mark.parametrize(
    "recipe", sorted(CASES), ids=lambda name: f"{name}(+{len(CASES[name]) - 1})"
)
def test_check_exits_0_exactly_when_a_one_step_run_succeeds(
    recipe, registry, run_cli, tmp_path, torch_home, monkeypatch
) -> None:
    path = RECIPES / f"{recipe}.toml"
    resolved = load_recipe(path, registry=registry)
    overrides, backbone = synthetic_overrides(
        resolved, train_size=2, test_size=2, val_split=0, epochs=1, batch_size=2
    )
    if backbone:
        monkeypatch.setenv("TORCH_HOME", torch_home)
    kept = [recipe_data(c) for c in resolved.callbacks if c.name not in DEFAULT_CALLBACKS]
    for callback in kept:  # cycles must divide the one epoch
        if "cycles" in callback:
            callback["cycles"] = 1
    overrides.append(f"callbacks={_toml(kept)}")
    disagreements, passed = [], set()
    for block in BLOCKS:
        args = [
            *(x for o in overrides for x in ("--set", o)),
            "--set",
            f'model.attention={{ name = "{block}" }}',
        ]
        check = run_cli("check", str(path), *args)
        run = run_cli("run", str(path), "--output", str(tmp_path / block), *args)
        assert check.exit_code in (0, 2), (block, check.output)
        assert run.exit_code in (0, 2, 3), (block, run.output)
        trained = run.exit_code in (0, 3)  # 3: the step ran, its loss was not finite
        if (check.exit_code == 0) != trained:
            disagreements.append(
                f"{block}: check exits {check.exit_code}, run {run.exit_code}: "
                f"{(check.output if check.exit_code else run.output).strip().splitlines()[-1]}"
            )
        if check.exit_code == run.exit_code == 0:
            passed.add(block)
    assert not disagreements, "\n".join(disagreements)
    assert {"none", *SWAPPABLE.get(recipe, ())} <= passed  # the recipe itself runs, and these
