"""cvkit tune: the search space file, a small Optuna study, the best recipe, shared storage."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import optuna
import pytest

from cvkit import CvkitError, load_recipe
from cvkit.testing import TINY_RECIPE, cvkit_with_faults, fault_callbacks, stopped_and_continued
from cvkit_tune.tune import read_space

SPACE = """
["optimizer.lr"]
type = "float"
low = 0.001
high = 0.3
log = true

["data.batch_size"]
type = "categorical"
choices = [8, 16]
"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('["optimizer.lr"]\ntype = "float"\nlow = 1\nhigh = 0.1\n', "low < high"),
        ('["optimizer.lr"]\ntype = "gauss"\n', "type must be float, int or categorical"),
        (
            '["optimizer.lr"]\ntype = "float"\nlow = 0\nhigh = 1\nlog = true\n',
            "log = true needs low > 0",
        ),
        ('["x"]\ntype = "categorical"\nchoices = []\n', "non-empty choices"),
        ('["x"]\ntype = "int"\nlow = 1\nhigh = 3\nlog_scale = true\n', "unknown keys log_scale"),
        ('["x"]\ntype = "float"\nlow = 1\nhigh = 3\nlog = true\nstep = 0.5\n', "cannot combine"),
    ],
)
def test_a_bad_space_names_the_file_and_key(tmp_path, text, message) -> None:
    path = tmp_path / "space.toml"
    path.write_text(text)
    with pytest.raises(CvkitError, match=message):
        read_space(path)


def test_a_study_runs_its_trials_and_writes_the_best_recipe(tmp_path, run_cli, registry) -> None:
    recipe, space = tmp_path / "tiny.toml", tmp_path / "space.toml"
    recipe.write_text(TINY_RECIPE.format(runs=tmp_path.as_posix()))
    space.write_text(SPACE)
    out = tmp_path / "study"
    args = ["tune", str(recipe), "--space", str(space), "--set", "experiment.epochs=2"]
    result = run_cli(*args, "--trials", "3", "--output", str(out))
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "tune.json").read_text())
    assert len(summary["trials"]) == 3 and (out / "study.db").is_file()
    best = summary["best"]
    assert best["value"] == max(t["value"] for t in summary["trials"] if t["state"] == "COMPLETE")
    resolved = load_recipe(out / "best.toml", registry=registry)
    assert resolved.optimizer.params["lr"] == best["params"]["optimizer.lr"]
    assert resolved.data.batch_size == best["params"]["data.batch_size"]
    assert resolved.experiment.epochs == 2
    for trial in summary["trials"]:
        assert (out / f"trial-{trial['number']}" / "recipe.toml").is_file()
    # a second process joins the same study through its storage URL
    storage = f"sqlite:///{out / 'study.db'}"
    more = run_cli(*args, "--trials", "4", "--storage", storage, "--output", str(tmp_path / "b"))
    assert more.exit_code == 0, more.output  # --trials is the total: one more trial
    assert len(json.loads((tmp_path / "b" / "tune.json").read_text())["trials"]) == 4
    assert (tmp_path / "b" / "trial-3" / "eval.json").is_file()
    other = run_cli(*args[:-1], "experiment.epochs=3", "--trials", "5", "--storage", storage,
                    "--output", str(tmp_path / "c"))  # fmt: skip
    assert other.exit_code == 2 and "was created with other settings (recipe differ)" in (
        other.stderr
    )


def test_optuna_s_messages_are_cvkit_lines_and_kept_in_tune_log(tmp_path, run_cli) -> None:
    """Optuna printed "[I 2026-12-07 11:19:13,639] Trial 0 finished ..." with its own handler."""
    recipe, space = tmp_path / "tiny.toml", tmp_path / "space.toml"
    recipe.write_text(TINY_RECIPE.format(runs=tmp_path.as_posix()))
    space.write_text(SPACE)
    out = tmp_path / "study"
    args = ["--space", str(space), "--set", "experiment.epochs=1", "--trials", "2"]
    result = run_cli("tune", str(recipe), *args, "--output", str(out))
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert next(line for line in lines if line.startswith("Trial ")).startswith("Trial 0 finished")
    assert not [line for line in lines if line.startswith("[I ")]
    logged = (out / "tune.log").read_text().splitlines()
    assert len([line for line in logged if " INFO Trial " in line]) == 2
    handlers = logging.getLogger("optuna").handlers  # after the tune: none of its own left
    assert not [h for h in handlers if getattr(h, "baseFilename", "").endswith("tune.log")]


