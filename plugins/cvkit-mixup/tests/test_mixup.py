"""cvkit-mixup against torchvision.transforms.v2.MixUp for a fixed lambda and pairing, and
its refusal in augment.eval."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torchvision.transforms import v2

from cvkit_mixup import MixUp

K = 7
ROLL = torch.tensor([5, 0, 1, 2, 3, 4])  # torchvision pairs image i with image i - 1


def batch(n: int = 6, size: tuple[int, int] = (12, 10)) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(n, 3, *size, generator=generator)
    return images, torch.randint(0, K, (n,), generator=generator)


def fixed_lambda(transform, lam: float):
    transform._dist = SimpleNamespace(sample=lambda shape: torch.tensor(lam))
    return transform


@pytest.mark.parametrize("lam", [0.1, 0.5, 0.93])
def test_mixup_equals_torchvisions_for_the_same_lambda_and_pairing(lam) -> None:
    images, labels = batch()
    expected_images, expected_labels = fixed_lambda(v2.MixUp(num_classes=K), lam)(images, labels)
    mixed, targets = MixUp(K).mix(images, labels, lam, ROLL)
    torch.testing.assert_close(mixed, expected_images)
    torch.testing.assert_close(targets, expected_labels)


def test_mixing_is_refused_in_augment_eval(tmp_path, run_cli) -> None:
    recipe = tmp_path / "bad.toml"
    recipe.write_text(
        """
[experiment]
name = "bad"
[data]
dataset = { name = "synthetic", image_size = 8, train_size = 16, test_size = 0 }
batch_size = 4
val_split = 4
[model]
name = "simple_cnn"
widths = [4]
[optimizer]
name = "sgd"
[loss]
name = "cross_entropy"
[[augment.eval]]
name = "mixup"
"""
    )
    result = run_cli("check", str(recipe))
    assert result.exit_code == 2 and "only training batches may do" in result.stderr


def test_soft_targets_mix_as_probabilities_and_p_zero_leaves_the_batch() -> None:
    images, labels = batch()
    soft = torch.softmax(torch.randn(6, K), 1)
    _, targets = MixUp(K).mix(images, soft, 0.3, ROLL)
    torch.testing.assert_close(targets, 0.3 * soft + 0.7 * soft[ROLL])
    out, hard_as_soft = MixUp(K, p=0.0)(images, labels)
    torch.testing.assert_close(out, images)
    assert torch.equal(hard_as_soft.argmax(1), labels)
