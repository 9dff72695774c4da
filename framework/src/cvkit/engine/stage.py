"""One stage of training: what a training procedure receives, and the standard way to train it.

A recipe without ``[[stages]]`` is one stage written to the run directory itself; a recipe
with stages trains each in ``<run>/stages/<name>/`` (checkpoints, metrics, eval.json), one
after another, each starting from the weights its ``init`` names. The built-in ``standard``
procedure is :func:`train_stage`.
"""

from __future__ import annotations

import logging
import time
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs
import torch
from torch import nn

from cvkit import distributed
from cvkit.data.batches import BatchLoader, batches_per_epoch, evaluation_loader, training_loader
from cvkit.data.splits import Splits, load_splits, subset
from cvkit.data.tensors import ImageDataset, ImageTensors
from cvkit.engine.agreement import check_agreement
from cvkit.engine.build import (
    BuiltComponents,
    build_components,
    build_dataset,
    trainable_parameters,
)
from cvkit.engine.calibration import calibration_report
from cvkit.engine.callback import Callback
from cvkit.engine.checkpoint import checkpoint_weights, load_checkpoint, load_model_weights
from cvkit.engine.metrics import collect_logits, metrics_from_logits
from cvkit.engine.predictions import write_predictions
from cvkit.engine.profiling import forward_flops, parameter_counts
from cvkit.engine.rng import seed_everything
from cvkit.engine.trainer import TrainingLoop
from cvkit.engine.tta import TTAModel
from cvkit.errors import CvkitError
from cvkit.recipe.schema import Recipe
from cvkit.recipe.writing import dump_recipe
from cvkit.registry.registry import Registry

log = logging.getLogger("cvkit")


