"""cvkit-cutmix against torchvision.transforms.v2.CutMix for a fixed lambda, pairing and box;
the MixUp/CutMix switch; both in a recipe with SAM."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torchvision.transforms import v2

from cvkit_cutmix import CutMix, MixUpOrCutMix
from cvkit_mixup import MixUp

K = 7


def batch(n: int = 6, size: tuple[int, int] = (12, 10)) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(n, 3, *size, generator=generator)
    return images, torch.randint(0, K, (n,), generator=generator)


def fixed_lambda(transform, lam: float):
    transform._dist = SimpleNamespace(sample=lambda shape: torch.tensor(lam))
    return transform


ROLL = torch.tensor([5, 0, 1, 2, 3, 4])  # torchvision pairs image i with image i - 1


@pytest.mark.parametrize("lam", [0.2, 0.55, 0.9])
def test_cutmix_equals_torchvisions_for_the_same_lambda_pairing_and_box(lam) -> None:
    images, labels = batch()
    torch.manual_seed(3)
    expected_images, expected_labels = fixed_lambda(v2.CutMix(num_classes=K), lam)(images, labels)
    torch.manual_seed(3)  # torchvision's box centre: x ~ randint(W), then y ~ randint(H)
    column, row = int(torch.randint(10, (1,))), int(torch.randint(12, (1,)))
    mixed, targets = CutMix(K).mix(images, labels, lam, ROLL, torch.tensor([row, column]))
    torch.testing.assert_close(mixed, expected_images)
    torch.testing.assert_close(targets, expected_labels)


def test_soft_targets_stay_probabilities_and_p_zero_leaves_the_batch() -> None:
    images, labels = batch()
    soft = torch.softmax(torch.randn(6, K), 1)
    _, targets = CutMix(K).mix(images, soft, 0.3, ROLL, torch.tensor([6, 5]))
    assert torch.allclose(targets.sum(1), torch.ones(6)) and (targets >= 0).all()
    for augmentation in (CutMix(K, p=0.0), MixUpOrCutMix(K, p=0.0)):
        out, hard_as_soft = augmentation(images, labels)
        torch.testing.assert_close(out, images)
        assert torch.equal(hard_as_soft.argmax(1), labels)


def test_the_switch_gives_cutmix_or_mixup_per_batch() -> None:
    images, labels = batch()
    for switch, expected in ((1.0, "cutmix"), (0.0, "mixup")):
        torch.manual_seed(11)
        mixed, _ = MixUpOrCutMix(K, switch_prob=switch)(images, labels)
        torch.manual_seed(11)
        torch.rand(())  # the switch's draw
        reference = MixUp(K, alpha=0.8)(images, labels)  # drawn first inside the switch
        if expected == "cutmix":
            reference = CutMix(K)(images, labels)
        torch.testing.assert_close(mixed, reference[0])


def test_a_recipe_trains_with_mixup_cutmix(tmp_path, run_cli, monkeypatch) -> None:
    """Every training batch (2 epochs x 2) goes through the switch and trains on its soft
    targets, with SAM's two passes per step; evaluation batches are never mixed."""
    calls: list[tuple[int, ...]] = []
    forward = MixUpOrCutMix.forward

    def counted(self, images, targets):
        mixed, soft = forward(self, images, targets)
        calls.append(tuple(soft.shape))
        return mixed, soft

    monkeypatch.setattr(MixUpOrCutMix, "forward", counted)
    recipe = tmp_path / "mix.toml"
    recipe.write_text(
        """
[experiment]
name = "mix"
epochs = 2
[data]
dataset = { name = "synthetic", image_size = 8, train_size = 24, test_size = 8 }
batch_size = 8
val_split = 8
workers = 0
[model]
name = "simple_cnn"
widths = [4]
[optimizer]
name = "sam"
optimizer = { name = "sgd", lr = 0.05, momentum = 0.9 }
[loss]
name = "cross_entropy"
label_smoothing = 0.1
[[augment.train]]
name = "mixup_cutmix"
"""
    )
    result = run_cli("run", str(recipe), "--output", str(tmp_path / "run"))
    assert result.exit_code == 0, result.output
    training = [shape for shape in calls if shape != (2, 10)]  # (2, 10): the agreement check
    assert training == [(8, 10)] * 4  # soft targets (N, K) for each training batch
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert last["step"] == 4 and last["epoch"] == 2
