"""``cvkit eval``: metrics and calibration of a trained model, or of a soft-voting ensemble of
several, with optional test-time augmentation."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import torch
from torch import nn

from cvkit.data.batches import evaluation_loader
from cvkit.data.splits import load_splits
from cvkit.data.tensors import ImageTensors
from cvkit.engine.build import build_augmentations, build_dataset
from cvkit.engine.calibration import calibration_report
from cvkit.engine.device import AUTOCAST_DTYPES, autocast, resolve_device
from cvkit.engine.metrics import collect_logits, metrics_from_logits
from cvkit.engine.stage import model_summary
from cvkit.engine.trained_model import TrainedModel, checkpoint_path, restore
from cvkit.engine.tta import check_tta, tta_probabilities
from cvkit.errors import CheckpointError, CvkitError
from cvkit.registry.loading import default_registry
from cvkit.registry.registry import Registry


@attrs.frozen(eq=False)
class Member:
    """One model of an evaluation, with its recipe's evaluation augmentations."""

    trained: TrainedModel
    augment: list[nn.Module]


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


def member_paths(sources: Path | Sequence[Path], ensemble: bool) -> list[Path]:
    """The checkpoint files of ``sources`` (see :func:`ensemble_members`); CvkitError when
    they are several without ``ensemble``."""
    sources = [sources] if isinstance(sources, Path) else list(sources)
    paths = [path for source in sources for path in ensemble_members(source)]
    if len(paths) > 1 and not ensemble:
        raise CvkitError(
            f"{len(paths)} checkpoints given ({', '.join(map(str, sources))}); add --ensemble "
            "to soft-vote them"
        )
    return paths


def evaluate(
    sources: Path | Sequence[Path],
    *,
    overrides: Sequence[str] = (),
    ensemble: bool = False,
    tta: Sequence[str] = (),
    registry: Registry | None = None,
    device: str | None = None,
    splits: Sequence[str] = ("val", "test"),
) -> dict[str, Any]:
    """Metrics of a checkpoint (or run directory), or with ``ensemble`` of the soft-voting
    ensemble of several (CvkitError when several are given without it),
    on the first one's ``splits`` (validation and test), with the calibration fitted on
    validation (when it is among them). ``device`` overrides ``experiment.device``.

    Each member sees the split through its own recipe's evaluation augmentations and input
    size; softmax outputs are averaged over the weighted ``tta`` views (:mod:`cvkit.engine.tta`) and
    over the members, and the metrics use the log of the average as logits. ``overrides``
    apply to every member's recipe (``data.dataset.root=...`` points them at other data)."""
    registry = registry or default_registry()
    tta = check_tta(tta)
    unknown = sorted(set(splits) - {"val", "test"})
    if unknown or not splits:
        raise CvkitError(f"--split {', '.join(unknown) or '(none)'}: expected val or test")
    overrides = [*overrides, *([f'experiment.device="{device}"'] if device else [])]
    members = [load_member(path, overrides, registry) for path in member_paths(sources, ensemble)]
    first = members[0].trained
    check_classes(members)
    dataset = build_dataset(first.recipe, registry)
    if dataset.num_classes != len(first.classes):
        raise CheckpointError(
            f"{first.path}: the model has {len(first.classes)} classes, the dataset {dataset.num_classes}"
        )
    run_on = resolve_device(first.recipe.experiment.device)
    loaded = load_splits(first.recipe.data, dataset)
    available = {"val": loaded.val} | ({"test": loaded.test} if loaded.test is not None else {})
    chosen = {name: split for name, split in available.items() if name in splits}
    result: dict[str, Any] = {
        "checkpoint": str(first.path),
        "epoch": first.checkpoint.get("epoch"),
        "members": [str(m.trained.path) for m in members],
        "tta": tta,
        "seed": first.recipe.experiment.seed,
        # counted on the CPU, where the restored model still is
        "model": model_summary(first.model, first.checkpoint, first.recipe, torch.device("cpu")),
    }
    outputs = {}
    for name, split in chosen.items():
        if split is None:
            result[name] = None
            continue
        start = time.perf_counter()
        outputs[name] = soft_vote(members, split, run_on, tta)
        seconds = time.perf_counter() - start  # the logits are on the CPU: synchronised
        result[name] = metrics_from_logits(*outputs[name], first.classes, seconds)
    result["calibration"] = (
        calibration_report(outputs["val"], outputs.get("test")) if "val" in outputs else None
    )
    return result


def load_member(path: Path, overrides: Sequence[str], registry: Registry) -> Member:
    """The model of the checkpoint ``path`` (its recipe with ``overrides``) and its
    evaluation augmentations."""
    trained = restore(path, registry, overrides)
    augment = build_augmentations(trained.recipe.augment.eval, registry, len(trained.classes))
    return Member(trained, augment)


def check_classes(members: Sequence[Member]) -> None:
    """CheckpointError unless every member has the first one's classes, in its order."""
    first = members[0].trained
    for member in members[1:]:
        if member.trained.classes != first.classes:
            raise CheckpointError(
                f"{member.trained.path}: its classes differ from those of {first.path}; "
                "an ensemble needs the same classes in the same order"
            )


@torch.no_grad()
def soft_vote(
    members: Sequence[Member], split: ImageTensors, device: torch.device, tta: Sequence[str]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log of the mean softmax over members and TTA views (N, K), and the labels (N,); for
    one member without TTA, its logits."""
    total: torch.Tensor | None = None
    labels: list[torch.Tensor] = []
    for member in members:
        recipe = member.trained.recipe
        loader = evaluation_loader(split, recipe.data, device=device, augmentations=member.augment)
        model = member.trained.model.to(device).eval()
        dtype = AUTOCAST_DTYPES[recipe.experiment.precision]
        if not tta and len(members) == 1:
            return collect_logits(model, loader, device, dtype)
        probs, labels = [], []
        for images, targets in loader:
            with autocast(device, dtype):
                mean = tta_probabilities(model, images, tta)
            probs.append(mean.cpu())
            labels.append(targets.cpu())
        member_probs = torch.cat(probs)
        total = member_probs if total is None else total + member_probs
        model.cpu()
    assert total is not None  # members is never empty
    return (total / len(members)).clamp(min=1e-12).log(), torch.cat(labels)
