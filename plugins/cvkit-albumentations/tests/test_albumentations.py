"""cvkit-albumentations: any albumentations transform by name, per image in workers."""

from __future__ import annotations

import functools

import pytest
import torch

from cvkit.testing import check_per_sample_reproducible, contract_cases
from cvkit_albumentations import Albumentations


@pytest.mark.parametrize("case", contract_cases(plugin="cvkit-albumentations"), ids=str)
def test_registered_components_keep_their_contract(case) -> None:
    case.run()


@pytest.mark.parametrize(
    ("transform", "kwargs"),
    [
        ("Affine", {"rotate": [-20, 20], "translate_percent": [-0.1, 0.1], "p": 1.0}),
        ("CoarseDropout", {"p": 1.0}),
        ("HorizontalFlip", {"p": 0.5}),
    ],
)
def test_images_are_the_same_whatever_the_number_of_workers(transform, kwargs) -> None:
    check_per_sample_reproducible(functools.partial(Albumentations, transform, kwargs))


def test_an_image_goes_through_as_channels_last_and_comes_back_as_uint8_chw() -> None:
    image = torch.arange(2 * 3 * 5, dtype=torch.uint8).reshape(3, 2, 5)
    flipped = Albumentations("HorizontalFlip", {"p": 1.0})(image)
    assert flipped.dtype == torch.uint8 and torch.equal(flipped, image.flip(-1))
    grey = Albumentations("ToGray", {"p": 1.0, "num_output_channels": 1})(image)
    assert grey.shape == (1, 2, 5)


def test_unknown_transforms_and_bad_arguments_are_refused_naming_them() -> None:
    with pytest.raises(ValueError, match="has no transform 'HorizontalFlp'"):
        Albumentations("HorizontalFlp")
    with pytest.raises(ValueError, match="has no transform 'Compose'"):
        Albumentations("Compose")  # a container, not a transform
    with pytest.raises(ValueError, match=r"Affine has no argument bogus; arguments: .*rotate"):
        Albumentations("Affine", {"bogus": 1})  # albumentations itself only warns
    with pytest.raises(ValueError, match=r"Affine\(\{'rotate': 'x'\}\)"):
        Albumentations("Affine", {"rotate": "x"})
