"""README.md, docs/ and plugin READMEs say what the code does."""

from __future__ import annotations

import re
import shlex

import pytest

from cvkit.recipe.loading import load_recipe
from cvkit.recipe.schema import DataSettings, ExperimentSettings, Recipe, TrainerSettings
from cvkit.registry.parameters import parameters_of

from helpers import ROOT

README = (ROOT / "README.md").read_text()
RECIPES_DOC = (ROOT / "docs" / "recipes.md").read_text()
RUNNING_DOC = (ROOT / "docs" / "running.md").read_text()
PLUGIN_READMES = sorted((ROOT / "plugins").glob("*/README.md"))
TOML_BLOCK = re.compile(r"^```toml\n(.*?)^```$", re.MULTILINE | re.DOTALL)


@pytest.mark.parametrize("section", [ExperimentSettings, DataSettings, TrainerSettings])
def test_recipe_reference_documents_every_key(section) -> None:
    for parameter in parameters_of(section):
        assert f"| `{parameter.name}` |" in RECIPES_DOC, parameter.name


def test_recipe_reference_names_every_component_section() -> None:
    for parameter in parameters_of(Recipe):
        assert f"`{parameter.name}" in RECIPES_DOC or f"[{parameter.name}]" in RECIPES_DOC, (
            parameter.name
        )


def test_readme_lists_every_builtin_component(registry) -> None:
    row = next(line for line in README.splitlines() if line.startswith("| cvkit (built-in)"))
    for component in registry.components():
        if component.plugin == "cvkit":
            assert f"`{component.name}`" in row, component.key


def test_readme_names_every_bundled_plugin() -> None:
    for readme in PLUGIN_READMES:
        assert f"plugins/{readme.parent.name}" in README


README_COMMANDS = [line[2:] for line in README.splitlines() if line.startswith("$ cvkit ")]
SHOWN = {
    "cvkit info attention/se": [
        "attention/se  (cvkit-squeeze-excitation",
        "reduction",
        "built with: channels",
    ],
    "cvkit check recipes/quickstart.toml --set model.attention.reduction=8 --set optimizer.lr=0.1": [
        '[model.attention]\nname = "se"\nreduction = 8\n',
        "lr = 0.1\n",
        "forward pass of 2x1x8x8 images ok",
        "ok: recipes/quickstart.toml is valid and every component builds",
    ],
}
"""What each README command must print: what the README says it does."""


@pytest.mark.parametrize("command", README_COMMANDS)
def test_readme_commands_do_what_it_says(command, run_cli, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    result = run_cli(*shlex.split(command)[1:])
    assert result.exit_code == 0, result.output
    assert command in SHOWN, "say in SHOWN what this README command prints"
    for text in SHOWN[command]:
        assert text in result.stdout, (text, result.stdout[-2000:])


@pytest.mark.parametrize("readme", PLUGIN_READMES, ids=lambda p: p.parent.name)
def test_plugin_readme_has_paper_registrations_parameters_and_a_valid_recipe(
    readme, registry, tmp_path
) -> None:
    text = readme.read_text()
    for heading in ("## Registers", "## Parameters", "## Example recipe"):
        assert heading in text
    recipes = TOML_BLOCK.findall(text)
    assert recipes, "no example recipe"
    path = tmp_path / "example.toml"
    path.write_text(recipes[0])
    load_recipe(path, registry=registry)


def test_running_guide_documents_every_builtin_callback_and_its_parameters(registry) -> None:
    rows = {
        line.split("|")[1].strip(): line
        for line in RUNNING_DOC.splitlines()
        if line.startswith("| `")
    }
    for component in registry.components("callback"):
        if component.plugin == "cvkit":
            row = rows[f"`{component.name}`"]
            for parameter in component.params:
                assert f"`{parameter.name} = " in row, (component.key, parameter.name)


def test_the_plugin_guide_lists_every_name_a_plugin_may_import() -> None:
    """It omitted resume, save_checkpoint, StorageError, TrainedModel and RunFile."""
    import cvkit

    guide = (ROOT / "docs" / "writing-a-plugin.md").read_text()
    section = guide[guide.index("## What a plugin may import") :]
    missing = [n for n in cvkit.__all__ if f"`{n}`" not in section and f"`{n}(" not in section]
    assert not missing
