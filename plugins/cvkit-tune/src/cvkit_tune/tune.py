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
``--storage`` and ``--study-name``); the tune's settings are kept in the tune directory and
the study, and a tune with other settings is refused. Ctrl-C stops a tune at once; the same
command continues it, resuming the interrupted trial from its last.pt, and ``--trials`` is
the total. The best trial's recipe is written to ``<tune dir>/best.toml``.

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
import json
import logging
import math
import sys
import time
import tomllib
from collections.abc import Iterator, Mapping, Sequence
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
    RunInterrupted,
    TrainerView,
    dump_recipe,
    load_recipe,
    resume,
    run_status,
    train,
    write_json,
    write_status,
    write_text_atomic,
)

log = logging.getLogger("cvkit")
trial_log = logging.getLogger("cvkit_tune")
"""How each trial ended, in Optuna's words: to stderr and tune.log (see :func:`optuna_log`)."""
trial_log.propagate = False

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


class _Grid(optuna.samplers.GridSampler):
    """Optuna's grid sampler for a tune that asks and tells: the tune stops at the end of
    the grid itself (Optuna's would call ``Study.stop``, valid only inside ``optimize``)."""

    def after_trial(self, *args: Any) -> None:
        pass

    @property
    def size(self) -> int:
        """The number of combinations in the grid."""
        return len(self._all_grids)


@attrs.frozen
class Samplers:
    """The sampler of each trial: for trial k, ``name`` (one of :data:`SAMPLERS`) seeded
    with ``seed + k``, so that what a trial is proposed depends on the earlier trials and
    not on how many processes sampled them (a continued tune proposes what an uninterrupted
    one would); the grid keeps one order (``seed``) and proposes trial k's combination."""

    name: str
    space: Sequence[SearchParameter]
    seed: int
    grid: Any = attrs.field(default=None)

    def __attrs_post_init__(self) -> None:
        make_sampler(self.name, self.space, self.seed)  # a grid over numbers fails here
        if self.name == "grid":
            choices = {p.key: list(p.choices) for p in self.space}
            object.__setattr__(self, "grid", _Grid(choices, seed=self.seed))

    def for_trial(self, number: int) -> Any:
        """The sampler of trial ``number``."""
        return self.grid or make_sampler(self.name, self.space, self.seed + number)

    def exhausted(self, done: int) -> bool:
        """Whether a grid has had all its combinations once after ``done`` trials."""
        return self.grid is not None and done >= self.grid.size


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

    def __init__(self, trial: optuna.Trial, metric: str = "val/acc", start: int = 0) -> None:
        self.trial, self.metric = trial, metric
        self.step = start  # a resumed trial's epochs already reported
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
    force: bool = False,
) -> dict[str, Any]:
    """Bring the study over ``recipe_path`` and ``space_path`` to ``trials`` trials in all
    (fewer when ``timeout`` seconds pass first), optimising ``metric`` (one of
    :data:`METRICS`) in ``direction`` (default: :func:`default_direction`); returns the
    summary also written to ``<tune dir>/tune.json`` (best value, parameters, recipe file).

    The tune directory (``output``, else ``<output_dir>/<experiment>-tune``) and the Optuna
    study keep the tune's settings: the same command again continues the tune, first
    resuming its interrupted trials from their last.pt (each keeps its number and
    parameters), and refuses other settings unless ``force``. Ctrl-C or SIGTERM stop it at
    once: RunInterrupted (exit 130 or 143), the running trial left to be continued."""
    if trials < 1:
        raise CvkitError(f"--trials {trials}: expected at least 1")
    if metric not in METRICS:
        raise CvkitError(f"--metric {metric}: expected one of {', '.join(METRICS)}")
    chosen = optuna.study.StudyDirection[(direction or default_direction(metric)).upper()]
    space = read_space(space_path)
    recipe = load_recipe(recipe_path, overrides, registry=registry)
    check_space(recipe_path, space, overrides, registry)
    samplers = Samplers(sampler, space, recipe.experiment.seed)  # a grid over numbers fails
    folder = output or recipe.experiment.output_dir / f"{recipe.experiment.name}-tune"
    name = study_name or recipe.experiment.name
    settings = json.loads(  # as stored (JSON: tuples become lists), to compare with stored ones
        json.dumps(
            {
                "recipe": dump_recipe(recipe, "the recipe every trial starts from"),
                "space": [attrs.asdict(p) for p in space],
                "metric": metric,
                "direction": chosen.name.lower(),
                "sampler": sampler,
                "pruner": pruner,
            }
        )
    )
    claim_folder(folder, settings, force)
    storage = storage or f"sqlite:///{(folder / 'study.db').resolve()}"
    with optuna_log(folder / "tune.log"):
        study = optuna.create_study(
            study_name=name,
            storage=storage,
            load_if_exists=True,
            direction=chosen,
            pruner=make_pruner(pruner),
        )
        check_study(study, settings, folder, force)
        objective = Objective(recipe_path, space, overrides, folder, registry, metric)
        try:
            run_trials(study, objective, trials, timeout, samplers)
        except (RunInterrupted, KeyboardInterrupt) as stop:
            code = getattr(stop, "exit_code", 130)
            raise RunInterrupted(
                f"tune {folder} {'terminated (SIGTERM)' if code == 143 else 'interrupted'} with "
                f"{finished(study)} of {trials} trials done; the same command continues it "
                "(the interrupted trial resumes from its last.pt)",
                exit_code=code,
            ) from None
    summary = summarise(study, storage, folder, metric)
    write_best_recipe(study, recipe_path, overrides, folder / "best.toml", registry, metric)
    write_json(folder / "tune.json", summary | {"best_recipe": str(folder / "best.toml")})
    return summary | {"best_recipe": str(folder / "best.toml"), "dir": str(folder)}


