"""Test-time augmentation: the weighted views of a batch whose softmax outputs are averaged."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cvkit.errors import CvkitError

TTA_VIEWS = ("flip", "crop", "shift")
"""``flip``: the batch and its mirror image; ``crop``: the batch and four copies shifted
diagonally by 1/16 of the image size (2 pixels at 32 x 32, borders replicated), like
random-crop training with padding; ``shift``: the batch (weight 1) and two copies shifted by
one pixel up-left and down-right (borders reflected, weight 1/2 each), airbench's
translations."""


def check_tta(names: Sequence[str], key: str = "--tta") -> list[str]:
    """``names`` if every one is a known view; CvkitError naming ``key`` and the unknown one otherwise."""
    for name in names:
        if name not in TTA_VIEWS:
            raise CvkitError(f"{key}: unknown view {name!r}; views: {', '.join(TTA_VIEWS)}")
    return list(names)


def tta_views(images: Tensor, names: Sequence[str]) -> list[tuple[Tensor, float]]:
    """The views of ``images`` (N, C, H, W) for the TTA ``names`` with their weights: the
    batch itself, then shifted copies (``crop``: 4 more, ``shift``: 2 more), then the mirror
    image of each with the same weight (``flip``: twice as many). Every view has the batch's
    shape; the weights are relative (the mean divides by their sum)."""
    views = [(images, 1.0)]
    h, w = images.shape[-2:]
    if "crop" in names:
        s = max(1, round(min(h, w) / 16))
        padded = F.pad(images, (s, s, s, s), mode="replicate")
        for top, left in ((0, 0), (0, 2 * s), (2 * s, 0), (2 * s, 2 * s)):
            views.append((padded[..., top : top + h, left : left + w], 1.0))
    if "shift" in names:
        padded = F.pad(images, (1, 1, 1, 1), mode="reflect" if min(h, w) > 1 else "replicate")
        for offset in (0, 2):
            views.append((padded[..., offset : offset + h, offset : offset + w], 0.5))
    if "flip" in names:
        views += [(view.flip(-1), weight) for view, weight in views]
    return views


@torch.no_grad()
def tta_probabilities(model: nn.Module, images: Tensor, names: Sequence[str]) -> Tensor:
    """The weighted mean of ``model``'s softmax (float32 (N, K)) over the views of ``images``."""
    views = tta_views(images, names)
    total = sum(weight for _, weight in views)
    mean = torch.zeros(())
    for view, weight in views:
        mean = mean + model(view).float().softmax(1) * (weight / total)
    return mean


class TTAModel(nn.Module):
    """``model`` evaluated over TTA views: ``forward`` returns the log of the weighted mean
    softmax (N, K), which evaluation treats as logits (its argmax and cross-entropy are
    those of the mean probabilities)."""

    def __init__(self, model: nn.Module, names: Sequence[str]) -> None:
        super().__init__()
        self.model, self.names = model, list(names)

    def forward(self, images: Tensor) -> Tensor:
        return tta_probabilities(self.model, images, self.names).clamp(min=1e-12).log()
