"""``cvkit run``: build a recipe, train it, evaluate it, and write its run directory.

Started by torchrun (``torchrun --nproc-per-node N -m cvkit run ...``), every process
trains its part of each batch (see :mod:`cvkit.distributed`) and rank 0 alone
writes the run directory, whose path it tells the others.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import torch

from cvkit import distributed
from cvkit.commands.inputs import run_directory
from cvkit.commands.rundir import (
    environment,
    new_run_dir,
    run_lock,
    run_logging,
    write_status,
)
from cvkit.engine.build import build_dataset, build_model
from cvkit.engine.callback import Callback
from cvkit.engine.checkpoint import load_checkpoint
from cvkit.engine.device import resolve_device
from cvkit.engine.stage import StageContext, check_init_modules
from cvkit.engine.trained_model import checkpoint_path
from cvkit.errors import CvkitError, RunInterrupted, Terminated
from cvkit.files import remove_leftovers, write_json, write_text_atomic
from cvkit.recipe.loading import load_recipe, load_recipe_noting
from cvkit.recipe.schema import Recipe, StageSettings
from cvkit.recipe.writing import dump_recipe, recipe_differences
from cvkit.registry.loading import default_registry
from cvkit.registry.registry import Registry

log = logging.getLogger("cvkit")


@attrs.frozen
class RunResult:
    """Where a run was written and its final evaluation (the content of eval.json)."""

    run_dir: Path
    evaluation: dict[str, Any]


RESTORED_ON_RESUME = ("optimizer", "scheduler", "experiment.epochs", "experiment.seed", "data")
"""Recipe keys (and the tables below them) whose effect a resumed run takes from its
checkpoint (optimizer and scheduler state, the schedule's length, the random generators, the
order and content of the batches), so that changing them on resume would not happen."""

APPLIED_ON_RESUME = ("data.workers", "data.eval_batch_size", "data.cache", "data.cache_dir")
"""Keys of [data] that do change a resumed run as they say (how data is loaded, not which)."""


def train(
    recipe_path: Path,
    *,
    overrides: Sequence[str] = (),
    output: Path | None = None,
    registry: Registry | None = None,
    argv: Sequence[str] | None = None,
    callbacks: Sequence[Callback] = (),
    timeout_seconds: float = distributed.DEFAULT_TIMEOUT_SECONDS,
    evaluate_test: bool = True,
    unset: Sequence[str] = (),
) -> RunResult:
    """Train the recipe at ``recipe_path`` (without the keys ``unset`` names, with the
    ``overrides``) in a new run directory (``output`` if given);
    ``callbacks``: objects added to every stage's callbacks (for ``cvkit tune``);
    ``evaluate_test``: False leaves the test split out of the final evaluation.
    ``timeout_seconds``: how long a process of a multi-process run waits for the others."""
    registry = registry or default_registry()
    recipe, notes = load_recipe_noting(recipe_path, overrides, registry=registry, unset=unset)
    device = _device(recipe, timeout_seconds)
    main = distributed.is_main()
    run_dir = (
        new_run_dir(recipe.experiment.output_dir, recipe.experiment.name, output) if main else None
    )
    run_dir = distributed.broadcast_object(run_dir)
    with run_lock(run_dir):
        if main:
            write_text_atomic(
                run_dir / "recipe.toml", dump_recipe(recipe, f"resolved from {recipe_path}")
            )
            write_json(run_dir / "env.json", environment(registry, device, list(argv or sys.argv)))
        return _execute(
            recipe,
            run_dir,
            registry,
            device,
            callbacks=tuple(callbacks),
            evaluate_test=evaluate_test,
            notes=tuple(notes),
        )


def _device(recipe: Recipe, timeout_seconds: float) -> torch.device:
    """The training device of this process, after joining the process group when torchrun
    started it (see :func:`cvkit.distributed.initialize`)."""
    distributed.initialize(recipe.experiment.device, timeout_seconds)
    return distributed.local_device(resolve_device(recipe.experiment.device))


def resume(
    run_dir: Path,
    *,
    overrides: Sequence[str] = (),
    force: bool = False,
    registry: Registry | None = None,
    argv: Sequence[str] | None = None,
    timeout_seconds: float = distributed.DEFAULT_TIMEOUT_SECONDS,
    unset: Sequence[str] = (),
    callbacks: Sequence[Callback] = (),
    evaluate_test: bool = True,
) -> RunResult:
    """Finish the run in ``run_dir``: continue it from ``checkpoints/last.pt`` (start it
    again when it has none yet; for a multi-stage recipe, skip the finished stages), or,
    when it trained every epoch but has no eval.json, only evaluate it. A run is finished
    when its eval.json exists; resuming it is refused. ``callbacks`` and ``evaluate_test``
    as for :func:`train` (a ``cvkit tune`` trial continued).

    ``overrides`` (and ``unset`` keys) that change the run's recipe are refused unless ``force``, and always for
    the keys in :data:`RESTORED_ON_RESUME`; the previous recipe.toml is kept as
    recipe.before-<time>.toml.
    """
    registry = registry or default_registry()
    run_directory(run_dir)
    recipe_file = run_dir / "recipe.toml"
    original = load_recipe(recipe_file, (), registry=registry)
    changes = bool(overrides or unset)
    recipe = (
        load_recipe(recipe_file, overrides, registry=registry, unset=unset) if changes else original
    )
    changed = recipe_differences(original, recipe)
    finished = run_dir / "eval.json"
    extending = finished.is_file() and _extends(run_dir, original, recipe, changed)
    if finished.is_file() and not extending:
        raise CvkitError(
            f"--resume {run_dir}: the run is finished (it has its eval.json); to train it "
            f"further, give it more epochs (--set experiment.epochs=N, more than "
            f"{original.experiment.epochs}), or start a new run from its weights with a "
            f"schedule of its own: cvkit run {recipe_file} --init {run_dir} "
            "--set experiment.epochs=N"
        )
    if not extending:
        _check_changes(run_dir, changed, force)
    device = _device(recipe, timeout_seconds)
    with run_lock(run_dir):
        if distributed.is_main():
            if extending:  # the shorter run's evaluation is kept beside the new one
                finished.rename(run_dir / f"eval.before-{time.strftime('%Y%m%d-%H%M%S')}.json")
            if changed:
                recipe_file.rename(run_dir / f"recipe.before-{time.strftime('%Y%m%d-%H%M%S')}.toml")
                write_text_atomic(recipe_file, dump_recipe(recipe, "resolved, changed on resume"))
            env = _read_env(run_dir / "env.json")
            env.setdefault("resumes", []).append(
                environment(registry, device, list(argv or sys.argv))
            )
            write_json(run_dir / "env.json", env)
        return _execute(
            recipe,
            run_dir,
            registry,
            device,
            resuming=True,
            callbacks=tuple(callbacks),
            evaluate_test=evaluate_test,
        )


def _extends(run_dir: Path, original: Recipe, recipe: Recipe, changed: list[str]) -> bool:
    """Whether resuming the finished run ``run_dir`` with ``recipe`` trains it further: only
    ``experiment.epochs`` changed, to more, in a recipe without stages, from its last.pt."""
    if changed != ["experiment.epochs"] or recipe.experiment.epochs <= original.experiment.epochs:
        return False
    if original.stages:
        raise CvkitError(
            f"--resume {run_dir}: experiment.epochs of a recipe with stages cannot be extended; "
            "start a new run from its weights (a stage's init)"
        )
    if not (run_dir / "checkpoints" / "last.pt").is_file():
        raise CvkitError(f"--resume {run_dir}: no checkpoints/last.pt to train further from")
    return True


def _check_changes(run_dir: Path, changed: list[str], force: bool) -> None:
    """Refuse recipe changes on resume without ``force``, and those that cannot happen."""
    if changed and not force:
        raise CvkitError(
            f"--resume {run_dir}: --set changes {', '.join(changed)}; a resumed run keeps its recipe "
            "(add --force to change it anyway)"
        )
    fixed = [
        key
        for key in changed
        if any(key == k or key.startswith(f"{k}.") for k in RESTORED_ON_RESUME)
        and not any(key == k or key.startswith(f"{k}.") for k in APPLIED_ON_RESUME)
    ]
    if fixed:
        raise CvkitError(
            f"--resume {run_dir}: {', '.join(fixed)} cannot change on resume: the checkpoint "
            "restores the optimizer and its schedule, the random generators and the batches; "
            "train a new run that starts from this one (a stage's init) instead"
        )


def _read_env(path: Path) -> dict[str, Any]:
    """The run's env.json; a missing or unreadable one (written by an older cvkit, not
    atomically) starts a new record instead of stopping the resume."""
    try:
        env = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        log.warning("%s is unreadable (%s); starting a new environment record", path, error)
        return {"unreadable_before_resume": str(error)}
    return env if isinstance(env, dict) else {}


def _execute(
    recipe: Recipe,
    run_dir: Path,
    registry: Registry,
    device: torch.device,
    resuming: bool = False,
    callbacks: tuple[Callback, ...] = (),
    evaluate_test: bool = True,
    notes: tuple[str, ...] = (),
) -> RunResult:
    """Train the recipe's stages in ``run_dir`` (locked by the caller) and write eval.json,
    which marks the run finished; ``status.json`` says running, then finished, failed or
    interrupted (see :func:`cvkit.commands.rundir.run_status`). ``notes``: lines about the
    recipe's loading, logged first (keys a ``--set`` of a component's name dropped)."""
    main = distributed.is_main()
    with run_logging(run_dir):
        for note in notes if main else ():
            log.info("note: %s", note)
        for folder in (run_dir, run_dir / "checkpoints") if main else ():
            for leftover in remove_leftovers(folder):
                log.info("removed %s, left by a write that was cut short", leftover)
        write_status(run_dir, "running")
        try:
            evaluation = _run_stages(
                recipe, run_dir, registry, device, resuming, callbacks, evaluate_test
            )
        except KeyboardInterrupt as stop:
            signal_name = "SIGTERM" if isinstance(stop, Terminated) else "interrupted"
            message = f"{signal_name}; resume with: cvkit run --resume {run_dir}"
            write_status(run_dir, "interrupted", message)
            raise RunInterrupted(message, exit_code=getattr(stop, "exit_code", 130)) from None
        except CvkitError as error:
            log.error("%s", error, extra={"file_only": True})  # the CLI prints it
            write_status(run_dir, "failed", str(error))
            raise
        except Exception as error:  # a bug: the traceback follows, the run says it failed
            write_status(run_dir, "failed", f"{type(error).__name__}: {error}")
            raise
    if main:
        write_json(run_dir / "eval.json", evaluation)
        write_status(run_dir, "finished")
    return RunResult(run_dir, evaluation)


def _run_stages(
    recipe: Recipe,
    run_dir: Path,
    registry: Registry,
    device: torch.device,
    resuming: bool,
    callbacks: tuple[Callback, ...],
    evaluate_test: bool = True,
) -> dict[str, Any]:
    """Train the recipe's stages in order (or the recipe itself as one stage); a finished
    stage (one with its eval.json) is skipped when resuming. Returns the run's evaluation:
    the last stage's, with every stage's under ``stages`` for a multi-stage recipe."""
    if not recipe.stages:
        init = _experiment_init(recipe)
        return _run_stage(
            "", recipe, run_dir, registry, device, init, resuming, callbacks, evaluate_test
        )
    if recipe.experiment.init is not None:
        raise CvkitError(
            "experiment.init (--init): this recipe has stages; set the first stage's init "
            "(stages[0].init) instead"
        )
    stage_dirs = {stage.name: run_dir / "stages" / stage.name for stage in recipe.stages}
    inits = {
        stage.name: _resolve_init(stage, i, stage_dirs) for i, stage in enumerate(recipe.stages)
    }
    _check_stage_init_modules(recipe, registry)
    results: dict[str, Any] = {}
    for stage in recipe.stages:
        stage_dir = stage_dirs[stage.name]
        done = stage_dir / "eval.json"
        if resuming and done.is_file():
            results[stage.name] = json.loads(done.read_text(encoding="utf-8"))
            continue
        log.info("stage %s", stage.name)
        stage_dir.mkdir(parents=True, exist_ok=True)
        inits[stage.name] = {k: checkpoint_path(v) for k, v in inits[stage.name].items()}
        results[stage.name] = _run_stage(
            stage.name,
            recipe.stage_recipe(stage),
            stage_dir,
            registry,
            device,
            inits[stage.name],
            resuming,
            callbacks,
            evaluate_test,
        )
        if distributed.is_main():
            write_json(done, results[stage.name])
    last = recipe.stages[-1].name
    final = results[last] | {"stages": results}
    if "predictions" in final:  # the last stage's file, from the run directory
        block = final["predictions"]
        final["predictions"] = block | {"file": f"stages/{last}/{block['file']}"}
    return final


def _experiment_init(recipe: Recipe) -> dict[str, Path]:
    """``{"": checkpoint}`` of ``experiment.init`` (a run directory's best, else last), or {}."""
    source = recipe.experiment.init
    if source is None:
        return {}
    if not source.exists():
        raise CvkitError(f"experiment.init (--init): {source} is no run directory or checkpoint")
    return {"": checkpoint_path(source)}


def _resolve_init(stage: StageSettings, index: int, stage_dirs: dict[str, Path]) -> dict[str, Path]:
    """Module name -> the run directory or checkpoint file each of the stage's sources names
    (an earlier stage's directory for a stage name), checked before anything trains."""
    if stage.init is None:
        return {}
    sources = stage.init if isinstance(stage.init, dict) else {"": stage.init}
    resolved = {}
    for module_name, source in sources.items():
        if source in stage_dirs:
            resolved[module_name] = stage_dirs[source]
            continue
        path = Path(source)
        if not path.exists():
            earlier = ", ".join(list(stage_dirs)[:index]) or "none"
            raise CvkitError(
                f"stages[{index}].init: {source!r} is neither an earlier stage ({earlier}) nor "
                "an existing run directory or checkpoint file"
            )
        resolved[module_name] = path
    return resolved


def _check_stage_init_modules(recipe: Recipe, registry: Registry) -> None:
    """Every module a stage's ``init`` table names exists in that stage's model, checked
    before the first stage trains (the architecture only: nothing is downloaded)."""
    dataset = build_dataset(recipe, registry)
    for index, stage in enumerate(recipe.stages):
        if isinstance(stage.init, dict) and any(stage.init):
            model = build_model(
                recipe.stage_recipe(stage),
                registry,
                num_classes=dataset.num_classes,
                in_channels=dataset.in_channels,
                load_weights=False,
            )
            check_init_modules(model, stage.init, f"stages[{index}].init")


def _run_stage(
    name: str,
    recipe: Recipe,
    run_dir: Path,
    registry: Registry,
    device: torch.device,
    init: dict[str, Path],
    resuming: bool,
    callbacks: tuple[Callback, ...],
    evaluate_test: bool = True,
) -> dict[str, Any]:
    last = run_dir / "checkpoints" / "last.pt"
    checkpoint = (last, load_checkpoint(last)) if resuming and last.is_file() else None
    procedure = registry.build(recipe.procedure)
    stage = StageContext(
        name, recipe, run_dir, registry, device, init, checkpoint, callbacks, evaluate_test
    )
    return procedure.run(stage)
