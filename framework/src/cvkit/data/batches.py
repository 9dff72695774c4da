"""Batches from splits held in memory, augmented on the training device.

The fast path indexes a uint8 tensor that lives on the device, converts the batch to float
in [0, 1] and applies the batch augmentations there: no per-sample Python in the loop.
Augmentations that declare ``per_sample = True`` (operations that only exist per image) run
first, in DataLoader workers, on uint8 images; each sample's randomness is seeded from the
loader's generator, so results do not depend on the number of workers or on resuming.
The batch augmentations draw from torch's generators (the CPU's and the device's), reseeded
for each batch from the epoch's seed and the batch's number (and restored after), so a
batch's randomness depends on neither the model's use of those generators (dropout) nor
the process that draws it.

In a run of several processes (see :mod:`cvkit.distributed`), a training loader
makes every global batch of ``batch_size`` images, augmented as one process would augment
it, and yields this process's contiguous part of it: the processes together see what one
process would. Evaluation loaders with ``shard=True`` hold this process's contiguous part
of the split; :func:`cvkit.engine.metrics.collect_logits` gathers the parts.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, default_collate

from cvkit import distributed
from cvkit.data.augmentation import augment
from cvkit.data.encoded import EncodedImages
from cvkit.data.images import resize
from cvkit.data.memory import check_fits
from cvkit.data.splits import subset
from cvkit.data.tensors import ImageTensors
from cvkit.errors import CvkitError, DatasetError
from cvkit.hookspecs import capability
from cvkit.recipe.schema import DataSettings

log = logging.getLogger("cvkit")


def batches_per_epoch(count: int, batch_size: int, drop_last: bool) -> int:
    """Number of batches in one pass over ``count`` images."""
    full, rest = divmod(count, batch_size)
    return full + (1 if rest and not drop_last else 0)


def _batch_seed(epoch_seed: int, number: int) -> int:
    """The seed of batch ``number`` (0-based) of the epoch whose seed is ``epoch_seed``."""
    return (epoch_seed + (number + 1) * 1_000_000_007) % 2**63


def _is_per_sample(augmentation: nn.Module) -> bool:
    return bool(capability(augmentation, "per_sample"))


def check_order(augmentations: Sequence[nn.Module], key: str) -> None:
    """Per-sample augmentations run on uint8 images before batching: they must come first."""
    seen_batch = None
    for i, augmentation in enumerate(augmentations):
        if not _is_per_sample(augmentation):
            seen_batch = seen_batch if seen_batch is not None else i
        elif seen_batch is not None:
            raise CvkitError(
                f"{key}[{i}] ({type(augmentation).__name__}) works per sample and must come before "
                f"the batch augmentations ({key}[{seen_batch}] is one)"
            )


class _PerSample(Dataset):
    """Items ``(index, seed)``: image ``index`` (decoded, when the split is kept encoded)
    through the per-sample augmentations under ``seed``. When the split is kept encoded and
    the first augmentation ``crops_at_decode``, that crop is taken as the image is decoded
    (from the stored image, not from one resized to the dataset's size)."""

    def __init__(self, images: Tensor | EncodedImages, augmentations: Sequence[nn.Module]) -> None:
        self.images = images
        self.augmentations = list(augmentations)
        self.crops_at_decode = bool(augmentations) and capability(
            augmentations[0], "crops_at_decode"
        )

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, item: tuple[int, int]) -> Tensor | str:
        """The image, or (for an encoded image that cannot be decoded) the reason, to skip it."""
        index, seed = item
        in_worker = torch.utils.data.get_worker_info() is not None
        saved = None if in_worker else (random.getstate(), np.random.get_state())
        try:
            with torch.random.fork_rng(devices=[], enabled=not in_worker):
                torch.default_generator.manual_seed(seed)  # the CPU generator only: not CUDA's
                random.seed(seed)
                np.random.seed(seed % 2**32)
                augmentations = self.augmentations
                try:
                    if isinstance(self.images, EncodedImages) and self.crops_at_decode:
                        first, *augmentations = augmentations
                        image = self.images.cropped(index, first)
                    else:
                        image = self.images[index]
                except DatasetError as error:
                    if not isinstance(self.images, EncodedImages):
                        raise
                    return str(error)
                for augmentation in augmentations:
                    image = augmentation(image)
        finally:
            if saved is not None:  # the main process's generators continue as if untouched
                random.setstate(saved[0])
                np.random.set_state(saved[1])
        return image


