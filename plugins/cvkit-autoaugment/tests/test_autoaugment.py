"""cvkit-autoaugment: torchvision's AutoAugment policies, per image in workers."""

from __future__ import annotations

import functools

import pytest
import torch
from torchvision.transforms import v2

from cvkit import RecipeError
from cvkit.testing import check_per_sample_reproducible, contract_cases
from cvkit_autoaugment import POLICIES, AutoAugment


@pytest.mark.parametrize("case", contract_cases(plugin="cvkit-autoaugment"), ids=str)
def test_registered_components_keep_their_contract(case) -> None:
    case.run()


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_images_are_the_same_whatever_the_number_of_workers(policy) -> None:
    check_per_sample_reproducible(functools.partial(AutoAugment, policy))


def test_it_is_torchvisions_policy_under_the_same_seed() -> None:
    image = torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8)
    reference = v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10, fill=0)
    for seed in range(5):
        torch.manual_seed(seed)
        ours = AutoAugment("cifar10")(image)
        torch.manual_seed(seed)
        assert torch.equal(ours, reference(image))


def test_an_unknown_policy_is_refused_with_the_choices(registry) -> None:
    with pytest.raises(RecipeError, match="expected one of 'cifar10', 'imagenet', 'svhn'"):
        registry.spec("augmentation", {"name": "autoaugment", "policy": "cifar100"})
