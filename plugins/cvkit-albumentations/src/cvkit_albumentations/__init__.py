"""cvkit plugin: any albumentations transform in a recipe, registered as
``augmentation/albumentations``; per image in DataLoader workers."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import torch
from torch import Tensor

from cvkit import PerSampleAugmentation, Register, hookimpl, refuse_code_parameters

__all__ = ["Albumentations"]


class Albumentations(PerSampleAugmentation):
    """Any albumentations transform by class name, on one image at a time in a worker.

    The uint8 image (C, H, W) becomes an (H, W, C) array for albumentations and comes back
    as uint8 (C, H', W'). Each call reseeds the transform from torch's generator, which cvkit
    seeds per image, so runs are reproducible whatever the number of workers. Put it first
    in augment.train; the images it returns must all have one size.

    Args:
        transform: class name in albumentations, e.g. 'ShiftScaleRotate', 'CoarseDropout'.
        kwargs: its arguments, e.g. { p = 0.5 }.
    """

    changes_size = True

    def __init__(self, transform: str, kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        import albumentations  # loads when used (half a second): listing components stays fast

        cls = getattr(albumentations, transform, None)
        if not (isinstance(cls, type) and issubclass(cls, albumentations.BasicTransform)):
            raise ValueError(
                f"albumentations {albumentations.__version__} has no transform {transform!r}"
            )
        refuse_code_parameters(cls, kwargs or {}, transform)
        accepted = inspect.signature(cls).parameters
        open_ended = any(p.kind is p.VAR_KEYWORD for p in accepted.values())
        unknown = [] if open_ended else sorted(set(kwargs or {}) - set(accepted))
        if unknown:  # albumentations only warns, and the transform runs without them
            valid = ", ".join(sorted(accepted))
            raise ValueError(
                f"{transform} has no argument {', '.join(unknown)}; arguments: {valid}"
            )
        try:
            self.transform = cls(**(kwargs or {}))
        except (TypeError, ValueError) as error:
            raise ValueError(f"{transform}({kwargs or {}}): {error}") from error
        self.name = transform

    def forward(self, image: Tensor) -> Tensor:
        """(C, H, W) uint8 -> (C, H', W') uint8."""
        self.transform.set_random_seed(int(torch.randint(0, 2**31 - 1, ())))
        array = np.ascontiguousarray(image.permute(1, 2, 0).numpy())
        out = self.transform(image=array)["image"]
        if out.ndim == 2:
            out = out[:, :, None]
        return torch.from_numpy(np.ascontiguousarray(out)).permute(2, 0, 1).to(torch.uint8)


@hookimpl
def register_augmentations(register: Register) -> None:
    register(
        "albumentations",
        Albumentations,
        examples=[
            {"transform": "HorizontalFlip", "kwargs": {"p": 0.5}},
            {"transform": "Affine", "kwargs": {"rotate": [-15, 15], "p": 1.0}},
        ],
    )
