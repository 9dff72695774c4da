"""The cvkit command: list, info, plugins, check, --version, --help."""

from __future__ import annotations

import json
import re

import pytest

from cvkit import __version__
from cvkit.engine.build import trainable_parameters
from cvkit.recipe.loading import load_recipe
from cvkit.registry.kinds import KINDS

from helpers import RECIPES, run_cvkit

BUILTINS = {
    "model": ["linear", "simple_cnn", "torchvision"],
    "attention": ["none"],
    "augmentation": [
        "hflip",
        "normalize",
        "random_crop",
        "random_resized_crop",
        "random_resized_crop_per_image",
        "resize",
        "torchvision",
    ],
    "optimizer": ["adam", "adamw", "muon", "sgd"],
    "scheduler": ["constant", "cosine", "cyclic", "linear", "multistep", "onecycle", "step"],
    "loss": ["cross_entropy"],
    "dataset": ["cifar10", "cifar100", "imagefolder", "synthetic"],
    "callback": [
        "checkpoint",
        "dropout_schedule",
        "early_stopping",
        "freeze",
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


# torch's logging format (W1207 10:09:29.178000 18051 file.py:183] ...) and Python's warnings
THIRD_PARTY_WARNING = re.compile(r"^[IWE]\d{4} \d\d:|Warning: |CUDA_HOME", re.MULTILINE)


@pytest.mark.slow
def test_a_cpu_run_profile_and_check_print_no_third_party_warning(tiny_recipe, tmp_path) -> None:
    """Importing torch.utils.benchmark at module level made every command start with torch's
    "No CUDA runtime is found, using CUDA_HOME=..." on a machine without the CUDA toolkit."""
    run = tmp_path / "run"
    for args in (
        ("run", str(tiny_recipe), "--output", str(run), "--set", "experiment.epochs=1"),
        ("check", str(tiny_recipe)),
        ("profile", str(run), "--repeats", "2"),
    ):
        result = run_cvkit(*args, env={"PYTHONWARNINGS": "default"})
        assert result.returncode == 0, result.stderr
        assert not THIRD_PARTY_WARNING.search(result.stderr), (args, result.stderr)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["predict", "a", "b"], "error: missing option '--out' (see 'cvkit predict --help')"),
        (["run", "--bogus"], "error: no such option '--bogus' (see 'cvkit run --help')"),
        (["nosuch"], "error: no such command 'nosuch' (see 'cvkit --help')"),
        (["list", "--nproc"], "error: no such option '--nproc' (see 'cvkit list --help')"),
    ],
)
def test_usage_errors_are_one_error_line_as_cvkit_s_own(run_cli, args, message) -> None:
    """click wrote "Usage: ...", a hint and "Error: ...": two casings of one thing."""
    result = run_cli(*args)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [message]


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


def test_list_matches_a_part_of_the_name_as_timm_does_and_globs_the_whole_name(run_cli) -> None:
    def names(*args: str) -> list[str]:
        return [i["name"] for i in json.loads(run_cli("list", *args, "--json").stdout)]

    models = names("model")
    assert names("model", "res") == [m for m in models if "res" in m]
    assert {"efficient_resnet", "resnet18", "sample_resnet"} <= set(names("model", "res"))
    assert names("model", "res*") == [m for m in models if m.startswith("res")]
    assert names("optimizer", "dam") == ["adam", "adamw"]


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
    by_name = {p["name"]: p for p in data}
    se = next(p for p in data if p["dist"] == "cvkit-squeeze-excitation")
    assert se["components"] == ["attention/se"] and se["module"] == "cvkit_squeeze_excitation"
    builtin = by_name["cvkit.builtins.simple_cnn"]
    assert builtin["dist"] == "cvkit" and builtin["components"] == ["model/simple_cnn"]
    assert all(not p["errors"] and not p["warnings"] for p in data)
    text = run_cli("plugins").stdout
    assert "cvkit-squeeze-excitation 0.1.0" in text and "attention/se" in text


def test_plugins_shows_which_builtin_module_provides_each_component(run_cli) -> None:
    data = json.loads(run_cli("plugins", "--json").stdout)
    builtins = [p for p in data if p["dist"] == "cvkit"]
    assert all(p["name"].startswith("cvkit.builtins.") for p in builtins)
    provided = [c for p in builtins for c in p["components"]]
    assert len(provided) == len(set(provided)) == sum(len(names) for names in BUILTINS.values())
    text = run_cli("plugins").stdout
    assert "[cvkit.builtins.schedules]  7 components" in text


def test_plugins_shows_the_commands_a_plugin_adds(run_cli) -> None:
    (tune,) = [p for p in json.loads(run_cli("plugins", "--json").stdout) if p["name"] == "tune"]
    assert tune["dist"] == "cvkit-tune" and tune["commands"] == ["tune"]
    assert "    commands: tune" in run_cli("plugins").stdout