def _collate(items: list[Tensor | str]) -> tuple[list[str | None], Tensor | None]:
    """Per item, why it was skipped (None: it was not), and the other items' images stacked
    (None when every item was skipped)."""
    problems = [item if isinstance(item, str) else None for item in items]
    images = [item for item in items if not isinstance(item, str)]
    return problems, default_collate(images) if images else None


def _check_memory(
    data: ImageTensors,
    batch_size: int,
    image_size: list[int] | None,
    device: torch.device,
    key: str,
    on_device: bool,
) -> None:
    """Refuse a loader whose split (moved to a GPU) or float batches (at ``image_size``, with
    a copy or two made by augmentations) cannot fit in memory, before anything is allocated."""
    if on_device and device.type != "cpu" and isinstance(data.images, Tensor):
        check_fits(data.images.numel(), f"the {len(data):,} images of this split", device)
    channels = data.images.shape[1]
    height, width = image_size or list(data.images.shape[-2:])
    batch_bytes = 3 * 4 * min(batch_size, len(data)) * channels * height * width
    size = f"data.image_size = [{height}, {width}]" if image_size else f"{height}x{width} images"
    check_fits(batch_bytes, f"{key}: batches of {min(batch_size, len(data))} at {size}", device)


class BatchLoader:
    """Epochs of ``(images, targets)`` batches from one split held in memory.

    ``images``: float32 (N, C, H, W) on ``device``, values in [0, 1] before the augmentations
    (which usually end with normalize), resized to ``image_size`` ([height, width]) first
    when it is given; ``targets``: int64 (N,), or float (N, K) after a
    label-mixing augmentation. The shuffling generator's state (see :meth:`state_dict`) is
    saved in checkpoints, so a resumed epoch sees the same batches.

    ``shard``: in a run of several processes, yield this process's contiguous part of each
    (augmented) batch; ``shard_weight`` is then the part's share of the batch times the
    number of processes (1.0 when the batch divides evenly), by which the training loop
    scales its mean loss so that averaging the gradients over the processes gives the
    whole batch's mean. ``part_of_split``: ``data`` is this process's part of a split
    (:func:`evaluation_loader` with ``shard=True``), whose metrics the processes combine.
    """

    def __init__(
        self,
        data: ImageTensors,
        *,
        batch_size: int,
        device: torch.device,
        augmentations: Sequence[nn.Module] = (),
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        workers: int = 0,
        channels_last: bool = False,
        image_size: list[int] | None = None,
        key: str = "augment",
        shard: bool = False,
        part_of_split: bool = False,
    ) -> None:
        check_order(augmentations, key)
        per_sample = [a for a in augmentations if _is_per_sample(a)]
        self.batch_augmentations = [a.to(device) for a in augmentations if not _is_per_sample(a)]
        # batches are seeded only for augmentations that draw random numbers
        random = any(capability(a, "random") for a in self.batch_augmentations)
        self._seeds = _BatchSeeds(device) if random else None
        self.device, self.batch_size = device, batch_size
        self.shuffle, self.drop_last, self.channels_last = shuffle, drop_last, channels_last
        self.image_size = image_size
        self.classes = data.classes
        self.labels = data.labels.to(device)
        self.count = len(data)
        if drop_last and self.count < batch_size:
            raise CvkitError(
                f"{self.count} images are fewer than one batch of {batch_size} (data.batch_size)"
            )
        self.workers = workers
        self.shard = shard and distributed.world_size() > 1
        self.shard_weight = 1.0
        self.part_of_split = part_of_split
        if self.shard:
            _check_shardable(self.count, batch_size, drop_last, key)
        # encoded images (a dataset larger than memory) are decoded by the per-sample workers
        decoded_by_workers = bool(per_sample) or isinstance(data.images, EncodedImages)
        _check_memory(data, batch_size, image_size, device, key, on_device=not decoded_by_workers)
        self.per_sample = _PerSample(data.images, per_sample) if decoded_by_workers else None
        self.skipped: dict[int, str] = {}  # encoded images that could not be decoded: why
        # Without per-sample work the images live on the device; otherwise workers read them on the CPU.
        self.images = data.images
        if isinstance(data.images, Tensor) and self.per_sample is None:
            self.images = data.images.to(device)
        self.generator = torch.Generator().manual_seed(seed)
        self._epoch_start = self.generator.get_state()
        self.passes = 0  # epochs completed, for augmentations that use sample keys
        keyed = any(capability(a, "uses_sample_keys") for a in self.batch_augmentations)
        self.sample_keys = (
            torch.randint(
                -(2**63),
                2**63 - 1,
                (self.count,),
                generator=torch.Generator().manual_seed(seed + 7919),
            ).to(device)
            if keyed
            else None
        )

    def __len__(self) -> int:
        return batches_per_epoch(self.count, self.batch_size, self.drop_last)

    def images_in(self, batches: range) -> int:
        """Images in the epoch's batches ``batches`` (0-based numbers), over all processes:
        ``batch_size`` each, the last batch of an epoch kept by ``drop_last = false`` holds
        the rest."""
        last = len(self) - 1
        rest = self.count - self.batch_size * last
        return sum(rest if number == last else self.batch_size for number in batches)

    def state_dict(self) -> dict[str, Any]:
        """The generator state and the number of epochs done at the start of the current
        epoch (or the next, between epochs)."""
        return {"generator": self._epoch_start, "passes": self.passes}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._epoch_start = state["generator"]
        self.generator.set_state(self._epoch_start)
        self.passes = state.get("passes", 0)  # absent from older checkpoints

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        return self.epoch()

    def epoch(self, start: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        """One pass over the split, from batch ``start`` on (to resume an epoch part-way)."""
        self.generator.set_state(self._epoch_start)
        order = (
            torch.randperm(self.count, generator=self.generator)
            if self.shuffle
            else torch.arange(self.count)
        )
        seed = int(torch.randint(0, 2**62, (), generator=self.generator))
        for number, (indices, images, labels) in enumerate(
            self._batches(order, start, seed), start
        ):
            yield self._augment(images, labels, indices, seed, number)
        self._epoch_start = self.generator.get_state()
        self.passes += 1

    def _batches(
        self, order: Tensor, start: int, seed: int
    ) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        """``(indices, images, labels)`` of each batch from batch ``start`` of the epoch
        whose image order is ``order``, all on the device, images uint8."""
        size = self.batch_size
        if self.per_sample is None:
            order = order.to(self.device, non_blocking=True)  # one copy per epoch, none per batch
            images = self.images
            assert isinstance(images, Tensor)  # encoded images have per-sample work
            for first in range(start * size, len(self) * size, size):
                indices = order[first : first + size]
                yield indices, images[indices], self.labels[indices]
            return
        batches = list(order.split(size))[start : len(self)]
        items = [
            [(int(i), (seed + int(i) * 1_000_003) % 2**63) for i in indices] for indices in batches
        ]
        loader = DataLoader(
            self.per_sample,
            batch_sampler=items,
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
            collate_fn=_collate,
            generator=torch.Generator().manual_seed(
                seed
            ),  # else it draws from the global generator
        )
        for number, (indices, (problems, images)) in enumerate(
            zip(batches, loader, strict=True), start
        ):
            if images is None or any(problems):
                indices, images = self._skip(number, indices, problems, images)
            # non-blocking: a blocking copy to a GPU would wait for its queued work
            on_device = indices.to(self.device, non_blocking=True)
            yield on_device, images.to(self.device, non_blocking=True), self.labels[on_device]

    def _skip(
        self, number: int, indices: Tensor, problems: list[str | None], images: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """Batch ``number`` without its images that could not be decoded (``problems``),
        each one counted and named once (in :attr:`skipped`)."""
        for position, problem in zip(indices.tolist(), problems, strict=True):
            if problem is not None and position not in self.skipped:
                self.skipped[position] = problem
                log.warning("skipped: %s (%d images skipped so far)", problem, len(self.skipped))
        if images is None:
            raise DatasetError(
                f"none of the {len(problems)} images of batch {number + 1} can be decoded, "
                f"e.g. {next(p for p in problems if p)}"
            )
        return indices[torch.tensor([p is None for p in problems])], images

    def _augment(
        self, images: Tensor, labels: Tensor, indices: Tensor, epoch_seed: int, number: int
    ) -> tuple[Tensor, Tensor]:
        """Batch ``number`` of the epoch whose seed is ``epoch_seed``, through the batch
        augmentations (float in [0, 1] first), and this process's part of it."""
        images = images.float().div_(255)
        if self.image_size is not None:
            images = resize(images, self.image_size)
        targets = labels
        keys = None if self.sample_keys is None else self.sample_keys[indices]
        seeds = self._seeds
        states = None if seeds is None else seeds.seed(_batch_seed(epoch_seed, number))
        try:
            for augmentation in self.batch_augmentations:
                images, targets = augment(augmentation, images, targets, keys, self.passes)
        finally:
            if seeds is not None and states is not None:
                seeds.restore(states)
        if self.shard:
            part = distributed.shard(images.shape[0])
            self.shard_weight = (
                (part.stop - part.start) * distributed.world_size() / images.shape[0]
            )
            images, targets = images[part], targets[part]
        if self.channels_last:  # after the augmentations, whose outputs may be contiguous
            images = images.contiguous(memory_format=torch.channels_last)
        return images, targets


class _BatchSeeds:
    """Seeds the generators batch augmentations draw from, torch's CPU generator and
    ``device``'s own (by contract, a batch augmentation's randomness comes from torch's
    generators alone), for one batch, and gives them back their states afterwards, so that
    the model's own draws (dropout) continue as if untouched. A few microseconds a batch: no
    other device's generator is touched (``torch.manual_seed`` would queue lazy seeding of
    every backend, formatting a stack trace for each one not initialised)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.module = None if device.type == "cpu" else torch.get_device_module(device)
        self.scratch = None if self.module is None else torch.Generator(device)

    def seed(self, seed: int) -> tuple[Tensor, Tensor | None]:
        """Start both generators from ``seed``; returns their states before, for :meth:`restore`."""
        cpu = torch.default_generator.get_state()
        torch.default_generator.manual_seed(seed)
        if self.module is None or self.scratch is None:
            return cpu, None
        own = self.module.get_rng_state(self.device)
        self.module.set_rng_state(self.scratch.manual_seed(seed).get_state(), self.device)
        return cpu, own

    def restore(self, states: tuple[Tensor, Tensor | None]) -> None:
        """Give both generators back the states :meth:`seed` returned."""
        torch.default_generator.set_state(states[0])
        if states[1] is not None and self.module is not None:
            self.module.set_rng_state(states[1], self.device)


def _check_shardable(count: int, batch_size: int, drop_last: bool, key: str) -> None:
    """Every process needs at least one image of every batch."""
    processes = distributed.world_size()
    smallest = min(batch_size, count)
    last = count % batch_size
    if not drop_last and last:
        smallest = min(smallest, last)
    if smallest < processes:
        raise CvkitError(
            f"{key}: a batch of {smallest} images cannot be shared by {processes} processes "
            "(data.batch_size, or the epoch's last batch: set data.drop_last = true)"
        )


def training_loader(
    split: ImageTensors,
    data: DataSettings,
    *,
    device: torch.device,
    augmentations: Sequence[nn.Module],
    seed: int,
    channels_last: bool = False,
) -> BatchLoader:
    """Shuffled training batches of ``split`` as recipe section ``data`` ([data]) asks:
    ``batch_size``, ``drop_last``, ``workers`` and ``image_size``; shuffled with ``seed``."""
    return BatchLoader(
        split,
        batch_size=data.batch_size,
        device=device,
        augmentations=augmentations,
        shuffle=True,
        drop_last=data.drop_last,
        seed=seed,
        workers=data.workers,
        channels_last=channels_last,
        image_size=data.input_size,
        key="augment.train",
        shard=True,
    )


def evaluation_loader(
    split: ImageTensors,
    data: DataSettings,
    *,
    device: torch.device,
    augmentations: Sequence[nn.Module],
    channels_last: bool = False,
    shard: bool = False,
) -> BatchLoader:
    """Batches of ``split`` in order, for validation, test and prediction: ``eval_batch_size``
    images (default: twice ``batch_size``), ``workers`` and ``image_size`` from [data].
    ``shard``: in a run of several processes, only this process's contiguous part of the
    split (see :func:`cvkit.distributed.shard`)."""
    part_of_split = shard and distributed.world_size() > 1
    if part_of_split:
        if len(split) < distributed.world_size():
            raise CvkitError(
                f"a split of {len(split)} images cannot be evaluated by "
                f"{distributed.world_size()} processes, one image each at least"
            )
        split = subset(split, torch.arange(len(split))[distributed.shard(len(split))])
    return BatchLoader(
        split,
        batch_size=data.eval_batch_size or 2 * data.batch_size,
        device=device,
        augmentations=augmentations,
        workers=data.workers,
        channels_last=channels_last,
        image_size=data.input_size,
        key="augment.eval",
        part_of_split=part_of_split,
    )
