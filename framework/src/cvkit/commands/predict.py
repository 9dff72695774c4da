"""``cvkit predict``: classes of images from a folder, an array file or a pickle, as CSV."""

from __future__ import annotations

import csv
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision.datasets.folder import IMG_EXTENSIONS

from cvkit.data.batches import evaluation_loader
from cvkit.data.images import as_image_batch, decode_image_file, resize
from cvkit.data.tensors import ImageTensors
from cvkit.engine.build import build_augmentations
from cvkit.engine.device import AUTOCAST_DTYPES, resolve_device
from cvkit.engine.metrics import collect_logits
from cvkit.engine.trained_model import restore
from cvkit.errors import CvkitError, DatasetError
from cvkit.registry.loading import default_registry
from cvkit.registry.registry import Registry


def read_inputs(path: Path, channels: int) -> tuple[torch.Tensor | list[torch.Tensor], list[str]]:
    """Images to predict and their ids, from an image folder, a .npy/.pt array or a pickle.

    A folder gives one image per file (ids: paths relative to it); an array gives ids
    0..N-1; a pickle holds an array or a dict with ``data`` and optional ``ids`` (keys as
    str or bytes, as in ``cifar_test_nolabel.pkl``).
    """
    if path.is_dir():
        files = sorted(
            p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMG_EXTENSIONS
        )
        if not files:
            raise DatasetError(f"{path}: no image files ({', '.join(IMG_EXTENSIONS)})")
        return [decode_image_file(f, channels) for f in files], [
            str(f.relative_to(path)) for f in files
        ]
    if not path.is_file():
        raise DatasetError(f"input not found: {path}")
    suffix = path.suffix.lower()
    ids: list[str] | None = None
    if suffix == ".npy":
        array: Any = np.load(path, allow_pickle=False)
    elif suffix == ".pt":
        array = torch.load(path, map_location="cpu", weights_only=True)
    elif suffix in (".pkl", ".pickle"):
        with path.open("rb") as stream:
            array = pickle.load(stream, encoding="bytes")  # the user's own file: trusted as such
    else:
        raise DatasetError(f"{path}: expected an image folder, .npy, .pt or .pkl file")
    if isinstance(array, dict):
        table = {k.decode() if isinstance(k, bytes) else str(k): v for k, v in array.items()}
        if "data" not in table:
            raise DatasetError(f"{path}: a dict input needs a 'data' key (has {', '.join(table)})")
        if "ids" in table:
            ids = [
                i.decode() if isinstance(i, bytes) else str(i)
                for i in np.asarray(table["ids"]).tolist()
            ]
        array = table["data"]
    images = as_image_batch(array, channels, str(path))
    ids = ids if ids is not None else [str(i) for i in range(images.shape[0])]
    if len(ids) != images.shape[0]:
        raise DatasetError(f"{path}: {len(ids)} ids for {images.shape[0]} images")
    return images, ids


@torch.no_grad()
def predict(
    source: Path,
    inputs: Path,
    out: Path,
    *,
    probabilities: bool = False,
    overwrite: bool = False,
    registry: Registry | None = None,
) -> int:
    """Write ``id,label`` (and one probability column per class) for every input image to
    ``out``; returns the number of rows. Images are resized to the training images' size if
    needed, then batched as evaluation batches are (``data.image_size``, ``augment.eval``)."""
    if out.exists() and not overwrite:
        raise CvkitError(f"--out {out} exists; pass --overwrite to replace it")
    registry = registry or default_registry()
    trained = restore(source, registry)
    recipe, classes = trained.recipe, trained.classes
    device = resolve_device(recipe.experiment.device)
    images, ids = read_inputs(inputs, trained.checkpoint["in_channels"])
    size = trained.checkpoint["image_size"]
    batch = (
        torch.stack([resize(image, size) for image in images])
        if isinstance(images, list)
        else resize(images, size)
    )
    unlabelled = ImageTensors(batch, torch.zeros(len(batch), dtype=torch.int64), tuple(classes))
    augment = build_augmentations(recipe.augment.eval, registry, len(classes))
    loader = evaluation_loader(unlabelled, recipe.data, device=device, augmentations=augment)
    model = trained.model.to(device)
    logits, _ = collect_logits(model, loader, device, AUTOCAST_DTYPES[recipe.experiment.precision])
    _write_csv(out, ids, logits.softmax(1), classes, probabilities)
    return len(ids)


def _write_csv(
    out: Path, ids: list[str], probs: torch.Tensor, classes: list[str], probabilities: bool
) -> None:
    """Rows ``id,label`` (+ ``p_<class>`` columns) for ``probs`` (N, K)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(
            ["id", "label", *(f"p_{c}" for c in classes)] if probabilities else ["id", "label"]
        )
        for image_id, p in zip(ids, probs, strict=True):
            row = [image_id, classes[int(p.argmax())]]
            writer.writerow(row + [f"{float(v):.6f}" for v in p] if probabilities else row)