def test_check_prints_the_resolved_recipe_and_parameter_count(run_cli, registry) -> None:
    from cvkit.engine.build import build_dataset, build_model

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


BROKEN_COMPONENTS = '''
import torch
from torch import nn

from cvkit import hookimpl


class ShrinkingGate(nn.Module):
    """An attention block with a planted bug: it drops the last channel.

    Args:
        channels: channels of the input.
        reduction: kept for drop-in compatibility with se.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels, 1, 1))

    def forward(self, x):
        return (x * self.weight)[:, :-1]


class Flat(nn.Module):
    """A model with a planted bug: one logit too many.

    Args:
        num_classes: classes.
        in_channels: input channels.
    """

    def __init__(self, num_classes: int, in_channels: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_channels, num_classes + 1)

    def forward(self, x):
        return self.fc(x.mean((2, 3)))


class Sizeless:
    """Synthetic data whose image size is only known once loaded.

    Args:
        size: height and width.
    """

    num_classes, in_channels, splits = 10, 1, ("train",)

    def __init__(self, size: int = 8) -> None:
        self.size = size

    def load(self, split):
        from cvkit import ImageTensors

        images = torch.zeros(20, 1, self.size, self.size, dtype=torch.uint8)
        return ImageTensors(images, torch.arange(20) % 10, tuple("0123456789"))


@hookimpl
def register_attention(register):
    register("shrinking_gate", ShrinkingGate, examples=[])


@hookimpl
def register_datasets(register):
    register("sizeless", Sizeless, examples=[])


@hookimpl
def register_models(register):
    register("flat", Flat, examples=[])
'''


@pytest.fixture
def broken_components(tmp_path, monkeypatch):
    """CVKIT_PLUGINS=broken_components: an attention block and a model that break their
    contracts (their examples=[] keep them out of the contract tests)."""
    (tmp_path / "broken_components.py").write_text(BROKEN_COMPONENTS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("CVKIT_PLUGINS", "broken_components")


def test_check_runs_the_model_once_at_the_input_size(run_cli) -> None:
    result = run_cli("check", str(RECIPES / "quickstart.toml"))
    assert "model/simple_cnn: forward pass of 2x1x8x8 images ok" in result.stdout
    data = json.loads(run_cli("check", str(RECIPES / "quickstart.toml"), "--json").stdout)
    assert data["input_shape"] == [2, 1, 8, 8]


def test_check_catches_an_attention_block_that_changes_the_shape(
    broken_components, run_cli
) -> None:
    result = run_cli(
        "check", str(RECIPES / "quickstart.toml"), "--set", "model.attention.name=shrinking_gate"
    )
    assert result.exit_code == 2
    assert (
        "model: attention/shrinking_gate at model.features.3 (input 2x32x8x8) breaks the "
        "attention contract on its input from the 2x1x8x8 images augment.train makes from "
        "data.dataset (dataset/digits: 1-channel 8x8 images, 10 classes): output shape 2x31x8x8 "
        "!= input shape"
    ) in result.stderr
    assert "Traceback" not in result.output


def test_check_catches_a_model_with_the_wrong_output(broken_components, run_cli) -> None:
    result = run_cli("check", str(RECIPES / "quickstart.toml"), "--set", "model=flat")
    assert result.exit_code == 2
    assert (
        "model (model/flat) gives logits of shape (2, 11) on the images augment.train makes "
        "from data.dataset (dataset/digits: 1-channel 8x8 images, 10 classes); expected (2, 10)"
        in result.stderr
    )


def test_check_reads_an_image_folders_size_from_its_first_file(tmp_path, run_cli) -> None:
    from PIL import Image

    for label in ("a", "b"):
        (tmp_path / "images" / label).mkdir(parents=True)
        Image.new("RGB", (12, 10)).save(tmp_path / "images" / label / "0.png")
    folder = (tmp_path / "images").as_posix()
    result = run_cli(
        "check",
        str(RECIPES / "quickstart.toml"),
        "--set",
        f'data.dataset={{ name = "imagefolder", root = "{folder}" }}',
        *[
            f"--set=augment.{k}.{p}=[0.5, 0.5, 0.5]"
            for k in ("train[1]", "eval[0]")
            for p in ("mean", "std")
        ],
    )
    assert result.exit_code == 0, result.output
    assert "model/simple_cnn: forward pass of 2x3x10x12 images ok" in result.stdout


def test_check_skips_the_forward_pass_when_the_image_size_is_unknown(
    broken_components, run_cli
) -> None:
    result = run_cli("check", str(RECIPES / "quickstart.toml"), "--set", "data.dataset=sizeless")
    assert result.exit_code == 0, result.output
    assert "model/simple_cnn: forward pass skipped (the image size is unknown" in result.stdout
    sized = run_cli(
        "check",
        str(RECIPES / "quickstart.toml"),
        "--set",
        "data.dataset=sizeless",
        "--set",
        "data.image_size=6",
    )
    assert "forward pass of 2x1x6x6 images ok" in sized.stdout