def test_a_key_the_recipe_does_not_have_fails_before_any_trial(tmp_path, run_cli) -> None:
    recipe, space = tmp_path / "tiny.toml", tmp_path / "space.toml"
    recipe.write_text(TINY_RECIPE.format(runs=tmp_path.as_posix()))
    space.write_text('["optimizer.lrr"]\ntype = "float"\nlow = 0.1\nhigh = 0.2\n')
    result = run_cli("tune", str(recipe), "--space", str(space), "--output", str(tmp_path / "s"))
    assert result.exit_code == 2 and "did you mean 'lr'" in result.output
    assert not (tmp_path / "s").exists()


def tune_tiny(tmp_path: Path, run_cli, space: str, *args: str):
    """``cvkit tune`` of the tiny recipe over the search space ``space`` (TOML text), with
    ``args``, into tmp_path/study; returns the CLI result and the tune directory."""
    recipe, space_file, out = tmp_path / "tiny.toml", tmp_path / "space.toml", tmp_path / "study"
    recipe.write_text(TINY_RECIPE.format(runs=tmp_path.as_posix()))
    space_file.write_text(space)
    result = run_cli("tune", str(recipe), "--space", str(space_file), *args, "--output", str(out))
    return result, out


def test_a_diverging_trial_is_recorded_as_failed_and_the_study_goes_on(tmp_path, run_cli) -> None:
    # a learning rate of 1e12 makes the loss NaN, as the top of a learning-rate search may
    space = '["optimizer.lr"]\ntype = "categorical"\nchoices = [1e12, 0.05, 0.02]\n'
    result, out = tune_tiny(
        tmp_path,
        run_cli,
        space,
        "--sampler",
        "grid",
        "--trials",
        "3",
        "--set",
        "experiment.epochs=2",
    )
    assert result.exit_code == 0, result.output
    trials = {
        t["params"]["optimizer.lr"]: t
        for t in json.loads((out / "tune.json").read_text())["trials"]
    }
    assert trials[1e12]["state"] == "FAIL"
    assert "became" in trials[1e12]["failure"]  # NonFiniteLossError's message, kept
    assert trials[0.05]["state"] == trials[0.02]["state"] == "COMPLETE"
    assert "3 trials (2 complete, 1 fail)" in result.output
    # no trial evaluates (or prints) the test split
    assert "test accuracy" not in result.output and "test (" not in result.output
    for trial in trials.values():
        if trial["state"] == "COMPLETE":
            assert json.loads((Path(trial["run_dir"]) / "eval.json").read_text())["test"] is None


def test_the_metric_direction_and_pruner_are_chosen(tmp_path, run_cli) -> None:
    space = '["optimizer.lr"]\ntype = "float"\nlow = 0.01\nhigh = 0.1\n'
    result, out = tune_tiny(
        tmp_path,
        run_cli,
        space,
        "--metric",
        "val/loss",
        "--sampler",
        "random",
        "--pruner",
        "none",
        "--trials",
        "2",
        "--timeout",
        "600",
        "--set",
        "experiment.epochs=1",
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "tune.json").read_text())
    assert summary["metric"] == "val/loss" and summary["direction"] == "minimize"
    values = [t["value"] for t in summary["trials"]]
    assert summary["best"]["value"] == min(values)
    runs = [json.loads((Path(t["run_dir"]) / "eval.json").read_text()) for t in summary["trials"]]
    assert sorted(values) == sorted(r["val"]["loss"] for r in runs)


def test_grid_sampling_needs_a_categorical_space(tmp_path, run_cli) -> None:
    space = '["optimizer.lr"]\ntype = "float"\nlow = 0.01\nhigh = 0.1\n'
    result, out = tune_tiny(tmp_path, run_cli, space, "--sampler", "grid")
    assert (
        result.exit_code == 2
        and "--sampler grid needs categorical parameters only" in result.output
    )
    assert not out.exists()


class AlwaysPrune(optuna.pruners.BasePruner):
    """Prunes every trial at its first report."""

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return True


