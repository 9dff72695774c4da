"""Splits are decoded once and cached as uint8 tensors; the cache follows the files."""

from __future__ import annotations

import logging
import os

import numpy as np
import torch
from PIL import Image

from cvkit.builtins.imagefolder import ImageFolder
from cvkit.builtins.synthetic import SyntheticImages
from cvkit.data.cache import cache_path, load_split
from cvkit.registry.specs import ComponentSpec


class Counting(SyntheticImages):
    """Synthetic images that allow caching and count their loads."""

    def __init__(self) -> None:
        super().__init__(num_classes=2, image_size=4, train_size=10, test_size=0)
        self.cacheable = True
        self.loads = 0

    def load(self, split):
        self.loads += 1
        return super().load(split)


SPEC = ComponentSpec("dataset", "counting", {"size": 4})


def test_a_split_is_decoded_once_then_read_from_the_cache(tmp_path) -> None:
    dataset = Counting()
    first = load_split(dataset, SPEC, "train", cache=True, cache_dir=tmp_path)
    second = load_split(dataset, SPEC, "train", cache=True, cache_dir=tmp_path)
    assert (
        dataset.loads == 1
        and torch.equal(first.images, second.images)
        and first.classes == second.classes
    )
    assert cache_path(SPEC, "train", dataset, tmp_path).is_file()
    other = ComponentSpec("dataset", "counting", {"size": 5})
    assert cache_path(other, "train", dataset, tmp_path) != cache_path(
        SPEC, "train", dataset, tmp_path
    )


def test_cache_off_and_uncacheable_datasets_always_load(tmp_path) -> None:
    dataset = Counting()
    load_split(dataset, SPEC, "train", cache=False, cache_dir=tmp_path)
    load_split(dataset, SPEC, "train", cache=False, cache_dir=tmp_path)
    assert dataset.loads == 2 and not list(tmp_path.iterdir())
    load_split(
        SyntheticImages(train_size=4, test_size=0), SPEC, "train", cache=True, cache_dir=tmp_path
    )
    assert not list(tmp_path.iterdir())


def test_a_damaged_cache_file_is_rebuilt(tmp_path, caplog) -> None:
    dataset = Counting()
    load_split(dataset, SPEC, "train", cache=True, cache_dir=tmp_path)
    cache_path(SPEC, "train", dataset, tmp_path).write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING, logger="cvkit"):
        data = load_split(dataset, SPEC, "train", cache=True, cache_dir=tmp_path)
    assert dataset.loads == 2 and len(data) == 10 and "ignoring unreadable cache" in caplog.text


def test_an_edited_image_folder_gets_a_new_cache_entry(tmp_path) -> None:
    root = tmp_path / "images"
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8)).save(root / label / "0.png")
    spec = ComponentSpec("dataset", "imagefolder", {"root": root})
    before = cache_path(spec, "train", ImageFolder(root), tmp_path)
    path = root / "a" / "0.png"
    Image.fromarray(np.full((4, 4, 3), 9, dtype=np.uint8)).save(path)
    os.utime(path, ns=(1, 1))
    assert cache_path(spec, "train", ImageFolder(root), tmp_path) != before
