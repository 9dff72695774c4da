"""cvkit run end to end: the run directory, eval, predict, faults (NaN, Ctrl-C, existing output)."""

from __future__ import annotations

import csv
import hashlib
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from cvkit.commands.run import resume, train
from cvkit.engine.checkpoint import load_checkpoint
from cvkit.errors import CvkitError
from cvkit.recipe.loading import load_recipe
from cvkit.registry.loading import load_registry

import engine_plugin
from helpers import run_cvkit


@pytest.fixture(scope="module")
def registry():
    return load_registry(modules=[engine_plugin])


@pytest.fixture(scope="module")
def finished(tmp_path_factory, registry):
    """One finished tiny run, shared by the read-only tests below."""
    from cvkit.testing import TINY_RECIPE

    folder = tmp_path_factory.mktemp("finished")
    recipe = folder / "tiny.toml"
    recipe.write_text(TINY_RECIPE.format(runs=(folder / "runs").as_posix()))
    return train(recipe, registry=registry), recipe


def test_a_run_writes_the_full_run_directory(finished, registry) -> None:
    result, recipe = finished
    run = result.run_dir
    assert run.parent == recipe.parent / "runs" / "tiny"
    for name in (
        "recipe.toml",
        "env.json",
        "run.log",
        "metrics.jsonl",
        "eval.json",
        "checkpoints/last.pt",
        "checkpoints/best.pt",
    ):
        assert (run / name).is_file(), name
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert load_recipe(run / "recipe.toml", registry=registry) == load_recipe(
        recipe, registry=registry
    )
    env = json.loads((run / "env.json").read_text())
    assert env["torch"] == torch.__version__ and env["plugins"]["cvkit"] and env["device"] == "cpu"
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2, 3]
    assert {"train/loss", "train/acc", "val/loss", "val/acc", "val/top5", "lr"} <= set(lines[0])
    evaluation = json.loads((run / "eval.json").read_text())
    assert evaluation == result.evaluation and evaluation["weights"].startswith("best (epoch ")
    test = evaluation["test"]
    assert test["samples"] == 32 and len(test["confusion_matrix"]) == 4
    assert sum(map(sum, test["confusion_matrix"])) == 32
    assert set(test) >= {
        "top1",
        "top5",
        "loss",
        "per_class",
        "macro_precision",
        "macro_recall",
        "macro_f1",
        "seconds",
        "images_per_second",
    }
    assert set(test["per_class"]["class_0"]) == {"precision", "recall", "f1", "support"}
    assert sum(row["support"] for row in test["per_class"].values()) == 32
    assert test["seconds"] > 0 and test["images_per_second"] == pytest.approx(32 / test["seconds"])
    assert evaluation["val"]["samples"] == 16
    from cvkit.engine.profiling import forward_flops, parameter_counts
    from cvkit.engine.trained_model import restore

    model = restore(run, registry).model
    assert evaluation["seed"] == 0
    assert evaluation["model"] == {
        "trainable_parameters": parameter_counts(model)["trainable"],
        "total_parameters": parameter_counts(model)["total"],
        "input_shape": [3, 8, 8],
        "flops_per_image": forward_flops(model, torch.zeros(1, 3, 8, 8)),
    }
    assert evaluation["model"]["flops_per_image"] > 0
    training = evaluation["training"]
    epochs = sum(line["epoch_seconds"] for line in lines)
    assert training["seconds"] == pytest.approx(epochs)
    assert training["wall_seconds"] >= training["seconds"] > 0
    assert training["images_per_second"] == pytest.approx(3 * 80 / training["seconds"])
    assert "epoch 3/3" in (run / "run.log").read_text()


def test_checkpoints_load_with_weights_only_and_carry_the_recipe(finished) -> None:
    run = finished[0].run_dir
    checkpoint = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert checkpoint["epoch"] == 3 and checkpoint["batch"] == 0 and checkpoint["step"] == 3 * 5
    assert checkpoint["classes"] == [f"class_{i}" for i in range(4)] and checkpoint[
        "image_size"
    ] == [8, 8]
    assert checkpoint["recipe"] == (run / "recipe.toml").read_text().split("\n", 1)[1]


