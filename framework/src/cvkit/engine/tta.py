"""Test-time augmentation: the views of a batch whose softmax outputs are averaged."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor

from cvkit.errors import CvkitError

TTA_VIEWS = ("flip", "crop")
"""``flip``: the batch and its mirror image; ``crop``: the batch and four copies shifted
diagonally by 1/16 of the image size (2 pixels at 32 x 32, borders replicated), like
random-crop training with padding."""


def check_tta(names: Sequence[str]) -> list[str]:
    """``names`` if every one is a known view; CvkitError naming the unknown one otherwise."""
    for name in names:
        if name not in TTA_VIEWS:
            raise CvkitError(f"--tta: unknown view {name!r}; views: {', '.join(TTA_VIEWS)}")
    return list(names)


def tta_views(images: Tensor, names: Sequence[str]) -> list[Tensor]:
    """The views of ``images`` (N, C, H, W) for the TTA ``names``: the batch itself, then
    shifted copies (``crop``: 4 more), then the mirror image of each (``flip``: twice as
    many). Every view has the batch's shape."""
    views = [images]
    if "crop" in names:
        h, w = images.shape[-2:]
        s = max(1, round(min(h, w) / 16))
        padded = F.pad(images, (s, s, s, s), mode="replicate")
        for top, left in ((0, 0), (0, 2 * s), (2 * s, 0), (2 * s, 2 * s)):
            views.append(padded[..., top : top + h, left : left + w])
    if "flip" in names:
        views += [view.flip(-1) for view in views]
    return views
