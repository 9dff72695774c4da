"""Recipes: extends, --set overrides, validation with locations, and the resolved round trip."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from cvkit.errors import RecipeError
from cvkit.recipe.loading import load_recipe
from cvkit.recipe.overrides import apply_override, parse_value
from cvkit.recipe.reading import read_recipe
from cvkit.recipe.writing import dump_recipe
from cvkit.registry.specs import ComponentSpec

from helpers import RECIPES

BASE = """
[experiment]
name = "base"
epochs = 3

[data]
dataset = { name = "synthetic", train_size = 64, test_size = 16, image_size = 8 }
batch_size = 16

[model]
name = "simple_cnn"
widths = [8, 16]

[optimizer]
name = "sgd"
lr = 0.1
momentum = 0.9

[loss]
name = "cross_entropy"

[[augment.train]]
name = "random_crop"
padding = 2

[[augment.train]]
name = "hflip"
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def test_extends_deep_merges_tables_and_replaces_lists(tmp_path: Path, registry) -> None:
    write(tmp_path, "base/base.toml", BASE)
    child = write(
        tmp_path,
        "child.toml",
        """
        extends = "base/base.toml"
        [experiment]
        name = "child"
        [model]
        dropout = 0.2
        [[augment.train]]
        name = "hflip"
        p = 1.0
        """,
    )
    recipe = load_recipe(child, registry=registry)
    assert recipe.experiment.name == "child" and recipe.experiment.epochs == 3
    assert recipe.model.params["widths"] == [8, 16] and recipe.model.params["dropout"] == 0.2
    assert [a.name for a in recipe.augment.train] == ["hflip"] and recipe.augment.train[
        0
    ].params == {"p": 1.0}
    assert recipe.optimizer.params["momentum"] == 0.9


def test_extends_chains_resolve_relative_to_each_file(tmp_path: Path, registry) -> None:
    write(tmp_path, "a/base.toml", BASE)
    write(tmp_path, "a/b/middle.toml", 'extends = "../base.toml"\n[optimizer]\nlr = 0.5\n')
    top = write(tmp_path, "top.toml", 'extends = "a/b/middle.toml"\n[experiment]\nseed = 7\n')
    recipe = load_recipe(top, registry=registry)
    assert (recipe.optimizer.params["lr"], recipe.experiment.seed, recipe.experiment.name) == (
        0.5,
        7,
        "base",
    )


def test_an_extends_cycle_is_an_error_naming_the_chain(tmp_path: Path) -> None:
    write(tmp_path, "a.toml", 'extends = "b.toml"\n')
    write(tmp_path, "b.toml", 'extends = "a.toml"\n')
    with pytest.raises(RecipeError, match=r"extends cycle: .*a\.toml -> .*b\.toml -> .*a\.toml"):
        read_recipe(tmp_path / "a.toml")


def test_a_missing_base_names_the_line_of_extends(tmp_path: Path) -> None:
    path = write(tmp_path, "r.toml", '# comment\nextends = "gone.toml"\n')
    with pytest.raises(
        RecipeError, match=r"r\.toml:2: extends: recipe file not found: .*gone\.toml"
    ):
        read_recipe(path)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0.1", 0.1),
        ("3", 3),
        ("true", True),
        ("[1, 2]", [1, 2]),
        ('"quoted"', "quoted"),
        ("cbam", "cbam"),
        ("{ name = 'se' }", {"name": "se"}),
        ("2026-01-01", "2026-01-01"),
        ("a b", "a b"),
    ],
)
def test_set_values_use_toml_syntax_else_strings(text, value) -> None:
    assert parse_value(text) == value


def test_set_overrides_nested_keys_list_items_and_component_names(tmp_path: Path, registry) -> None:
    path = write(tmp_path, "r.toml", BASE)
    recipe = load_recipe(
        path,
        [
            "optimizer.lr=0.02",
            "augment.train[0].padding=1",
            "model.attention=se",
            "model.attention.reduction=2",
            "data.dataset.num_classes=3",
            "scheduler.name=cosine",
        ],
        registry=registry,
    )
    assert recipe.optimizer.params["lr"] == 0.02
    assert recipe.augment.train[0].params["padding"] == 1
    assert (
        recipe.model.params["attention"].name == "se"
        and recipe.model.params["attention"].params["reduction"] == 2
    )
    assert recipe.data.dataset.params["num_classes"] == 3
    assert recipe.scheduler == ComponentSpec("scheduler", "cosine", recipe.scheduler.params)


