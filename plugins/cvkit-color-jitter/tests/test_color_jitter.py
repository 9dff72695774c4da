"""cvkit-color-jitter: each image equals torchvision's functional colour ops with its factors."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from cvkit_color_jitter import ColorJitter


def test_each_image_matches_torchvision_with_the_same_factors() -> None:
    torch.manual_seed(0)
    images = torch.rand(16, 3, 9, 7)
    jitter = ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.2)
    factors = jitter.sample_factors(16, images.device)
    out = jitter.adjust(images, factors)
    for i in range(16):
        expected = TF.adjust_brightness(images[i], float(factors["brightness"][i]))
        expected = TF.adjust_contrast(expected, float(factors["contrast"][i]))
        expected = TF.adjust_saturation(expected, float(factors["saturation"][i]))
        expected = TF.adjust_hue(expected, float(factors["hue"][i]))
        assert torch.allclose(out[i], expected, atol=1e-5), i


def test_factors_are_drawn_per_image_in_torchvisions_ranges() -> None:
    torch.manual_seed(0)
    factors = ColorJitter(brightness=0.3, contrast=0.9, saturation=1.5, hue=0.1).sample_factors(
        2000, torch.device("cpu")
    )
    assert factors["brightness"].min() >= 0.7 and factors["brightness"].max() <= 1.3
    assert factors["saturation"].min() >= 0.0 and factors["saturation"].max() <= 2.5
    assert factors["hue"].min() >= -0.1 and factors["hue"].max() <= 0.1
    assert factors["contrast"].std() > 0.4  # independent draws, not one per batch


def test_p_zero_leaves_images_alone_and_grey_images_reject_hue() -> None:
    images = torch.rand(4, 3, 5, 5)
    assert torch.allclose(ColorJitter(p=0.0)(images, None)[0], images, atol=1e-6)
    grey = torch.rand(4, 1, 5, 5)
    assert ColorJitter(saturation=0, hue=0)(grey, None)[0].shape == grey.shape
    with pytest.raises(ValueError, match="need RGB"):
        ColorJitter()(grey, None)
