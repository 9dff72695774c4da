"""TOML recipes: read (with ``extends`` and ``--set``), validate into attrs classes, write back.

A recipe is data. Every table with a ``name`` in a component position names a registered
component; its other keys are the component's parameters. Validation checks everything
against the registry and reports every problem at once, each with file, line and dotted key.
The resolved recipe (every default filled in) is written back as TOML that loads to an
equal :class:`Recipe`.
"""

from __future__ import annotations

import datetime
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import attrs
import tomli_w

from cvkit.components import ComponentOf, ComponentSpec
from cvkit.errors import RecipeError
from cvkit.params import Validator, height_width, join_key
from cvkit.registry import Registry
from cvkit.toml_lines import key_lines

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


def _non_empty(_: Any, attribute: Any, value: str) -> None:
    if not value.strip():
        raise ValueError(f"{attribute.name} must not be empty")


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
class Experiment:
    """``[experiment]``: what the run is called and how it runs.

    Args:
        name: experiment name; runs are written to <output_dir>/<name>/.
        seed: seed of every random number generator.
        epochs: number of training epochs.
        output_dir: directory holding the run directories, relative to the working directory.
        device: 'auto' (CUDA when available, else CPU), 'cpu', 'cuda', 'cuda:N' or 'mps'.
        precision: 'fp32'; 'bf16' or 'fp16' autocast (fp16 with gradient scaling).
    """

    name: str = attrs.field(validator=_non_empty)
    seed: int = 0
    epochs: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    output_dir: Path = Path("runs")
    device: str = attrs.field(default="auto", validator=_device)
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"


@attrs.frozen(kw_only=True)
class Data:
    """``[data]``: the dataset and how it is cached, split and batched.

    Args:
        dataset: the dataset component table.
        batch_size: training batch size (images per optimizer step).
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
class Trainer:
    """``[trainer]``: how the training loop runs.

    Args:
        clip_grad_norm: clip the global gradient norm to this value before each step (none: off).
        clip_grad_value: clip every gradient element to [-value, value] (none: off).
        channels_last: keep the model and batches in channels-last memory format.
        compile: compile the model with torch.compile.
        ema_decay: keep an exponential moving average of the weights with this decay and
            evaluate with it (none: off); e.g. 0.999.
        eval_weights: weights for the final evaluation: 'best' (the checkpoint callback's best
            checkpoint, when there is one) or 'last'.
        deterministic: ask torch for deterministic algorithms (slower on GPU).
    """

    clip_grad_norm: float | None = attrs.field(
        default=None, validator=_optional(attrs.validators.gt(0))
    )
    clip_grad_value: float | None = attrs.field(
        default=None, validator=_optional(attrs.validators.gt(0))
    )
    channels_last: bool = False
    compile: bool = False
    ema_decay: float | None = attrs.field(default=None, validator=_optional(_open_unit))
    eval_weights: Literal["best", "last"] = "best"
    deterministic: bool = False


@attrs.frozen(kw_only=True)
class Augment:
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
class Stage:
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
    augment: Augment | None = None
    trainer: Trainer | None = None
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


def _unique_stages(_: Any, attribute: Any, stages: list[Stage]) -> None:
    names = [stage.name for stage in stages]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"stage names must be unique: {', '.join(repeated)} repeated")
    for i, stage in enumerate(stages):
        sources = stage.init.values() if isinstance(stage.init, dict) else [stage.init]
        for source in sources:
            if source in names[i:]:
                raise ValueError(
                    f"stage {stage.name!r} starts from stage {source!r}, which does not run before it"
                )


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
            top-level tables (see :class:`Stage`); none: the recipe is one stage.
    """

    experiment: Experiment
    data: Data
    model: ModelSpec
    optimizer: OptimizerSpec
    loss: LossSpec
    scheduler: SchedulerSpec | None = None
    augment: Augment = attrs.field(factory=Augment)
    trainer: Trainer = attrs.field(factory=Trainer)
    callbacks: list[CallbackSpec] = attrs.field(
        factory=lambda: [{"name": name} for name in DEFAULT_CALLBACKS]
    )
    procedure: ProcedureSpec = attrs.field(factory=lambda: {"name": DEFAULT_PROCEDURE})
    stages: list[Stage] = attrs.field(factory=list, validator=_unique_stages)

    def stage_recipe(self, stage: Stage) -> Recipe:
        """The complete one-stage recipe of ``stage``: its keys over the top-level ones."""
        own = {key: getattr(stage, key) for key in _STAGE_TABLES if getattr(stage, key) is not None}
        epochs = stage.epochs or self.experiment.epochs
        return attrs.evolve(
            self,
            experiment=attrs.evolve(self.experiment, epochs=epochs),
            stages=[],
            **own,
        )


