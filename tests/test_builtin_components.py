"""Semantics of the built-in augmentations, losses, optimizers, schedulers and model."""

from __future__ import annotations

import inspect
import itertools

import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

from cvkit.builtins import schedules as schedulers, torch_optimizers as optimizers
from cvkit.builtins.cross_entropy import cross_entropy
from cvkit.builtins.flip import HorizontalFlip
from cvkit.builtins.normalize import NORMALIZATION_PRESETS, Normalize
from cvkit.builtins.random_crop import RandomCrop
from cvkit.builtins.simple_cnn import SimpleCNN


def all_crops(image: torch.Tensor, padding: int, mode: str) -> torch.Tensor:
    """Every (2p+1)^2 crop of the padded image, as (K, C, H, W)."""
    _, h, w = image.shape
    padded = F.pad(image[None], (padding,) * 4, mode=mode)[0]
    return torch.stack(
        [
            TF.crop(padded, top, left, h, w)
            for top in range(2 * padding + 1)
            for left in range(2 * padding + 1)
        ]
    )


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate"])
def test_random_crop_gives_each_sample_a_crop_of_its_padded_image(mode) -> None:
    torch.manual_seed(0)
    images = torch.rand(64, 3, 9, 7)
    out, targets = RandomCrop(padding=3, padding_mode=mode)(images, torch.arange(64))
    assert out.shape == images.shape and torch.equal(targets, torch.arange(64))
    offsets = []
    for image, crop in zip(images, out, strict=True):
        matches = (all_crops(image, 3, mode) == crop).flatten(1).all(1).nonzero().flatten()
        assert len(matches) >= 1, "output is not a crop of the padded input"
        offsets.append(int(matches[0]))
    assert len(set(offsets)) > 20, "offsets are not drawn per sample"


def test_random_crop_covers_every_offset_uniformly() -> None:
    torch.manual_seed(0)
    image = torch.arange(25.0).reshape(1, 1, 5, 5).expand(4900, 1, 5, 5)
    out, _ = RandomCrop(padding=1, fill=-1.0)(image, torch.zeros(4900, dtype=torch.long))
    # The centre pixel (value 12) lands at one of 9 positions, each about 1/9 of the time.
    counts = (out == 12).flatten(1).float().sum(0).reshape(5, 5)[1:4, 1:4].flatten()
    assert counts.sum() == 4900 and counts.min() > 4900 / 9 * 0.8 and counts.max() < 4900 / 9 * 1.2


def test_hflip_flips_each_sample_independently_with_probability_p() -> None:
    torch.manual_seed(0)
    images = torch.rand(2000, 3, 4, 4)
    out, _ = HorizontalFlip(p=0.3)(images, torch.zeros(2000, dtype=torch.long))
    flipped = (out == images.flip(-1)).flatten(1).all(1)
    kept = (out == images).flatten(1).all(1)
    assert bool((flipped | kept).all())
    assert 0.26 < flipped.float().mean().item() < 0.34
    assert torch.equal(HorizontalFlip(p=1.0)(images, None)[0], images.flip(-1))
    assert torch.equal(HorizontalFlip(p=0.0)(images, None)[0], images)


@pytest.mark.parametrize("preset", sorted(NORMALIZATION_PRESETS))
def test_normalize_presets_standardise_each_channel(preset) -> None:
    mean, std = NORMALIZATION_PRESETS[preset]
    images = torch.tensor(mean).reshape(1, 3, 1, 1).expand(2, 3, 4, 4) + torch.tensor(std).reshape(
        1, 3, 1, 1
    )
    out, _ = Normalize(preset=preset)(images, None)
    assert torch.allclose(out, torch.ones_like(out), atol=1e-6)


def test_normalize_needs_a_preset_or_mean_and_std() -> None:
    assert torch.allclose(
        Normalize(mean=[0.5], std=[0.5])(torch.ones(1, 1, 2, 2), None)[0], torch.ones(1, 1, 2, 2)
    )
    for kwargs in ({}, {"mean": [0.5]}, {"preset": "cifar10", "mean": [0.5], "std": [0.5]}):
        with pytest.raises(ValueError):
            Normalize(**kwargs)
    with pytest.raises(ValueError, match="3 channel values, images have 1"):
        Normalize(preset="imagenet")(torch.ones(1, 1, 2, 2), None)


def test_cross_entropy_matches_torch_for_hard_and_soft_targets() -> None:
    torch.manual_seed(0)
    logits, labels = torch.randn(8, 5), torch.randint(0, 5, (8,))
    soft = torch.rand(8, 5).softmax(1)
    loss = cross_entropy(label_smoothing=0.1)
    assert torch.allclose(
        loss(logits, labels), F.cross_entropy(logits, labels, label_smoothing=0.1)
    )
    assert torch.allclose(loss(logits, soft), F.cross_entropy(logits, soft, label_smoothing=0.1))
    weighted = cross_entropy(weight=[1.0, 2.0, 1.0, 1.0, 3.0])
    assert torch.allclose(
        weighted(logits, labels), F.cross_entropy(logits, labels, weight=weighted.weight)
    )


@pytest.mark.parametrize(
    ("factory", "torch_class"),
    [
        (optimizers.sgd, torch.optim.SGD),
        (optimizers.adam, torch.optim.Adam),
        (optimizers.adamw, torch.optim.AdamW),
    ],
)
def test_optimizer_defaults_are_torchs(factory, torch_class) -> None:
    ours = inspect.signature(factory).parameters
    theirs = inspect.signature(torch_class).parameters
    for name, parameter in ours.items():
        if name != "params":
            assert parameter.default == theirs[name].default, name
    optimizer = factory([torch.nn.Parameter(torch.zeros(1))])
    assert type(optimizer) is torch_class