DONE = (
    optuna.trial.TrialState.COMPLETE,
    optuna.trial.TrialState.PRUNED,
    optuna.trial.TrialState.FAIL,
)
"""The states of trials that count towards ``--trials``."""


def finished(study: optuna.Study) -> int:
    """How many of the study's trials are done (complete, pruned or failed)."""
    return len(study.get_trials(deepcopy=False, states=DONE))


def differing(settings: Mapping[str, Any], stored: Mapping[str, Any]) -> list[str]:
    """The settings whose values differ between ``settings`` and ``stored``, sorted."""
    return sorted(k for k in settings.keys() | stored.keys() if settings.get(k) != stored.get(k))


def claim_folder(folder: Path, settings: dict[str, Any], force: bool) -> None:
    """Keep ``settings`` in ``folder/tune-settings.json``, after checking that those
    already there, if any, are the same (CvkitError naming what differs, unless ``force``:
    then the new ones replace them, the old kept as tune-settings.before-<time>.json)."""
    path = folder / "tune-settings.json"
    if path.is_file():
        stored = json.loads(path.read_text(encoding="utf-8"))
        differ = differing(settings, stored)
        if differ and not force:
            raise CvkitError(
                f"{folder} holds a tune with other settings ({', '.join(differ)} differ: the "
                "recipe with its --set values, the space, metric, sampler or pruner); use "
                "another --output, or --force to continue it with these"
            )
        if differ:
            path.rename(folder / f"tune-settings.before-{time.strftime('%Y%m%d-%H%M%S')}.json")
    elif folder.is_dir() and any(folder.iterdir()):
        raise CvkitError(f"--output {folder}: the directory holds something other than a tune")
    folder.mkdir(parents=True, exist_ok=True)
    write_json(path, settings)


def check_study(study: optuna.Study, settings: dict[str, Any], folder: Path, force: bool) -> None:
    """A study joined through a shared storage must have been created with the same
    settings (kept in its ``cvkit_settings`` user attribute), unless ``force``."""
    stored = study.user_attrs.get("cvkit_settings")
    if stored is not None and stored != settings and not force:
        differ = differing(settings, stored)
        raise CvkitError(
            f"study {study.study_name!r} was created with other settings ({', '.join(differ)} "
            f"differ); its trials would not be comparable with {folder}'s. Use another "
            "--study-name, or --force to join it anyway"
        )
    if stored != settings:
        study.set_user_attr("cvkit_settings", settings)