def test_switching_a_component_s_name_keeps_the_keys_it_takes_and_drops_the_others(
    registry,
) -> None:
    """--set model.attention.name=none drops the quickstart's SE reduction (attention/none
    takes none) with a note naming it; =cbam keeps reduction 4 (CBAM takes it);
    --set optimizer.name=adam keeps lr and weight decay, drops momentum and nesterov. A key
    written by the same --set (an inline table) is still an error."""
    from cvkit.recipe.loading import load_recipe_noting

    quickstart = RECIPES / "quickstart.toml"
    recipe, notes = load_recipe_noting(quickstart, ["model.attention.name=none"], registry=registry)
    assert recipe.model.params["attention"].name == "none"
    assert len(notes) == 1 and notes[0].endswith(
        "quickstart.toml:22: model.attention.reduction (with --set model.attention.name=none): "
        "dropped: attention/none does not take it"
    )
    cbam, notes = load_recipe_noting(quickstart, ["model.attention.name=cbam"], registry=registry)
    assert cbam.model.params["attention"].params["reduction"] == 4 and notes == []
    adam, notes = load_recipe_noting(quickstart, ["optimizer.name=adam"], registry=registry)
    assert adam.optimizer.params["lr"] == 0.05 and adam.optimizer.params["weight_decay"] == 5e-4
    assert [n.split(": ")[1].split(" ")[0] for n in notes] == [
        "optimizer.momentum",
        "optimizer.nesterov",
    ]
    with pytest.raises(RecipeError, match="unknown key for attention/none"):
        load_recipe(
            quickstart, ['model.attention={ name = "none", reduction = 4 }'], registry=registry
        )


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("optimizer.lr", "expected KEY=VALUE"),
        ("=3", "expected KEY=VALUE"),
        ("augment.train[5].p=1", "augment.train[5] does not exist"),
        ("optimizer.lr.x=1", "optimizer.lr is not a table"),
    ],
)
def test_bad_set_assignments_are_errors(tmp_path: Path, assignment, message) -> None:
    raw = read_recipe(write(tmp_path, "r.toml", BASE))
    with pytest.raises(RecipeError, match=re.escape(message)):
        apply_override(raw, assignment)


def test_every_problem_is_reported_with_file_line_and_key(
    tmp_path: Path, registry, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "base.toml", BASE)
    child = write(
        tmp_path,
        "child.toml",
        """\
        extends = "base.toml"
        [experiment]
        epochs = 0
        [model]
        widths = "wide"
        [optimizer]
        lr = "x"
        """,
    )
    with pytest.raises(RecipeError) as error:
        load_recipe(child, ["optimizer.momentun=0.5", "data.val_split=1.5"], registry=registry)
    assert error.value.lines() == [
        "child.toml:3: experiment.epochs: 'epochs' must be >= 1: 0",
        "--set data.val_split=1.5: data.val_split: val_split as a fraction must be in [0, 1), got 1.5",
        "child.toml:5: model.widths: expected list[int], got str 'wide'",
        "--set optimizer.momentun=0.5: optimizer.momentun: unknown key for optimizer/sgd "
        "(did you mean 'momentum'?); valid keys: dampening, groups, lr, momentum, nesterov, weight_decay",
        "child.toml:7: optimizer.lr: expected float, got str 'x'",
    ]


def test_missing_sections_and_unknown_top_level_keys(tmp_path: Path, registry, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, "r.toml", '[experiment]\nname = "x"\n[modle]\nname = "simple_cnn"\n')
    with pytest.raises(RecipeError) as error:
        load_recipe(path, registry=registry)
    assert error.value.lines() == [
        "r.toml:3: modle: unknown key for the recipe (did you mean 'model'?); valid keys: "
        "augment, callbacks, data, experiment, loss, model, optimizer, procedure, scheduler, "
        "stages, trainer",
        "r.toml: data: missing required parameter of the recipe (table)",
        "r.toml: model: missing required parameter of the recipe (model component)",
        "r.toml: optimizer: missing required parameter of the recipe (optimizer component)",
        "r.toml: loss: missing required parameter of the recipe (loss component)",
    ]


def test_bundled_recipes_round_trip_through_their_resolved_toml(tmp_path: Path, registry) -> None:
    recipes = sorted(RECIPES.glob("*.toml"))
    assert recipes
    for path in recipes:
        recipe = load_recipe(path, registry=registry)
        resolved = write(tmp_path, path.name, dump_recipe(recipe, f"resolved from {path.name}"))
        assert load_recipe(resolved, registry=registry) == recipe, path.name


