"""Decode each split once: cache it on disk as uint8 tensors, keyed by the dataset's parameters."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import torch

from cvkit.data.paths import cvkit_home
from cvkit.data.tensors import ImageDataset, ImageTensors
from cvkit.errors import StorageError
from cvkit.files import save_atomic
from cvkit.hookspecs import capability
from cvkit.recipe.writing import recipe_data
from cvkit.registry.specs import ComponentSpec

CACHE_FORMAT = 1
log = logging.getLogger("cvkit")


def default_cache_dir() -> Path:
    """``$CVKIT_HOME/tensors``."""
    return cvkit_home() / "tensors"


def cache_path(spec: ComponentSpec, split: str, dataset: ImageDataset, cache_dir: Path) -> Path:
    """Cache file of ``split``: named after the dataset, the split and a hash of everything that
    determines the content (parameters, and the dataset's ``fingerprint()`` when it has one)."""
    fingerprint = dataset.fingerprint() if hasattr(dataset, "fingerprint") else ""
    payload = json.dumps(
        {
            "format": CACHE_FORMAT,
            "dataset": spec.name,
            "params": recipe_data(dict(spec.params)),
            "split": split,
            "fingerprint": fingerprint,
        },
        sort_keys=True,
        default=str,
    )
    digest = hashlib.sha256(payload.encode()).hexdigest()[:16]
    return cache_dir / f"{spec.name}-{split}-{digest}.pt"


def load_split(
    dataset: ImageDataset, spec: ComponentSpec, split: str, *, cache: bool, cache_dir: Path | None
) -> ImageTensors:
    """``dataset.load(split)``, through the on-disk cache unless ``cache`` is off or the dataset
    sets ``cacheable = False`` (data generated in memory gains nothing from a cache)."""
    if not cache or not capability(dataset, "cacheable"):
        return dataset.load(split)
    path = cache_path(spec, split, dataset, cache_dir or default_cache_dir())
    if path.is_file():
        try:
            stored: dict[str, Any] = torch.load(path, weights_only=True)
            return ImageTensors(stored["images"], stored["labels"], tuple(stored["classes"]))
        except Exception as error:  # a damaged cache file is rebuilt, never trusted
            log.warning("ignoring unreadable cache %s (%s: %s)", path, type(error).__name__, error)
    data = dataset.load(split)
    try:
        save_atomic(
            {"images": data.images, "labels": data.labels, "classes": list(data.classes)}, path
        )
    except StorageError as error:  # the data are loaded; a missing cache only costs time
        log.warning("could not write the tensor cache: %s", error)
    return data
