"""``cvkit tune``: hyperparameter search over a recipe with Optuna.

Each trial is a ``cvkit run`` of the recipe with the sampled values set (as ``--set``
would), in ``<tune dir>/trial-<N>/``, without the final evaluation on the test split (so no
one tunes on it). Optuna's sampler (TPE by default, random, or a grid over categorical
spaces) proposes the values; its pruner (median by default, Hyperband, or none) stops a
trial whose validation metric after an epoch is worse than the earlier trials' at that
epoch. A trial whose loss or weights become NaN or infinite (normal in a learning-rate
search) is recorded as failed, with the reason, and the study goes on. The study lives
in ``<tune dir>/study.db`` (SQLite) unless ``storage`` names another Optuna storage (e.g.
a PostgreSQL URL shared by several machines, each running ``cvkit tune`` with the same
``--storage`` and ``--study-name``).
The best trial's recipe is written to ``<tune dir>/best.toml``.

The search space is a TOML file with one table per recipe key::

    ["optimizer.lr"]
    type = "float"        # float, int or categorical
    low = 1e-4
    high = 1e-1
    log = true            # optional: sample on a log scale (float, int)

    ["data.batch_size"]
    type = "categorical"
    choices = [64, 128, 256]
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import tomllib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeGuard

import attrs
import optuna
import tomli_w

from cvkit import (
    Callback,
    CvkitError,
    NonFiniteLossError,
    Priority,
    Registry,
    TrainerView,
    dump_recipe,
    load_recipe,
    new_run_dir,
    train,
    write_json,
    write_status,
    write_text_atomic,
)

log = logging.getLogger("cvkit")

METRICS = {"val/acc": "top1", "val/top5": "top5", "val/loss": "loss"}
"""What a trial may optimise (``--metric``): a validation metric reported after every
epoch for pruning, and the trial's value: its final evaluation's (eval.json ``val``)."""

SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "hyperband", "none")


def default_direction(metric: str) -> str:
    """'minimize' for a loss, else 'maximize'."""
    return "minimize" if metric.endswith("loss") else "maximize"


def make_sampler(name: str, space: Sequence[SearchParameter], seed: int) -> Any:
    """Optuna's sampler ``name`` (one of :data:`SAMPLERS`), seeded with ``seed``; 'grid'
    tries every combination of a space of categorical parameters once."""
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    numeric = [p.key for p in space if p.type != "categorical"]
    if numeric:
        raise CvkitError(
            f"--sampler grid needs categorical parameters only; {', '.join(numeric)} "
            "are numeric (give them choices, or use tpe or random)"
        )
    return optuna.samplers.GridSampler({p.key: list(p.choices) for p in space}, seed=seed)


def make_pruner(name: str) -> Any:
    """Optuna's pruner ``name`` (one of :data:`PRUNERS`)."""
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner()
    return optuna.pruners.NopPruner()


@attrs.frozen
class SearchParameter:
    """One dimension of the search space: a recipe key and how to sample its value."""

    key: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: optuna.Trial) -> Any:
        """A value for this key from an ``optuna.Trial``."""
        if self.type == "categorical":
            return trial.suggest_categorical(self.key, list(self.choices))
        assert self.low is not None and self.high is not None  # numeric: checked by read_space
        if self.type == "int":
            step = int(self.step or 1)
            return trial.suggest_int(
                self.key, int(self.low), int(self.high), step=step, log=self.log
            )
        return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.log)


