"""``cvkit run``: build a recipe, train it, evaluate it, and write its run directory."""

from __future__ import annotations

import json
import logging
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch

from cvkit.build import build_components, build_dataset, resolve_device, trainable_parameters
from cvkit.checkpoint import load_checkpoint, load_model_weights
from cvkit.errors import CvkitError
from cvkit.loaders import BatchLoader, batches_per_epoch, load_splits
from cvkit.plugins import default_registry
from cvkit.recipe import Recipe, dump_recipe, load_recipe, recipe_data
from cvkit.registry import Registry
from cvkit.rundir import environment, new_run_dir, run_logging, write_json
from cvkit.trainer import Trainer

log = logging.getLogger("cvkit")


class RunInterrupted(CvkitError):
    """Ctrl-C: last.pt was saved; the message says how to resume."""

    exit_code = 130


@attrs.frozen
class RunResult:
    """Where a run was written and its final evaluation (the content of eval.json)."""

    run_dir: Path
    evaluation: dict[str, Any]


def train(
    recipe_path: Path,
    *,
    overrides: Sequence[str] = (),
    output: Path | None = None,
    registry: Registry | None = None,
    argv: Sequence[str] | None = None,
) -> RunResult:
    """Train the recipe at ``recipe_path`` in a new run directory (``output`` if given)."""
    registry = registry or default_registry()
    recipe = load_recipe(recipe_path, overrides, registry)
    device = resolve_device(recipe.experiment.device)
    run_dir = new_run_dir(recipe.experiment.output_dir, recipe.experiment.name, output)
    (run_dir / "recipe.toml").write_text(
        dump_recipe(recipe, f"resolved from {recipe_path}"), encoding="utf-8"
    )
    write_json(run_dir / "env.json", environment(registry, device, list(argv or sys.argv)))
    return _execute(recipe, run_dir, registry, device)


def resume(
    run_dir: Path,
    *,
    overrides: Sequence[str] = (),
    force: bool = False,
    registry: Registry | None = None,
    argv: Sequence[str] | None = None,
) -> RunResult:
    """Continue the run in ``run_dir`` from ``checkpoints/last.pt``.

    ``overrides`` that change the run's recipe are refused unless ``force``; the previous
    recipe.toml is then kept as recipe.before-<time>.toml.
    """
    registry = registry or default_registry()
    recipe_file = run_dir / "recipe.toml"
    if not recipe_file.is_file():
        raise CvkitError(f"--resume {run_dir}: not a run directory (no recipe.toml)")
    original = load_recipe(recipe_file, (), registry)
    recipe = load_recipe(recipe_file, overrides, registry) if overrides else original
    changed = recipe_differences(original, recipe)
    if changed and not force:
        raise CvkitError(
            f"--resume {run_dir}: --set changes {', '.join(changed)}; a resumed run keeps its recipe "
            "(add --force to change it anyway)"
        )
    last = run_dir / "checkpoints" / "last.pt"
    checkpoint = load_checkpoint(last)
    if checkpoint["epoch"] >= recipe.experiment.epochs:
        raise CvkitError(
            f"--resume {run_dir}: the run already finished its {recipe.experiment.epochs} epochs"
        )
    if changed:
        recipe_file.rename(run_dir / f"recipe.before-{time.strftime('%Y%m%d-%H%M%S')}.toml")
        recipe_file.write_text(dump_recipe(recipe, "resolved, changed on resume"), encoding="utf-8")
    device = resolve_device(recipe.experiment.device)
    env_file = run_dir / "env.json"
    env = json.loads(env_file.read_text()) if env_file.is_file() else {}
    env.setdefault("resumes", []).append(environment(registry, device, list(argv or sys.argv)))
    write_json(env_file, env)
    return _execute(recipe, run_dir, registry, device, checkpoint=(last, checkpoint))


def recipe_differences(a: Recipe, b: Recipe) -> list[str]:
    """Dotted keys whose values differ between two recipes."""
    flat_a, flat_b = _flatten(recipe_data(a)), _flatten(recipe_data(b))
    return sorted(k for k in flat_a.keys() | flat_b.keys() if flat_a.get(k) != flat_b.get(k))


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        return {
            k: v
            for key, value in data.items()
            for k, v in _flatten(value, f"{prefix}.{key}" if prefix else key).items()
        }
    return {prefix: data}


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's (all devices) generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _execute(
    recipe: Recipe,
    run_dir: Path,
    registry: Registry,
    device: torch.device,
    checkpoint: tuple[Path, dict[str, Any]] | None = None,
) -> RunResult:
    with run_logging(run_dir):
        try:
            return _train_and_evaluate(recipe, run_dir, registry, device, checkpoint)
        except KeyboardInterrupt:
            raise RunInterrupted(
                f"interrupted; resume with: cvkit run --resume {run_dir}"
            ) from None
        except CvkitError as error:
            log.error("%s", error)
            raise


def _train_and_evaluate(
    recipe: Recipe,
    run_dir: Path,
    registry: Registry,
    device: torch.device,
    checkpoint: tuple[Path, dict[str, Any]] | None,
) -> RunResult:
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
    components = build_components(recipe, registry, dataset, steps_per_epoch=steps)
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
        callbacks=components.callbacks,
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
    if checkpoint is not None:
        trainer.load_state_dict(checkpoint[1], checkpoint[0])
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
    evaluation = _final_evaluation(trainer, recipe, run_dir, val_loader, test_loader)
    write_json(run_dir / "eval.json", evaluation)
    return RunResult(run_dir, evaluation)


def _final_evaluation(
    trainer: Trainer,
    recipe: Recipe,
    run_dir: Path,
    val_loader: BatchLoader | None,
    test_loader: BatchLoader | None,
) -> dict[str, Any]:
    weights = "last"
    best = run_dir / "checkpoints" / "best.pt"
    if recipe.trainer.eval_weights == "best" and best.is_file():
        state = load_checkpoint(best)
        load_model_weights(trainer.model, state["model"], best)
        if trainer.ema is not None:
            trainer.ema.load_state_dict(state["ema"])
        weights = f"best (epoch {state['epoch']})"
    result = {
        "weights": weights,
        "epochs": trainer.epoch,
        "val": trainer.evaluate(val_loader) if val_loader is not None else None,
        "test": trainer.evaluate(test_loader) if test_loader is not None else None,
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
