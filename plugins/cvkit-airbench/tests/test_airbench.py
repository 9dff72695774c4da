"""cvkit-airbench: the network as airbench94 builds it, the whitening, the alternating flip,
and the speedrun recipe end to end on synthetic images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from cvkit.testing import check_model
from cvkit_airbench import AirbenchNet, AlternatingFlip

RECIPES = Path(__file__).resolve().parents[3] / "recipes"


def test_the_network_is_airbench94s() -> None:
    torch.manual_seed(0)
    model = AirbenchNet(10, 3)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert (total, trainable) == (1_972_792, 1_971_352)
    assert model.whiten.weight.shape == (24, 3, 2, 2) and not model.whiten.weight.requires_grad
    group = model.layers[1]
    assert group.norm1.momentum == pytest.approx(0.4) and group.norm1.eps == 1e-12
    assert not group.norm1.weight.requires_grad and group.norm1.bias.requires_grad
    identity = torch.zeros(24, 24, 3, 3)
    identity[torch.arange(24), torch.arange(24), 1, 1] = 1
    assert torch.equal(group.conv1.weight[:24], identity)  # Dirac start
    assert model.head.weight.std().item() == pytest.approx(1.0, abs=1e-5)
    x = torch.randn(2, 3, 32, 32)
    features = model.layers(F.conv2d(x, model.whiten.weight, model.whiten.bias)).flatten(1)
    torch.testing.assert_close(model(x), model.head(features) / 256)


def test_whitening_filters_decorrelate_the_patches_they_were_computed_from() -> None:
    torch.manual_seed(0)
    base = torch.randn(200, 1, 16, 16)
    images = torch.cat([base, 0.5 * base + torch.randn_like(base), torch.randn_like(base)], 1)
    images = F.avg_pool2d(images, 3, 1, 1)  # neighbouring pixels correlate too
    model = AirbenchNet(10, 3, whiten_eps=1e-8)
    model.init_from_data(images)
    whitened = F.conv2d(images, model.whiten.weight[:12]).permute(0, 2, 3, 1).reshape(-1, 12)
    covariance = whitened.T @ whitened / len(whitened)
    torch.testing.assert_close(covariance, torch.eye(12), atol=1e-3, rtol=0)
    torch.testing.assert_close(model.whiten.weight[12:], -model.whiten.weight[:12])


def test_the_alternating_flip_shows_every_image_both_ways_over_two_epochs() -> None:
    flip = AlternatingFlip()
    images = torch.rand(64, 3, 4, 4)
    keys = torch.randint(-(2**62), 2**62, (64,))
    first, _ = flip(images, torch.zeros(64), keys, 0)
    second, _ = flip(images, torch.zeros(64), keys, 1)
    third, _ = flip(images, torch.zeros(64), keys, 2)
    mirrored = [torch.equal(a, b.flip(-1)) for a, b in zip(first, images, strict=True)]
    assert 16 < sum(mirrored) < 48  # about half start mirrored
    assert torch.equal(second, first.flip(-1)) and torch.equal(third, first)


def test_the_network_keeps_the_model_contract_with_attention() -> None:
    check_model(lambda **kw: AirbenchNet(widths=[8, 8, 16], **kw), max_examples=2)


def test_the_speedrun_recipe_trains_from_its_own_components(run_cli, tmp_path) -> None:
    result = run_cli(
        "run",
        str(RECIPES / "speedrun_cifar10_val.toml"),
        "--output",
        str(tmp_path / "runs"),
        "--set",
        'data.dataset={ name = "synthetic", num_classes = 4, image_size = 32, train_size = 160, test_size = 32 }',
        "--set",
        "data.val_split=32",
        "--set",
        "data.batch_size=32",
        "--set",
        "data.eval_batch_size=32",
        "--set",
        "model.widths=[8, 16, 16]",
        "--set",
        "model.data_init_images=64",
        "--set",
        "experiment.epochs=4",
    )
    assert result.exit_code == 0, result.output
    run = tmp_path / "runs"
    evaluation = json.loads((run / "eval.json").read_text())
    assert evaluation["tta"] == ["flip", "shift"] and evaluation["weights"] == "last"
    assert evaluation["val"]["samples"] == 32 and evaluation["test"]["samples"] == 32
    weights = torch.load(run / "checkpoints" / "last.pt", weights_only=False)["model"]
    untouched = AirbenchNet(4, 3, widths=[8, 16, 16]).whiten.weight
    assert not torch.equal(weights["whiten.weight"], untouched)  # initialised from the data
    covariance = weights["whiten.weight"][:12].flatten(1)
    assert torch.isfinite(covariance).all()