@attrs.frozen(eq=False)
class StageContext:
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
        evaluate_test: evaluate the test split at the end (``cvkit tune`` does not, so
            that no one tunes on it; eval.json's ``test`` is then null).
    """

    name: str
    recipe: Recipe
    run_dir: Path
    registry: Registry
    device: torch.device
    init: Mapping[str, Path] = attrs.field(factory=dict)
    checkpoint: tuple[Path, dict[str, Any]] | None = None
    callbacks: tuple[Callback, ...] = ()
    evaluate_test: bool = True


def load_initial_weights(model: nn.Module, init: Mapping[str, Path], where: str) -> None:
    """Load each source checkpoint's weights (EMA weights when it kept an EMA) into the
    module of ``model`` its key names ("" for the whole model); ``where`` names the recipe key."""
    check_init_modules(model, init, where)
    for module_name, path in init.items():
        target = model.get_submodule(module_name) if module_name else model
        load_model_weights(target, checkpoint_weights(load_checkpoint(path)), path)
        log.info("%s: %s from %s", where, module_name or "model", path)


def check_init_modules(model: nn.Module, modules: Iterable[str], where: str) -> None:
    """CvkitError unless each module name an ``init`` table names ("" for the whole model)
    is a module of ``model`` (checked before anything trains)."""
    for module_name in modules:
        if module_name:
            try:
                model.get_submodule(module_name)
            except AttributeError:
                children = ", ".join(name for name, _ in model.named_children())
                raise CvkitError(
                    f"{where}: the model has no module {module_name!r} (its top-level "
                    f"modules: {children})"
                ) from None


def train_stage(stage: StageContext, model: nn.Module | None = None) -> dict[str, Any]:
    """Train ``stage`` with one model and the loop of :mod:`cvkit.engine.trainer`, evaluate it
    and return the evaluation (also written to eval.json). ``model``: train this module
    instead of the recipe's model (the model table's max_params, freeze and trainable
    still apply)."""
    recipe = stage.recipe
    _seed_and_configure(recipe, stage.device)
    dataset = build_dataset(recipe, stage.registry)
    splits = load_splits(recipe.data, dataset)
    batches = batches_per_epoch(len(splits.train), recipe.data.batch_size, recipe.data.drop_last)
    steps = -(-batches // recipe.trainer.accumulate_steps)  # optimizer steps per epoch
    components = build_components(
        recipe,
        stage.registry,
        dataset,
        steps_per_epoch=steps,
        load_weights="" not in stage.init and stage.checkpoint is None,
        model=model,
    )
    if stage.checkpoint is None:
        where = f"stage {stage.name} init" if stage.name else "experiment.init"
        load_initial_weights(components.model, stage.init, where)
    agreement = check_agreement(
        recipe,
        components.model,
        components.loss,
        {"augment.train": components.train_augment, "augment.eval": components.eval_augment},
        splits.train.first(2),
        dataset.num_classes,
    )
    if distributed.rank() > 0:  # the same initial weights, then each process its own stream
        seed_everything(recipe.experiment.seed + distributed.rank())
    input_shape = list(agreement.input_shape[1:])  # what the evaluation batches are
    loop, test_loader = _training_loop(stage, dataset, splits, components, input_shape)
    if not stage.evaluate_test:
        test_loader = None
    if stage.checkpoint is not None:
        path, state = stage.checkpoint
        scheduled = scheduled_epochs(state)
        extend = state["epoch"] >= scheduled and recipe.experiment.epochs > scheduled
        reached = float(state.get("epoch_lr") or float("nan"))  # absent from older checkpoints
        loop.load_state_dict(state, path, extend=extend)
        if extend:
            log.warning(
                "extending %s from %d to %d epochs: its schedule now runs over %d epochs, so "
                "epoch %d starts at learning rate %.4g where the %d-epoch schedule had reached "
                "%.4g; epochs 1-%d keep their %d-epoch schedule (this is not a %d-epoch run "
                "from the start)",
                stage.run_dir, scheduled, recipe.experiment.epochs, recipe.experiment.epochs,
                scheduled + 1, loop.lr, scheduled, reached,
                scheduled, scheduled, recipe.experiment.epochs,
            )  # fmt: skip
        log.info("resuming %s at epoch %d, batch %d", stage.run_dir, loop.epoch + 1, loop.batch)
    _log_start(stage, splits, components, steps)
    loop.fit()
    return final_evaluation(loop, recipe, stage.run_dir, loop.val_loader, test_loader)


def scheduled_epochs(state: Mapping[str, Any]) -> int:
    """The epochs the recipe stored in checkpoint ``state`` was scheduled for."""
    return int(tomllib.loads(state["recipe"])["experiment"]["epochs"])


def _seed_and_configure(recipe: Recipe, device: torch.device) -> None:
    """Seed every generator with ``experiment.seed``; deterministic algorithms if asked,
    else cuDNN's autotuner on CUDA."""
    seed_everything(recipe.experiment.seed)
    if recipe.trainer.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def _training_loop(
    stage: StageContext,
    dataset: ImageDataset,
    splits: Splits,
    components: BuiltComponents,
    input_shape: list[int],
) -> tuple[TrainingLoop, BatchLoader | None]:
    """The loop over the stage's splits, and the test split's loader (None without one);
    ``input_shape``: [C, H, W] of the evaluation batches, kept in the checkpoints."""
    recipe, device = stage.recipe, stage.device
    channels_last = recipe.trainer.channels_last

    def evaluation(split: ImageTensors | None, shard: bool = True) -> BatchLoader | None:
        if split is None:
            return None
        return evaluation_loader(
            split,
            recipe.data,
            device=device,
            augmentations=components.eval_augment,
            channels_last=channels_last,
            shard=shard,
        )

    train_loader = training_loader(
        splits.train,
        recipe.data,
        device=device,
        augmentations=components.train_augment,
        seed=recipe.experiment.seed,
        channels_last=channels_last,
    )

    def training_images(count: int) -> torch.Tensor:
        chosen = torch.randperm(
            len(splits.train), generator=torch.Generator().manual_seed(recipe.experiment.seed)
        )[:count]
        loader = evaluation(subset(splits.train, chosen.sort().values), shard=False)
        assert loader is not None
        return torch.cat([images for images, _ in loader])

    loop = TrainingLoop(
        components.model,
        components.optimizer,
        components.loss,
        train_loader,
        epochs=recipe.experiment.epochs,
        device=device,
        settings=recipe.trainer,
        precision=recipe.experiment.precision,
        val_loader=evaluation(splits.val),
        scheduler=components.scheduler,
        callbacks=[*components.callbacks, *stage.callbacks],
        run_dir=stage.run_dir,
        recipe=recipe,
        metadata={
            "recipe": dump_recipe(recipe),
            "classes": list(splits.train.classes),
            "in_channels": dataset.in_channels,
            "image_size": list(splits.train.images.shape[-2:]),
            "input_shape": input_shape,
        },
        training_images=training_images,
    )
    return loop, evaluation(splits.test)


def _log_start(
    stage: StageContext, splits: Splits, components: BuiltComponents, steps: int
) -> None:
    log.info(
        "%s: %s, %s trainable parameters, %d train / %d val / %d test images, %d steps per epoch, on %s",
        stage.run_dir,
        stage.recipe.model.key,
        f"{trainable_parameters(components.model):,}",
        len(splits.train),
        len(splits.val) if splits.val else 0,
        len(splits.test) if splits.test else 0,
        steps,
        stage.device,
    )


