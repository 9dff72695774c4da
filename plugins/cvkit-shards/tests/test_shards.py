"""cvkit data convert / info and dataset/shards: an image folder of mixed sizes and formats
and a registered dataset into shards; idempotent and interrupted conversions; bad inputs in
one line; runs that train, evaluate and resume exactly from shards, whatever the workers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cvkit.testing import cvkit_with_faults, fault_callbacks, stopped_and_continued
from cvkit_shards import Shards
from cvkit_shards.convert import convert, folder_source
from cvkit_shards.layout import MANIFEST

CLASSES = ("cat", "dog", "owl")


def photo_folder(root: Path, counts: dict[str, int]) -> Path:
    """``root/<split>/<class>/<i>.<jpg|png|bmp>``: random images of 20-60 px a side."""
    rng = np.random.default_rng(0)
    for split, count in counts.items():
        for name in CLASSES:
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                size = (int(rng.integers(20, 60)), int(rng.integers(20, 60)), 3)
                image = Image.fromarray(rng.integers(0, 256, size, dtype=np.uint8))
                image.save(folder / f"{i}.{('jpg', 'png', 'bmp')[i % 3]}")
    return root


RECIPE = """
[experiment]
name = "shards"
seed = 0
epochs = 2
output_dir = "{runs}"

[data]
dataset = {{ name = "shards", root = "{root}", image_size = [12, 12] }}
batch_size = 8
val_split = 6
workers = {workers}

[model]
name = "simple_cnn"
widths = [8, 16]

[optimizer]
name = "sgd"
lr = 0.05
momentum = 0.9

[loss]
name = "cross_entropy"

[[augment.train]]  # drawn for the stored image (20-60 px) and cropped as it is decoded
name = "random_resized_crop_per_image"
size = 12
scale = [0.25, 1.0]

[[augment.train]]
name = "hflip"

[[augment.train]]
name = "normalize"
mean = [0.5, 0.5, 0.5]
std = [0.25, 0.25, 0.25]

