"""``cvkit eval`` and ``cvkit predict``: models rebuilt from checkpoints, which carry their recipe."""

from __future__ import annotations

import csv
import pickle
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
from torch import nn
from torchvision.datasets.folder import IMG_EXTENSIONS

from cvkit.build import build_augmentations, build_dataset, build_model, resolve_device
from cvkit.calibration import calibration_report
from cvkit.checkpoint import (
    CheckpointError,
    checkpoint_weights,
    load_checkpoint,
    load_model_weights,
)
from cvkit.errors import CvkitError, DatasetError
from cvkit.images import as_image_batch, decode_image_file, resize
from cvkit.loaders import BatchLoader, load_splits
from cvkit.metrics import collect_logits, metrics_from_logits
from cvkit.plugins import default_registry
from cvkit.precision import AUTOCAST_DTYPES, autocast
from cvkit.recipe import Recipe, apply_override, parse_recipe_text, validate_recipe
from cvkit.registry import Registry
from cvkit.tta import check_tta, tta_views


def checkpoint_path(source: Path, prefer: str = "best") -> Path:
    """``source`` itself, or for a run directory its best.pt (else last.pt); for the run
    directory of a multi-stage recipe, its last stage's."""
    if not source.is_dir():
        return source
    folder = source / "checkpoints"
    stages = _stage_names(source / "recipe.toml")
    if stages and not folder.is_dir():
        folder = source / "stages" / stages[-1] / "checkpoints"
    for name in (f"{prefer}.pt", "last.pt", "best.pt"):
        if (folder / name).is_file():
            return folder / name
    raise CheckpointError(f"{source}: no checkpoints/best.pt or checkpoints/last.pt")