def final_evaluation(
    loop: TrainingLoop,
    recipe: Recipe,
    run_dir: Path,
    val_loader: BatchLoader | None,
    test_loader: BatchLoader | None,
) -> dict[str, Any]:
    """Validation and test metrics with the weights ``recipe.trainer.eval_weights`` asks
    for (over the ``recipe.trainer.tta`` views), and the calibration fitted on the validation split (see
    :mod:`cvkit.engine.calibration`)."""
    distributed.barrier()  # rank 0 has written the last epoch's checkpoints
    weights, weights_epoch = "last", loop.epoch
    best = run_dir / "checkpoints" / "best.pt"
    if recipe.trainer.eval_weights == "best" and best.is_file():
        state = load_checkpoint(best)
        load_model_weights(loop.model, state["model"], best)
        if loop.ema is not None:
            loop.ema.load_state_dict(state["ema"])
        weights, weights_epoch = f"best (epoch {state['epoch']})", state["epoch"]
    loop.share_buffers()
    model = loop.evaluation_model()
    if recipe.trainer.tta:
        model = TTAModel(model, recipe.trainer.tta)
    outputs, seconds = {}, {}
    last = loop.last_validation
    if (
        last is not None
        and last.epochs == weights_epoch == loop.epoch
        and val_loader is loop.val_loader
        and not recipe.trainer.tta
    ):  # the last epoch's validation ran these weights over the same batches
        outputs["val"], seconds["val"] = (last.logits, last.labels), last.seconds
    for split, loader in (("val", val_loader), ("test", test_loader)):
        if loader is not None and split not in outputs:
            start = time.perf_counter()
            outputs[split] = collect_logits(
                model,
                loader,
                loop.device,
                loop.autocast_dtype,
                combine_processes=loader.part_of_split,
                progress=f"evaluating {split}",
            )
            seconds[split] = time.perf_counter() - start  # logits are on the CPU: synchronised
    classes = loop.train_loader.classes
    result: dict[str, Any] = {
        "weights": weights,
        "tta": list(recipe.trainer.tta),
        "epochs": loop.epoch,
        "seed": recipe.experiment.seed,
        "model": model_summary(loop.model, loop.metadata, recipe, loop.device),
        "training": training_summary(loop),
        **{
            split: metrics_from_logits(*outputs[split], classes, seconds[split])
            if split in outputs
            else None
            for split in ("val", "test")
        },
        # temperature and class thresholds fitted on the validation split
        "calibration": calibration_report(outputs["val"], outputs.get("test"))
        if "val" in outputs
        else None,
    }
    if outputs and distributed.is_main():  # per image, for tests on the same images
        result["predictions"] = write_predictions(run_dir, outputs, recipe)
    _log_evaluation(result, weights)
    loop.evaluated(result)
    return result


def model_input_shape(metadata: Mapping[str, Any], recipe: Recipe) -> list[int]:
    """[C, H, W] of the model's input at evaluation: ``metadata`` (a checkpoint's, or the
    training loop's) holds it as the evaluation augmentations make it (a ``resize`` or crop
    changes the size); checkpoints older than that give the channels and the images' size,
    which ``data.image_size`` overrides."""
    if metadata.get("input_shape"):
        return list(metadata["input_shape"])
    return [metadata["in_channels"], *(recipe.data.input_size or metadata["image_size"])]


def model_summary(
    model: nn.Module, metadata: Mapping[str, Any], recipe: Recipe, device: torch.device
) -> dict[str, Any]:
    """Parameter counts, the input shape [C, H, W] (:func:`model_input_shape`) and the
    forward FLOPs per image (see :mod:`cvkit.engine.profiling`; None, with a warning, when
    torch's counter fails on the model)."""
    shape = model_input_shape(metadata, recipe)
    counts = parameter_counts(model)
    try:
        flops: int | None = forward_flops(model, torch.zeros(1, *shape, device=device))
    except Exception as error:  # a plugin's model the counter cannot trace: report, not fail
        log.warning("FLOPs not counted: %s: %s", type(error).__name__, error)
        flops = None
    return {
        "trainable_parameters": counts["trainable"],
        "total_parameters": counts["total"],
        "input_shape": shape,
        "flops_per_image": flops,
    }


def training_summary(loop: TrainingLoop) -> dict[str, Any]:
    """Time spent training, over every epoch (resumed ones included): ``seconds`` in the
    training passes, ``wall_seconds`` with validation, ``images_per_second``
    the mean training throughput (images / seconds)."""
    seconds = sum(epoch.get("epoch_seconds", 0.0) for epoch in loop.history)
    images = sum(
        epoch.get("epoch_seconds", 0.0) * epoch.get("images_per_second", 0.0)
        for epoch in loop.history
    )
    return {
        "seconds": seconds,
        "wall_seconds": loop.wall_seconds,
        "images_per_second": images / seconds if seconds else None,
    }


def _log_evaluation(result: dict[str, Any], weights: str) -> None:
    for split in ("val", "test"):
        metrics = result[split]
        if metrics is not None:
            log.info(  # to run.log: the command prints the results once, on the console
                "%s (%s weights): top-1 %.2f%%  top-5 %.2f%%  loss %.4f  macro-F1 %.4f  "
                "(%d images in %.2f s)",
                split,
                weights,
                100 * metrics["top1"],
                100 * metrics["top5"],
                metrics["loss"],
                metrics["macro_f1"],
                metrics["samples"],
                metrics["seconds"],
                extra={"file_only": True},
            )
