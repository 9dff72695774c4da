"""Bad input: one clear line per problem on stderr, exit status 2, never a traceback.

Most cases run the command in-process (``run_cli``); a few run ``python -m cvkit`` in a
subprocess to show the real exit status and stderr.
"""

from __future__ import annotations

import re
import subprocess
import textwrap
from pathlib import Path

import pytest

from helpers import RECIPES, make_distribution, run_cvkit

QUICKSTART = RECIPES / "quickstart.toml"


def crashed(result) -> bool:
    """Whether ``result`` (a click Result) ended in an exception other than a clean exit."""
    return result.exception is not None and not isinstance(result.exception, SystemExit)


def assert_one_error(result, *fragments: str) -> None:
    """``result``: a subprocess.CompletedProcess or a click Result."""
    if isinstance(result, subprocess.CompletedProcess):
        assert result.returncode == 2 and "Traceback" not in result.stderr, (
            result.returncode,
            result.stderr,
        )
    else:
        assert result.exit_code == 2 and not crashed(result), (
            result.exit_code,
            result.stderr,
            result.exception,
        )
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def test_malformed_toml(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('[experiment]\nname = "x"\nepochs = = 3\n')
    assert_one_error(run_cvkit("check", str(path)), "broken.toml:3: invalid TOML")


def test_missing_recipe_file(tmp_path: Path, run_cli) -> None:
    assert_one_error(
        run_cli("check", str(tmp_path / "nope.toml")), "nope.toml: recipe file not found"
    )


def test_unknown_component(run_cli) -> None:
    assert_one_error(
        run_cli("check", str(QUICKSTART), "--set", "model.name=resnet9000"),
        "model.name: unknown model 'resnet9000'",
        "available: ",
        "simple_cnn",
    )


def test_unknown_key(run_cli) -> None:
    assert_one_error(
        run_cli("check", str(QUICKSTART), "--set", "optimizer.momentun=0.5"),
        "optimizer.momentun: unknown key for optimizer/sgd (did you mean 'momentum'?)",
    )


def test_mistyped_value(run_cli) -> None:
    assert_one_error(
        run_cli("check", str(QUICKSTART), "--set", "data.batch_size=big"),
        "data.batch_size: expected int, got str 'big'",
    )


def test_missing_required_parameter_is_blamed_on_the_set_that_chose_the_component(
    run_cli,
) -> None:
    assert_one_error(
        run_cli("check", str(QUICKSTART), "--set", "scheduler.name=multistep"),
        "--set scheduler.name=multistep: scheduler.milestones: missing required parameter of "
        "scheduler/multistep",
    )


def test_extends_cycle(tmp_path: Path, run_cli) -> None:
    (tmp_path / "a.toml").write_text('extends = "b.toml"\n')
    (tmp_path / "b.toml").write_text('extends = "a.toml"\n')
    assert_one_error(run_cli("check", str(tmp_path / "a.toml")), "extends cycle")


def test_a_plugin_that_fails_to_import(tmp_path: Path, run_cli, monkeypatch) -> None:
    site = make_distribution(
        tmp_path / "site",
        "cvkit-eca-broken",
        "0.3",
        {"eca": "cvkit_eca_broken"},
        {"cvkit_eca_broken.py": "raise ImportError('needs a newer torch')\n"},
    )
    monkeypatch.syspath_prepend(str(site))
    listing = run_cli("list")
    assert listing.exit_code == 0 and "se" in listing.stdout
    assert (
        "warning: plugin eca (cvkit-eca-broken 0.3) failed: ImportError: needs a newer torch"
        in listing.stderr
    )
    assert_one_error(
        run_cli("check", str(QUICKSTART), "--set", "model.attention.name=eca"),
        "unknown attention 'eca'",
        "plugins that failed to load: cvkit-eca-broken (ImportError: needs a newer torch)",
    )
    strict = run_cli("--strict-plugins", "list")
    assert strict.exit_code == 2 and not crashed(strict) and "cvkit-eca-broken" in strict.stderr


def test_a_factory_that_rejects_its_parameters(run_cli) -> None:
    assert_one_error(
        run_cli("check", str(QUICKSTART), "--set", "augment.eval[0].preset=cifar10"),
        "augment.eval[0]",
        "augmentation/normalize: give either preset or mean and std, not both",
    )


def test_missing_dataset_files_name_the_directory_and_files(tmp_path: Path, run_cli) -> None:
    root = tmp_path / "cifar"
    assert_one_error(
        run_cli(
            "check",
            str(QUICKSTART),
            "--set",
            f'data.dataset={{name = "cifar10", root = "{root}", download = false}}',
        ),
        f"in {root}",
        "cifar-10-python.tar.gz",
        "data_batch_1",
    )


def test_several_problems_give_one_line_each(tmp_path: Path, run_cli) -> None:
    path = tmp_path / "r.toml"
    path.write_text(re.sub(r"(?m)^epochs = \d+", "epochs = -1", QUICKSTART.read_text()))
    result = run_cli("check", str(path), "--set", "optimizer.lr=x", "--set", "model.dropout=[1]")
    assert result.exit_code == 2 and not crashed(result)
    assert len([line for line in result.stderr.splitlines() if line.startswith("error: ")]) == 3


@pytest.mark.parametrize("args", [["nonsense"], ["info"], ["check"], ["list", "gizmo"]])
def test_usage_errors_exit_2(args, run_cli) -> None:
    result = run_cli(*args)
    assert result.exit_code == 2 and not crashed(result)


def test_an_unexpected_error_exits_1_with_a_traceback(tmp_path: Path) -> None:
    """A bug in a plugin's code while a run trains (not its factory refusing to build)."""
    source = textwrap.dedent(
        '''
        from cvkit import Callback, hookimpl

        class Crash(Callback):
            """Always fails: a bug, not bad input."""

            def on_epoch_end(self, trainer):
                raise RuntimeError("bug in the plugin")

        @hookimpl
        def register_callbacks(register):
            register("crash", Crash)
        '''
    )
    site = make_distribution(
        tmp_path / "site",
        "cvkit-crash",
        "0.1",
        {"crash": "cvkit_crash"},
        {"cvkit_crash.py": source},
    )
    result = run_cvkit(
        "run", str(QUICKSTART), "--set", "callbacks=[{ name = \"crash\" }]",
        "--set", "experiment.epochs=1", "--output", str(tmp_path / "run"),
        env={"PYTHONPATH": str(site)},
    )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "bug in the plugin" in result.stderr


def test_any_exception_from_a_factory_is_one_line_naming_it_and_its_parameters(
    tmp_path: Path,
) -> None:
    """timm's blocks raise TypeError and AssertionError when built with what they refuse:
    that was a traceback (only ValueError became one line)."""
    source = textwrap.dedent(
        '''
        from torch import nn
        from cvkit import hookimpl

        class Picky(nn.Module):
            """Refuses most settings the way libraries do."""

            def __init__(self, channels: int, heads: int = 3) -> None:
                super().__init__()
                assert heads < 100
                if channels % heads:
                    raise TypeError(f"{channels} is not divisible by {heads}")

        @hookimpl
        def register_attention(register):
            register("picky", Picky, examples=[])
        '''
    )
    site = make_distribution(
        tmp_path / "site",
        "cvkit-picky",
        "0.1",
        {"picky": "cvkit_picky"},
        {"cvkit_picky.py": source},
    )
    for heads, error in (
        ("5", "TypeError: 32 is not divisible by 5"),
        ("128", "AssertionError: (no message)"),
    ):
        result = run_cvkit(
            "check", str(QUICKSTART), "--set", "model.attention={ name = \"picky\", heads = " + heads + " }",
            env={"PYTHONPATH": str(site)},
        )  # fmt: skip
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        (line,) = result.stderr.splitlines()
        assert f"attention/picky(heads={heads}) could not be built: {error}" in line
