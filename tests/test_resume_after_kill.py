"""A run killed with SIGKILL mid-epoch and resumed ends exactly like an uninterrupted run."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from cvkit.commands.rundir import run_status
from cvkit.engine.checkpoint import load_checkpoint

from helpers import ROOT, run_cvkit
from test_run import run_summary

CALLBACKS = (
    'callbacks=[{{ name = "kill", epoch = 2, batch = 3, marker = "{marker}" }}, {{ name = "metrics_jsonl" }}, '
    '{{ name = "tensorboard" }}, {{ name = "checkpoint" }}]'
)


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(
    tiny_recipe: Path, tmp_path: Path
) -> None:
    env = {"CVKIT_PLUGINS": "engine_plugin", "PYTHONPATH": str(ROOT / "tests")}
    never = tmp_path / "never-kill"
    never.touch()  # the marker exists already: this run is not killed
    whole = run_cvkit(
        "run",
        str(tiny_recipe),
        "--output",
        str(tmp_path / "whole"),
        "--set",
        CALLBACKS.format(marker=never.as_posix()),
        env=env,
    )
    assert whole.returncode == 0, whole.stderr

    marker = tmp_path / "killed"
    cut = tmp_path / "cut"
    killed = run_cvkit(
        "run",
        str(tiny_recipe),
        "--output",
        str(cut),
        "--set",
        CALLBACKS.format(marker=marker.as_posix()),
        env=env,
    )
    assert killed.returncode == -signal.SIGKILL and marker.exists()
    assert (
        load_checkpoint(cut / "checkpoints" / "last.pt")["epoch"] == 1
    )  # epoch 2 was cut part-way
    assert not (cut / "eval.json").exists()
    assert run_status(cut)["status"] == "stopped"  # said running; its process is gone

    resumed = run_cvkit("run", "--resume", str(cut), env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert "test accuracy:" in resumed.stdout
    assert run_summary(cut) == run_summary(tmp_path / "whole")


def test_a_lookahead_run_resumes_exactly(tiny_recipe, tmp_path) -> None:
    from cvkit.commands.run import resume, train
    from cvkit.errors import RunInterrupted
    from cvkit.registry.loading import load_registry

    import engine_plugin
    from test_run import run_summary

    registry = load_registry(modules=[engine_plugin])
    sets = [
        'optimizer={ name = "lookahead", k = 3, optimizer = { name = "sgd", lr = 0.05, momentum = 0.9 } }',
        'callbacks=[{ name = "interrupt", epoch = 2, batch = 2 }, { name = "metrics_jsonl" }, { name = "checkpoint" }]',
    ]
    whole = train(
        tiny_recipe,
        overrides=[*sets, "callbacks[0].epoch=9"],
        output=tmp_path / "whole",
        registry=registry,
    )
    with pytest.raises(RunInterrupted):
        train(tiny_recipe, overrides=sets, output=tmp_path / "cut", registry=registry)
    resumed = resume(tmp_path / "cut", registry=registry)
    assert run_summary(resumed.run_dir) == run_summary(whole.run_dir)
