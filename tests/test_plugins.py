"""Plugin discovery through entry points: broken plugins, conflicts, strict mode, env switches."""

from __future__ import annotations

from pathlib import Path

import pytest

from cvkit.errors import ComponentConflictError, PluginError, UnknownComponentError
from cvkit.plugins import ENV_DISABLE_AUTOLOAD, ENV_PLUGINS, load_registry

from conftest import RECIPES, make_distribution

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
        "register_attention: TypeError: attention/wide: factory must accept channels (missing channels)"
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
