"""One stage of training: what a training procedure receives, and the standard procedure.

A recipe without ``[[stages]]`` is one stage written to the run directory itself; a recipe
with stages trains each in ``<run>/stages/<name>/`` (checkpoints, metrics, eval.json), one
after another, each starting from the weights its ``init`` names.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
from torch import nn

from cvkit.build import build_components, build_dataset, trainable_parameters
from cvkit.calibration import calibration_report
from cvkit.checkpoint import checkpoint_weights, load_checkpoint, load_model_weights
from cvkit.errors import CvkitError
from cvkit.loaders import BatchLoader, batches_per_epoch, load_splits
from cvkit.metrics import collect_logits, metrics_from_logits
from cvkit.recipe import Recipe, dump_recipe
from cvkit.registry import Registry
from cvkit.trainer import Trainer

log = logging.getLogger("cvkit")


@attrs.frozen(eq=False)
class StageRun:
    """One stage to train, as a training procedure receives it.

    Attributes:
        name: the stage's name ("" for a recipe without stages).
        recipe: the stage's complete recipe (its ``[[stages]]`` keys over the top level).
        run_dir: the directory the stage writes to.
        registry: the component registry.
        device: the training device.
        init: module name ("" for the whole model) -> checkpoint file the stage starts from.
        checkpoint: (path, state) of the stage's last checkpoint when resuming, else None.
        callbacks: callback objects added to the recipe's by the caller (``cvkit tune``
            reports each epoch's validation accuracy to its study through one).
    """

    name: str
    recipe: Recipe
    run_dir: Path
    registry: Registry
    device: torch.device
    init: Mapping[str, Path] = attrs.field(factory=dict)
    checkpoint: tuple[Path, dict[str, Any]] | None = None
    callbacks: tuple[Any, ...] = ()


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's (all devices) generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def load_initial_weights(model: nn.Module, init: Mapping[str, Path], where: str) -> None:
    """Load each source checkpoint's weights (EMA weights when it kept an EMA) into the
    module of ``model`` its key names ("" for the whole model); ``where`` names the recipe key."""
    for module_name, path in init.items():
        try:
            target = model.get_submodule(module_name) if module_name else model
        except AttributeError:
            modules = ", ".join(name for name, _ in model.named_children())
            raise CvkitError(
                f"{where}: the model has no module {module_name!r} (its top-level modules: {modules})"
            ) from None
        load_model_weights(target, checkpoint_weights(load_checkpoint(path)), path)
        log.info("%s: %s from %s", where, module_name or "model", path)


def train_stage(stage: StageRun, model: nn.Module | None = None) -> dict[str, Any]:
    """Train ``stage`` with one model and the loop of :mod:`cvkit.trainer`, evaluate it and
    return the evaluation (also written to eval.json). ``model``: train this module instead
    of the recipe's model (the model table's max_params, freeze and trainable still apply)."""
    recipe, run_dir, registry, device = stage.recipe, stage.run_dir, stage.registry, stage.device
    experiment, data, settings = recipe.experiment, recipe.data, recipe.trainer
    seed_everything(experiment.seed)
    if settings.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    dataset = build_dataset(recipe, registry)
    splits = load_splits(data, dataset)
    train_data, val_data, test_data = splits.train, splits.val, splits.test
    steps = batches_per_epoch(len(train_data), data.batch_size, data.drop_last)
    whole_model_given = "" in stage.init or stage.checkpoint is not None
    components = build_components(
        recipe,
        registry,
        dataset,
        steps_per_epoch=steps,
        load_weights=not whole_model_given,
        model=model,
    )
    if stage.checkpoint is None:
        load_initial_weights(components.model, stage.init, f"stage {stage.name} init")
    common = {
        "device": device,
        "channels_last": settings.channels_last,
        "image_size": data.input_size,
    }
    train_loader = BatchLoader(
        train_data,
        batch_size=data.batch_size,
        augmentations=components.train_augment,
        shuffle=True,
        drop_last=data.drop_last,
        seed=experiment.seed,
        workers=data.workers,
        key="augment.train",
        **common,
    )
    eval_batch = data.eval_batch_size or 2 * data.batch_size

    def eval_loader(split: Any) -> BatchLoader | None:
        if split is None:
            return None
        return BatchLoader(
            split,
            batch_size=eval_batch,
            augmentations=components.eval_augment,
            workers=data.workers,
            key="augment.eval",
            **common,
        )

    val_loader, test_loader = eval_loader(val_data), eval_loader(test_data)
    trainer = Trainer(
        model=components.model,
        optimizer=components.optimizer,
        scheduler=components.scheduler,
        loss=components.loss,
        train_loader=train_loader,
        val_loader=val_loader,
        callbacks=[*components.callbacks, *stage.callbacks],
        epochs=experiment.epochs,
        device=device,
        precision=experiment.precision,
        clip_grad_norm=settings.clip_grad_norm,
        clip_grad_value=settings.clip_grad_value,
        ema_decay=settings.ema_decay,
        compile=settings.compile,
        channels_last=settings.channels_last,
        run_dir=run_dir,
        recipe=recipe,
        metadata={
            "recipe": dump_recipe(recipe),
            "classes": list(train_data.classes),
            "in_channels": dataset.in_channels,
            "image_size": list(train_data.images.shape[-2:]),
        },
    )
    if stage.checkpoint is not None:
        trainer.load_state_dict(stage.checkpoint[1], stage.checkpoint[0])
        log.info("resuming %s at epoch %d, batch %d", run_dir, trainer.epoch + 1, trainer.batch)
    log.info(
        "%s: %s, %s trainable parameters, %d train / %d val / %d test images, %d steps per epoch, on %s",
        run_dir,
        recipe.model.key,
        f"{trainable_parameters(components.model):,}",
        len(train_data),
        len(val_data) if val_data else 0,
        len(test_data) if test_data else 0,
        steps,
        device,
    )
    trainer.fit()
    return final_evaluation(trainer, recipe, run_dir, val_loader, test_loader)


def final_evaluation(
    trainer: Trainer,
    recipe: Recipe,
    run_dir: Path,
    val_loader: BatchLoader | None,
    test_loader: BatchLoader | None,
) -> dict[str, Any]:
    """Validation and test metrics with the weights ``recipe.trainer.eval_weights`` asks
    for, and the calibration fitted on the validation split (see :mod:`cvkit.calibration`)."""
    weights = "last"
    best = run_dir / "checkpoints" / "best.pt"
    if recipe.trainer.eval_weights == "best" and best.is_file():
        state = load_checkpoint(best)
        load_model_weights(trainer.model, state["model"], best)
        if trainer.ema is not None:
            trainer.ema.load_state_dict(state["ema"])
        weights = f"best (epoch {state['epoch']})"
    model = trainer.evaluation_model()
    outputs = {
        split: collect_logits(model, loader, trainer.device, trainer.autocast_dtype)
        for split, loader in (("val", val_loader), ("test", test_loader))
        if loader is not None
    }
    classes = trainer.train_loader.classes
    result = {
        "weights": weights,
        "epochs": trainer.epoch,
        "val": metrics_from_logits(*outputs["val"], classes) if "val" in outputs else None,
        "test": metrics_from_logits(*outputs["test"], classes) if "test" in outputs else None,
        # temperature and class thresholds fitted on the validation split
        "calibration": calibration_report(outputs["val"], outputs.get("test"))
        if "val" in outputs
        else None,
    }
    for split in ("val", "test"):
        if result[split] is not None:
            metrics = result[split]
            log.info(
                "%s (%s weights): top-1 %.2f%%  top-5 %.2f%%  loss %.4f  macro-F1 %.4f  (%d images)",
                split,
                weights,
                100 * metrics["top1"],
                100 * metrics["top5"],
                metrics["loss"],
                metrics["macro_f1"],
                metrics["samples"],
            )
    return result


class StandardProcedure:
    """One model trained with the recipe's optimizer, schedule, loss and augmentations."""

    def run(self, stage: StageRun) -> dict[str, Any]:
        return train_stage(stage)