def test_a_pruned_trial_is_pruned_in_its_status_compare_and_report(tmp_path, registry) -> None:
    """It trained one epoch and has an eval.json, but its status.json said finished."""
    from cvkit import run_status
    from cvkit_tune.tune import Objective, read_space

    runs = pytest.importorskip("cvkit_report.runs")  # cvkit compare and report's reading
    table = pytest.importorskip("cvkit_report.table")

    recipe, space = tmp_path / "tiny.toml", tmp_path / "space.toml"
    recipe.write_text(TINY_RECIPE.format(runs=tmp_path.as_posix()))
    space.write_text(SPACE)
    study = optuna.create_study(direction="maximize", pruner=AlwaysPrune())
    objective = Objective(recipe, read_space(space), ["experiment.epochs=3"], tmp_path, registry)
    study.optimize(objective, n_trials=1)
    assert study.trials[0].state == optuna.trial.TrialState.PRUNED
    run = tmp_path / "trial-0"
    status = run_status(run)
    assert status["status"] == "pruned" and "after epoch 1" in status["reason"]
    assert table.run_row(runs.read_run(run))["status"] == "pruned (1 epochs)"


def test_the_same_command_continues_a_tune_and_refuses_other_settings(tmp_path, run_cli) -> None:
    """--trials is the total; a finished tune run again runs nothing; other --set values
    are refused naming what differs, and --force continues with them."""
    space = '["optimizer.lr"]\ntype = "categorical"\nchoices = [0.05, 0.1, 0.2]\n'
    first, out = tune_tiny(
        tmp_path, run_cli, space, "--trials", "1", "--set", "experiment.epochs=1"
    )
    assert first.exit_code == 0, first.output
    more, _ = tune_tiny(tmp_path, run_cli, space, "--trials", "2", "--set", "experiment.epochs=1")
    assert more.exit_code == 0, more.output
    assert "2 trials" in more.output and not (out / "trial-2").exists()
    again, _ = tune_tiny(tmp_path, run_cli, space, "--trials", "2", "--set", "experiment.epochs=1")
    assert again.exit_code == 0 and "2 trials" in again.output
    other, _ = tune_tiny(tmp_path, run_cli, space, "--trials", "3", "--set", "experiment.epochs=2")
    assert other.exit_code == 2
    assert (
        "holds a tune with other settings (recipe differ" in other.stderr
        and "--force" in other.stderr
    )
    forced, _ = tune_tiny(
        tmp_path, run_cli, space, "--trials", "3", "--set", "experiment.epochs=2", "--force"
    )
    assert forced.exit_code == 0, forced.output
    assert list(out.glob("tune-settings.before-*.json"))


def test_ctrl_c_stops_a_tune_and_the_same_command_continues_it_to_the_same_best(tmp_path) -> None:
    """SIGINT in trial 0 (epoch 1, batch 2): exit 130 with one line and no traceback; the
    same command resumes trial 0 from its last.pt (same number and parameters) and runs
    the rest: every trial's parameters and value, and the best, are an uninterrupted tune's."""
    import subprocess

    recipe, space = tmp_path / "tiny.toml", tmp_path / "space.toml"
    recipe.write_text(TINY_RECIPE.format(runs=tmp_path.as_posix()))
    space.write_text(SPACE)
    marker = tmp_path / "fired"
    interrupt = fault_callbacks("interrupt", epoch=1, batch=2, marker=marker)

    def tune(out: Path) -> subprocess.CompletedProcess:
        return cvkit_with_faults(
            "tune", str(recipe), "--space", str(space), "--trials", "3",
            "--set", "experiment.epochs=2", "--set", interrupt, "--output", str(out), cwd=tmp_path,
        )  # fmt: skip

    whole, cut, again = stopped_and_continued(tune, marker, tmp_path)
    assert whole.returncode == 0, whole.stderr
    assert cut.returncode == 130, cut.stderr
    assert "Traceback" not in cut.stderr
    errors = [line for line in cut.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "the same command continues it" in errors[0], cut.stderr
    assert "trial-1" not in cut.stdout + cut.stderr  # no further trial started
    assert again.returncode == 0, again.stderr
    assert "resuming" in (tmp_path / "cut" / "trial-0" / "run.log").read_text()

    def trials(folder: str) -> tuple[list, dict]:
        summary = json.loads((tmp_path / folder / "tune.json").read_text())
        return [
            (t["number"], t["state"], t["params"], t["value"]) for t in summary["trials"]
        ], summary["best"]

    assert trials("cut") == trials("whole")
