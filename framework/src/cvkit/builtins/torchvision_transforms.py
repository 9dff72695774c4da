"""Built-in plugin: ``augmentation/torchvision``, any torchvision.transforms.v2 transform, per
image in DataLoader workers."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from cvkit.data.augmentation import PerSampleAugmentation, refuse_code_parameters
from cvkit.hookspecs import Register, hookimpl


class TorchvisionTransform(PerSampleAugmentation):
    """Any torchvision.transforms.v2 transform, applied to each image in DataLoader workers.

    For operations that only exist per image (RandAugment, AutoAugment, ColorJitter on
    uint8, ...). It receives and returns one uint8 image (C, H, W); it must come before the
    batch augmentations in augment.train, and the images it returns must all have one size.

    Args:
        transform: class name in torchvision.transforms.v2, e.g. 'RandAugment'.
        kwargs: the transform's arguments, e.g. { num_ops = 2, magnitude = 9 }.
    """

    changes_size = True

    def __init__(self, transform: str, kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        from torchvision.transforms import v2

        cls = getattr(v2, transform, None)
        if not (isinstance(cls, type) and issubclass(cls, v2.Transform)):
            raise ValueError(f"torchvision.transforms.v2 has no transform {transform!r}")
        refuse_code_parameters(cls, kwargs or {}, transform)
        try:
            self.transform = cls(**(kwargs or {}))
        except (TypeError, ValueError) as error:
            raise ValueError(f"{transform}({kwargs or {}}): {error}") from error

    def forward(self, image: Tensor) -> Tensor:
        """(C, H, W) uint8 -> (C, H', W') uint8."""
        return self.transform(image)


@hookimpl
def register_augmentations(register: Register) -> None:
    register(
        "torchvision",
        TorchvisionTransform,
        examples=[
            {"transform": "RandAugment", "kwargs": {"num_ops": 2, "magnitude": 9}},
            {"transform": "RandomResizedCrop", "kwargs": {"size": [6, 6], "scale": [0.5, 1.0]}},
        ],
    )
