"""callback/tensorboard: per-step scalars read once per epoch, the augmented-batch grid, and
HParams with the final metrics and the confusion matrix in the run's own event file."""

from __future__ import annotations

import json

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from cvkit.builtins.tensorboard import confusion_image, confusion_table
from cvkit.commands.run import train
from cvkit.registry.loading import load_registry
from cvkit.testing import TINY_RECIPE

CALLBACKS = """
[trainer]
clip_grad_norm = 5.0

[[callbacks]]
name = "metrics_jsonl"

[[callbacks]]
name = "tensorboard"
log_every = 2
images = 8
"""


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tensorboard")
    recipe = folder / "tiny.toml"
    recipe.write_text(TINY_RECIPE.format(runs=folder.as_posix()) + CALLBACKS)
    run = train(recipe, registry=load_registry(), output=folder / "run").run_dir
    accumulator = EventAccumulator(
        str(run / "tensorboard"), size_guidance={"scalars": 0, "images": 0}
    )
    accumulator.Reload()
    return run, accumulator


def test_per_step_scalars_every_log_every_steps(events) -> None:
    run, accumulator = events
    tags = accumulator.Tags()["scalars"]
    for tag in ("step/lr", "step/loss", "step/images_per_second", "step/grad_norm"):
        assert tag in tags, tag
        # 3 epochs x 5 steps: points at steps 2, 4, ..., 14
        assert [e.step for e in accumulator.Scalars(tag)] == list(range(2, 16, 2)), tag
    losses = [e.value for e in accumulator.Scalars("step/loss")]
    assert all(0 < loss < 10 for loss in losses)
    assert all(e.value > 0 for e in accumulator.Scalars("step/images_per_second"))
    lines = [json.loads(t) for t in (run / "metrics.jsonl").read_text().splitlines()]
    # the cosine schedule: the per-step learning rate falls within the run
    lrs = [e.value for e in accumulator.Scalars("step/lr")]
    # an epoch's lr is its first step's: the last epoch began above its last step's rate
    assert lrs == sorted(lrs, reverse=True) and lrs[-1] <= lines[-1]["lr"]
    assert [e.step for e in accumulator.Scalars("val/acc")] == [5, 10, 15]


def test_the_augmented_batch_and_the_confusion_matrix_images(events) -> None:
    _, accumulator = events
    images = accumulator.Tags()["images"]
    assert "train/augmented_batch" in images and "test/confusion_matrix" in images
    grid = accumulator.Images("train/augmented_batch")
    assert len(grid) == 1 and grid[0].step == 1
    matrix = accumulator.Images("test/confusion_matrix")[0]
    assert (matrix.width, matrix.height) == (4 * 24, 4 * 24)


def test_hparams_and_final_metrics_are_in_the_runs_own_event_file(events) -> None:
    run, accumulator = events
    assert [p.name for p in (run / "tensorboard").iterdir() if p.is_dir()] == []
    evaluation = json.loads((run / "eval.json").read_text())
    scalars = accumulator.Tags()["scalars"]
    final = {tag: accumulator.Scalars(tag)[-1].value for tag in scalars if tag.startswith("final/")}
    assert final["final/test_top1"] == pytest.approx(evaluation["test"]["top1"])
    assert final["final/val_top1"] == pytest.approx(evaluation["val"]["top1"])
    lines = [json.loads(t) for t in (run / "metrics.jsonl").read_text().splitlines()]
    assert final["final/best_val_acc"] == pytest.approx(max(line["val/acc"] for line in lines))
    plugins = accumulator.PluginTagToContent("hparams")
    assert {
        "_hparams_/experiment",
        "_hparams_/session_start_info",
        "_hparams_/session_end_info",
    } <= set(plugins)
    start = plugins["_hparams_/session_start_info"].decode("latin-1")
    assert "optimizer.lr" in start and "model.widths" in start


def test_confusion_helpers() -> None:
    matrix = torch.tensor([[3.0, 1.0], [0.0, 4.0]])
    image = confusion_image(matrix)
    assert image.shape == (3, 48, 48)
    assert torch.allclose(
        image[:, 0, 0],
        torch.tensor([1.0, 1.0, 1.0]) + (torch.tensor([0.03, 0.19, 0.42]) - 1) * 0.75,
    )
    assert torch.equal(
        image[:, 0, 24], torch.ones(3) + (torch.tensor([0.03, 0.19, 0.42]) - 1) * 0.25
    )
    table = confusion_table(matrix, ["a", "b"])
    assert table.splitlines()[2:] == ["| a | 3 | 1 |", "| b | 0 | 4 |"]