def read_space(path: Path) -> list[SearchParameter]:
    """The search space in the TOML file ``path``; CvkitError naming the file and key."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CvkitError(f"--space {path}: file not found") from None
    except tomllib.TOMLDecodeError as error:
        raise CvkitError(f"--space {path}: invalid TOML: {error}") from None
    if not data:
        raise CvkitError(f'--space {path}: no parameters; expected tables such as ["optimizer.lr"]')
    return [_parameter(path, key, table) for key, table in data.items()]


def _parameter(path: Path, key: str, table: Any) -> SearchParameter:
    where = f"{path}: {key}"
    if not isinstance(table, dict):
        raise CvkitError(f"{where}: expected a table with type = float, int or categorical")
    known = {"type", "low", "high", "log", "step", "choices"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise CvkitError(
            f"{where}: unknown keys {', '.join(unknown)}; valid: {', '.join(sorted(known))}"
        )
    kind = table.get("type")
    if kind == "categorical":
        choices = table.get("choices")
        if not isinstance(choices, list) or not choices:
            raise CvkitError(f"{where}: a categorical parameter needs a non-empty choices list")
        return SearchParameter(key, kind, choices=tuple(choices))
    if kind not in ("float", "int"):
        raise CvkitError(f"{where}: type must be float, int or categorical, got {kind!r}")
    low, high = table.get("low"), table.get("high")
    if not (_is_number(low) and _is_number(high) and low < high):
        raise CvkitError(
            f"{where}: needs finite numbers low < high, got low={low!r}, high={high!r}"
        )
    log_scale, step = table.get("log", False), table.get("step")
    if log_scale and low <= 0:
        raise CvkitError(f"{where}: log = true needs low > 0, got {low}")
    if step is not None and (not _is_number(step) or step <= 0):
        raise CvkitError(f"{where}: step must be a number > 0, got {step!r}")
    if log_scale and step not in (None, 1):
        raise CvkitError(f"{where}: Optuna cannot combine log = true with step = {step}")
    return SearchParameter(key, kind, float(low), float(high), bool(log_scale), step)


def _is_number(value: Any) -> TypeGuard[int | float]:
    """A finite int or float (not a bool, not NaN or infinite)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def assignment(key: str, value: Any) -> str:
    """``key=VALUE`` in the TOML value syntax of ``--set``."""
    return f"{key}={tomli_w.dumps({'v': value}).partition('=')[2].strip()}"


class ReportToTrial(Callback):
    """Reports the validation ``metric`` to an Optuna trial after every epoch (counted
    across stages) and stops the run when the trial's pruner says so."""

    priority = Priority.VERY_LOW  # after early stopping, which may end the run anyway

    def __init__(self, trial: optuna.Trial, metric: str = "val/acc") -> None:
        self.trial, self.metric = trial, metric
        self.step = 0
        self.pruned = False

    def on_epoch_end(self, trainer: TrainerView) -> None:
        self.step += 1
        value = trainer.metrics.get(self.metric)
        if value is None:
            return
        self.trial.report(value, self.step)
        if self.trial.should_prune():
            log.info(
                "trial %d pruned after epoch %d (%s %.4f)",
                self.trial.number,
                self.step,
                self.metric,
                value,
            )
            self.pruned = True
            trainer.should_stop = True


def tune(
    recipe_path: Path,
    space_path: Path,
    *,
    trials: int,
    registry: Registry,
    overrides: Sequence[str] = (),
    storage: str | None = None,
    study_name: str | None = None,
    output: Path | None = None,
    metric: str = "val/acc",
    direction: str | None = None,
    timeout: float | None = None,
    sampler: str = "tpe",
    pruner: str = "median",
) -> dict[str, Any]:
    """Run ``trials`` trials (fewer when ``timeout`` seconds pass first) of a study over
    ``recipe_path`` and ``space_path``, optimising ``metric`` (one of :data:`METRICS`) in
    ``direction`` (default: :func:`default_direction`); returns the summary also written
    to ``<tune dir>/tune.json`` (best value, parameters, recipe file)."""
    if trials < 1:
        raise CvkitError(f"--trials {trials}: expected at least 1")
    if metric not in METRICS:
        raise CvkitError(f"--metric {metric}: expected one of {', '.join(METRICS)}")
    chosen_direction = optuna.study.StudyDirection[(direction or default_direction(metric)).upper()]
    space = read_space(space_path)
    recipe = load_recipe(recipe_path, overrides, registry=registry)
    check_space(recipe_path, space, overrides, registry)
    chosen_sampler = make_sampler(sampler, space, recipe.experiment.seed)
    folder = new_run_dir(recipe.experiment.output_dir, f"{recipe.experiment.name}-tune", output)
    storage = storage or f"sqlite:///{(folder / 'study.db').resolve()}"
    with optuna_log(folder / "tune.log"):
        study = optuna.create_study(
            study_name=study_name or recipe.experiment.name,
            storage=storage,
            load_if_exists=True,
            direction=chosen_direction,
            sampler=chosen_sampler,
            pruner=make_pruner(pruner),
        )
        objective = Objective(recipe_path, space, overrides, folder, registry, metric)
        study.optimize(objective, n_trials=trials, timeout=timeout, catch=())
    summary = summarise(study, storage, folder, metric)
    write_best_recipe(study, recipe_path, overrides, folder / "best.toml", registry, metric)
    write_json(folder / "tune.json", summary | {"best_recipe": str(folder / "best.toml")})
    return summary | {"best_recipe": str(folder / "best.toml"), "dir": str(folder)}