def run_trials(
    study: optuna.Study,
    objective: Objective,
    total: int,
    timeout: float | None,
    samplers: Samplers,
) -> None:
    """Resume ``study``'s interrupted trials of ``objective``'s tune directory, then ask for
    new ones (each from its own sampler, see :class:`Samplers`) until ``total`` are done,
    a grid has been covered, or ``timeout`` seconds have passed."""
    started = time.monotonic()
    for frozen in objective.interrupted(study):
        log.info("trial %d: resuming it", frozen.number)
        study.sampler = samplers.for_trial(frozen.number)
        objective.finish(study, optuna.trial.Trial(study, frozen._trial_id))
    while finished(study) < total and not samplers.exhausted(len(study.trials)):
        if timeout is not None and time.monotonic() - started >= timeout:
            break
        study.sampler = samplers.for_trial(len(study.trials))
        objective.finish(study, study.ask())


@contextlib.contextmanager
def optuna_log(path: Path) -> Iterator[None]:
    """Optuna's messages and :data:`trial_log`'s as cvkit's: plain lines on stderr (not
    Optuna's ``[I <time>]`` handler) and, with timestamps as in a run's run.log, appended
    to ``path`` (the tune directory's tune.log)."""
    optuna_logger = logging.getLogger("optuna")
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter("%(message)s"))
    logfile = logging.FileHandler(path, encoding="utf-8")
    logfile.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    optuna.logging.disable_default_handler()
    optuna.logging.disable_propagation()
    trial_log.setLevel(logging.INFO)
    for logger in (optuna_logger, trial_log):
        logger.addHandler(console)
        logger.addHandler(logfile)
    try:
        yield
    finally:
        for logger in (optuna_logger, trial_log):
            logger.removeHandler(console)
            logger.removeHandler(logfile)
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
    failed trial (the reason is the trial's ``failure`` attribute). A trial whose run
    directory holds a started run (an interrupted tune) continues that run."""

    recipe_path: Path
    space: Sequence[SearchParameter]
    overrides: Sequence[str]
    folder: Path
    registry: Registry
    metric: str = "val/acc"

    def __call__(self, trial: optuna.Trial) -> float:
        values = {p.key: p.suggest(trial) for p in self.space}  # a resumed trial's own
        sets = [*self.overrides, *(assignment(k, v) for k, v in values.items())]
        reported = trial.storage.get_trial(trial._trial_id).intermediate_values
        report = ReportToTrial(trial, self.metric, start=max(reported, default=0))
        run_dir = self.folder / f"trial-{trial.number}"
        trial.set_user_attr("run_dir", str(run_dir))
        try:
            if (run_dir / "recipe.toml").is_file():
                result = resume(
                    run_dir, registry=self.registry, callbacks=[report], evaluate_test=False
                )
            else:
                _remove_leftovers(run_dir)
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

    def finish(self, study: optuna.Study, trial: optuna.Trial) -> None:
        """Run ``trial`` and tell ``study`` how it ended; an interrupted one (Ctrl-C,
        SIGTERM: RunInterrupted) is left running, for the same command to continue."""
        try:
            value = self(trial)
        except optuna.TrialPruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            trial_log.info("Trial %d pruned.", trial.number)
            return
        except (RunInterrupted, KeyboardInterrupt):
            raise
        except BaseException:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        if math.isnan(value):
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            trial_log.info("Trial %d failed: %s", trial.number, trial.user_attrs.get("failure"))
            return
        study.tell(trial, value)
        trial_log.info(
            "Trial %d finished with value %s and parameters %s. Best is trial %d with value %s.",
            trial.number,
            value,
            trial.params,
            study.best_trial.number,
            study.best_value,
        )

    def interrupted(self, study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
        """The study's trials left running in this tune directory by a tune that stopped
        (its run interrupted or killed: no process holds its run directory)."""
        return [
            frozen
            for frozen in study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
            if frozen.user_attrs.get("run_dir") == str(self.folder / f"trial-{frozen.number}")
            and run_status(Path(frozen.user_attrs["run_dir"]))["status"] != "running"
        ]


def _remove_leftovers(run_dir: Path) -> None:
    """A trial killed before its run wrote recipe.toml leaves at most these: removed."""
    if run_dir.is_dir() and {p.name for p in run_dir.iterdir()} <= {".lock", "env.json"}:
        for leftover in run_dir.iterdir():
            leftover.unlink()


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