def _stage_names(recipe_file: Path) -> list[str]:
    """The stage names of a run directory's resolved recipe, in order ([] for none)."""
    try:
        data = tomllib.loads(recipe_file.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return []
    return [stage["name"] for stage in data.get("stages", []) if isinstance(stage, dict)]


def checkpoint_recipe(
    checkpoint: dict[str, Any], path: Path, overrides: Sequence[str], registry: Registry
) -> Recipe:
    """The recipe stored in ``checkpoint``, with ``overrides`` applied."""
    raw = parse_recipe_text(checkpoint["recipe"], f"{path} (recipe)")
    for assignment in overrides:
        apply_override(raw, assignment)
    return validate_recipe(raw, registry)


def model_from_checkpoint(
    checkpoint: dict[str, Any], path: Path, recipe: Recipe, registry: Registry
) -> nn.Module:
    """The recipe's model with the checkpoint's weights (its EMA weights, when it kept an EMA)."""
    model = build_model(
        recipe,
        registry,
        num_classes=len(checkpoint["classes"]),
        in_channels=checkpoint["in_channels"],
        load_weights=False,  # the checkpoint has them
    )
    load_model_weights(model, checkpoint_weights(checkpoint), path)
    return model


def ensemble_members(source: Path) -> list[Path]:
    """The checkpoint files ``source`` stands for: a checkpoint file; a run directory's best
    (else last) checkpoint; or every ``*.pt`` file of a folder of checkpoints (the
    ``snapshots/`` of a snapshot-ensemble run)."""
    run_dir = (source / "recipe.toml").is_file() or (source / "checkpoints").is_dir()
    if source.is_dir() and not run_dir:
        files = sorted(source.glob("*.pt"))
        if not files:
            raise CheckpointError(f"{source}: not a run directory and holds no .pt checkpoints")
        return files
    return [checkpoint_path(source)]


@attrs.frozen(eq=False)
class _Member:
    path: Path
    checkpoint: dict[str, Any]
    recipe: Recipe
    model: nn.Module
    augment: list[nn.Module]


def evaluate(
    sources: Path | Sequence[Path],
    *,
    overrides: Sequence[str] = (),
    ensemble: bool = False,
    tta: Sequence[str] = (),
    registry: Registry | None = None,
) -> dict[str, Any]:
    """Metrics of a checkpoint (or run directory), or with ``ensemble`` of the soft-voting
    ensemble of several (CvkitError when several are given without it),
    on the first one's validation and test splits, with the calibration fitted on validation.

    Each member sees the split through its own recipe's evaluation augmentations and input
    size; softmax outputs are averaged over the ``tta`` views (:mod:`cvkit.tta`) and over the
    members, and the metrics use the log of the average as logits. ``overrides`` apply to
    every member's recipe (``data.dataset.root=...`` points them at other data)."""
    registry = registry or default_registry()
    sources = [sources] if isinstance(sources, Path) else list(sources)
    tta = check_tta(tta)
    paths = [path for source in sources for path in ensemble_members(source)]
    if len(paths) > 1 and not ensemble:
        raise CvkitError(
            f"{len(paths)} checkpoints given ({', '.join(map(str, sources))}); add --ensemble "
            "to soft-vote them"
        )
    members = [_load_member(path, overrides, registry) for path in paths]
    first = members[0]
    classes = first.checkpoint["classes"]
    for member in members[1:]:
        if member.checkpoint["classes"] != classes:
            raise CheckpointError(
                f"{member.path}: its classes differ from those of {first.path}; "
                "an ensemble needs the same classes in the same order"
            )
    dataset = build_dataset(first.recipe, registry)
    if dataset.num_classes != len(classes):
        raise CheckpointError(
            f"{first.path}: the model has {len(classes)} classes, the dataset {dataset.num_classes}"
        )
    device = resolve_device(first.recipe.experiment.device)
    loaded = load_splits(first.recipe.data, dataset)
    splits = {"val": loaded.val} | ({"test": loaded.test} if loaded.test is not None else {})
    result: dict[str, Any] = {
        "checkpoint": str(first.path),
        "epoch": first.checkpoint.get("epoch"),
        "members": [str(m.path) for m in members],
        "tta": tta,
    }
    outputs = {}
    for name, split in splits.items():
        if split is None:
            result[name] = None
            continue
        outputs[name] = _soft_vote(members, split, device, tta)
        result[name] = metrics_from_logits(*outputs[name], classes)
    result["calibration"] = (
        calibration_report(outputs["val"], outputs.get("test")) if "val" in outputs else None
    )
    return result


def _load_member(path: Path, overrides: Sequence[str], registry: Registry) -> _Member:
    checkpoint = load_checkpoint(path)
    recipe = checkpoint_recipe(checkpoint, path, overrides, registry)
    model = model_from_checkpoint(checkpoint, path, recipe, registry)
    augment = build_augmentations(recipe.augment.eval, registry, len(checkpoint["classes"]))
    return _Member(path, checkpoint, recipe, model, augment)


@torch.no_grad()
def _soft_vote(
    members: Sequence[_Member], split: Any, device: torch.device, tta: Sequence[str]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log of the mean softmax over members and TTA views (N, K), and the labels (N,); for
    one member without TTA, its logits."""
    total, labels = None, None
    for member in members:
        data = member.recipe.data
        loader = BatchLoader(
            split,
            batch_size=data.eval_batch_size or 2 * data.batch_size,
            device=device,
            augmentations=member.augment,
            workers=data.workers,
            image_size=data.input_size,
            key="augment.eval",
        )
        model = member.model.to(device).eval()
        dtype = AUTOCAST_DTYPES[member.recipe.experiment.precision]
        if not tta and len(members) == 1:
            return collect_logits(model, loader, device, dtype)
        probs, labels = [], []
        for images, targets in loader:
            views = tta_views(images, tta)
            with autocast(device, dtype):
                mean = sum(model(view).float().softmax(1) for view in views) / len(views)
            probs.append(mean.cpu())
            labels.append(targets.cpu())
        member_probs = torch.cat(probs)
        total = member_probs if total is None else total + member_probs
        member.model.cpu()
    return (total / len(members)).clamp(min=1e-12).log(), torch.cat(labels)


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
    batch_size: int = 256,
    registry: Registry | None = None,
) -> int:
    """Write ``id,label`` (and one probability column per class) for every input image to
    ``out``; returns the number of rows. Images are resized to the training images' size if
    needed, then to ``data.image_size`` when the recipe sets it, as in training."""
    if out.exists() and not overwrite:
        raise CvkitError(f"--out {out} exists; pass --overwrite to replace it")
    registry = registry or default_registry()
    path = checkpoint_path(source)
    checkpoint = load_checkpoint(path)
    recipe = checkpoint_recipe(checkpoint, path, (), registry)
    device = resolve_device(recipe.experiment.device)
    model = model_from_checkpoint(checkpoint, path, recipe, registry).to(device).eval()
    augment = [
        a.to(device)
        for a in build_augmentations(recipe.augment.eval, registry, len(checkpoint["classes"]))
    ]
    if any(getattr(a, "per_sample", False) for a in augment):
        raise CvkitError(
            "predict applies batch augmentations only; augment.eval has a per-sample one"
        )
    size, classes = checkpoint["image_size"], checkpoint["classes"]
    input_size = recipe.data.input_size
    images, ids = read_inputs(inputs, checkpoint["in_channels"])
    images = (
        torch.stack([resize(image, size) for image in images])
        if isinstance(images, list)
        else resize(images, size)
    )
    dtype = AUTOCAST_DTYPES[recipe.experiment.precision]
    rows = []
    for start in range(0, images.shape[0], batch_size):
        batch = resize(images[start : start + batch_size].to(device).float().div_(255), input_size)
        labels = torch.zeros(batch.shape[0], dtype=torch.int64, device=device)
        for augmentation in augment:
            batch, labels = augmentation(batch, labels)
        with autocast(device, dtype):
            logits = model(batch)
        rows.append(logits.float().softmax(1).cpu())
    probs = torch.cat(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(
            ["id", "label", *(f"p_{c}" for c in classes)] if probabilities else ["id", "label"]
        )
        for image_id, p in zip(ids, probs, strict=True):
            row = [image_id, classes[int(p.argmax())]]
            writer.writerow(row + [f"{float(v):.6f}" for v in p] if probabilities else row)
    return len(ids)