@contextlib.contextmanager
def optuna_log(path: Path) -> Iterator[None]:
    """Optuna's messages as cvkit's: plain lines on stderr (not Optuna's ``[I <time>]``
    handler) and, with timestamps as in a run's run.log, appended to ``path`` (the tune
    directory's tune.log)."""
    optuna_logger = logging.getLogger("optuna")
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter("%(message)s"))
    logfile = logging.FileHandler(path, encoding="utf-8")
    logfile.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    optuna.logging.disable_default_handler()
    optuna.logging.disable_propagation()
    optuna_logger.addHandler(console)
    optuna_logger.addHandler(logfile)
    try:
        yield
    finally:
        optuna_logger.removeHandler(console)
        optuna_logger.removeHandler(logfile)
        logfile.close()
        optuna.logging.enable_default_handler()


def check_space(
    recipe_path: Path,
    space: Sequence[SearchParameter],
    overrides: Sequence[str],
    registry: Registry,
) -> None:
    """Every key of the space must be settable: validate the recipe with one value of each."""
    for parameter in space:
        sample = parameter.choices[0] if parameter.choices else parameter.low
        sample = int(sample) if parameter.type == "int" and sample is not None else sample
        load_recipe(recipe_path, [*overrides, assignment(parameter.key, sample)], registry=registry)


@attrs.frozen
class Objective:
    """One trial: a run of the recipe with the sampled values, in ``<folder>/trial-<N>/``,
    without the test split; its value is ``metric`` of the final evaluation's validation
    split. A run stopped on a NaN or infinite value returns NaN, which Optuna records as a
    failed trial (the reason is the trial's ``failure`` attribute)."""

    recipe_path: Path
    space: Sequence[SearchParameter]
    overrides: Sequence[str]
    folder: Path
    registry: Registry
    metric: str = "val/acc"

    def __call__(self, trial: optuna.Trial) -> float:
        values = {p.key: p.suggest(trial) for p in self.space}
        sets = [*self.overrides, *(assignment(k, v) for k, v in values.items())]
        report = ReportToTrial(trial, self.metric)
        run_dir = self.folder / f"trial-{trial.number}"
        trial.set_user_attr("run_dir", str(run_dir))
        try:
            result = train(
                self.recipe_path,
                overrides=sets,
                output=run_dir,
                registry=self.registry,
                callbacks=[report],
                evaluate_test=False,
            )
        except NonFiniteLossError as error:
            trial.set_user_attr("failure", str(error))
            log.warning("trial %d failed: %s", trial.number, error)
            return math.nan
        if report.pruned:  # its run ended early on purpose: not a finished run
            write_status(
                run_dir, "pruned", f"pruned by the tune's pruner after epoch {report.step}"
            )
            raise optuna.TrialPruned()
        val = result.evaluation.get("val")
        if val is None:
            raise CvkitError(
                f"{self.recipe_path}: cvkit tune needs a validation split (data.val_split > 0)"
            )
        return float(val[METRICS[self.metric]])


def summarise(
    study: optuna.Study, storage: str, folder: Path, metric: str = "val/acc"
) -> dict[str, Any]:
    """The study's best trial and every trial's state, value, parameters and run directory;
    CvkitError naming the tune directory ``folder`` when no trial completed."""
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise CvkitError(f"{folder}: no trial completed (all {len(study.trials)} pruned or failed)")
    best = study.best_trial
    return {
        "study": study.study_name,
        "storage": storage,
        "metric": metric,
        "direction": study.direction.name.lower(),
        "best": {"trial": best.number, "value": best.value, "params": best.params},
        "trials": [
            {
                "number": t.number,
                "state": t.state.name,
                "value": t.value,
                "params": t.params,
                "run_dir": t.user_attrs.get("run_dir"),
                "failure": t.user_attrs.get("failure"),
            }
            for t in study.trials
        ],
    }


def write_best_recipe(
    study: optuna.Study,
    recipe_path: Path,
    overrides: Sequence[str],
    path: Path,
    registry: Registry,
    metric: str = "val/acc",
) -> None:
    """The best trial's resolved recipe, with a header saying how it was found."""
    best = study.best_trial
    best_sets = [*overrides, *(assignment(k, v) for k, v in best.params.items())]
    header = (
        f"best of {len(study.trials)} trials of study {study.study_name!r} over {recipe_path}: "
        f"trial {best.number}, {metric} {best.value:.4f}\n"
        + "\n".join(f"--set {s}" for s in best_sets)
    )
    write_text_atomic(
        path, dump_recipe(load_recipe(recipe_path, best_sets, registry=registry), header)
    )
