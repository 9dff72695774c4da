"""cvkit-randaugment: torchvision's RandAugment, per image in workers."""

from __future__ import annotations

import functools

import pytest
import torch
from torchvision.transforms import v2

from cvkit.testing import check_per_sample_reproducible, contract_cases
from cvkit_randaugment import RandAugment


@pytest.mark.parametrize("case", contract_cases(plugin="cvkit-randaugment"), ids=str)
def test_registered_components_keep_their_contract(case) -> None:
    case.run()


@pytest.mark.parametrize(("num_ops", "magnitude"), [(2, 9), (3, 5)])
def test_images_are_the_same_whatever_the_number_of_workers(num_ops, magnitude) -> None:
    check_per_sample_reproducible(functools.partial(RandAugment, num_ops, magnitude))


def test_it_is_torchvisions_randaugment_under_the_same_seed() -> None:
    image = torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8)
    reference = v2.RandAugment(2, 9, 31, fill=0)
    for seed in range(5):
        torch.manual_seed(seed)
        ours = RandAugment(2, 9)(image)
        torch.manual_seed(seed)
        assert torch.equal(ours, reference(image))


def test_no_operation_leaves_the_image_alone() -> None:
    check_per_sample_reproducible(functools.partial(RandAugment, 0), random=False)
    image = torch.randint(0, 256, (3, 8, 8), dtype=torch.uint8)
    assert torch.equal(RandAugment(num_ops=0)(image), image)


@pytest.mark.parametrize(
    "kwargs",
    [{"num_ops": -1}, {"magnitude": 31}, {"magnitude": -1}, {"num_magnitude_bins": 1}],
)
def test_parameters_out_of_range_are_refused(kwargs) -> None:
    with pytest.raises(ValueError, match=r"num_ops=.* and magnitude=.* in \[0, num_magnitude_bins"):
        RandAugment(**kwargs)
