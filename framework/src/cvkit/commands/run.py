"""``cvkit run``: build a recipe, train it, evaluate it, and write its run directory."""

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

from cvkit.commands.rundir import environment, new_run_dir, run_logging, write_json
from cvkit.engine.callback import Callback
from cvkit.engine.checkpoint import load_checkpoint
from cvkit.engine.device import resolve_device
from cvkit.engine.stage import StageContext
from cvkit.engine.trained_model import checkpoint_path
from cvkit.errors import CvkitError, RunInterrupted
from cvkit.recipe.loading import load_recipe
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


def train(
    recipe_path: Path,
    *,
    overrides: Sequence[str] = (),
    output: Path | None = None,
    registry: Registry | None = None,
    argv: Sequence[str] | None = None,
    callbacks: Sequence[Callback] = (),
) -> RunResult:
    """Train the recipe at ``recipe_path`` in a new run directory (``output`` if given);
    ``callbacks``: objects added to every stage's callbacks (for ``cvkit tune``)."""
    registry = registry or default_registry()
    recipe = load_recipe(recipe_path, overrides, registry=registry)
    device = resolve_device(recipe.experiment.device)
    run_dir = new_run_dir(recipe.experiment.output_dir, recipe.experiment.name, output)
    (run_dir / "recipe.toml").write_text(
        dump_recipe(recipe, f"resolved from {recipe_path}"), encoding="utf-8"
    )
    write_json(run_dir / "env.json", environment(registry, device, list(argv or sys.argv)))
    return _execute(recipe, run_dir, registry, device, callbacks=tuple(callbacks))


def resume(
    run_dir: Path,
    *,
    overrides: Sequence[str] = (),
    force: bool = False,
    registry: Registry | None = None,
    argv: Sequence[str] | None = None,
) -> RunResult:
    """Continue the run in ``run_dir`` from ``checkpoints/last.pt`` (for a multi-stage
    recipe: skip the finished stages, continue the unfinished one from its last.pt).

    ``overrides`` that change the run's recipe are refused unless ``force``; the previous
    recipe.toml is then kept as recipe.before-<time>.toml.
    """
    registry = registry or default_registry()
    recipe_file = run_dir / "recipe.toml"
    if not recipe_file.is_file():
        raise CvkitError(f"--resume {run_dir}: not a run directory (no recipe.toml)")
    original = load_recipe(recipe_file, (), registry=registry)
    recipe = load_recipe(recipe_file, overrides, registry=registry) if overrides else original
    changed = recipe_differences(original, recipe)
    if changed and not force:
        raise CvkitError(
            f"--resume {run_dir}: --set changes {', '.join(changed)}; a resumed run keeps its recipe "
            "(add --force to change it anyway)"
        )
    if recipe.stages:
        if all((run_dir / "stages" / s.name / "eval.json").is_file() for s in recipe.stages):
            raise CvkitError(f"--resume {run_dir}: the run already finished its stages")
    elif load_checkpoint(run_dir / "checkpoints" / "last.pt")["epoch"] >= recipe.experiment.epochs:
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
    return _execute(recipe, run_dir, registry, device, resuming=True)


def _execute(
    recipe: Recipe,
    run_dir: Path,
    registry: Registry,
    device: torch.device,
    resuming: bool = False,
    callbacks: tuple[Callback, ...] = (),
) -> RunResult:
    with run_logging(run_dir):
        try:
            evaluation = _run_stages(recipe, run_dir, registry, device, resuming, callbacks)
        except KeyboardInterrupt:
            raise RunInterrupted(
                f"interrupted; resume with: cvkit run --resume {run_dir}"
            ) from None
        except CvkitError as error:
            log.error("%s", error)
            raise
    write_json(run_dir / "eval.json", evaluation)
    return RunResult(run_dir, evaluation)


def _run_stages(
    recipe: Recipe,
    run_dir: Path,
    registry: Registry,
    device: torch.device,
    resuming: bool,
    callbacks: tuple[Callback, ...],
) -> dict[str, Any]:
    """Train the recipe's stages in order (or the recipe itself as one stage); a finished
    stage (one with its eval.json) is skipped when resuming. Returns the run's evaluation:
    the last stage's, with every stage's under ``stages`` for a multi-stage recipe."""
    if not recipe.stages:
        return _run_stage("", recipe, run_dir, registry, device, {}, resuming, callbacks)
    stage_dirs = {stage.name: run_dir / "stages" / stage.name for stage in recipe.stages}
    inits = {
        stage.name: _resolve_init(stage, i, stage_dirs) for i, stage in enumerate(recipe.stages)
    }
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
        )
        write_json(done, results[stage.name])
    return results[recipe.stages[-1].name] | {"stages": results}


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


def _run_stage(
    name: str,
    recipe: Recipe,
    run_dir: Path,
    registry: Registry,
    device: torch.device,
    init: dict[str, Path],
    resuming: bool,
    callbacks: tuple[Callback, ...],
) -> dict[str, Any]:
    last = run_dir / "checkpoints" / "last.pt"
    checkpoint = (last, load_checkpoint(last)) if resuming and last.is_file() else None
    procedure = registry.build(recipe.procedure)
    stage = StageContext(name, recipe, run_dir, registry, device, init, checkpoint, callbacks)
    return procedure.run(stage)
