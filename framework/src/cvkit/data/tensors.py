"""Datasets as tensors: what a dataset component returns and promises."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import attrs
import torch

from cvkit.data.encoded import EncodedImages


@attrs.frozen(eq=False)
class ImageTensors:
    """One split held in memory.

    Attributes:
        images: uint8 (N, C, H, W), values 0..255; or the split's images kept encoded
            (:class:`~cvkit.data.encoded.EncodedImages`, a dataset larger than memory),
            which index and subset alike and are decoded in the loader's workers.
        labels: int64 (N,), class indices in [0, len(classes)).
        classes: class names, index i naming label i.
    """

    images: torch.Tensor | EncodedImages
    labels: torch.Tensor
    classes: tuple[str, ...]

    def __attrs_post_init__(self) -> None:
        if isinstance(self.images, EncodedImages):
            if self.labels.dtype != torch.int64 or self.labels.shape != (len(self.images),):
                raise ValueError(
                    f"labels must be int64 ({len(self.images)},), got {self.labels.dtype} {tuple(self.labels.shape)}"
                )
            return
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(
                f"images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}"
            )
        if self.labels.dtype != torch.int64 or self.labels.shape != self.images.shape[:1]:
            raise ValueError(
                f"labels must be int64 ({self.images.shape[0]},), got {self.labels.dtype} {tuple(self.labels.shape)}"
            )

    def __len__(self) -> int:
        return self.images.shape[0]

    def first(self, count: int) -> torch.Tensor:
        """The first ``count`` images as uint8 (count, C, H, W), decoded if kept encoded."""
        images = self.images[:count]
        return images.decoded() if isinstance(images, EncodedImages) else images


@runtime_checkable
class ImageDataset(Protocol):
    """What a dataset factory returns (see :func:`cvkit.hookspecs.register_datasets`).

    Attributes:
        num_classes: number of classes.
        in_channels: image channels (3 for RGB, 1 for grayscale).
        splits: split names; ``"train"`` always, ``"test"`` when the dataset has one.
    """

    num_classes: int
    in_channels: int
    splits: Sequence[str]

    def load(self, split: str) -> ImageTensors:
        """The whole ``split``; raises DatasetError if its files are missing."""
        ...


def check_split(dataset: str, split: str, splits: tuple[str, ...]) -> None:
    """Raise ValueError naming ``dataset`` and its ``splits`` unless ``split`` is one of them."""
    if split not in splits:
        raise ValueError(f"{dataset} has no split {split!r}; splits: {', '.join(splits)}")