DEFAULT_PROCEDURE = "standard"
"""The procedure of a recipe that names none (registered by the built-in plugin)."""

DEFAULT_CALLBACKS = ("progress", "metrics_jsonl", "tensorboard", "checkpoint")
"""The callbacks of a recipe that does not list its own (registered by the built-in plugin)."""


@attrs.frozen
class Location:
    """Where a key was written: a file (or ``--set ...``) and its line when known."""

    file: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@attrs.define
class RawRecipe:
    """Merged TOML data of a recipe and its ``extends`` chain, with each key's origin."""

    data: dict[str, Any]
    origins: dict[str, Location]
    root: str

    def locate(self, key: str) -> Location:
        """Where ``key`` (or its nearest enclosing key) was written."""
        candidates = list(_prefixes(key))
        found = next((self.origins[c] for c in candidates if c in self.origins), None)
        if found is None:
            return Location(self.root)
        line = next(
            (
                self.origins[c].line
                for c in candidates
                if c in self.origins and self.origins[c].file == found.file and self.origins[c].line
            ),
            None,
        )
        return Location(found.file, line)

    def where(self, key: str) -> str:
        """``file:line: key`` for messages."""
        return f"{self.locate(key)}: {key}" if key else str(self.locate(key))


def _prefixes(key: str) -> Iterator[str]:
    """``a.b[0].c``, ``a.b[0]``, ``a.b``, ``a``."""
    while key:
        yield key
        cut = max(key.rfind("."), key.rfind("["))
        key = key[:cut] if cut > 0 else ""