[[augment.eval]]
name = "normalize"
mean = [0.5, 0.5, 0.5]
std = [0.25, 0.25, 0.25]
"""


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    """36 training and 12 validation images (3 classes) converted, 10 per shard."""
    base = tmp_path_factory.mktemp("shards")
    source = photo_folder(base / "photos", {"train": 12, "val": 4})
    out = base / "out"
    manifest, written = convert(folder_source(source, 10), out, workers=2)
    assert written and manifest["splits"]["train"]["images"] == 36
    return out


def test_a_folder_converts_keeping_its_files_and_a_second_run_does_nothing(shards, run_cli) -> None:
    """JPEG and PNG files are stored as their bytes, BMP as PNG; counts per split and class,
    sizes in the manifest; convert again: nothing to do; info describes it."""
    manifest = json.loads((shards / MANIFEST).read_text())
    assert manifest["classes"] == list(CLASSES)
    train = manifest["splits"]["train"]
    assert train["per_class"] == [12, 12, 12] and len(train["shards"]) == 4
    assert manifest["splits"]["val"]["images"] == 12
    data = Shards(str(shards), image_size=[12, 12]).load("train")
    reader = data.images.source
    photos = shards.with_name("photos") / "train" / "cat"
    row = {path.name: k for k, path in enumerate(sorted(photos.iterdir()))}  # in path order
    assert reader.encoded(row["1.png"]) == (photos / "1.png").read_bytes()
    assert reader.encoded(row["0.jpg"]) == (photos / "0.jpg").read_bytes()
    bmp_row = reader.encoded(row["2.bmp"])
    assert bmp_row[:8] == b"\x89PNG\r\n\x1a\n"  # the BMP, re-encoded losslessly
    with Image.open(photos / "2.bmp") as bmp:
        expected = torch.from_numpy(np.asarray(bmp.convert("RGB")).copy()).permute(2, 0, 1)
    height, width = expected.shape[1:]
    at_own_size = Shards(str(shards), image_size=[height, width]).load("train")
    assert torch.equal(at_own_size.images[row["2.bmp"]], expected)
    assert data.labels.tolist() == [0] * 12 + [1] * 12 + [2] * 12
    again = run_cli("data", "convert", str(shards.with_name("photos")), str(shards))
    assert again.exit_code == 0 and "already converted (train 36, val 12 images)" in again.output
    info = run_cli("data", "info", str(shards))
    assert info.exit_code == 0, info.output
    assert "train: 36 images" in info.output and "per class: cat 12, dog 12, owl 12" in info.output


def test_a_registered_dataset_converts_losslessly(tmp_path, run_cli, registry) -> None:
    table = (
        '{ name = "synthetic", num_classes = 3, image_size = 8, train_size = 20, test_size = 6 }'
    )
    out = tmp_path / "synthetic"
    done = run_cli("data", "convert", table, str(out), "--workers", "0", "--shard-size", "8")
    assert done.exit_code == 0, done.output
    params = {"num_classes": 3, "image_size": 8, "train_size": 20, "test_size": 6}
    original = registry.build(registry.spec("dataset", {"name": "synthetic", **params})).load(
        "test"
    )
    converted = Shards(str(out)).load("test")  # one size stored: no image_size needed
    assert torch.equal(converted.first(6), original.images) and torch.equal(
        converted.labels, original.labels
    )


def test_an_interrupted_conversion_is_no_shard_folder_and_continues(
    tmp_path, monkeypatch, run_cli
) -> None:
    """A failure at the third shard leaves OUT absent and OUT.partial with two complete
    shards, which a reader refuses; the next run writes only the rest."""
    import cvkit_shards.convert as conversion

    source = folder_source(photo_folder(tmp_path / "photos", {"train": 4}), 3)
    out = tmp_path / "out"
    real, written = conversion.write_shard, []

    def failing(work, partial):
        if work.number == 2 and not written:
            written.append(work.number)
            raise KeyboardInterrupt
        return real(work, partial)

    monkeypatch.setattr(conversion, "write_shard", failing)
    with pytest.raises(KeyboardInterrupt):
        convert(source, out, workers=0)
    assert not out.exists() and (tmp_path / "out.partial" / "train" / "shard-00001").is_dir()
    refused = run_cli("data", "info", str(out))
    assert refused.exit_code == 2 and "no such folder" in refused.output
    partial = run_cli("data", "info", str(tmp_path / "out.partial"))
    assert partial.exit_code == 2 and "not a shard folder" in partial.output
    kept = (tmp_path / "out.partial" / "train" / "shard-00000").stat().st_mtime_ns
    manifest, done = convert(source, out, workers=0)
    assert done and manifest["splits"]["train"]["images"] == 12
    assert (out / "train" / "shard-00000").stat().st_mtime_ns == kept


def test_bad_inputs_are_one_line_and_exit_2(tmp_path, shards, run_cli) -> None:
    photos = photo_folder(tmp_path / "photos", {"train": 1, "val": 1})
    (photos / "val" / "owl").rename(photos / "val" / "eagle")
    differ = run_cli("data", "convert", str(photos), str(tmp_path / "out"))
    assert differ.exit_code == 2 and "its classes differ" in differ.output
    assert "missing: owl; not in train: eagle" in differ.output
    assert len(differ.output.strip().splitlines()) == 1, differ.output
    empty = tmp_path / "empty"
    empty.mkdir()
    for args in (("info", str(empty)), ("convert", str(shards.with_name("photos")), str(empty))):
        result = run_cli("data", *args)
        assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    truncated = tmp_path / "truncated"
    import shutil

    shutil.copytree(shards, truncated)
    manifest = json.loads((truncated / MANIFEST).read_text())
    manifest["splits"]["train"]["shards"][1]["images"] += 1
    (truncated / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(Exception, match="a damaged shard: 10 rows, the manifest says 11"):
        Shards(str(truncated), image_size=[12, 12]).load("train")


def test_a_run_on_shards_trains_evaluates_and_resumes_exactly_whatever_the_workers(
    tmp_path, shards
) -> None:
    """Interrupted at epoch 2 batch 1 and resumed: the same eval.json as an uninterrupted
    run; with 2 decoding workers the same figures as with none; two processes (--nproc 2)
    train as one does (sums in another order)."""

    def recipe(workers: int) -> Path:
        path = tmp_path / f"r{workers}.toml"
        path.write_text(
            RECIPE.format(
                runs=(tmp_path / "runs").as_posix(), root=shards.as_posix(), workers=workers
            )
        )
        return path

    marker = tmp_path / "fired"
    kill = fault_callbacks("kill", epoch=2, batch=1, marker=marker)

    def run(out: Path):
        if out.is_dir():
            return cvkit_with_faults("run", "--resume", str(out), cwd=tmp_path)
        return cvkit_with_faults(
            "run", str(recipe(2)), "--set", kill, "--output", str(out), cwd=tmp_path
        )

    whole, cut, again = stopped_and_continued(run, marker, tmp_path)
    assert whole.returncode == 0, whole.stderr
    assert cut.returncode != 0 and again.returncode == 0, again.stderr
    serial = cvkit_with_faults(
        "run", str(recipe(0)), "--output", str(tmp_path / "serial"), cwd=tmp_path
    )
    assert serial.returncode == 0, serial.stderr

    def figures(folder: str) -> dict:  # every figure but the times; the last epoch's train loss
        evaluation = json.loads((tmp_path / folder / "eval.json").read_text())
        kept = {
            split: {k: v for k, v in evaluation[split].items() if "second" not in k}
            for split in ("val", "test")
        }
        epochs = (tmp_path / folder / "metrics.jsonl").read_text().splitlines()
        return kept | {"train_loss": json.loads(epochs[-1])["train/loss"]}

    assert figures("whole")["test"]["samples"] == 12
    assert figures("cut") == figures("whole") == figures("serial")
    double = cvkit_with_faults(  # batch norm over the whole batch, as one process has it
        "run", str(recipe(0)), "--nproc", "2", "--set", "trainer.sync_batchnorm=true",
        "--output", str(tmp_path / "double"), cwd=tmp_path,
    )  # fmt: skip

    assert double.returncode == 0, double.stderr
    two, one = figures("double"), figures("serial")  # (one process: sync_batchnorm is a no-op)
    assert two["test"]["samples"] == 12 and two["val"]["samples"] == 6
    assert two["test"]["loss"] == pytest.approx(one["test"]["loss"], rel=1e-4)
    assert two["train_loss"] == pytest.approx(one["train_loss"], rel=1e-4)


def test_an_image_that_cannot_be_decoded_is_skipped_and_counted_once(tmp_path) -> None:
    """A JPEG cut in half passes conversion (its header reads) and fails to decode: the run
    skips it in every epoch, names it and counts it once, and finishes."""
    photos = photo_folder(tmp_path / "photos", {"train": 12, "val": 4})
    cut = photos / "train" / "dog" / "0.jpg"
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    convert(folder_source(photos, 16), tmp_path / "out", workers=0)
    recipe = tmp_path / "r.toml"
    runs, root = (tmp_path / "runs").as_posix(), (tmp_path / "out").as_posix()
    every_image = "val_split = 0\ndrop_last = false"  # each image is in every epoch
    recipe.write_text(
        RECIPE.format(runs=runs, root=root, workers=2).replace("val_split = 6", every_image)
    )
    done = cvkit_with_faults("run", str(recipe), "--output", str(tmp_path / "run"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    skipped = [line for line in done.stderr.splitlines() if "skipped:" in line]
    assert len(skipped) == 1, done.stderr
    assert "train/shard-00000 row 12" in skipped[0] and "(1 images skipped so far)" in skipped[0]
