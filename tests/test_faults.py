"""Faults a run survives (issue 12): kills inside the last checkpoint write and the final
evaluation, SIGTERM, a run killed before its first checkpoint, a second Ctrl-C, non-finite
weights, a full disk, two resumes at once, damaged checkpoints. Each ends as an
uninterrupted run would, or refuses with one line and keeps what was written."""

from __future__ import annotations

import errno
import json
import os
import signal
from pathlib import Path

import pytest
import torch

from cvkit.commands.run import resume, train
from cvkit.commands.rundir import run_lock
from cvkit.engine.checkpoint import load_checkpoint
from cvkit.errors import CheckpointError, CvkitError, NonFiniteLossError, RunInterrupted
from cvkit.files import json_text
from cvkit.registry.loading import load_registry

import engine_plugin
from helpers import ROOT, run_cvkit
from test_run import run_summary, without_timing

ENV = {"CVKIT_PLUGINS": "engine_plugin", "PYTHONPATH": str(ROOT / "tests")}
CALLBACKS = (
    'callbacks=[{{ name = "{fault}", epoch = {epoch}, batch = {batch}, marker = "{marker}" }}, '
    '{{ name = "metrics_jsonl" }}, {{ name = "tensorboard" }}, {{ name = "checkpoint" }}]'
)


