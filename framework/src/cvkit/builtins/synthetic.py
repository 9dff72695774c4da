"""Built-in plugin: ``dataset/synthetic``, seeded synthetic images for tests and demos."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cvkit.data.memory import check_fits
from cvkit.data.tensors import ImageTensors, check_split
from cvkit.hookspecs import Register, hookimpl


class SyntheticImages:
    """Seeded synthetic images: one smooth random prototype per class plus Gaussian noise.

    Learnable but not trivial, for tests, demos and benchmarks without any files. The same
    parameters always give the same images and labels; classes are balanced.

    Args:
        num_classes: number of classes.
        image_size: height and width in pixels.
        channels: image channels.
        train_size: images in the train split.
        test_size: images in the test split (0 for no test split).
        noise: standard deviation of the per-pixel noise, in units of the 0..1 range.
        seed: seed of the generator.
    """

    def __init__(
        self,
        num_classes: int = 10,
        image_size: int = 32,
        channels: int = 3,
        train_size: int = 1000,
        test_size: int = 200,
        noise: float = 0.25,
        seed: int = 0,
    ) -> None:
        if (
            num_classes < 1
            or image_size < 1
            or channels < 1
            or train_size < 1
            or test_size < 0
            or noise < 0
        ):
            raise ValueError(
                "num_classes, image_size, channels, train_size must be >= 1; test_size, noise >= 0"
            )
        self.cacheable = False  # generating is as fast as reading a cache file
        self.num_classes, self.in_channels = num_classes, channels
        self.image_size = (image_size, image_size)
        self.sizes = {"train": train_size} | ({"test": test_size} if test_size else {})
        self.splits = tuple(self.sizes)
        self.noise, self.seed = noise, seed

    def load(self, split: str) -> ImageTensors:
        """The split as uint8 (N, channels, image_size, image_size), labels balanced."""
        check_split("synthetic", split, self.splits)
        n, pixels = self.sizes[split], self.in_channels * self.image_size[0] * self.image_size[1]
        # uint8 images plus the float noise they are made from: 5 bytes per pixel
        check_fits(5 * n * pixels, f"dataset synthetic's {split} split ({n:,} images)")
        generator = torch.Generator().manual_seed(self.seed)
        coarse = torch.rand(self.num_classes, self.in_channels, 4, 4, generator=generator)
        size = self.image_size
        prototypes = F.interpolate(coarse, size=size, mode="bilinear", align_corners=False)
        generator.manual_seed(self.seed * 3 + 1 + self.splits.index(split))
        labels = (torch.arange(n) % self.num_classes)[torch.randperm(n, generator=generator)]
        noise = torch.randn(n, self.in_channels, *size, generator=generator) * self.noise
        images = ((prototypes[labels] + noise).clamp(0, 1) * 255).round().to(torch.uint8)
        return ImageTensors(images, labels, tuple(f"class_{i}" for i in range(self.num_classes)))


@hookimpl
def register_datasets(register: Register) -> None:
    register(
        "synthetic",
        SyntheticImages,
        examples=[{"train_size": 40, "test_size": 12, "image_size": 8}],
    )
