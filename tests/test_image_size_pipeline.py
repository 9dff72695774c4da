"""The 224-pixel pipeline: data.image_size resizes batches on the device, random_resized_crop
draws torchvision's crops for a whole batch at once."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from cvkit.builtins.resizing import RandomResizedCrop
from cvkit.data.batches import BatchLoader
from cvkit.data.tensors import ImageTensors


def test_crops_with_a_fixed_scale_and_ratio_have_torchvisions_size_and_fit() -> None:
    scale, ratio = 0.5, 4 / 3
    crop = RandomResizedCrop(size=16, scale=[scale, scale], ratio=[ratio, ratio])
    top, left, h, w = crop.boxes(500, 40, 60, torch.device("cpu")).unbind(1)
    area = 40 * 60 * scale
    assert (w == round(math.sqrt(area * ratio))).all() and (
        h == round(math.sqrt(area / ratio))
    ).all()
    assert (
        (top >= 0).all() and (left >= 0).all() and (top + h <= 40).all() and (left + w <= 60).all()
    )
    assert top.unique().numel() > 5 and left.unique().numel() > 5  # positions vary per image
    params = v2.RandomResizedCrop(16, scale=(scale, scale), ratio=(ratio, ratio)).make_params(
        [torch.zeros(3, 40, 60)]
    )
    assert (params["height"], params["width"]) == (int(h[0]), int(w[0]))


def test_when_no_draw_fits_it_falls_back_to_torchvisions_central_crop() -> None:
    # a ratio far from the image's: no draw fits, torchvision takes the central crop
    crop = RandomResizedCrop(size=8, scale=[1.0, 1.0], ratio=[3.0, 3.0])
    boxes = crop.boxes(4, 30, 20, torch.device("cpu"))
    params = v2.RandomResizedCrop(8, scale=(1.0, 1.0), ratio=(3.0, 3.0)).make_params(
        [torch.zeros(3, 30, 20)]
    )
    expected = [params["top"], params["left"], params["height"], params["width"]]
    assert boxes.tolist() == [expected] * 4


def test_a_crop_is_resampled_as_torchvisions_resized_crop() -> None:
    torch.manual_seed(0)
    images = torch.rand(6, 3, 32, 32)
    crop = RandomResizedCrop(size=[56, 48], scale=[0.3, 1.0])
    torch.manual_seed(1)
    boxes = crop.boxes(6, 32, 32, images.device)
    torch.manual_seed(1)
    out, targets = crop(images, torch.arange(6))
    assert out.shape == (6, 3, 56, 48) and targets.tolist() == list(range(6))
    for image, result, (top, left, h, w) in zip(images, out, boxes.tolist(), strict=True):
        expected = TF.resized_crop(image, top, left, h, w, [56, 48], antialias=False)
        # identical inside; the outermost output pixels may blend with pixels past the crop
        inner = (slice(None), slice(4, -4), slice(4, -4))
        torch.testing.assert_close(result[inner], expected[inner], atol=1e-5, rtol=1e-5)
    whole = RandomResizedCrop(size=64, scale=[1.0, 1.0], ratio=[1.0, 1.0])
    torch.testing.assert_close(
        whole(images, torch.arange(6))[0],
        TF.resize(images, [64, 64], antialias=False),
        atol=1e-5,
        rtol=1e-5,
    )


def test_image_size_resizes_every_batch_on_the_device_and_keeps_the_uint8_data() -> None:
    images = torch.randint(0, 256, (10, 3, 8, 8), dtype=torch.uint8)
    data = ImageTensors(images, torch.arange(10) % 2, ("a", "b"))
    loader = BatchLoader(data, batch_size=4, device=torch.device("cpu"), image_size=[24, 20])
    batches = list(loader)
    assert [b[0].shape for b in batches] == [(4, 3, 24, 20), (4, 3, 24, 20), (2, 3, 24, 20)]
    torch.testing.assert_close(
        batches[0][0], TF.resize(images[:4].float() / 255, [24, 20], antialias=True)
    )
    assert loader.images.shape == (10, 3, 8, 8)


@pytest.mark.parametrize("size", [0, [3], [2, 3, 4]])
def test_bad_sizes_are_refused(size) -> None:
    with pytest.raises(ValueError, match="size"):
        RandomResizedCrop(size=size)


def test_a_recipe_with_image_size_trains_evaluates_and_predicts_at_that_size(
    tmp_path, run_cli
) -> None:
    recipe = tmp_path / "sized.toml"
    recipe.write_text(
        """
