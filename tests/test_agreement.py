"""The recipe and its data agree before the first step (issue 24): every dataset kind crossed
with every component parameter that must fit the data (channels, classes, image size,
label format, evaluation shapes). Each mismatch is one line naming both recipe keys, exit
2, from `cvkit check` and from `cvkit run` before it trains a step."""

from __future__ import annotations

import json

import agreement_plugin  # noqa: F401  (imported by CVKIT_PLUGINS; here for ruff's isort)
import pytest
from PIL import Image

from cvkit.testing import TINY_RECIPE

DATASETS = {
    "synthetic-gray": (
        '{ name = "synthetic", num_classes = 4, image_size = 8, channels = 1, '
        "train_size = 48, test_size = 16 }",
        1,
        4,
        8,
    ),
    "synthetic-rgb": (
        '{ name = "synthetic", num_classes = 3, image_size = 8, channels = 3, '
        "train_size = 48, test_size = 16 }",
        3,
        3,
        8,
    ),
    "digits": ('{ name = "digits", test_fraction = 0.2 }', 1, 10, 8),
    "imagefolder": ('{ name = "imagefolder", root = "{root}" }', 3, 2, 8),
}
"""Dataset table, channels, classes, image size."""


def mismatches(channels: int, classes: int, size: int) -> dict[str, tuple[list[str], str]]:
    """Overrides that break the agreement, each with the recipe key its message names."""
    wrong = [0.5] * (channels + 1)
    return {
        "normalize channels": (
            [f"augment.train[2].mean={wrong}", f"augment.train[2].std={wrong}"],
            "augment.train[2] (augmentation/normalize)",
        ),
        "eval normalize channels": (
            [f"augment.eval[0].mean={wrong}", f"augment.eval[0].std={wrong}"],
            "augment.eval[0] (augmentation/normalize)",
        ),
        "loss weights for other classes": (
            [f"loss.weight={[1.0] * (classes + 1)}"],
            "loss (loss/cross_entropy)",
        ),
        "model head with other classes": (
            [f'model={{ name = "fixed_classes", classes = {classes + 3} }}'],
            "model (model/fixed_classes)",
        ),
        "model of a fixed image size": (
            [f'model={{ name = "fixed_size", size = {size * 2} }}'],
            "model (model/fixed_size)",
        ),
        "data.image_size against a fixed-size model": (
            [f'model={{ name = "fixed_size", size = {size} }}', "data.image_size=12"],
            "model (model/fixed_size)",
        ),
        "an evaluation resize against a fixed-size model": (
            [
                f'model={{ name = "fixed_size", size = {size} }}',
                'augment.eval=[{ name = "resize", size = 6 }]',
            ],
            "model (model/fixed_size)",
        ),
        "soft MixUp targets for a loss of class indices": (
            [
                'loss={ name = "hard_labels" }',
                'augment.train=[{ name = "mixup", alpha = 0.2 }]',
            ],
            "loss (loss/hard_labels)",
        ),
    }


CASES = [
    (dataset, case)
    for dataset, (_, channels, classes, size) in DATASETS.items()
    for case in mismatches(channels, classes, size)
]


@pytest.fixture
def recipe(tmp_path, monkeypatch):
    """The tiny recipe, with agreement_plugin's components registered."""
    monkeypatch.setenv("CVKIT_PLUGINS", "agreement_plugin")
    for label in ("a", "b"):
        (tmp_path / "images" / label).mkdir(parents=True)
        for i in range(10):
            Image.new("RGB", (8, 8), (i * 20, 0, 0)).save(tmp_path / "images" / label / f"{i}.png")
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_RECIPE.format(runs=(tmp_path / "runs").as_posix()))
    return path


def fitting(dataset: str, tmp_path) -> list[str]:
    """Overrides that make the tiny recipe fit ``dataset``: its table, normalisation for its
    channels, small batches."""
    table, channels, _, _ = DATASETS[dataset]
    table = table.replace("{root}", (tmp_path / "images").as_posix())
    return [
        f"data.dataset={table}",
        "data.val_split=8",
        "data.batch_size=4",
        f"augment.train[2].mean={[0.5] * channels}",
        f"augment.train[2].std={[0.25] * channels}",
        f"augment.eval[0].mean={[0.5] * channels}",
        f"augment.eval[0].std={[0.25] * channels}",
    ]


@pytest.mark.parametrize(("dataset", "case"), CASES, ids=[f"{d}: {c}" for d, c in CASES])
def test_a_mismatch_is_one_line_naming_both_keys_before_the_first_step(
    dataset, case, recipe, tmp_path, run_cli
) -> None:
    _, channels, classes, size = DATASETS[dataset]
    overrides, component = mismatches(channels, classes, size)[case]
    changes = [*fitting(dataset, tmp_path), *overrides]
    args = [x for o in changes for x in ("--set", o)]
    checked = run_cli("check", str(recipe), *args)
    run = tmp_path / "run"
    ran = run_cli("run", str(recipe), "--output", str(run), *args)
    for result in (checked, ran):
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        assert component in lines[0] and "data.dataset (dataset/" in lines[0], lines[0]
    assert not (run / "checkpoints").exists()
    metrics = run / "metrics.jsonl"
    assert not metrics.exists() or not metrics.read_text().strip()


@pytest.mark.parametrize("dataset", list(DATASETS))
def test_the_same_recipes_agree_when_the_parameters_fit(dataset, recipe, tmp_path, run_cli) -> None:
    """The corpus's own control: without the mismatch, check passes on every dataset kind."""
    _, channels, classes, size = DATASETS[dataset]
    changes = [*fitting(dataset, tmp_path), f"loss.weight={[1.0] * classes}"]
    args = [x for o in changes for x in ("--set", o)]
    result = run_cli("check", str(recipe), "--json", *args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["input_shape"] == [2, channels, size, size]


def test_per_sample_images_of_different_sizes_are_one_line_naming_the_batching(
    recipe, tmp_path, run_cli
) -> None:
    """A per-sample transform returning images of different sizes, and no batch augmentation
    after it: the batching fails, named as such (it was an IndexError past augment.train)."""
    varying = (
        'augment.train=[{ name = "torchvision", transform = "RandomResize", '
        "kwargs = { min_size = 4, max_size = 16 } }]"
    )
    changes = [*fitting("synthetic-rgb", tmp_path), varying]
    result = run_cli("check", str(recipe), *[x for o in changes for x in ("--set", o)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "augment.train (batching the images its per-sample" in lines[0]