def learning_rates(factory, steps: int = 12, **kwargs) -> list[float]:
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=0.1, momentum=0.9)
    scheduler = factory(optimizer, epochs=3, steps_per_epoch=4, **kwargs)
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def test_cosine_with_warmup_ramps_linearly_then_anneals_to_min_lr() -> None:
    rates = learning_rates(
        schedulers.cosine, steps=13, warmup_epochs=1, warmup_start_factor=0.1, min_lr=0.01
    )
    assert rates[:5] == pytest.approx([0.01, 0.0325, 0.055, 0.0775, 0.1])
    assert all(a > b for a, b in itertools.pairwise(rates[4:12]))
    assert rates[12] == pytest.approx(0.01)


def test_step_and_multistep_decay_at_epoch_boundaries() -> None:
    assert learning_rates(schedulers.step, step_epochs=1, gamma=0.5) == pytest.approx(
        [0.1] * 4 + [0.05] * 4 + [0.025] * 4
    )
    # Milestones count from the start of the run, warm-up included.
    rates = learning_rates(schedulers.multistep, milestones=[2], warmup_epochs=1, gamma=0.1)
    assert rates[4:8] == pytest.approx([0.1] * 4) and rates[8:] == pytest.approx([0.01] * 4)


def test_onecycle_peaks_at_max_lr() -> None:
    rates = learning_rates(schedulers.onecycle, max_lr=0.4, pct_start=0.25)
    assert max(rates) == pytest.approx(0.4, rel=0.05) and rates[0] == pytest.approx(0.4 / 25)


def test_constant_stays_constant_after_warmup() -> None:
    assert learning_rates(schedulers.constant, warmup_epochs=0.5, warmup_start_factor=0.5)[
        2:
    ] == pytest.approx([0.1] * 10)


@pytest.mark.parametrize(
    ("factory", "kwargs", "message"),
    [
        (schedulers.cosine, {"warmup_epochs": -1}, "must be >= 0"),
        (schedulers.cosine, {"warmup_epochs": 1, "warmup_start_factor": 0}, "warmup_start_factor"),
        (schedulers.multistep, {"milestones": [1], "warmup_epochs": 1}, "after the warm-up"),
        (schedulers.multistep, {"milestones": [2, 1]}, "must increase"),
        (schedulers.step, {"step_epochs": 0.1}, "shorter than one step"),
    ],
)
def test_schedules_reject_impossible_settings(factory, kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        learning_rates(factory, **kwargs)


def test_a_warm_up_as_long_as_the_run_is_halved_with_a_warning(caplog) -> None:
    # --set experiment.epochs=1 on a recipe with warmup_epochs = 1 (the quickstart's)
    rates = learning_rates(schedulers.cosine, warmup_epochs=3)  # 3 epochs of 4 steps
    assert rates[:6] == pytest.approx([0.1 * (0.01 + 0.99 * i / 6) for i in range(6)])
    assert rates[6] == pytest.approx(0.1) and rates[-1] < rates[6]
    assert "warming up over its first half (6 of 12 steps)" in caplog.text


def test_simple_cnn_places_attention_after_each_stage_and_accepts_any_size() -> None:
    seen = []

    def attention(channels: int) -> torch.nn.Module:
        seen.append(channels)
        return torch.nn.Identity()

    model = SimpleCNN(num_classes=7, in_channels=1, widths=[4, 8, 16], attention=attention)
    assert seen == [4, 8, 16]
    for size in (1, 3, 32, 45):
        assert model.eval()(torch.rand(2, 1, size, size)).shape == (2, 7)
    with pytest.raises(ValueError, match="widths"):
        SimpleCNN(10, 3, widths=[])


def test_resize_changes_the_batch_size_on_both_axes() -> None:
    from cvkit.builtins.resizing import Resize

    images = torch.rand(2, 3, 8, 6)
    out, _ = Resize(size=[16, 12])(images, None)
    assert out.shape == (2, 3, 16, 12)
    assert Resize(size=8)(images, None)[0].shape == (2, 3, 8, 8)
    assert Resize(size=[8, 6])(images, None)[0] is images
    with pytest.raises(ValueError, match="size"):
        Resize(size=[1, 2, 3])


def test_torchvision_adapter_builds_any_v2_transform_and_rejects_unknown_ones() -> None:
    from cvkit.builtins.torchvision_transforms import TorchvisionTransform

    flip = TorchvisionTransform("RandomHorizontalFlip", {"p": 1.0})
    image = torch.arange(12, dtype=torch.uint8).reshape(1, 3, 4)
    assert torch.equal(flip(image), image.flip(-1))
    with pytest.raises(ValueError, match="has no transform 'RandAugmnet'"):
        TorchvisionTransform("RandAugmnet")
    with pytest.raises(ValueError, match="RandAugment"):
        TorchvisionTransform("RandAugment", {"bogus": 1})


def test_attention_none_names_the_empty_slot(registry, run_cli, tiny_recipe) -> None:
    def build(table: dict) -> torch.nn.Module:
        spec = registry.spec("model", {"name": "simple_cnn", "widths": [4, 8], **table})
        return registry.build(spec, num_classes=3, in_channels=3)

    with_none, without = build({"attention": "none"}), build({})
    count = sum(p.numel() for p in without.parameters())
    assert sum(p.numel() for p in with_none.parameters()) == count
    assert sum(isinstance(m, torch.nn.Identity) for m in with_none.modules()) == 2  # one per stage
    checked = run_cli("check", str(tiny_recipe), "--set", "model.attention=none")
    assert checked.exit_code == 0, checked.output