def test_cvkit_run_prints_the_accuracies(tiny_recipe, run_cli, tmp_path) -> None:
    result = run_cli(
        "run", str(tiny_recipe), "--output", str(tmp_path / "out"), "--set", "experiment.epochs=1"
    )
    assert result.exit_code == 0, result.output
    assert f"run: {tmp_path / 'out'}" in result.stdout
    assert "val accuracy: " in result.stdout and "test accuracy: " in result.stdout


def test_an_existing_output_directory_is_never_overwritten(tiny_recipe, run_cli, tmp_path) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    result = run_cli("run", str(tiny_recipe), "--output", str(out))
    assert result.exit_code == 2 and "already exists and is not empty" in result.stderr
    assert [p.name for p in out.iterdir()] == ["keep.txt"] and (
        out / "keep.txt"
    ).read_text() == "precious"


def test_eval_reproduces_eval_json(finished, run_cli) -> None:
    run = finished[0].run_dir
    result = run_cli("eval", str(run), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    expected = json.loads((run / "eval.json").read_text())
    assert data["checkpoint"].endswith("best.pt")
    for split in ("val", "test"):
        assert data[split]["top1"] == expected[split]["top1"]
        assert data[split]["confusion_matrix"] == expected[split]["confusion_matrix"]
    assert data["model"] == expected["model"] and data["seed"] == expected["seed"]


def test_eval_of_one_split_on_a_chosen_device(finished, run_cli) -> None:
    run = finished[0].run_dir
    expected = json.loads((run / "eval.json").read_text())
    test_only = run_cli("eval", str(run), "--json", "--split", "test", "--device", "cpu")
    assert test_only.exit_code == 0, test_only.output
    data = json.loads(test_only.stdout)
    assert "val" not in data and data["calibration"] is None
    assert data["test"]["confusion_matrix"] == expected["test"]["confusion_matrix"]
    text = run_cli("eval", str(run), "--split", "val")
    assert (
        text.exit_code == 0 and "val accuracy" in text.stdout and "test accuracy" not in text.stdout
    )
    missing = run_cli("eval", str(run), "--device", "nosuch")
    assert missing.exit_code == 2 and "nosuch" in missing.stderr


def test_eval_of_a_checkpoint_that_does_not_fit_the_model_names_keys_and_shapes(
    finished, run_cli
) -> None:
    run = finished[0].run_dir
    result = run_cli("eval", str(run / "checkpoints" / "last.pt"), "--set", "model.widths=[8, 12]")
    assert result.exit_code == 2
    assert (
        "weights do not fit SimpleCNN" in result.stderr
        and "shape differs: classifier.weight (4, 16) vs (4, 12)" in result.stderr
    )
    other = run_cli("eval", str(run), "--set", "model.widths=[8]")
    assert other.exit_code == 2
    assert (
        "unexpected: features.4.weight, features.5.bias" in other.stderr
        and "(6 in all)" in other.stderr
    )


def test_predict_writes_labels_and_probabilities(finished, tmp_path) -> None:
    from cvkit.builtins.synthetic import SyntheticImages
    from cvkit.commands.predict import predict

    run = finished[0].run_dir
    test = SyntheticImages(
        num_classes=4, image_size=8, train_size=96, test_size=32, noise=0.3
    ).load("test")
    cifar_rows = test.images.flatten(1).numpy()  # (N, 3*8*8), channel-major as in CIFAR's pickles
    with (tmp_path / "test.pkl").open("wb") as stream:
        pickle.dump({b"data": cifar_rows, b"ids": [f"x{i}".encode() for i in range(32)]}, stream)
    np.save(tmp_path / "nhwc.npy", test.images.permute(0, 2, 3, 1).numpy())
    torch.save(test.images, tmp_path / "nchw.pt")
    outputs = {}
    for name in ("test.pkl", "nhwc.npy", "nchw.pt"):
        out = tmp_path / f"{name}.csv"
        assert predict(run, tmp_path / name, out, probabilities=True) == 32
        outputs[name] = list(csv.DictReader(out.open()))
    rows = outputs["test.pkl"]
    assert [r["id"] for r in rows] == [f"x{i}" for i in range(32)]
    assert all(abs(sum(float(r[f"p_class_{k}"]) for k in range(4)) - 1) < 1e-4 for r in rows)
    labels = [r["label"] for r in rows]
    assert (
        labels
        == [r["label"] for r in outputs["nhwc.npy"]]
        == [r["label"] for r in outputs["nchw.pt"]]
    )
    accuracy = np.mean(
        [label == f"class_{int(y)}" for label, y in zip(labels, test.labels, strict=True)]
    )
    assert accuracy == pytest.approx(json.loads((run / "eval.json").read_text())["test"]["top1"])
    predict(run, tmp_path / "test.pkl", tmp_path / "indices.csv", labels="index")
    indices = list(csv.DictReader((tmp_path / "indices.csv").open()))
    assert [r["id"] for r in indices] == [f"x{i}" for i in range(32)]
    assert [f"class_{r['label']}" for r in indices] == labels


def test_predict_labels_index_on_the_command_line(finished, tmp_path, run_cli) -> None:
    inputs = tmp_path / "images.npy"
    np.save(inputs, np.zeros((3, 8, 8, 3), dtype=np.uint8))
    out = tmp_path / "out.csv"
    result = run_cli(
        "predict", str(finished[0].run_dir), str(inputs), "--out", str(out), "--labels", "index"
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["id", "label"] and [r[0] for r in rows[1:]] == ["0", "1", "2"]
    assert all(r[1] in {"0", "1", "2", "3"} for r in rows[1:])
    bad = run_cli(
        "predict", str(finished[0].run_dir), str(inputs), "--out", str(out), "--labels", "ids"
    )
    assert bad.exit_code == 2 and "'ids' is not one of 'name', 'index'" in bad.output


def test_predict_on_an_image_folder_resizes_to_the_training_size(
    finished, tmp_path, run_cli
) -> None:
    from PIL import Image

    folder = tmp_path / "images" / "nested"
    folder.mkdir(parents=True)
    for i in range(3):
        Image.fromarray(np.full((20, 30, 3), 60 * i, dtype=np.uint8)).save(folder / f"{i}.png")
    out = tmp_path / "folder.csv"
    result = run_cli(
        "predict", str(finished[0].run_dir), str(tmp_path / "images"), "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    assert [row[0] for row in csv.reader(out.open())] == [
        "id",
        "nested/0.png",
        "nested/1.png",
        "nested/2.png",
    ]
    again = run_cli(
        "predict", str(finished[0].run_dir), str(tmp_path / "images"), "--out", str(out)
    )
    assert again.exit_code == 2 and "--overwrite" in again.stderr


def test_predict_on_one_image_file_gives_its_row(finished, tmp_path, run_cli) -> None:
    """An image file was refused: "expected an image folder, .npy, .pt or .pkl file"."""
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(np.full((20, 30, 3), 90 * i, dtype=np.uint8)).save(folder / f"{i}.png")
    one, whole = tmp_path / "one.csv", tmp_path / "whole.csv"
    result = run_cli("predict", str(finished[0].run_dir), str(folder / "1.png"), "--out", str(one))
    assert result.exit_code == 0, result.output
    assert (
        run_cli("predict", str(finished[0].run_dir), str(folder), "--out", str(whole)).exit_code
        == 0
    )
    rows = list(csv.reader(whole.open()))
    assert list(csv.reader(one.open())) == [rows[0], rows[2]]  # the same row as in the folder


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (np.zeros((2, 5), dtype=np.uint8), "rows of 5 values are not square 3-channel images"),
        (np.zeros((2, 8, 8, 3), dtype=np.float32), "expected uint8 images"),
        (np.zeros((2, 4, 8, 8), dtype=np.uint8), "cannot read shape (2, 4, 8, 8)"),
    ],
)
def test_predict_explains_unreadable_arrays(finished, tmp_path, run_cli, content, message) -> None:
    np.save(tmp_path / "bad.npy", content)
    result = run_cli(
        "predict",
        str(finished[0].run_dir),
        str(tmp_path / "bad.npy"),
        "--out",
        str(tmp_path / "o.csv"),
    )
    assert result.exit_code == 2 and message in result.stderr


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(
    tiny_recipe, run_cli, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("CVKIT_PLUGINS", "engine_plugin")
    out = tmp_path / "nan"
    result = run_cli(
        "run",
        str(tiny_recipe),
        "--output",
        str(out),
        "--set",
        'callbacks=[{name = "poison_lr", epoch = 2, batch = 1}, { name = "checkpoint" }]',
    )
    assert result.exit_code == 3, result.output
    assert (
        "training loss became nan in epoch 2" in result.stderr and "Traceback" not in result.stderr
    )
    last = load_checkpoint(out / "checkpoints" / "last.pt")
    assert last["epoch"] == 1 and all(torch.isfinite(t).all() for t in last["model"].values())
    assert "training loss became nan" in (out / "run.log").read_text()
    assert not (out / "eval.json").exists()


def without_timing(evaluation: Any) -> Any:
    """An evaluation (eval.json) less its wall times, which differ between two evaluations
    of the same weights: what must match between an uninterrupted and a resumed run."""
    if isinstance(evaluation, dict):
        return {
            k: without_timing(v)
            for k, v in evaluation.items()
            if k not in {"seconds", "wall_seconds", "images_per_second"}
        }
    return evaluation


def run_summary(run: Path) -> dict:
    """What must match between an uninterrupted and an interrupted-and-resumed run."""
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    drop = {"time", "epoch_seconds", "images_per_second"}
    return {
        "metrics": [{k: v for k, v in line.items() if k not in drop} for line in lines],
        "eval": without_timing(json.loads((run / "eval.json").read_text())),
        "weights": {
            k: v.tolist()
            for k, v in load_checkpoint(run / "checkpoints" / "last.pt")["model"].items()
        },
    }


def test_ctrl_c_saves_last_pt_and_the_resumed_run_ends_as_an_uninterrupted_one(
    tiny_recipe, registry, tmp_path
) -> None:
    from cvkit.errors import RunInterrupted

    callbacks = '[{ name = "interrupt", epoch = 2, batch = 3 }, { name = "metrics_jsonl" }, { name = "checkpoint" }]'
    whole = train(
        tiny_recipe,
        overrides=[f"callbacks={callbacks}", "callbacks[0].epoch=9"],
        output=tmp_path / "whole",
        registry=registry,
    )
    with pytest.raises(
        RunInterrupted, match=f"resume with: cvkit run --resume {tmp_path / 'cut'}"
    ) as error:
        train(
            tiny_recipe,
            overrides=[f"callbacks={callbacks}"],
            output=tmp_path / "cut",
            registry=registry,
        )
    assert error.value.exit_code == 130
    saved = load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt")
    assert (saved["epoch"], saved["batch"]) == (1, 3)
    with pytest.raises(Exception, match="changes callbacks"):
        resume(tmp_path / "cut", overrides=["callbacks[0].epoch=9"], registry=registry)
    resumed = resume(tmp_path / "cut", registry=registry)
    cut, full = run_summary(resumed.run_dir), run_summary(whole.run_dir)
    assert cut["metrics"] == full["metrics"]
    assert cut["weights"] == full["weights"]
    assert cut["eval"] == full["eval"]
    assert "resumes" in json.loads((tmp_path / "cut" / "env.json").read_text())


def test_resuming_a_finished_run_is_refused(finished, registry) -> None:
    with pytest.raises(Exception, match=r"the run is finished \(it has its eval\.json\)"):
        resume(finished[0].run_dir, registry=registry)


def test_more_epochs_extend_a_finished_run_on_a_schedule_over_all_of_them(
    tiny_recipe, registry, tmp_path
) -> None:
    """--resume RUN --set experiment.epochs=5 of a finished 3-epoch run trains epochs 4-5
    from its last.pt on the 5-epoch schedule (at its learning rates of epochs 4-5), keeps
    the 3-epoch eval.json beside the new one and says so in the log."""
    callbacks = 'callbacks=[{ name = "metrics_jsonl" }, { name = "checkpoint" }]'
    run = train(tiny_recipe, overrides=[callbacks], output=tmp_path / "run", registry=registry)
    five = train(
        tiny_recipe,
        overrides=[callbacks, "experiment.epochs=5"],
        output=tmp_path / "five",
        registry=registry,
    )
    extended = resume(run.run_dir, overrides=["experiment.epochs=5"], registry=registry)
    assert extended.evaluation["epochs"] == 5
    lines = [json.loads(line) for line in (run.run_dir / "metrics.jsonl").open()]
    fresh = [json.loads(line) for line in (five.run_dir / "metrics.jsonl").open()]
    assert [line["epoch"] for line in lines] == [1, 2, 3, 4, 5]
    assert [line["lr"] for line in lines[3:]] == pytest.approx([line["lr"] for line in fresh[3:]])
    assert lines[3]["lr"] > lines[2]["lr"]  # the 3-epoch schedule had ended lower
    kept = list(run.run_dir.glob("eval.before-*.json"))
    assert len(kept) == 1 and json.loads(kept[0].read_text())["epochs"] == 3
    assert "extending" in (run.run_dir / "run.log").read_text()
    with pytest.raises(CvkitError, match=r"give it more epochs .* --init"):
        resume(run.run_dir, overrides=["experiment.epochs=4"], registry=registry)


def test_run_usage_errors(run_cli, tiny_recipe, tmp_path) -> None:
    assert run_cli("run").exit_code == 2
    assert run_cli("run", str(tiny_recipe), "--resume", str(tmp_path)).exit_code == 2
    result = run_cli("run", "--resume", str(tmp_path))
    assert result.exit_code == 2 and "not a run directory" in result.stderr


@pytest.mark.parametrize(
    ("make", "message"),
    [
        ("corrupt", "cannot decode image"),
        ("empty", "Couldn't find any class folder"),
        ("classless", "Found no valid file for the classes"),
    ],
)
def test_bad_image_folders_are_named(run_cli, tiny_recipe, tmp_path, make, message) -> None:
    from PIL import Image

    root = tmp_path / "data"
    root.mkdir()
    if make == "corrupt":
        for label in ("a", "b"):
            (root / label).mkdir()
            for i in range(12):
                Image.fromarray(np.full((8, 8, 3), i, dtype=np.uint8)).save(
                    root / label / f"{i}.png"
                )
        (root / "b" / "bad.png").write_bytes(b"\x89PNG broken")
    elif make == "classless":
        (root / "a").mkdir()
    result = run_cli(
        "run",
        str(tiny_recipe),
        "--output",
        str(tmp_path / "out"),
        "--set",
        f'data.dataset={{ name = "imagefolder", root = "{root}" }}',
        "--set",
        "data.cache=false",
    )
    assert result.exit_code == 2 and message in result.stderr, result.stderr
    if make == "corrupt":
        assert str(root / "b" / "bad.png") in result.stderr


def _image_folder(root: Path) -> Path:
    from PIL import Image

    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for i in range(12):
            Image.fromarray(
                np.full((8, 8, 3), 10 * i + (120 if label == "b" else 0), dtype=np.uint8)
            ).save(root / label / f"{i}.png")
    return root


def test_recipe_paths_are_relative_to_the_recipe_and_runs_evaluate_from_anywhere(
    tmp_path: Path,
) -> None:
    from cvkit.testing import TINY_RECIPE

    _image_folder(tmp_path / "project" / "data" / "train")
    recipes = tmp_path / "project" / "recipes"
    recipes.mkdir()
    text = TINY_RECIPE.format(runs="runs").replace(
        '{ name = "synthetic", num_classes = 4, image_size = 8, train_size = 96, test_size = 32, noise = 0.3 }',
        '{ name = "imagefolder", root = "../data/train" }',
    )
    assert 'root = "../data/train"' in text
    (recipes / "folder.toml").write_text(text + '\n[trainer]\neval_weights = "last"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = tmp_path / "run"
    started = run_cvkit(
        "run",
        str(recipes / "folder.toml"),
        "--set",
        "experiment.epochs=1",
        "--set",
        "data.val_split=4",
        "--set",
        "data.cache=false",
        "--output",
        str(run),
        cwd=elsewhere,
    )
    assert started.returncode == 0, started.stderr
    stored = (run / "recipe.toml").read_text()
    assert f'root = "{(tmp_path / "project" / "data" / "train").as_posix()}"' in stored
    assert (elsewhere / "runs").exists() is False  # --output given; output_dir stays cwd-relative
    other = tmp_path / "other"
    other.mkdir()
    evaluated = run_cvkit("eval", str(run), cwd=other)
    assert evaluated.returncode == 0, evaluated.stderr
    # a root that does not exist is named, resolved, as missing
    (recipes / "missing.toml").write_text(text.replace("../data/train", "../data/nowhere"))
    missing = run_cvkit(
        "run", str(recipes / "missing.toml"), "--output", str(tmp_path / "m"), cwd=other
    )
    assert missing.returncode == 2
    assert f"{tmp_path / 'project' / 'data' / 'nowhere'} does not exist" in missing.stderr


def test_the_run_directory_records_its_status(tiny_recipe, run_cli, tmp_path) -> None:
    from cvkit.commands.rundir import run_status

    failed = run_cli(
        "run",
        str(tiny_recipe),
        "--output",
        str(tmp_path / "failed"),
        "--set",
        "scheduler.warmup_epochs=1",
        "--set",
        "scheduler.warmup_start_factor=0",
    )
    assert failed.exit_code == 2
    status = run_status(tmp_path / "failed")
    assert status["status"] == "failed" and "warmup_start_factor" in status["reason"]
    finished = run_cli("run", str(tiny_recipe), "--output", str(tmp_path / "ok"))
    assert finished.exit_code == 0, finished.output
    assert run_status(tmp_path / "ok")["status"] == "finished"
    assert run_status(tmp_path)["status"] == "unknown"  # not a run directory


def test_predict_with_an_ensemble_tta_topk_and_json(
    finished, registry, tmp_path, run_cli, caplog
) -> None:
    from cvkit.builtins.synthetic import SyntheticImages
    from cvkit.commands.evaluate import evaluate

    run, recipe = finished[0].run_dir, finished[1]
    unflipped = train(  # a second member, trained without the flip augmentation
        recipe, unset=["augment.train[1]"], output=tmp_path / "unflipped", registry=registry
    ).run_dir
    test = SyntheticImages(
        num_classes=4, image_size=8, train_size=96, test_size=32, noise=0.3
    ).load("test")
    np.save(tmp_path / "test.npy", test.images.permute(0, 2, 3, 1).numpy())
    out = tmp_path / "p.json"
    result = run_cli(
        "predict",
        str(run),
        str(unflipped),
        str(tmp_path / "test.npy"),
        "--out",
        str(out),
        "--ensemble",
        "--tta",
        "flip",
        "--topk",
        "3",
        "--batch-size",
        "5",
        "--device",
        "cpu",
        "--probs",
    )
    assert result.exit_code == 0, result.output
    warned = [r.getMessage() for r in caplog.records if r.getMessage().startswith("--tta flip")]
    assert len(warned) == 1 and str(unflipped) in warned[0] and "without a flip" in warned[0]
    rows = json.loads(out.read_text())
    assert len(rows) == 32 and [r["id"] for r in rows] == [str(i) for i in range(32)]
    for row in rows:
        probs = sorted(row["probs"].values(), reverse=True)
        assert [t["prob"] for t in row["top"]] == pytest.approx(probs[:3], abs=1e-6)
        assert row["label"] == row["top"][0]["label"] and sum(probs) == pytest.approx(1, abs=1e-4)
    # the same soft vote as cvkit eval's on the same images
    accuracy = np.mean(
        [r["label"] == f"class_{int(y)}" for r, y in zip(rows, test.labels, strict=True)]
    )
    voted = evaluate([run, unflipped], ensemble=True, tta=["flip"], registry=registry)
    assert accuracy == pytest.approx(voted["test"]["top1"])
    lines = tmp_path / "p.jsonl"
    assert (
        run_cli("predict", str(run), str(tmp_path / "test.npy"), "--out", str(lines)).exit_code == 0
    )
    assert len(lines.read_text().splitlines()) == 32
    csv_out = tmp_path / "top.csv"
    run_cli("predict", str(run), str(tmp_path / "test.npy"), "--out", str(csv_out), "--topk", "2")
    assert next(csv.reader(csv_out.open())) == ["id", "label", "prob", "label_2", "prob_2"]
    several = run_cli(
        "predict",
        str(run),
        str(unflipped),
        str(tmp_path / "test.npy"),
        "--out",
        str(tmp_path / "x.csv"),
    )
    assert several.exit_code == 2 and "add --ensemble" in several.stderr


def test_predict_reads_a_folder_in_chunks(finished, tmp_path, monkeypatch) -> None:
    from PIL import Image

    import cvkit.commands.predict as predicting

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(7):
        Image.fromarray(np.full((8, 8, 3), 30 * i, dtype=np.uint8)).save(folder / f"{i}.png")
    whole = tmp_path / "whole.csv"
    predicting.predict(finished[0].run_dir, folder, whole, probabilities=True)
    decoded = []
    decode = predicting.decode_image_file
    monkeypatch.setattr(predicting, "decode_image_file", lambda *a: decoded.append(a) or decode(*a))
    monkeypatch.setattr(predicting, "CHUNK_IMAGES", 3)
    count, chunks = predicting.input_chunks(folder, 3)
    assert count == 7 and not decoded  # nothing decoded before it is needed
    assert [len(ids) for _, ids in chunks] == [3, 3, 1]
    chunked = tmp_path / "chunked.csv"
    predicting.predict(finished[0].run_dir, folder, chunked, probabilities=True)
    assert chunked.read_text() == whole.read_text()


def test_val_every_validates_every_n_epochs_and_the_last(tiny_recipe, registry, tmp_path) -> None:
    callbacks = (
        'callbacks=[{ name = "metrics_jsonl" }, { name = "checkpoint" }, '
        '{ name = "early_stopping", patience = 5 }]'
    )
    result = train(
        tiny_recipe,
        overrides=["experiment.epochs=5", "trainer.val_every=2", callbacks],
        output=tmp_path / "run",
        registry=registry,
    )
    lines = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").open()]
    assert [line["epoch"] for line in lines if "val/acc" in line] == [2, 4, 5]
    assert all("train/loss" in line for line in lines) and len(lines) == 5
    best = load_checkpoint(result.run_dir / "checkpoints" / "best.pt")["epoch"]
    assert best in (2, 4, 5)


def test_the_final_evaluation_reuses_the_last_validation_of_the_same_weights(
    tiny_recipe, registry, tmp_path, monkeypatch, run_cli
) -> None:
    """With the last epoch's weights (eval_weights = "last", or best.pt from the last epoch)
    and no TTA, the validation split is not run again; its metrics are those cvkit eval
    computes afresh."""
    import cvkit.engine.stage as stage

    passes = []
    original = stage.collect_logits

    def counted(model, loader, *args, **kwargs):
        passes.append(kwargs.get("progress"))
        return original(model, loader, *args, **kwargs)

    monkeypatch.setattr(stage, "collect_logits", counted)
    result = train(
        tiny_recipe,
        overrides=["trainer.eval_weights='last'"],
        output=tmp_path / "last",
        registry=registry,
    )
    assert passes == ["evaluating test"]
    again = json.loads(run_cli("eval", str(result.run_dir), "--json").stdout)
    saved = json.loads((result.run_dir / "eval.json").read_text())
    for split in ("val", "test"):
        assert saved[split]["confusion_matrix"] == again[split]["confusion_matrix"]
        assert saved[split]["loss"] == pytest.approx(again[split]["loss"], rel=1e-6)
    passes.clear()
    train(
        tiny_recipe,
        overrides=["trainer.eval_weights='last'", "trainer.tta=['flip']"],
        output=tmp_path / "tta",
        registry=registry,
    )
    assert passes == ["evaluating val", "evaluating test"]  # other views: run again


def test_init_trains_a_new_run_from_a_finished_run_s_weights(
    finished, tiny_recipe, tmp_path, run_cli
) -> None:
    source = finished[0].run_dir
    out = tmp_path / "further"
    settings = ["experiment.epochs=1", "optimizer.lr=1e-12", "optimizer.momentum=0"]
    args = [x for s in settings for x in ("--set", s)]
    result = run_cli("run", str(tiny_recipe), "--init", str(source), "--output", str(out), *args)
    assert result.exit_code == 0, result.output
    best = source / "checkpoints" / "best.pt"
    assert f"experiment.init: model from {best}" in (out / "run.log").read_text()
    start = load_checkpoint(source / "checkpoints" / "best.pt")["model"]
    after = load_checkpoint(out / "checkpoints" / "last.pt")["model"]
    trained = [k for k, v in start.items() if v.is_floating_point() and "running" not in k]
    assert trained and all(torch.allclose(after[k], start[k], atol=1e-6) for k in trained)
    import tomllib

    recorded = tomllib.loads((out / "recipe.toml").read_text())["experiment"]["init"]
    assert recorded == source.absolute().as_posix()  # a resume starts from its own last.pt
    missing = run_cli("run", str(tiny_recipe), "--init", str(tmp_path / "nothing"))
    assert missing.exit_code == 2 and "checkpoint not found" in missing.stderr
    staged = run_cli("run", "--resume", str(source), "--init", str(source))
    assert staged.exit_code == 2 and "--init starts a new run" in staged.stderr
