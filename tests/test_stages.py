"""Multi-stage recipes: validation, one run directory, weights handed on, resume, procedures."""

from __future__ import annotations

import json

import pytest
import torch

from cvkit.commands.run import resume, train
from cvkit.engine.checkpoint import load_checkpoint
from cvkit.engine.stage import load_initial_weights
from cvkit.errors import CvkitError, RecipeError
from cvkit.recipe.loading import load_recipe
from cvkit.registry.loading import load_registry
from cvkit.testing import TINY_RECIPE

import engine_plugin

STAGES = """
[[stages]]
name = "first"
epochs = 2

[[stages]]
name = "second"
epochs = 1
init = "first"
optimizer = { name = "adam", lr = 1e-3 }
model = { name = "simple_cnn", widths = [8, 16], freeze = ["features"] }
"""


@pytest.fixture(scope="module")
def registry():
    return load_registry(modules=[engine_plugin])


def write_recipe(folder, extra: str = STAGES):
    path = folder / "staged.toml"
    path.write_text(TINY_RECIPE.format(runs=(folder / "runs").as_posix()) + extra)
    return path


@pytest.fixture(scope="module")
def staged(tmp_path_factory, registry):
    folder = tmp_path_factory.mktemp("staged")
    return train(write_recipe(folder), output=folder / "run", registry=registry)


def test_a_stage_takes_its_own_keys_over_the_top_level_ones(tmp_path, registry) -> None:
    extra = STAGES + 'augment.train = [{ name = "hflip" }]\ntrainer.clip_grad_norm = 1.0\n'
    recipe = load_recipe(write_recipe(tmp_path, extra), registry=registry)
    first, second = (recipe.stage_recipe(stage) for stage in recipe.stages)
    # augment and trainer merge key by key: the stage's training list, the top-level eval list
    assert [a.name for a in second.augment.train] == ["hflip"]
    assert second.augment.eval == recipe.augment.eval and len(second.augment.eval) == 1
    assert second.trainer.clip_grad_norm == 1.0 and first.trainer.clip_grad_norm is None
    assert first.experiment.epochs == 2 and first.optimizer == recipe.optimizer
    assert second.optimizer.name == "adam" and second.experiment.epochs == 1
    assert second.model.params["freeze"] == ["features"]
    assert second.scheduler == recipe.scheduler and second.stages == []
    assert first.procedure.name == "standard"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('[[stages]]\nname = "a"\n[[stages]]\nname = "a"\n', "stage names must be unique: a"),
        ('[[stages]]\nname = "a"\ninit = "b"\n[[stages]]\nname = "b"\n', "does not run before it"),
        ('[[stages]]\nname = "A b"\n', "lower-case letters"),
        ('[[stages]]\nname = "a"\nepoch = 2\n', "did you mean 'epochs'"),
        ('[[stages]]\nname = "a"\nprocedure = "fancy"\n', "unknown procedure"),
    ],
)
def test_bad_stages_are_refused_with_the_key(tmp_path, registry, extra, message) -> None:
    with pytest.raises(RecipeError, match=message):
        load_recipe(write_recipe(tmp_path, extra), registry=registry)


def test_every_stage_is_recorded_in_one_run_directory(staged) -> None:
    run = staged.run_dir
    for name, epochs in (("first", 2), ("second", 1)):
        folder = run / "stages" / name
        lines = (folder / "metrics.jsonl").read_text().splitlines()
        assert len(lines) == epochs
        assert (folder / "checkpoints" / "best.pt").is_file()
        assert json.loads((folder / "eval.json").read_text())["epochs"] == epochs
    evaluation = json.loads((run / "eval.json").read_text())
    assert set(evaluation["stages"]) == {"first", "second"}
    assert evaluation["val"] == evaluation["stages"]["second"]["val"]
    assert evaluation["calibration"]["temperature"] > 0
    assert "stage second init: model from" in (run / "run.log").read_text()


def test_the_second_stage_starts_from_the_first_and_keeps_frozen_layers(staged) -> None:
    run = staged.run_dir
    first = load_checkpoint(run / "stages" / "first" / "checkpoints" / "best.pt")["model"]
    second = load_checkpoint(run / "stages" / "second" / "checkpoints" / "last.pt")["model"]
    frozen = [k for k in first if k.startswith("features") and k.endswith("weight")]
    assert frozen and all(torch.equal(first[k], second[k]) for k in frozen)
    trained = ["classifier.weight", "classifier.bias"]
    assert not any(torch.equal(first[k], second[k]) for k in trained)


def test_eval_of_a_staged_run_uses_its_last_stage(staged, run_cli) -> None:
    result = run_cli("eval", str(staged.run_dir), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["checkpoint"].endswith("stages/second/checkpoints/best.pt")


def test_resume_skips_finished_stages_and_trains_the_rest(tmp_path, registry) -> None:
    run = train(write_recipe(tmp_path), output=tmp_path / "run", registry=registry).run_dir
    first_eval = (run / "stages" / "first" / "eval.json").read_text()
    for finished in (run / "eval.json", run / "stages" / "second" / "eval.json"):
        finished.unlink()  # as if stopped before the second stage finished
    for name in ("last.pt", "best.pt"):
        (run / "stages" / "second" / "checkpoints" / name).unlink()
    (run / "stages" / "second" / "metrics.jsonl").unlink()
    resume(run, registry=registry)
    assert (run / "stages" / "first" / "eval.json").read_text() == first_eval
    assert (run / "stages" / "second" / "eval.json").is_file()
    assert len((run / "stages" / "second" / "metrics.jsonl").read_text().splitlines()) == 1
    with pytest.raises(CvkitError, match="the run is finished"):
        resume(run, registry=registry)


def test_init_from_a_missing_source_fails_before_training(tmp_path, registry) -> None:
    extra = '[[stages]]\nname = "only"\ninit = "no/such/run"\n'
    with pytest.raises(CvkitError, match="'no/such/run' is neither an earlier stage"):
        train(write_recipe(tmp_path, extra), output=tmp_path / "run", registry=registry)
    assert not (tmp_path / "run" / "stages").exists()


def test_init_of_another_runs_checkpoint_into_a_submodule(staged) -> None:
    path = staged.run_dir / "stages" / "first" / "checkpoints" / "best.pt"
    weights = load_checkpoint(path)["model"]
    wrapper = torch.nn.Module()
    wrapper.inner = engine_plugin_model()
    load_initial_weights(wrapper, {"inner": path}, "stages[0].init")
    assert all(torch.equal(wrapper.inner.state_dict()[k], v) for k, v in weights.items())
    with pytest.raises(CvkitError, match="no module 'outer'"):
        load_initial_weights(wrapper, {"outer": path}, "stages[0].init")


def engine_plugin_model() -> torch.nn.Module:
    from cvkit.builtins.simple_cnn import SimpleCNN

    return SimpleCNN(4, 3, widths=[8, 16])


def test_a_plugin_procedure_defines_how_a_stage_trains(tmp_path, registry) -> None:
    extra = '[[stages]]\nname = "only"\nepochs = 1\nprocedure = { name = "twice", note = "hi" }\n'
    run = train(write_recipe(tmp_path, extra), output=tmp_path / "run", registry=registry).run_dir
    stage = run / "stages" / "only"
    assert (stage / "procedure.txt").read_text() == "hi"
    assert (stage / "first" / "checkpoints" / "last.pt").is_file()
    evaluation = json.loads((run / "eval.json").read_text())
    assert evaluation["first"]["epochs"] == 1 and evaluation["epochs"] == 1
