"""Plugin discovery through entry points: broken plugins, conflicts, strict mode, env switches,
the mistakes a plugin author makes (no @hookimpl, a misspelt entry-point group, untyped
parameters), commands from plugins."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cvkit.errors import ComponentConflictError, PluginError, UnknownComponentError
from cvkit.registry.loading import (
    ENV_DISABLE,
    ENV_DISABLE_AUTOLOAD,
    ENV_PLUGINS,
    load_registry,
    unregistered_distributions,
)

from helpers import RECIPES, make_distribution, run_cvkit

GOOD_PLUGIN = '''
    from torch import nn
    from cvkit import hookimpl


    class Gate(nn.Module):
        """A learned per-channel gate, sigmoid(w) * x.

        Args:
            channels: channels of the input.
            init: initial gate logit.
        """

        def __init__(self, channels: int, init: float = 0.0) -> None:
            super().__init__()
            import torch
            self.logit = nn.Parameter(torch.full((channels, 1, 1), init))

        def forward(self, x):
            return x * self.logit.sigmoid()


    @hookimpl
    def register_attention(register):
        register("gate", Gate)
'''


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory on sys.path for throwaway installed distributions."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    return site


def test_an_installed_plugin_is_discovered_and_usable(site: Path) -> None:
    make_distribution(
        site, "cvkit-gate", "1.2.3", {"gate": "cvkit_gate"}, {"cvkit_gate.py": GOOD_PLUGIN}
    )
    registry = load_registry()
    component = registry.get("attention", "gate")
    assert (component.plugin, component.version) == ("cvkit-gate", "1.2.3")
    assert [p.name for p in component.params] == ["init"]
    spec = registry.spec(
        "model", {"name": "simple_cnn", "widths": [4], "attention": {"name": "gate", "init": 1.0}}
    )
    model = registry.build(spec, num_classes=3, in_channels=3)
    assert model.features[3].logit.detach().mean().item() == pytest.approx(1.0)


def test_a_plugin_that_fails_to_import_is_reported_and_the_rest_works(site: Path) -> None:
    make_distribution(
        site,
        "cvkit-broken",
        "0.1",
        {"broken": "cvkit_broken"},
        {"cvkit_broken.py": "import no_such_module\n"},
    )
    registry = load_registry()
    (broken,) = [p for p in registry.plugins if p.dist == "cvkit-broken"]
    assert broken.errors == ["ModuleNotFoundError: No module named 'no_such_module'"]
    assert registry.get("model", "simple_cnn").plugin == "cvkit"
    assert any("cvkit-broken" in line and "no_such_module" in line for line in registry.problems())
    with pytest.raises(
        UnknownComponentError, match=r"failed to load: cvkit-broken \(ModuleNotFoundError"
    ):
        registry.get("attention", "whatever_it_provided")


def test_a_plugin_whose_hook_raises_is_reported_with_the_hook(site: Path) -> None:
    source = "from cvkit import hookimpl\n\n@hookimpl\ndef register_models(register):\n    raise RuntimeError('boom')\n"
    make_distribution(
        site, "cvkit-raises", "0.1", {"raises": "cvkit_raises"}, {"cvkit_raises.py": source}
    )
    (plugin,) = [p for p in load_registry().plugins if p.dist == "cvkit-raises"]
    assert plugin.errors == ["register_models: RuntimeError: boom"]


def test_a_misspelt_hook_is_an_error_not_silence(site: Path) -> None:
    source = "from cvkit import hookimpl\n\n@hookimpl\ndef register_model(register):\n    pass\n"
    make_distribution(site, "cvkit-typo", "0.1", {"typo": "cvkit_typo"}, {"cvkit_typo.py": source})
    (plugin,) = [p for p in load_registry().plugins if p.dist == "cvkit-typo"]
    assert plugin.errors == ["unknown hook 'register_model' (did you mean 'register_models'?)"]


def test_a_bad_registration_is_reported(site: Path) -> None:
    source = (
        "from cvkit import hookimpl\n\ndef block(width):\n    pass\n\n"
        "@hookimpl\ndef register_attention(register):\n    register('wide', block)\n"
    )
    make_distribution(
        site, "cvkit-badsig", "0.1", {"badsig": "cvkit_badsig"}, {"cvkit_badsig.py": source}
    )
    (plugin,) = [p for p in load_registry().plugins if p.dist == "cvkit-badsig"]
    assert plugin.errors == [
        "register_attention: TypeError: attention/wide: factory must accept channels (missing "
        "channels; a factory that calls it otherwise registers with runtime={'channels': "
        "'<its name>'})"
    ]


def test_the_same_component_from_two_distributions_names_both(site: Path) -> None:
    make_distribution(
        site, "cvkit-gate", "1.0", {"gate": "cvkit_gate"}, {"cvkit_gate.py": GOOD_PLUGIN}
    )
    make_distribution(
        site, "other-gate", "2.0", {"gate2": "other_gate"}, {"other_gate.py": GOOD_PLUGIN}
    )
    registry = load_registry()
    with pytest.raises(ComponentConflictError) as error:
        registry.get("attention", "gate")
    assert "cvkit-gate 1.0" in str(error.value) and "other-gate 2.0" in str(error.value)
    assert "gate" not in [c.name for c in registry.components("attention")]
    assert any("registered by both" in line for line in registry.problems())
    with pytest.raises(PluginError, match="registered by both"):
        load_registry(strict=True)


def test_strict_mode_turns_a_broken_plugin_into_an_error(site: Path) -> None:
    make_distribution(
        site, "cvkit-broken", "0.1", {"broken": "cvkit_broken"}, {"cvkit_broken.py": "1/0\n"}
    )
    with pytest.raises(PluginError, match=r"cvkit-broken 0\.1.*ZeroDivisionError"):
        load_registry(strict=True)


def test_autoload_can_be_disabled_and_modules_named(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (site / "local_gate.py").write_text(GOOD_PLUGIN.replace("\n    ", "\n"))
    monkeypatch.setenv(ENV_DISABLE_AUTOLOAD, "1")
    registry = load_registry()
    assert {p.dist for p in registry.plugins} == {"cvkit"}
    with pytest.raises(UnknownComponentError):
        registry.get("attention", "se")
    monkeypatch.setenv(ENV_PLUGINS, "local_gate")
    assert load_registry().get("attention", "gate").plugin == "local_gate"


def test_a_recipe_fails_only_when_it_needs_the_broken_plugin(site: Path, run_cli) -> None:
    make_distribution(
        site,
        "cvkit-broken",
        "0.1",
        {"broken": "cvkit_broken"},
        {"cvkit_broken.py": "raise ImportError('nope')\n"},
    )
    ok = run_cli("check", str(RECIPES / "quickstart.toml"))
    assert ok.exit_code == 0, ok.output
    assert "warning: plugin broken (cvkit-broken 0.1) failed: ImportError: nope" in ok.stderr
    bad = run_cli("check", str(RECIPES / "quickstart.toml"), "--set", "model.attention.name=eca")
    assert bad.exit_code == 2
    assert (
        "unknown attention 'eca'" in bad.stderr and "cvkit-broken (ImportError: nope)" in bad.stderr
    )


def test_a_hook_function_without_hookimpl_is_an_error_not_silence(site: Path) -> None:
    source = "def register_attention(register):\n    register('nothing', object)\n"
    make_distribution(site, "cvkit-bare", "0.1", {"bare": "cvkit_bare"}, {"cvkit_bare.py": source})
    (plugin,) = [p for p in load_registry().plugins if p.dist == "cvkit-bare"]
    assert plugin.errors == [
        "register_attention is not marked with @hookimpl (from cvkit import hookimpl), "
        "so cvkit would never call it"
    ]
    with pytest.raises(PluginError, match="not marked with @hookimpl"):
        load_registry(strict=True)


def test_a_distribution_depending_on_cvkit_without_an_entry_point_is_reported(
    site: Path, run_cli
) -> None:
    make_distribution(
        site,
        "cvkit-misgrouped",
        "0.2",
        {"gate": "cvkit_misgrouped"},
        {"cvkit_misgrouped.py": GOOD_PLUGIN},
        requires=["cvkit>=0.1", "torch"],
        group="cvkt",
    )
    line = (
        "distribution cvkit-misgrouped 0.2 depends on cvkit but has no entry point in the "
        "'cvkit' group (its groups: cvkt)"
    )
    assert line in unregistered_distributions()
    result = run_cli("plugins")
    assert result.exit_code == 0 and f"warning: {line}" in result.stdout
    strict = run_cli("--strict-plugins", "list")
    assert strict.exit_code == 2 and line in strict.stderr


UNTYPED_PLUGIN = '''
    from torch import nn
    from cvkit import hookimpl


    class Scaled(nn.Module):
        """Scale the input.

        Args:
            channels: channels of the input.
            scale: the factor.
        """

        def __init__(self, channels: int, scale=1.0) -> None:
            super().__init__()
            self.scale = scale

        def forward(self, x):
            return x * self.scale


    @hookimpl
    def register_attention(register):
        register("scaled", Scaled)
'''


def test_a_parameter_without_a_type_hint_is_a_warning_and_strict_refuses_it(
    site: Path, run_cli
) -> None:
    make_distribution(
        site,
        "cvkit-untyped",
        "0.1",
        {"untyped": "cvkit_untyped"},
        {"cvkit_untyped.py": UNTYPED_PLUGIN},
    )
    warning = (
        "attention/scaled: parameter 'scale' has no type hint, so its recipe values are not checked"
    )
    (plugin,) = [p for p in load_registry().plugins if p.dist == "cvkit-untyped"]
    assert plugin.warnings == [warning] and not plugin.errors
    shown = run_cli("plugins")
    assert f"    warning: {warning}" in shown.stdout
    strict = run_cli("--strict-plugins", "info", "attention/scaled")
    assert strict.exit_code == 2 and warning in strict.stderr
    assert "Traceback" not in strict.output


def test_plugins_verbose_shows_where_a_plugin_failed(site: Path, run_cli) -> None:
    make_distribution(
        site,
        "cvkit-broken",
        "0.1",
        {"broken": "cvkit_broken"},
        {"cvkit_broken.py": "x = 1\nraise ImportError('nope')\n"},
    )
    brief = run_cli("plugins")
    assert "error: ImportError: nope" in brief.stdout and "--verbose" in brief.stdout
    verbose = run_cli("plugins", "--verbose")
    assert 'cvkit_broken.py", line 2, in <module>' in verbose.stdout
    data = json.loads(run_cli("plugins", "--json", "--verbose").stdout)
    (broken,) = [p for p in data if p["dist"] == "cvkit-broken"]
    assert "line 2" in broken["tracebacks"][0]


def test_any_plugin_built_in_or_installed_can_be_switched_off_by_name(
    monkeypatch: pytest.MonkeyPatch, run_cli
) -> None:
    monkeypatch.setenv(ENV_DISABLE, "cvkit.builtins.tensorboard, cvkit-squeeze-excitation")
    registry = load_registry()
    with pytest.raises(UnknownComponentError):
        registry.get("callback", "tensorboard")
    with pytest.raises(UnknownComponentError):
        registry.get("attention", "se")
    assert registry.get("callback", "progress").plugin == "cvkit"
    disabled = {p.name for p in registry.plugins if p.disabled}
    assert disabled == {"cvkit.builtins.tensorboard", "squeeze_excitation"}
    shown = run_cli("plugins").stdout
    assert "[cvkit.builtins.tensorboard]  disabled" in shown
    assert load_registry(strict=True).get("model", "simple_cnn")  # disabled is no problem


def test_a_plugin_adds_a_command_through_register_commands(site: Path) -> None:
    source = '''
        import click
        from cvkit import cli_registry, hookimpl


        @click.command("hello")
        @click.argument("kind")
        def hello(kind):
            """Say how many components of KIND there are."""
            click.echo(f"{len(cli_registry().components(kind))} {kind} components")


        @hookimpl
        def register_commands(cli):
            cli.add_command(hello)
    '''
    make_distribution(
        site, "cvkit-hello", "0.1", {"hello": "cvkit_hello"}, {"cvkit_hello.py": source}
    )
    env = {"PYTHONPATH": str(site)}
    result = run_cvkit("hello", "procedure", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1 procedure components"
    assert "hello" in run_cvkit("--help", env=env).stdout


def test_a_plugin_whose_command_hook_fails_does_not_break_the_command_line(site: Path) -> None:
    source = "from cvkit import hookimpl\n\n@hookimpl\ndef register_commands(cli):\n    raise RuntimeError('no')\n"
    make_distribution(
        site, "cvkit-nocmd", "0.1", {"nocmd": "cvkit_nocmd"}, {"cvkit_nocmd.py": source}
    )
    result = run_cvkit("list", "procedure", env={"PYTHONPATH": str(site)})
    assert result.returncode == 0, result.stderr
    assert "standard" in result.stdout
    assert "warning: plugin nocmd: register_commands: RuntimeError: no" in result.stderr