[experiment]
name = "sized"

[data]
dataset = { name = "synthetic", image_size = 8, train_size = 24, test_size = 8 }
batch_size = 8
val_split = 8
image_size = 20
workers = 0

[model]  # sized for 20 x 20 input only: 20 -> 10 -> 5, pooled 5 x 5 into the classifier
name = "efficient_resnet"
blocks = [1, 1, 1]
channels = 4
pool_kernel = 5
input_size = 20

[optimizer]
name = "sgd"
lr = 0.01

[loss]
name = "cross_entropy"

[[augment.train]]
name = "hflip"

[[augment.train]]
name = "random_resized_crop"
size = 20
scale = [0.8, 1.0]
ratio = [1.0, 1.0]

[[augment.train]]
name = "normalize"
preset = "imagenet"

[[augment.eval]]
name = "normalize"
preset = "imagenet"

[[callbacks]]
name = "checkpoint"
"""
    )
    out = tmp_path / "run"
    result = run_cli("run", str(recipe), "--output", str(out))
    assert result.exit_code == 0, result.output
    torch.save(torch.randint(0, 256, (5, 3, 8, 8), dtype=torch.uint8), tmp_path / "inputs.pt")
    predicted = run_cli(
        "predict", str(out), str(tmp_path / "inputs.pt"), "--out", str(tmp_path / "p.csv")
    )
    assert predicted.exit_code == 0, predicted.output
    assert len((tmp_path / "p.csv").read_text().splitlines()) == 6


def test_progressive_resizing_resizes_training_batches_by_epoch(tmp_path, run_cli) -> None:
    from types import SimpleNamespace

    from cvkit.builtins.progressive_resizing import ProgressiveResizing

    images = torch.randint(0, 256, (8, 3, 12, 12), dtype=torch.uint8)
    loader = BatchLoader(
        ImageTensors(images, torch.zeros(8, dtype=torch.int64), ("a",)),
        batch_size=4,
        device=torch.device("cpu"),
    )
    resizing = ProgressiveResizing(schedule={"2": 6, "4": 9})
    trainer = SimpleNamespace(train_loader=loader, epoch=0)
    resizing.on_fit_start(trainer)
    sizes = []
    for epoch in range(5):
        trainer.epoch = epoch
        resizing.on_epoch_start(trainer)
        sizes.append(tuple(next(iter(loader))[0].shape[-2:]))
    assert sizes == [(12, 12), (6, 6), (6, 6), (9, 9), (9, 9)]
    with pytest.raises(ValueError, match="epochs >= 1"):
        ProgressiveResizing(schedule={"0": 8})


def test_the_evaluation_augmentations_size_is_the_model_input_everywhere(tmp_path, run_cli) -> None:
    """A resize in augment.eval: check, eval.json's input shape and FLOPs and cvkit profile
    (of the recipe and of the run) all use 16 x 16, not the dataset's 8 x 8 (issue 26)."""
    recipe = tmp_path / "resized.toml"
    recipe.write_text(
        """
[experiment]
name = "resized"
epochs = 1

[data]
dataset = { name = "synthetic", image_size = 8, train_size = 8, test_size = 4 }
batch_size = 4
val_split = 0
workers = 0

[model]
name = "simple_cnn"
widths = [4, 8]

[optimizer]
name = "sgd"
lr = 0.01

[loss]
name = "cross_entropy"

[[augment.train]]
name = "resize"
size = 16

[[augment.eval]]
name = "resize"
size = 16
"""
    )
    checked = run_cli("check", str(recipe), "--json")
    assert checked.exit_code == 0, checked.output
    assert json.loads(checked.stdout)["input_shape"] == [2, 3, 16, 16]
    out = tmp_path / "run"
    assert run_cli("run", str(recipe), "--output", str(out)).exit_code == 0
    model = json.loads((out / "eval.json").read_text())["model"]
    assert model["input_shape"] == [3, 16, 16]
    for source in (out, recipe):
        profiled = run_cli("profile", str(source), "--json", "--repeats", "1", "--batch", "2")
        assert profiled.exit_code == 0, profiled.output
        figures = json.loads(profiled.stdout)
        assert figures["input_shape"] == [3, 16, 16]
        assert figures["flops_per_image"]["forward"] == model["flops_per_image"]
    eight = run_cli("profile", str(out), "--json", "--repeats", "1", "--image-size", "8", "8")
    assert json.loads(eight.stdout)["flops_per_image"]["forward"] < model["flops_per_image"]