@settings(max_examples=40, deadline=None)
@given(
    lr=st.floats(1e-6, 10, allow_nan=False),
    widths=st.lists(st.integers(1, 64), min_size=1, max_size=4),
    padding=st.integers(0, 8),
    seed=st.integers(-(2**40), 2**40),
    name=st.text(
        st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"), exclude_characters="/\\:"),
        min_size=1,
    ).filter(lambda name: name.strip() and name not in (".", "..")),
    val_split=st.one_of(st.integers(0, 1000), st.floats(0, 0.99)),
    attention=st.none() | st.integers(1, 32),
)
def test_any_valid_recipe_round_trips(
    tmp_path_factory, registry, lr, widths, padding, seed, name, val_split, attention
) -> None:
    folder = tmp_path_factory.mktemp("rt")
    raw = read_recipe(write(folder, "r.toml", BASE))
    raw.data["optimizer"]["lr"] = lr
    raw.data["model"]["widths"] = widths
    raw.data["augment"]["train"][0]["padding"] = padding
    raw.data["experiment"] |= {"seed": seed, "name": name}
    raw.data["data"]["val_split"] = val_split
    if attention is not None:
        raw.data["model"]["attention"] = {"name": "se", "reduction": attention}
    from cvkit.recipe.loading import validate_recipe

    recipe = validate_recipe(raw, registry)
    again = load_recipe(write(folder, "resolved.toml", dump_recipe(recipe)), registry=registry)
    assert again == recipe


def test_unset_removes_inherited_keys_and_rejects_unknown_ones(
    tmp_path: Path, registry, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write(
        tmp_path,
        "base.toml",
        BASE.replace("widths = [8, 16]", 'widths = [8, 16]\nattention = { name = "se" }'),
    )
    child = write(tmp_path, "child.toml", 'extends = "base.toml"\nunset = ["model.attention"]\n')
    assert load_recipe(child, registry=registry).model.params["attention"] is None
    assert (
        load_recipe(tmp_path / "base.toml", registry=registry).model.params["attention"].name
        == "se"
    )
    bad = write(tmp_path, "bad.toml", 'extends = "base.toml"\nunset = ["model.atention"]\n')
    with pytest.raises(RecipeError, match=r"bad\.toml:2: unset: model\.atention is not a key"):
        read_recipe(bad)
    alone = write(tmp_path, "alone.toml", 'unset = ["model"]\n')
    with pytest.raises(RecipeError, match="only a recipe that extends another"):
        read_recipe(alone)


def test_set_addresses_list_entries_by_component_name(tiny_recipe: Path, registry) -> None:
    # the tiny recipe lists no callbacks: callbacks.NAME reaches the default ones
    recipe = load_recipe(
        tiny_recipe,
        ["callbacks.tensorboard.log_every=5", "augment.train.random_crop.padding=2"],
        registry=registry,
    )
    assert [c.name for c in recipe.callbacks] == [
        "progress",
        "metrics_jsonl",
        "tensorboard",
        "checkpoint",
    ]
    assert recipe.callbacks[2].params["log_every"] == 5
    assert recipe.augment.train[0].params["padding"] == 2
    with pytest.raises(
        RecipeError, match=r"callbacks has no entry named 'tensorbord' \(its entries: progress"
    ):
        load_recipe(tiny_recipe, ["callbacks.tensorbord.log_every=5"], registry=registry)


def test_unset_removes_keys_entries_and_components(tiny_recipe: Path, registry) -> None:
    recipe = load_recipe(
        tiny_recipe,
        ["model.dropout=0.3"],
        registry=registry,
        unset=["model.widths", "callbacks.tensorboard", "augment.train[1]"],
    )
    assert recipe.model.params["widths"] == [32, 64, 128]  # simple_cnn's default
    assert recipe.model.params["dropout"] == 0.3
    assert [c.name for c in recipe.callbacks] == ["progress", "metrics_jsonl", "checkpoint"]
    assert [a.name for a in recipe.augment.train] == ["random_crop", "normalize"]
    with pytest.raises(
        RecipeError, match=r"--unset model\.width: model\.width is not a key of the recipe"
    ):
        load_recipe(tiny_recipe, registry=registry, unset=["model.width"])


def test_run_and_check_take_unset(tiny_recipe: Path, run_cli) -> None:
    result = run_cli("check", str(tiny_recipe), "--unset", "model.widths", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["recipe"]["model"]["widths"] == [32, 64, 128]