def _display(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it, else absolute."""
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


def _flat_keys(data: Any, prefix: str = "") -> Iterator[str]:
    """Every dotted key below ``data``, list items included (``a.b[0].c``)."""
    if isinstance(data, dict):
        items: Iterable[tuple[str | int, Any]] = data.items()
    elif isinstance(data, list):
        items = enumerate(data)
    else:
        return
    for k, v in items:
        key = join_key(prefix, k)
        yield key
        yield from _flat_keys(v, key)


def _deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Tables merge key by key; everything else (lists included) is replaced."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse_recipe_text(text: str, source: str) -> RawRecipe:
    """The data of one recipe's TOML ``text`` (``extends`` is left in), ``source`` naming it."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        message = str(error)
        match = re.search(r"\(at line (\d+), column \d+\)", message)
        where = f"{source}:{match[1]}" if match else source
        raise RecipeError([f"{where}: invalid TOML: {message}"]) from None
    lines = key_lines(text)
    return RawRecipe(
        data, {key: Location(source, lines.get(key)) for key in _flat_keys(data)}, source
    )


def read_recipe(path: str | Path, _chain: Sequence[Path] = ()) -> RawRecipe:
    """The data of ``path`` merged over the recipes it extends (paths relative to each file)."""
    resolved = Path(path).resolve()
    shown = _display(resolved)
    if resolved in _chain:
        cycle = " -> ".join(_display(p) for p in [*_chain, resolved])
        raise RecipeError([f"{shown}: extends cycle: {cycle}"])
    try:
        text = resolved.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError([f"{shown}: recipe file not found"]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise RecipeError([f"{shown}: cannot read recipe: {error}"]) from None
    raw = parse_recipe_text(text, shown)
    parent = raw.data.pop("extends", None)
    unset = raw.data.pop("unset", None)
    if parent is None:
        if unset is not None:
            raise RecipeError(
                [
                    f"{raw.origins['unset']}: unset: only a recipe that extends another can unset keys"
                ]
            )
        return raw
    where = raw.origins.pop("extends")
    if not isinstance(parent, str):
        raise RecipeError([f"{where}: extends: expected a path string"])
    target = resolved.parent / parent
    if not target.is_file():
        raise RecipeError([f"{where}: extends: recipe file not found: {_display(target)}"])
    base = read_recipe(target, [*_chain, resolved])
    if unset is not None:
        _unset(base, unset, raw.origins.pop("unset"))
    return RawRecipe(_deep_merge(base.data, raw.data), base.origins | raw.origins, shown)


def _unset(base: RawRecipe, keys: Any, where: Location) -> None:
    """Remove the dotted ``keys`` from the recipe being extended (TOML has no null to set)."""
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise RecipeError(
            [f'{where}: unset: expected a list of dotted keys, e.g. ["model.attention"]']
        )
    for key in keys:
        path = _parse_key(key)
        node: Any = base.data
        for part in (path or [])[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if not path or not isinstance(node, dict) or path[-1] not in node:
            raise RecipeError(
                [f"{where}: unset: {key} is not a key of the recipes this one extends"]
            )
        del node[path[-1]]


_KEY_PART = re.compile(r"([^.\[\]]+)((?:\[\d+\])*)")


def _parse_key(key: str) -> list[str | int] | None:
    path: list[str | int] = []
    for segment in key.split("."):
        match = _KEY_PART.fullmatch(segment.strip())
        if not match:
            return None
        path.append(match[1])
        path += [int(i) for i in re.findall(r"\[(\d+)\]", match[2])]
    return path


def parse_value(text: str) -> Any:
    """A ``--set`` value: TOML value syntax (``0.1``, ``true``, ``[1, 2]``, ``"x"``), else the string."""
    try:
        value = tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text
    return text if isinstance(value, datetime.date | datetime.time) else value


def apply_override(raw: RawRecipe, assignment: str) -> None:
    """Apply ``a.b.c=VALUE`` (indices allowed: ``augment.train[0].p=1``) to ``raw`` in place."""
    key, sep, text = assignment.partition("=")
    path = _parse_key(key.strip()) if sep else None
    origin = f"--set {assignment}"
    if not path:
        raise RecipeError(
            [f"{origin}: expected KEY=VALUE with a dotted KEY, e.g. model.dropout=0.2"]
        )
    node: Any = raw.data
    for i, part in enumerate(path[:-1]):
        nxt = path[i + 1]
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                raise RecipeError([f"{origin}: {_path_text(path[: i + 1])} does not exist"])
        elif isinstance(node, dict):
            child = node.get(part)
            if isinstance(child, str) and isinstance(nxt, str):
                node[part] = {"name": child}  # component shorthand ("se") -> table
            elif child is None:
                node[part] = {} if isinstance(nxt, str) else []
        else:
            raise RecipeError([f"{origin}: {_path_text(path[:i])} is not a table"])
        node = node[part]
    last = path[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last >= len(node):
            raise RecipeError([f"{origin}: {_path_text(path)} does not exist"])
    elif not isinstance(node, dict):
        raise RecipeError([f"{origin}: {_path_text(path[:-1])} is not a table"])
    node[last] = parse_value(text.strip())
    prefix = _path_text(path)
    raw.origins[prefix] = Location(origin)
    raw.origins.update({key: Location(origin) for key in _flat_keys(node[last], prefix)})


def _path_text(path: Sequence[str | int]) -> str:
    text = ""
    for part in path:
        text = join_key(text, part)
    return text


STAGE_MERGED_TABLES = ("augment", "trainer")
"""Tables a stage merges key by key over the top-level ones (a stage's ``augment.train``
keeps the top-level ``augment.eval``); component tables and lists replace."""


def _stages_over_top_level(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with each stage's augment and trainer tables merged over the top-level ones."""
    stages = data.get("stages")
    if not isinstance(stages, list):
        return data
    merged = []
    for stage in stages:
        if isinstance(stage, dict):
            stage = dict(stage)
            for key in STAGE_MERGED_TABLES:
                if isinstance(stage.get(key), dict) and isinstance(data.get(key), dict):
                    stage[key] = _deep_merge(data[key], stage[key])
        merged.append(stage)
    return {**data, "stages": merged}


def validate_recipe(raw: RawRecipe, registry: Registry) -> Recipe:
    """The :class:`Recipe` of ``raw``; raises RecipeError listing every problem with its location."""
    validator = Validator(registry.lookup, locate=raw.where)
    recipe = validator.value(_stages_over_top_level(raw.data), Recipe, "")
    if validator.problems:
        raise RecipeError([f"{raw.where(p.key)}: {p.message}" for p in validator.problems])
    return recipe


def load_recipe(
    path: str | Path, overrides: Sequence[str] = (), registry: Registry | None = None
) -> Recipe:
    """Read, override and validate the recipe at ``path`` against ``registry`` (default: installed)."""
    from cvkit.plugins import default_registry

    raw = read_recipe(path)
    for assignment in overrides:
        apply_override(raw, assignment)
    return validate_recipe(raw, registry or default_registry())


def recipe_data(value: Any) -> Any:
    """Plain TOML-ready data of a :class:`Recipe` (or part of one); None values are left out."""
    if isinstance(value, ComponentSpec):
        return {"name": value.name} | recipe_data(dict(value.params))
    if attrs.has(type(value)):
        return recipe_data({f.alias: getattr(value, f.name) for f in attrs.fields(type(value))})
    if isinstance(value, Mapping):
        return {k: recipe_data(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [recipe_data(v) for v in value]
    if isinstance(value, Path):
        return value.as_posix()
    return value


def dump_recipe(recipe: Recipe, header: str = "") -> str:
    """``recipe`` as TOML text that :func:`load_recipe` reads back to an equal Recipe."""
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    return comment + tomli_w.dumps(recipe_data(recipe))
