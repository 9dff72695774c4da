"""The cvkit command: list, info, plugins, check, --version, --help."""

from __future__ import annotations

import json

from cvkit import __version__
from cvkit.build import trainable_parameters
from cvkit.kinds import KINDS
from cvkit.recipe import load_recipe

from conftest import RECIPES, run_cvkit

BUILTINS = {
    "model": ["simple_cnn", "torchvision"],
    "augmentation": [
        "hflip",
        "normalize",
        "random_crop",
        "random_resized_crop",
        "resize",
        "torchvision",
    ],
    "optimizer": ["adam", "adamw", "sgd"],
    "scheduler": ["constant", "cosine", "cyclic", "multistep", "onecycle", "step"],
    "loss": ["cross_entropy"],
    "dataset": ["cifar10", "cifar100", "imagefolder", "synthetic"],
    "callback": [
        "checkpoint",
        "dropout_schedule",
        "early_stopping",
        "metrics_jsonl",
        "progress",
        "progressive_resizing",
        "tensorboard",
        "unfreeze",
    ],
    "procedure": ["standard"],
}


def test_version_and_python_dash_m() -> None:
    result = run_cvkit("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"cvkit {__version__}"


def test_help_names_every_command(run_cli) -> None:
    result = run_cli("--help")
    assert result.exit_code == 0
    for command in ("list", "info", "plugins", "check", "eval", "tune"):
        assert f"cvkit {command}" in result.output
    assert all(kind in run_cli("list", "--help").output for kind in KINDS)


def test_list_shows_every_builtin_and_se_with_its_plugin(run_cli) -> None:
    result = run_cli("list")
    assert result.exit_code == 0, result.output
    rows = {tuple(line.split()[:3]) for line in result.stdout.splitlines() if line.startswith("  ")}
    for names in BUILTINS.values():
        for name in names:
            assert (name, "cvkit", __version__) in rows
    assert ("se", "cvkit-squeeze-excitation", "0.1.0") in rows


def test_list_json_is_machine_readable_and_filters(run_cli) -> None:
    everything = json.loads(run_cli("list", "--json").stdout)
    assert all({"kind", "name", "plugin", "version", "summary"} <= set(item) for item in everything)
    for kind, names in BUILTINS.items():
        assert names == sorted(
            i["name"] for i in everything if i["kind"] == kind and i["plugin"] == "cvkit"
        )
    attention = json.loads(run_cli("list", "attention", "--json").stdout)
    assert {i["kind"] for i in attention} == {"attention"}
    se = next(i for i in attention if i["name"] == "se")
    assert se["plugin"] == "cvkit-squeeze-excitation"
    assert [
        i["name"] for i in json.loads(run_cli("list", "optimizer", "adam*", "--json").stdout)
    ] == ["adam", "adamw"]


def test_info_shows_parameters_types_defaults_and_plugin(run_cli) -> None:
    result = run_cli("info", "attention/se")
    assert result.exit_code == 0, result.output
    assert "cvkit-squeeze-excitation 0.1.0" in result.stdout
    lines = result.stdout.splitlines()
    assert any(line.split()[:3] == ["reduction", "int", "16"] for line in lines)
    assert any(line.split()[:3] == ["min_channels", "int", "1"] for line in lines)
    assert any(line.startswith("gate") and "'sigmoid' | 'hard_sigmoid'" in line for line in lines)
    assert "built with: channels" in result.stdout
    assert run_cli("info", "se").stdout == result.stdout  # a unique name needs no kind


def test_info_json(run_cli) -> None:
    data = json.loads(run_cli("info", "scheduler/step", "--json").stdout)
    params = {p["name"]: p for p in data["params"]}
    assert data["plugin"] == "cvkit" and data["runtime"] == [
        "optimizer",
        "epochs",
        "steps_per_epoch",
    ]
    assert params["step_epochs"] == {
        "name": "step_epochs",
        "type": "float",
        "required": True,
        "default": None,
        "doc": "epochs between decays (counted after the warm-up).",
    }
    assert params["gamma"]["default"] == 0.1


def test_plugins_lists_distributions_and_components(run_cli) -> None:
    data = json.loads(run_cli("plugins", "--json").stdout)
    by_dist = {p["dist"]: p for p in data}
    assert by_dist["cvkit-squeeze-excitation"]["components"] == ["attention/se"]
    assert by_dist["cvkit"]["errors"] == [] and "model/simple_cnn" in by_dist["cvkit"]["components"]
    text = run_cli("plugins").stdout
    assert "cvkit-squeeze-excitation 0.1.0" in text and "attention/se" in text


def test_check_prints_the_resolved_recipe_and_parameter_count(run_cli, registry) -> None:
    from cvkit.build import build_dataset, build_model

    recipe = load_recipe(RECIPES / "quickstart.toml", registry=registry)
    dataset = build_dataset(recipe, registry)
    model = build_model(
        recipe, registry, num_classes=dataset.num_classes, in_channels=dataset.in_channels
    )
    expected = trainable_parameters(model)
    result = run_cli("check", str(RECIPES / "quickstart.toml"))
    assert result.exit_code == 0, result.output
    assert '[model.attention]\nname = "se"' in result.stdout
    assert f"model/simple_cnn: {expected:,} trainable parameters" in result.stdout


def test_check_json_has_params_and_recipe(run_cli) -> None:
    result = run_cli(
        "check",
        str(RECIPES / "quickstart.toml"),
        "--json",
        "--set",
        "model.attention=null_is_not_toml",
    )
    assert result.exit_code == 2  # an unknown attention, reported as such
    result = run_cli(
        "check", str(RECIPES / "quickstart.toml"), "--json", "--set", "model.widths=[4, 8]"
    )
    data = json.loads(result.stdout)
    assert data["recipe"]["model"]["widths"] == [4, 8]
    assert data["recipe"]["model"]["attention"] == {
        "name": "se",
        "reduction": 4,
        "min_channels": 1,
        "gate": "sigmoid",
    }
    assert isinstance(data["params"], int) and data["params"] > 0
    assert (
        data["num_classes"] == 10
        and data["in_channels"] == 1
        and data["splits"] == ["train", "test"]
    )