@pytest.fixture(scope="module")
def registry():
    return load_registry(modules=[engine_plugin])


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The tiny recipe run once without faults, in a subprocess as the faulty ones are."""
    from cvkit.testing import TINY_RECIPE

    folder = tmp_path_factory.mktemp("whole")
    recipe = folder / "tiny.toml"
    recipe.write_text(TINY_RECIPE.format(runs=(folder / "runs").as_posix()))
    never = folder / "fired"
    never.touch()
    callbacks = CALLBACKS.format(fault="kill", epoch=1, batch=1, marker=never.as_posix())
    result = run_cvkit(
        "run", str(recipe), "--output", str(folder / "run"), "--set", callbacks, env=ENV
    )
    assert result.returncode == 0, result.stderr
    return recipe, folder / "run", never


def interrupted_run(recipe: Path, out: Path, registry, *, epoch: int, batch: int) -> None:
    """Train ``recipe`` into ``out`` until Ctrl-C at (epoch, batch) saves last.pt."""
    callbacks = f'callbacks=[{{ name = "interrupt", epoch = {epoch}, batch = {batch} }}, {{ name = "checkpoint" }}]'
    with pytest.raises(RunInterrupted):
        train(recipe, overrides=[callbacks], output=out, registry=registry)


def faulty_run(recipe: Path, out: Path, never: Path, env: dict[str, str] | None = None, **fault):
    callbacks = CALLBACKS.format(
        fault=fault.get("fault", "kill"),
        epoch=fault.get("epoch", 1),
        batch=fault.get("batch", 1),
        marker=fault.get("marker", never.as_posix()),
    )
    return run_cvkit(
        "run", str(recipe), "--output", str(out), "--set", callbacks, env={**ENV, **(env or {})}
    )


@pytest.mark.slow
def test_a_kill_inside_the_last_best_pt_write_resumes_to_the_same_result(
    uninterrupted, tmp_path
) -> None:
    recipe, whole, never = uninterrupted
    best_epoch = json.loads((whole / "eval.json").read_text())["weights"]
    assert best_epoch == "best (epoch 3)"  # so the last epoch writes best.pt first
    cut = tmp_path / "cut"
    killed = faulty_run(
        recipe, cut, never, env={"CVKIT_TEST_KILL_IN_SAVE": f"best.pt:3:{tmp_path / 'fired'}"}
    )
    assert killed.returncode == -signal.SIGKILL
    assert load_checkpoint(cut / "checkpoints" / "last.pt")["epoch"] == 2  # best.pt comes first
    assert list((cut / "checkpoints").glob(".*.tmp"))  # the half-written file
    resumed = run_cvkit("run", "--resume", str(cut), env=ENV)
    assert resumed.returncode == 0, resumed.stderr
    assert not list((cut / "checkpoints").glob(".*.tmp"))
    assert run_summary(cut) == run_summary(whole)


@pytest.mark.slow
def test_a_kill_during_the_final_evaluation_resumes_to_the_same_result(
    uninterrupted, tmp_path
) -> None:
    recipe, whole, never = uninterrupted
    cut = tmp_path / "cut"
    killed = faulty_run(
        recipe, cut, never, env={"CVKIT_TEST_KILL_IN_EVALUATION": str(tmp_path / "fired")}
    )
    assert killed.returncode == -signal.SIGKILL
    assert load_checkpoint(cut / "checkpoints" / "last.pt")["epoch"] == 3
    assert not (cut / "eval.json").exists()
    resumed = run_cvkit("run", "--resume", str(cut), env=ENV)
    assert resumed.returncode == 0, resumed.stderr
    assert run_summary(cut) == run_summary(whole)
    again = run_cvkit("run", "--resume", str(cut), env=ENV)
    assert again.returncode == 2 and "the run is finished" in again.stderr


@pytest.mark.slow
def test_sigterm_mid_epoch_saves_exits_143_and_resumes_to_the_same_result(
    uninterrupted, tmp_path
) -> None:
    recipe, whole, _ = uninterrupted
    cut = tmp_path / "cut"
    terminated = faulty_run(
        recipe, cut, Path(), fault="terminate", epoch=2, batch=3, marker=str(tmp_path / "fired")
    )
    assert terminated.returncode == 143, terminated.stderr
    assert f"SIGTERM; resume with: cvkit run --resume {cut}" in terminated.stderr
    saved = load_checkpoint(cut / "checkpoints" / "last.pt")
    assert (saved["epoch"], saved["batch"]) == (1, 3)
    resumed = run_cvkit("run", "--resume", str(cut), env=ENV)
    assert resumed.returncode == 0, resumed.stderr
    assert run_summary(cut) == run_summary(whole)


@pytest.mark.slow
def test_a_run_killed_before_its_first_checkpoint_resumes_from_the_start(
    uninterrupted, tmp_path
) -> None:
    recipe, whole, _ = uninterrupted
    cut = tmp_path / "cut"
    killed = faulty_run(recipe, cut, Path(), epoch=1, batch=2, marker=str(tmp_path / "fired"))
    assert killed.returncode == -signal.SIGKILL
    assert not (cut / "checkpoints" / "last.pt").exists()
    resumed = run_cvkit("run", "--resume", str(cut), env=ENV)
    assert resumed.returncode == 0, resumed.stderr
    assert run_summary(cut) == run_summary(whole)


def test_ctrl_c_during_the_final_evaluation_resumes_to_the_evaluation(
    tiny_recipe, registry, tmp_path, monkeypatch
) -> None:
    from cvkit.engine import stage

    whole = train(tiny_recipe, output=tmp_path / "whole", registry=registry)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(stage, "collect_logits", interrupted)
        with pytest.raises(RunInterrupted, match="resume with: cvkit run --resume") as error:
            train(tiny_recipe, output=tmp_path / "cut", registry=registry)
    assert error.value.exit_code == 130
    resumed = resume(tmp_path / "cut", registry=registry)
    assert without_timing(resumed.evaluation) == without_timing(whole.evaluation)


def test_an_early_stopped_run_resumed_after_a_crash_does_not_train_on(
    tiny_recipe, registry, tmp_path, monkeypatch
) -> None:
    from cvkit.engine import stage

    sets = [
        "experiment.epochs=8",
        'callbacks=[{ name = "early_stopping", patience = 1, monitor = "train/acc", '
        'min_delta = 0.5 }, { name = "checkpoint" }]',
    ]
    whole = train(tiny_recipe, overrides=sets, output=tmp_path / "whole", registry=registry)
    assert whole.evaluation["epochs"] < 8  # it stopped early
    with monkeypatch.context() as patch:
        patch.setattr(
            stage, "collect_logits", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt)
        )
        with pytest.raises(RunInterrupted):
            train(tiny_recipe, overrides=sets, output=tmp_path / "cut", registry=registry)
    resumed = resume(tmp_path / "cut", registry=registry)
    assert without_timing(resumed.evaluation) == without_timing(whole.evaluation)


def test_resume_refuses_changes_the_checkpoint_would_undo(tiny_recipe, registry, tmp_path) -> None:
    interrupted_run(tiny_recipe, tmp_path / "cut", registry, epoch=2, batch=1)
    before = (tmp_path / "cut" / "recipe.toml").read_text()
    for change in (
        "optimizer.lr=0.5",
        "scheduler.min_lr=0.01",
        "experiment.epochs=5",
        "data.batch_size=8",
    ):
        with pytest.raises(CvkitError, match=f"{change.split('=')[0]}.* cannot change on resume"):
            resume(tmp_path / "cut", overrides=[change], force=True, registry=registry)
    assert (tmp_path / "cut" / "recipe.toml").read_text() == before
    resumed = resume(tmp_path / "cut", overrides=["data.workers=1"], force=True, registry=registry)
    assert "workers = 1" in (resumed.run_dir / "recipe.toml").read_text()


def test_non_finite_weights_after_the_last_step_are_never_saved(
    tiny_recipe, registry, tmp_path
) -> None:
    # an infinite learning rate from the last step of epoch 2 on: the training loss of that
    # step was computed before the update and is finite; the weights after it are not
    poison = 'callbacks=[{ name = "poison_lr", epoch = 2, batch = 4 }, { name = "checkpoint" }]'
    with pytest.raises(NonFiniteLossError, match="became non-finite in epoch 2"):
        train(tiny_recipe, overrides=[poison], output=tmp_path / "nan", registry=registry)
    last = load_checkpoint(tmp_path / "nan" / "checkpoints" / "last.pt")
    assert last["epoch"] == 1 and all(torch.isfinite(t).all() for t in last["model"].values())
    best = load_checkpoint(tmp_path / "nan" / "checkpoints" / "best.pt")
    assert best["epoch"] == 1
    assert not (tmp_path / "nan" / "eval.json").exists()


def test_json_written_by_cvkit_always_parses() -> None:
    text = json_text({"loss": float("nan"), "top1": float("inf"), "ok": [1.5, float("-inf")]})
    assert json.loads(text) == {"loss": None, "top1": None, "ok": [1.5, None]}


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_files_of_a_run_get_the_umask_s_permissions(tiny_recipe, registry, tmp_path, umask) -> None:
    """Atomic writes (a temporary file renamed over the destination) used to keep mkstemp's
    0600: eval.json, recipe.toml, env.json and checkpoints were readable by their owner only,
    while metrics.jsonl and run.log, opened normally, were 0644."""
    previous = os.umask(umask)
    try:
        train(
            tiny_recipe,
            overrides=["experiment.epochs=1"],
            output=tmp_path / "run",
            registry=registry,
        )
    finally:
        os.umask(previous)
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"eval.json", "recipe.toml", "env.json", "last.pt", "metrics.jsonl"} <= names
    expected = 0o666 & ~umask
    assert {p.relative_to(tmp_path): oct(p.stat().st_mode & 0o777) for p in files} == {
        p.relative_to(tmp_path): oct(expected) for p in files
    }


def test_a_second_ctrl_c_inside_a_step_saves_nothing(
    tiny_recipe, registry, tmp_path, monkeypatch
) -> None:
    """The first Ctrl-C waits for the batch to end; a second one lands inside the next
    step. A checkpoint then would hold half a step: the previous last.pt stays."""
    from cvkit.engine import trainer as trainer_module

    calls = {"n": 0}
    step = trainer_module.TrainingLoop._train_step

    def interrupted_inside(self, images, targets):
        calls["n"] += 1
        if self.epoch == 1 and self.batch == 2:  # epoch 2, after two batches
            self._consistent = False
            raise KeyboardInterrupt  # as a second Ctrl-C during the optimizer step
        return step(self, images, targets)

    monkeypatch.setattr(trainer_module.TrainingLoop, "_train_step", interrupted_inside)
    with pytest.raises(RunInterrupted):
        train(tiny_recipe, output=tmp_path / "cut", registry=registry)
    last = load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt")
    assert (last["epoch"], last["batch"]) == (1, 0)  # the end of epoch 1, not mid-step
    assert (
        "not saving last.pt: the run was stopped inside a training step"
        in (tmp_path / "cut" / "run.log").read_text()
    )


def test_a_full_disk_during_a_checkpoint_is_one_line_and_keeps_the_previous_one(
    tiny_recipe, run_cli, tmp_path, monkeypatch
) -> None:
    import cvkit.files

    replace = os.replace
    state = {"writes": 0}

    def full_disk(source, target):
        if str(target).endswith("last.pt"):
            state["writes"] += 1
            if state["writes"] == 2:
                raise OSError(errno.ENOSPC, "No space left on device")
        replace(source, target)

    monkeypatch.setattr(cvkit.files.os, "replace", full_disk)
    out = tmp_path / "full"
    result = run_cli("run", str(tiny_recipe), "--output", str(out))
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert lines == [
        f"error: cannot write {out / 'checkpoints' / 'last.pt'}: No space left on device"
    ]
    assert "Traceback" not in result.output
    assert load_checkpoint(out / "checkpoints" / "last.pt")["epoch"] == 1
    assert not list((out / "checkpoints").glob(".*.tmp"))


def test_two_processes_cannot_train_one_run_directory(tiny_recipe, registry, tmp_path) -> None:
    interrupted_run(tiny_recipe, tmp_path / "cut", registry, epoch=1, batch=1)
    with run_lock(tmp_path / "cut"), pytest.raises(CvkitError, match="is in use by cvkit process"):
        resume(tmp_path / "cut", registry=registry)
    assert resume(tmp_path / "cut", registry=registry).evaluation  # a released lock is no obstacle


def test_a_damaged_checkpoint_is_refused(tiny_recipe, registry, tmp_path) -> None:
    run = train(tiny_recipe, output=tmp_path / "run", registry=registry).run_dir
    path = run / "checkpoints" / "last.pt"
    state = torch.load(path, weights_only=True)
    name = next(iter(state["model"]))
    state["model"][name] = state["model"][name].clone()
    state["model"][name].view(-1)[0] += 1  # one changed weight, the checksum unchanged
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="damaged checkpoint"):
        load_checkpoint(path)


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path) -> None:
    import numpy as np
    from PIL import Image

    from cvkit.data.images import decode_image_file

    gradient = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    Image.fromarray(gradient).save(tmp_path / "g16.png")
    decoded = decode_image_file(tmp_path / "g16.png", 1)[0]
    expected = torch.from_numpy(np.round(gradient / 257).astype(np.uint8))
    assert torch.equal(decoded, expected)
    assert (decoded == 255).float().mean() < 0.01  # not 99.6% as when clipped
    assert decode_image_file(tmp_path / "g16.png", 3).shape == (3, 64, 64)


def test_predict_neutralises_spreadsheet_formulas(tiny_recipe, registry, tmp_path) -> None:
    import csv

    import numpy as np
    from PIL import Image

    from cvkit.commands.predict import predict

    run = train(tiny_recipe, output=tmp_path / "run", registry=registry).run_dir
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("=HYPERLINK(1).png", "+1.png", "-1.png", "@a.png", "plain.png"):
        Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(folder / name)
    predict(run, folder, tmp_path / "p.csv", registry=registry)
    ids = [row[0] for row in csv.reader((tmp_path / "p.csv").open())][1:]
    assert ids == ["'+1.png", "'-1.png", "'=HYPERLINK(1).png", "'@a.png", "plain.png"]


def test_predict_overwrite_keeps_the_old_csv_when_the_disk_is_full(
    tiny_recipe, registry, tmp_path, monkeypatch
) -> None:
    import cvkit.files
    from cvkit.commands.predict import predict
    from cvkit.errors import StorageError

    run = train(tiny_recipe, output=tmp_path / "run", registry=registry).run_dir
    inputs = tmp_path / "inputs.pt"
    torch.save(torch.zeros(3, 3, 8, 8, dtype=torch.uint8), inputs)
    out = tmp_path / "p.csv"
    out.write_text("id,label\nprevious,1\n")

    def full_disk(source, target):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cvkit.files.os, "replace", full_disk)
    with pytest.raises(StorageError, match="No space left on device"):
        predict(run, inputs, out, overwrite=True, registry=registry)
    assert out.read_text() == "id,label\nprevious,1\n"
    assert not list(tmp_path.glob(".p.csv.*.tmp"))


def test_an_unreadable_env_json_does_not_stop_a_resume(tiny_recipe, registry, tmp_path) -> None:
    interrupted_run(tiny_recipe, tmp_path / "cut", registry, epoch=2, batch=1)
    (tmp_path / "cut" / "env.json").write_text('{"time": "half written')
    assert resume(tmp_path / "cut", registry=registry).evaluation
    env = json.loads((tmp_path / "cut" / "env.json").read_text())
    assert "unreadable_before_resume" in env and len(env["resumes"]) == 1


def test_metrics_lines_reach_the_disk_before_the_checkpoint_that_counts_them(
    tiny_recipe, registry, tmp_path, monkeypatch
) -> None:
    from types import SimpleNamespace

    import cvkit.builtins.metrics_jsonl as metrics_module
    import cvkit.engine.checkpoint as checkpoint_module

    events = []
    fsync, save = os.fsync, checkpoint_module.save_atomic
    recording = SimpleNamespace(fsync=lambda fd: (events.append("metrics synced"), fsync(fd)))
    monkeypatch.setattr(metrics_module, "os", recording)
    monkeypatch.setattr(
        checkpoint_module,
        "save_atomic",
        lambda state, path: (events.append(path.name), save(state, path)),
    )
    train(tiny_recipe, output=tmp_path / "run", registry=registry)
    assert [e for e in events if e != "best.pt"] == ["metrics synced", "last.pt"] * 3


def test_a_run_time_error_is_printed_once(tiny_recipe, run_cli, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CVKIT_PLUGINS", "engine_plugin")
    result = run_cli(
        "run",
        str(tiny_recipe),
        "--output",
        str(tmp_path / "nan"),
        "--set",
        'callbacks=[{name = "poison_lr", epoch = 2, batch = 1}, { name = "checkpoint" }]',
    )
    assert result.exit_code == 3
    assert result.stderr.count("training loss became nan") == 1
    assert "training loss became nan" in (tmp_path / "nan" / "run.log").read_text()
    # what the message promises holds: epoch 1's checkpoint exists; fp32 is no remedy in fp32
    assert (
        f"{tmp_path / 'nan' / 'checkpoints' / 'last.pt'} (the last good checkpoint) is kept"
        in result.stderr
    )
    assert "fp32" not in result.stderr


def test_a_nan_before_any_checkpoint_says_none_was_written(
    tiny_recipe, run_cli, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("CVKIT_PLUGINS", "engine_plugin")
    result = run_cli(
        "run",
        str(tiny_recipe),
        "--output",
        str(tmp_path / "nan"),
        "--set",
        'callbacks=[{name = "poison_lr", epoch = 1, batch = 1}, { name = "checkpoint" }]',
        "--set",
        'experiment.precision="bf16"',
    )
    assert result.exit_code == 3
    assert "no checkpoint had been written yet" in result.stderr
    assert "last good checkpoint" not in result.stderr
    assert "or train in fp32" in result.stderr
    assert not (tmp_path / "nan" / "checkpoints" / "last.pt").exists()
