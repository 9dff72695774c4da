"""The UCI handwritten digits as shipped with scikit-learn (Alpaydin & Kaynak, 1998)."""

from __future__ import annotations

import torch

from cvkit import ImageTensors


class Digits:
    """Handwritten digits 0-9: 1,797 grayscale 8x8 images bundled with scikit-learn.

    The UCI "Optical Recognition of Handwritten Digits" test set (Alpaydin & Kaynak, 1998),
    read with sklearn.datasets.load_digits: no download, so it works offline. Pixel values
    0-16 are scaled to 0-255. The test split is a seeded, class-stratified fraction.

    Args:
        test_fraction: share of each class held out as the test split, in (0, 1).
        seed: seed of the train/test split.
    """

    in_channels = 1
    num_classes = 10
    splits = ("train", "test")
    image_size = (8, 8)
    cacheable = False  # already in memory; a cache file would only add I/O

    def __init__(self, test_fraction: float = 0.2, seed: int = 0) -> None:
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction={test_fraction} must be in (0, 1)")
        self.test_fraction, self.seed = test_fraction, seed

    def load(self, split: str) -> ImageTensors:
        """The split as uint8 (N, 1, 8, 8) images and int64 labels."""
        from sklearn.datasets import load_digits

        if split not in self.splits:
            raise ValueError(f"digits has no split {split!r}; splits: train, test")
        digits = load_digits()
        images = torch.from_numpy(digits.images).mul(255 / 16).round().to(torch.uint8)[:, None]
        labels = torch.from_numpy(digits.target).to(torch.int64)
        generator = torch.Generator().manual_seed(self.seed)
        test = torch.zeros(len(labels), dtype=torch.bool)
        for label in range(self.num_classes):  # stratified: the same share of every digit
            members = (labels == label).nonzero().flatten()
            chosen = members[torch.randperm(len(members), generator=generator)]
            test[chosen[: round(self.test_fraction * len(members))]] = True
        keep = test if split == "test" else ~test
        return ImageTensors(images[keep], labels[keep], tuple(str(d) for d in range(10)))
