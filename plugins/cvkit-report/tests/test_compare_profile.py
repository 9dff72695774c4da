"""cvkit compare (the runs table and what changed between the recipes) and cvkit profile."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
import torch

from cvkit import forward_flops, parameter_counts, restore

ROOT = Path(__file__).resolve().parents[3]


def test_compare_shows_the_differing_recipe_keys(tiny_runs, run_cli) -> None:
    runs_folder = tiny_runs["base"].parent
    result = run_cli("compare", str(runs_folder / "*"), "--json")
    assert result.exit_code == 0, result.output
    rows = {row["run"]: row for row in json.loads(result.stdout)}
    assert set(rows) == {"tiny/base", "tiny/fast"}
    assert rows["tiny/fast"]["optimizer.lr"] == 0.1 and rows["tiny/base"]["optimizer.lr"] == 0.05
    assert rows["tiny/fast"]["experiment.seed"] == 1 and rows["tiny/fast"]["seed"] == 1
    evaluation = json.loads((tiny_runs["base"] / "eval.json").read_text())
    base = rows["tiny/base"]
    assert base["params"] == evaluation["model"]["trainable_parameters"]
    assert base["flops"] == evaluation["model"]["flops_per_image"]
    assert base["test"] == evaluation["test"]["top1"]
    lines = [json.loads(t) for t in (tiny_runs["base"] / "metrics.jsonl").read_text().splitlines()]
    assert base["best_val"] == max(line["val/acc"] for line in lines)
    assert base["last_val"] == lines[-1]["val/acc"]
    assert base["wall_s"] == evaluation["training"]["wall_seconds"]
    # only what differs becomes a column
    assert "optimizer.momentum" not in base and "model.widths" not in base


def test_a_changed_augmentation_parameter_is_one_leaf_key_not_the_whole_list() -> None:
    """Two recipes whose augment.train differ in one crop's padding: the change is
    augment.train[0].padding (it was the whole augment.train list)."""
    from cvkit_report.runs import differing_settings, leaf_settings

    def recipe(padding: int) -> dict:
        return {
            "model": {"name": "simple_cnn", "widths": [8, 16]},
            "augment": {"train": [{"name": "random_crop", "padding": padding}, {"name": "hflip"}]},
            "callbacks": [{"name": "checkpoint", "monitor": "val/acc"}],
        }

    flat = leaf_settings(recipe(1))
    assert flat["augment.train[1].name"] == "hflip" and flat["model.widths"] == [8, 16]
    assert flat["callbacks[0].monitor"] == "val/acc"
    assert differing_settings([leaf_settings(recipe(1)), leaf_settings(recipe(4))]) == [
        "augment.train[0].padding"
    ]


def test_compare_sorts_and_prints_each_format(tiny_runs, run_cli) -> None:
    args = ["compare", str(tiny_runs["base"]), str(tiny_runs["fast"]), "--sort", "optimizer.lr"]
    table = run_cli(*args, "--descending")
    assert table.exit_code == 0, table.output
    assert "optimizer.lr" in table.stdout
    assert table.stdout.index("tiny/fast") < table.stdout.index("tiny/base")
    rows = list(csv.DictReader(io.StringIO(run_cli(*args, "--csv").stdout)))
    assert [row["run"] for row in rows] == ["tiny/base", "tiny/fast"]
    markdown = run_cli(*args, "--markdown").stdout.splitlines()
    assert markdown[0].startswith("| run | status |") and markdown[0].endswith("| optimizer.lr |")
    assert len(markdown) == 4
    bad = run_cli("compare", str(tiny_runs["base"]), "--sort", "speed")
    assert bad.exit_code == 2 and "--sort speed: no such column" in bad.stderr


def test_compare_lists_unfinished_runs_with_their_status(tiny_runs, run_cli, tmp_path) -> None:
    assert json.loads((tiny_runs["base"] / "status.json").read_text())["status"] == "finished"
    copy = tmp_path / "copy"  # as a run killed (SIGKILL) in its last epoch leaves it
    shutil.copytree(tiny_runs["base"], copy)
    (copy / "eval.json").unlink()
    (copy / "status.json").write_text('{"status": "running", "reason": null, "time": null}')
    failed = run_cli(
        "run",
        str(tiny_runs["base"] / "recipe.toml"),
        "--output",
        str(tmp_path / "failed"),
        "--set",
        "scheduler.warmup_epochs=1",
        "--set",
        "scheduler.warmup_start_factor=0",
    )
    assert failed.exit_code == 2  # an impossible setting, found before the first step
    result = run_cli("compare", str(copy), str(tmp_path / "failed"), "--json")
    assert sorted(row["status"] for row in json.loads(result.stdout)) == [
        "failed (0 epochs)",
        "stopped (3 epochs)",
    ]
    missing = run_cli("compare", str(tmp_path / "absent"))
    assert missing.exit_code == 2 and "no such run directory" in missing.stderr


def test_profile_of_a_run_measures_its_trained_model(tiny_runs, run_cli, registry) -> None:
    result = run_cli("profile", str(tiny_runs["base"]), "--json", "--repeats", "5", "--batch", "4")
    assert result.exit_code == 0, result.output
    profile = json.loads(result.stdout)
    model = restore(tiny_runs["base"], registry).model
    assert profile["parameters"] == parameter_counts(model)
    assert profile["flops_per_image"]["forward"] == forward_flops(model, torch.zeros(1, 3, 8, 8))
    assert profile["flops_per_image"]["training_step"] > profile["flops_per_image"]["forward"]
    assert profile["input_shape"] == [3, 8, 8] and profile["batch_size"] == 4
    assert profile["checkpoint_mb"] > profile["size_mb"]["fp32"] > 0
    assert (
        0
        < profile["latency_ms"]["p10"]
        <= profile["latency_ms"]["median"]
        <= profile["latency_ms"]["p90"]
    )
    assert profile["images_per_second"]["inference"] > 0
    text = run_cli("profile", str(tiny_runs["base"]), "--repeats", "3", "--batch", "4")
    assert f"parameters: {profile['parameters']['trainable']:,} trainable" in text.stdout


def test_profile_of_the_efficient_resnet_recipe(run_cli) -> None:
    recipe = ROOT / "recipes" / "efficient_resnet.toml"
    result = run_cli("profile", str(recipe), "--json", "--repeats", "2", "--batch", "2")
    assert result.exit_code == 0, result.output
    profile = json.loads(result.stdout)
    assert profile["parameters"] == {"trainable": 4_697_742, "total": 4_697_742}
    assert profile["input_shape"] == [3, 32, 32]
    assert profile["flops_per_image"]["forward"] > 1e9  # about 1.6 GFLOPs at 32x32


def test_profile_refuses_bad_input(run_cli, tmp_path) -> None:
    result = run_cli("profile", str(tmp_path / "nothing"))
    assert result.exit_code == 2 and "no such recipe, run directory or checkpoint" in result.stderr


def test_two_runs_are_tested_on_the_same_images_and_mcnemar_agrees_with_statsmodels(
    tmp_path, registry, run_cli
) -> None:
    """predictions.npz holds every test image's predicted class and true-class probability
    (their accuracy is eval.json's); McNemar's exact p is statsmodels'; the bootstrap
    interval is about the normal-theory one; runs on other images are refused."""
    import numpy as np

    tables = pytest.importorskip("statsmodels.stats.contingency_tables")  # with cvkit-study

    from cvkit import train
    from cvkit.testing import TINY_RECIPE

    recipe = tmp_path / "tiny.toml"
    recipe.write_text(TINY_RECIPE.format(runs=tmp_path.as_posix()))
    bigger = ["data.dataset.test_size=400", "experiment.epochs=2"]
    runs = {
        name: train(recipe, overrides=[*bigger, *sets], registry=registry, output=tmp_path / name)
        for name, sets in (("a", ["optimizer.lr=0.2"]), ("b", ["optimizer.lr=0.01"]))
    }
    outcome = {}
    for name, result in runs.items():
        with np.load(result.run_dir / "predictions.npz") as stored:
            right = stored["test_predicted"] == stored["test_labels"]
            probability = stored["test_true_probability"]
        assert len(right) == 400 and right.mean() == pytest.approx(
            result.evaluation["test"]["top1"]
        )
        assert ((probability >= 0) & (probability <= 1)).all()
        outcome[name] = right
    table = [
        [np.sum(outcome["a"] & outcome["b"]), np.sum(outcome["a"] & ~outcome["b"])],
        [np.sum(~outcome["a"] & outcome["b"]), np.sum(~outcome["a"] & ~outcome["b"])],
    ]
    assert table[0][1] + table[1][0] > 0  # the runs disagree on some images
    done = run_cli(
        "compare", str(tmp_path / "a"), str(tmp_path / "b"), "--test", "mcnemar", "--json"
    )
    assert done.exit_code == 0, done.output
    result = json.loads(done.output)
    assert result["split"] == "test" and result["images"] == 400
    assert result["p_value"] == pytest.approx(tables.mcnemar(table, exact=True).pvalue, rel=1e-9)
    assert (result["only_a_right"], result["only_b_right"]) == (table[0][1], table[1][0])
    interval = run_cli(
        "compare", str(tmp_path / "a"), str(tmp_path / "b"), "--test", "bootstrap", "--json"
    )
    low, high = json.loads(interval.output)["ci95"]
    difference = outcome["a"].astype(float) - outcome["b"].astype(float)
    half = 1.96 * difference.std(ddof=1) / np.sqrt(400)
    assert low < difference.mean() < high
    assert (high - low) / 2 == pytest.approx(half, rel=0.1)
    other = train(recipe, overrides=["data.dataset.test_size=401", "experiment.epochs=1"],
                  registry=registry, output=tmp_path / "other")  # fmt: skip
    refused = run_cli("compare", str(tmp_path / "a"), str(other.run_dir), "--test", "mcnemar")
    assert refused.exit_code == 2 and "not evaluated on the same test images" in refused.stderr
