"""The base classes of augmentations: on whole batches on the device, or per image in workers."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from cvkit.hookspecs import capability


class BatchAugmentation(nn.Module):
    """An augmentation of a whole batch on the training device.

    Subclasses implement ``forward(images, targets) -> (images, targets)``:
    ``images`` float (N, C, H, W), dtype kept; ``targets`` int64 (N,) or float (N, K) soft.
    Class attributes declare what the engine and the contract tests may expect.

    Randomness must come from torch's generators (``torch.rand(..., device=images.device)``
    and the like; not Python's ``random`` or NumPy's): the loader seeds the CPU's and the
    training device's generator for each batch from the epoch's seed and the batch's number,
    so the batches are the same on resume and in any number of processes. Values that
    depend on the batch should stay on the device: reading one on the host (``.item()``,
    ``float(t)``, ``if t:``) or making a tensor from Python values on a GPU
    (``torch.tensor(x, device=...)``) waits for the GPU's queued work at every batch; use
    ``torch.full``, ``torch.where`` or a buffer made in ``__init__`` instead.

    An augmentation whose randomness must follow each image across epochs (airbench's
    alternating flip) sets ``uses_sample_keys = True`` and implements
    ``forward(images, targets, keys, epoch)``: ``keys`` int64 (N,), a random number fixed
    for each image of the split for the whole run (drawn from the run's seed), ``epoch`` the
    number of passes over the split done before this one.

    Attributes:
        soft_targets: the output targets are soft (N, K) even for hard input (MixUp, CutMix).
        changes_size: the output spatial size may differ from the input's (resize, crop to size).
        min_size: the smallest height and width the augmentation accepts (per instance).
        per_sample: False: it works on batches (see :class:`PerSampleAugmentation`).
        uses_sample_keys: forward also takes each image's key and the epoch.
        random: False for a deterministic augmentation (normalize, resize): the loader then
            skips seeding batches that only such augmentations see.
    """

    soft_targets: ClassVar[bool] = False
    changes_size: ClassVar[bool] = False
    per_sample: ClassVar[bool] = False
    uses_sample_keys: ClassVar[bool] = False
    random: ClassVar[bool] = True
    min_size: int = 1

    def forward(
        self, images: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError(f"{type(self).__name__} must implement forward(images, targets)")


class PerSampleAugmentation(nn.Module):
    """An augmentation of one image at a time, for operations that only exist per image
    (RandAugment, AutoAugment, albumentations, ...).

    Subclasses implement ``forward(image) -> image`` on one uint8 (C, H, W) image; it runs in
    DataLoader workers before batching, so it must come before the batch augmentations in
    ``augment.train``, and the images it returns must all have one size. Randomness comes
    from torch's (and Python's and NumPy's) generators, which cvkit seeds per image, so
    results do not depend on the number of workers.

    Attributes:
        changes_size: the output image's size may differ from the input's.
    """

    per_sample: ClassVar[bool] = True
    changes_size: ClassVar[bool] = False

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement forward(image)")


def augment(
    augmentation: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    keys: torch.Tensor | None,
    epoch: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``augmentation(images, targets)``, with the images' ``keys`` (N,) and ``epoch`` for one
    that declares ``uses_sample_keys`` (ValueError when there are no keys to give it)."""
    if not capability(augmentation, "uses_sample_keys"):
        return augmentation(images, targets)
    if keys is None:
        raise ValueError(f"{type(augmentation).__name__} needs each image's sample key")
    return augmentation(images, targets, keys, epoch)


def soft_targets(targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``targets`` as class probabilities (N, num_classes) float32: hard labels (N,) become
    one-hot rows, soft targets pass through."""
    if targets.ndim == 2:
        if targets.shape[1] != num_classes:
            raise ValueError(
                f"soft targets have {targets.shape[1]} classes, expected {num_classes}"
            )
        return targets.float()
    return torch.nn.functional.one_hot(targets, num_classes).float()


def refuse_code_parameters(
    factory: Callable[..., Any], kwargs: Mapping[str, Any], name: str
) -> None:
    """ValueError naming ``name`` when ``factory`` (a transform class an adapter builds from a
    recipe) would be given, or requires, a parameter annotated as a callable: a recipe is
    data and cannot hold the function (torchvision's and albumentations' ``Lambda``,
    ``Compose``, ...)."""
    code = [
        parameter
        for parameter, p in inspect.signature(factory).parameters.items()
        if "Callable" in str(p.annotation) and (parameter in kwargs or p.default is p.empty)
    ]
    if code:
        raise ValueError(
            f"{name} takes code ({', '.join(code)}: callables), which a recipe cannot give; "
            "use a registered augmentation instead"
        )
