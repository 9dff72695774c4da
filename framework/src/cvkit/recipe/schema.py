"""The recipe schema: the attrs classes a recipe validates into, one per section.

A recipe is data. Every table with a ``name`` in a component position names a registered
component (a :class:`~cvkit.registry.specs.ComponentSpec` once validated); the sections
(``[experiment]``, ``[data]``, ``[trainer]``, ``[augment]``, ``[[stages]]``) are the
``*Settings`` classes below. Reading, overriding and validating are in
:mod:`cvkit.recipe.loading`; writing back in :mod:`cvkit.recipe.writing`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import attrs

from cvkit.registry.parameters import height_width
from cvkit.registry.specs import ComponentOf, ComponentSpec

DatasetSpec = Annotated[ComponentSpec, ComponentOf("dataset")]
ModelSpec = Annotated[ComponentSpec, ComponentOf("model")]
OptimizerSpec = Annotated[ComponentSpec, ComponentOf("optimizer")]
SchedulerSpec = Annotated[ComponentSpec, ComponentOf("scheduler")]
LossSpec = Annotated[ComponentSpec, ComponentOf("loss")]
AugmentationSpec = Annotated[ComponentSpec, ComponentOf("augmentation")]
CallbackSpec = Annotated[ComponentSpec, ComponentOf("callback")]
ProcedureSpec = Annotated[ComponentSpec, ComponentOf("procedure")]

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
_STAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def _folder_name(_: Any, attribute: Any, value: str) -> None:
    """A name that is one folder inside ``output_dir``: runs never land outside it."""
    if not value.strip():
        raise ValueError(f"{attribute.name} must not be empty")
    if any(sep in value for sep in "/\\") or value in (".", "..") or ":" in value:
        raise ValueError(
            f"{attribute.name} = {value!r} must be a single folder name (no '/', '\\', ':' or "
            "'..'): runs go to <output_dir>/<name>/"
        )


def _device(_: Any, attribute: Any, value: str) -> None:
    if not _DEVICE.match(value):
        raise ValueError(f"{attribute.name} must be auto, cpu, cuda, cuda:N or mps, got {value!r}")


def _optional(validator: Any) -> Any:
    return attrs.validators.optional(validator)


def _open_unit(_: Any, attribute: Any, value: float) -> None:
    if not 0.0 < value < 1.0:
        raise ValueError(f"{attribute.name} must be in (0, 1), got {value}")


def _subset(_: Any, attribute: Any, value: float) -> None:
    if isinstance(value, int) and value < 1:
        raise ValueError(f"{attribute.name} as a count of images must be >= 1, got {value}")
    if isinstance(value, float) and not 0.0 < value <= 1.0:
        raise ValueError(f"{attribute.name} as a fraction must be in (0, 1], got {value}")


def _image_size(_: Any, attribute: Any, value: int | list[int]) -> None:
    height_width(value, attribute.name)


def _val_split(_: Any, attribute: Any, value: float) -> None:
    if isinstance(value, int) and value < 0:
        raise ValueError(f"{attribute.name} as a count of images must be >= 0, got {value}")
    if isinstance(value, float) and not 0.0 <= value < 1.0:
        raise ValueError(f"{attribute.name} as a fraction must be in [0, 1), got {value}")


@attrs.frozen(kw_only=True)
class ExperimentSettings:
    """``[experiment]``: what the run is called and how it runs.

    Args:
        name: experiment name; runs are written to <output_dir>/<name>/.
        seed: seed of every random number generator.
        epochs: number of training epochs.
        output_dir: directory holding the run directories, relative to the working directory.
        device: 'auto' (CUDA when available, else CPU), 'cpu', 'cuda', 'cuda:N' or 'mps'.
        precision: 'fp32'; 'bf16' or 'fp16' autocast (fp16 with gradient scaling).
        init: the weights the model starts from: a run directory (its best checkpoint, else
            its last; the EMA weights when it kept an EMA) or a checkpoint file, e.g. a
            finished run to train further with a new schedule (``cvkit run --init``); a
            recipe with stages sets each stage's ``init`` instead.
    """

    name: str = attrs.field(validator=_folder_name)
    seed: int = 0
    epochs: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    output_dir: Path = Path("runs")
    device: str = attrs.field(default="auto", validator=_device)
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    init: Path | None = None


@attrs.frozen(kw_only=True)
class DataSettings:
    """``[data]``: the dataset and how it is cached, split and batched.

    Args:
        dataset: the dataset component table.
        batch_size: training batch size (images per optimizer step, unless
            trainer.accumulate_steps; in a run of several processes, all of theirs).
        eval_batch_size: batch size for validation, test and prediction (default: 2 x batch_size).
        val_split: validation images held out of the training split: a fraction in [0, 1)
            or a count; 0 for none.
        split_seed: seed of the train/validation split, separate from experiment.seed so that
            changing the training seed keeps the same validation images.
        train_subset: train on only this many of the remaining training images (a count, or a
            fraction in (0, 1]), chosen with split_seed; none for all. For quick runs.
        image_size: the model's input size, an int for square images or [height, width]:
            every batch (training, validation, test, prediction) is resized to it on the
            device before the augmentations; the cached uint8 images keep their own size.
            None: the dataset's size.
        drop_last: drop the last incomplete training batch of each epoch.
        workers: DataLoader worker processes for per-sample augmentations (0: in the main process).
        cache: keep decoded splits as uint8 tensors in cache_dir, so files are decoded once.
        cache_dir: where cached tensors go (default: $CVKIT_HOME/tensors).
    """

    dataset: DatasetSpec
    batch_size: int = attrs.field(default=128, validator=attrs.validators.ge(1))
    eval_batch_size: int | None = attrs.field(
        default=None, validator=_optional(attrs.validators.ge(1))
    )
    val_split: int | float = attrs.field(default=0.1, validator=_val_split)
    split_seed: int = 0
    train_subset: int | float | None = attrs.field(default=None, validator=_optional(_subset))
    image_size: int | list[int] | None = attrs.field(default=None, validator=_optional(_image_size))
    drop_last: bool = True
    workers: int = attrs.field(default=2, validator=attrs.validators.ge(0))
    cache: bool = True
    cache_dir: Path | None = None

    @property
    def input_size(self) -> list[int] | None:
        """``image_size`` as [height, width], or None."""
        return None if self.image_size is None else height_width(self.image_size, "image_size")


@attrs.frozen(kw_only=True)
class TrainerSettings:
    """``[trainer]``: how the training loop runs.

    Args:
        clip_grad_norm: clip the global gradient norm to this value before each step (none: off).
        clip_grad_value: clip every gradient element to [-value, value] (none: off).
        channels_last: keep the model and batches in channels-last memory format.
        compile: compile the model with torch.compile.
        compile_mode: torch.compile's mode: 'default'; 'reduce-overhead' (CUDA graphs on a
            GPU: the step's kernels launched as one graph, for small models whose steps
            the host's launches would slow); 'max-autotune' (slower to compile, tuned
            kernels); 'max-autotune-no-cudagraphs'.
        ema_decay: keep an exponential moving average of the weights with this decay and
            evaluate with it (none: off); e.g. 0.999.
        eval_weights: weights for the final evaluation: 'best' (the checkpoint callback's best
            checkpoint, when there is one) or 'last'.
        tta: test-time augmentation views of the final evaluation (eval.json), as ``cvkit
            eval --tta``: 'flip', 'crop', 'shift'; the validation after each epoch uses none.
        deterministic: ask torch for deterministic algorithms (slower on GPU).
        accumulate_steps: step the optimizer once every this many batches, on the gradient
            of their mean loss over images (a batch this many times larger for plain SGD, in
            the memory of one); schedulers count optimizer steps.
        sync_batchnorm: in a run of several processes (torchrun), batch-norm statistics
            over the whole global batch instead of each process's part of it.
        val_every: validate after every this many epochs, and after the last; the epochs
            between have no val/ metrics (best.pt and early stopping count validations).
    """

    clip_grad_norm: float | None = attrs.field(
        default=None, validator=_optional(attrs.validators.gt(0))
    )
    clip_grad_value: float | None = attrs.field(
        default=None, validator=_optional(attrs.validators.gt(0))
    )
    channels_last: bool = False
    compile: bool = False
    compile_mode: Literal[
        "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"
    ] = "default"
    ema_decay: float | None = attrs.field(default=None, validator=_optional(_open_unit))
    eval_weights: Literal["best", "last"] = "best"
    tta: list[Literal["flip", "crop", "shift"]] = attrs.field(factory=list)
    deterministic: bool = False
    accumulate_steps: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    sync_batchnorm: bool = False
    val_every: int = attrs.field(default=1, validator=attrs.validators.ge(1))


@attrs.frozen(kw_only=True)
class AugmentSettings:
    """``[augment]``: ordered lists of batch augmentations.

    Args:
        train: applied to training batches, in order.
        eval: applied to validation and test batches, in order (usually only normalize).
    """

    train: list[AugmentationSpec] = attrs.field(factory=list)
    eval: list[AugmentationSpec] = attrs.field(factory=list)


def _stage_name(_: Any, attribute: Any, value: str) -> None:
    if not _STAGE_NAME.match(value):
        raise ValueError(
            f"{attribute.name} must be lower-case letters, digits, '_' or '-', got {value!r}"
        )


@attrs.frozen(kw_only=True)
class StageSettings:
    """``[[stages]]``: one stage of a multi-stage recipe; keys it leaves out come from the
    top-level tables.

    Args:
        name: the stage's name, unique in the recipe; it trains in <run>/stages/<name>/.
        procedure: how the stage trains (default: the recipe's procedure).
        epochs: epochs of this stage (default: experiment.epochs).
        init: weights the stage starts from: an earlier stage's name, a run directory or a
            checkpoint file (its best weights, else its last); or a table mapping module
            names of the model to such sources, e.g. ``{ "branches.0" = "raw" }``.
        model: the model table (default: the top-level one).
        optimizer: the optimizer table (default: the top-level one).
        scheduler: the scheduler table (default: the top-level one).
        loss: the loss table (default: the top-level one).
        augment: the augmentation lists; the keys it sets replace the top-level ones, the
            others (e.g. ``eval`` when it sets ``train``) are inherited.
        trainer: the training-loop settings, merged key by key over the top-level ones.
        callbacks: the callback list (default: the top-level one); progressive unfreezing
            is the ``unfreeze`` callback, freezing is ``model.freeze``.
    """

    name: str = attrs.field(validator=_stage_name)
    procedure: ProcedureSpec | None = None
    epochs: int | None = attrs.field(default=None, validator=_optional(attrs.validators.ge(1)))
    init: str | dict[str, str] | None = None
    model: ModelSpec | None = None
    optimizer: OptimizerSpec | None = None
    scheduler: SchedulerSpec | None = None
    loss: LossSpec | None = None
    augment: AugmentSettings | None = None
    trainer: TrainerSettings | None = None
    callbacks: list[CallbackSpec] | None = None


_STAGE_TABLES = (
    "procedure",
    "model",
    "optimizer",
    "scheduler",
    "loss",
    "augment",
    "trainer",
    "callbacks",
)


def stage_order_problems(stages: Any) -> list[tuple[str, str]]:
    """(dotted key, message) for every repeated stage name and every ``init`` that names a
    stage which does not run before its own; ``stages`` as read from TOML (the checks run
    even when other keys of the stages have problems, so all are reported at once)."""
    if not isinstance(stages, list):
        return []
    names = [stage.get("name") if isinstance(stage, dict) else None for stage in stages]
    problems = []
    for i, name in enumerate(names):
        if isinstance(name, str) and name in names[:i]:
            problems.append(
                (
                    f"stages[{i}].name",
                    f"stage names must be unique: {name} repeated (stages[{names.index(name)}])",
                )
            )
    for i, stage in enumerate(stages):
        init = stage.get("init") if isinstance(stage, dict) else None
        sources = init.values() if isinstance(init, dict) else [init]
        for source in sources:
            if isinstance(source, str) and source in names[i:]:
                problems.append(
                    (
                        f"stages[{i}].init",
                        f"stage {names[i]!r} starts from stage {source!r}, which does not run before it",
                    )
                )
    return problems


DEFAULT_PROCEDURE = "standard"
"""The procedure of a recipe that names none (registered by the built-in plugin)."""

DEFAULT_CALLBACKS = ("progress", "metrics_jsonl", "tensorboard", "checkpoint")
"""The callbacks of a recipe that does not list its own (registered by the built-in plugin)."""


def _default_callbacks() -> Any:
    """Raw tables of the default callbacks: validation turns them into ComponentSpecs with
    every parameter, as it does a recipe's own tables."""
    return [{"name": name} for name in DEFAULT_CALLBACKS]


def _default_procedure() -> Any:
    """The raw table of the default procedure (see :func:`_default_callbacks`)."""
    return {"name": DEFAULT_PROCEDURE}


@attrs.frozen(kw_only=True)
class Recipe:
    """A complete experiment.

    Args:
        experiment: name, seed, epochs, output directory, device, precision.
        data: dataset, batch size, validation split.
        model: the model component table.
        optimizer: the optimizer component table.
        loss: the loss component table.
        scheduler: the learning-rate schedule table, or none for a constant rate.
        augment: training and evaluation augmentations.
        trainer: gradient clipping, EMA, channels-last, compile, final evaluation weights.
        callbacks: callback component tables; the default list is progress, metrics_jsonl,
            tensorboard and checkpoint, and a recipe that sets callbacks replaces it.
        procedure: how training runs (default: ``standard``, one model and the explicit loop).
        stages: stages trained one after another in one run directory, each over the
            top-level tables (see :class:`StageSettings`); none: the recipe is one stage.
            Names are unique and a stage starts only from earlier ones
            (:func:`stage_order_problems`, checked when a recipe is validated).
    """

    experiment: ExperimentSettings
    data: DataSettings
    model: ModelSpec
    optimizer: OptimizerSpec
    loss: LossSpec
    scheduler: SchedulerSpec | None = None
    augment: AugmentSettings = attrs.field(factory=AugmentSettings)
    trainer: TrainerSettings = attrs.field(factory=TrainerSettings)
    callbacks: list[CallbackSpec] = attrs.field(factory=_default_callbacks)
    procedure: ProcedureSpec = attrs.field(factory=_default_procedure)
    stages: list[StageSettings] = attrs.field(factory=list)

    def stage_recipe(self, stage: StageSettings) -> Recipe:
        """The complete one-stage recipe of ``stage``: its keys over the top-level ones."""
        own = {key: getattr(stage, key) for key in _STAGE_TABLES if getattr(stage, key) is not None}
        epochs = stage.epochs or self.experiment.epochs
        return attrs.evolve(
            self,
            experiment=attrs.evolve(self.experiment, epochs=epochs),
            stages=[],
            **own,
        )
