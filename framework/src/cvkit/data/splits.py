"""Splits of a recipe's data: the training split less a held-out validation part, an
optional training subset, and the test split; each as uint8 tensors in memory."""

from __future__ import annotations

import attrs
import torch
from torch import Tensor

from cvkit.data.cache import load_split
from cvkit.data.tensors import ImageDataset, ImageTensors
from cvkit.errors import CvkitError
from cvkit.recipe.schema import DataSettings


def split_train_val(
    data: ImageTensors, val_split: int | float, seed: int
) -> tuple[ImageTensors, ImageTensors | None]:
    """Hold out ``val_split`` images (a count, or a fraction of the split) chosen by ``seed``.

    Both parts keep the original order of their images.
    """
    total = len(data)
    count = val_split if isinstance(val_split, int) else round(val_split * total)
    if count == 0:
        return data, None
    if count >= total:
        raise CvkitError(
            f"data.val_split = {val_split} leaves no training images ({total} in the split)"
        )
    order = torch.randperm(total, generator=torch.Generator().manual_seed(seed))
    val, train = order[:count].sort().values, order[count:].sort().values
    return subset(data, train), subset(data, val)


@attrs.frozen(eq=False)
class Splits:
    """A recipe's data: training images, held-out validation images (or None), test split (or None)."""

    train: ImageTensors
    val: ImageTensors | None
    test: ImageTensors | None


def load_splits(data: DataSettings, dataset: ImageDataset) -> Splits:
    """The splits of ``dataset`` as recipe section ``data`` ([data]) asks: the training split
    (through the tensor cache) less ``val_split`` validation images, and the test split."""

    def load(split: str) -> ImageTensors:
        return load_split(dataset, data.dataset, split, cache=data.cache, cache_dir=data.cache_dir)

    train, val = split_train_val(load("train"), data.val_split, data.split_seed)
    if data.train_subset is not None:
        train = choose_subset(train, data.train_subset, data.split_seed)
    return Splits(train, val, load("test") if "test" in dataset.splits else None)


def choose_subset(data: ImageTensors, size: int | float, seed: int) -> ImageTensors:
    """``size`` images (a count, or a fraction) of ``data`` chosen with ``seed``, in their order."""
    count = size if isinstance(size, int) else max(1, round(size * len(data)))
    if count > len(data):
        raise CvkitError(f"data.train_subset = {size} is more than the {len(data)} training images")
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed + 1))
    return subset(data, order[:count].sort().values)


def subset(data: ImageTensors, indices: Tensor) -> ImageTensors:
    """The images at ``indices``."""
    return ImageTensors(data.images[indices], data.labels[indices], data.classes)
