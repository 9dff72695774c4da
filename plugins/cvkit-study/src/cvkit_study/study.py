"""``cvkit study``: every variant of a comparison with every seed, then the statistics."""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import tomli_w

from cvkit import (
    CvkitError,
    Registry,
    RunInterrupted,
    load_recipe,
    write_json,
    write_text_atomic,
)
from cvkit_study.execution import Execution, study_jobs
from cvkit_study.spec import StudySpec
from cvkit_study.statistics import read_run_metrics, summarise
from cvkit_study.summary import markdown, study_record


def check_recipes(spec: StudySpec, registry: Registry) -> dict[str, Any]:
    """Each variant's recipe with its overrides (and the first seed), validated before
    anything runs, so a typo in one variant fails the study at once (CvkitError naming the
    variant). Returns the resolved recipes by variant name."""
    recipes = {}
    for variant in spec.variants:
        overrides = [*spec.sets, *variant.sets, f"experiment.seed={spec.seeds[0]}"]
        try:
            recipes[variant.name] = load_recipe(variant.recipe, overrides, registry=registry)
        except CvkitError as error:
            raise CvkitError(f"variant {variant.name}: {error}") from None
    return recipes


def study_folder(spec: StudySpec, output: Path | None, recipes: Mapping[str, Any]) -> Path:
    """Where the study lives: ``output``, else ``<the baseline recipe's
    experiment.output_dir>/<study name>`` (no timestamp: running the same command again
    finds it and continues)."""
    if output is not None:
        return output
    return recipes[spec.baseline].experiment.output_dir / spec.name


def claim_folder(folder: Path, spec: StudySpec) -> None:
    """Write ``folder/study.toml`` (the resolved study), after checking that the one there,
    if any, is the same study: a folder holds one study (its variants, settings and
    baseline), continued as often as needed, with the same or other seeds."""
    wanted = spec.as_toml()
    path = folder / "study.toml"
    if path.is_file():
        stored = tomllib.loads(path.read_text(encoding="utf-8"))
        stored["study"].pop("seeds", None)
        if stored != {
            **wanted,
            "study": {k: v for k, v in wanted["study"].items() if k != "seeds"},
        }:
            raise CvkitError(
                f"{folder} holds a different study (its study.toml differs from this one's "
                "variants, settings or baseline); choose another --output"
            )
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, tomli_w.dumps(wanted))


def run_study(
    spec: StudySpec,
    *,
    output: Path | None,
    execution: Execution,
    registry: Registry,
    progress: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """Run every (variant, seed) of ``spec`` not yet finished (resuming interrupted ones),
    then write and return the summary (study.json; study.md beside it)."""
    folder = study_folder(spec, output, check_recipes(spec, registry))
    jobs = study_jobs(spec, folder)
    claim_folder(folder, spec)
    count = len(jobs)
    finished = 0

    def done(outcome: dict[str, Any]) -> None:
        nonlocal finished
        finished += 1
        what = outcome["action"]
        detail = f": {outcome['error']}" if outcome["status"] == "failed" else ""
        progress(f"[{finished}/{count}] {outcome['variant']} seed {outcome['seed']} {what}{detail}")

    if execution.folder is None:
        execution = attrs.evolve(execution, folder=folder / ".submitit")
    try:
        outcomes = execution.run(jobs, done)
    except (RunInterrupted, KeyboardInterrupt) as stop:  # Ctrl-C or SIGTERM: stop at once
        code = getattr(stop, "exit_code", 130)
        raise RunInterrupted(
            f"study {spec.name} {'terminated (SIGTERM)' if code == 143 else 'interrupted'} "
            f"after {finished} of {count} runs; the same command continues it (finished runs "
            "are kept, the interrupted ones resume from their last.pt)",
            exit_code=code,
        ) from None
    by_job = {(o["variant"], o["seed"]): o for o in outcomes}
    runs: list[dict[str, Any]] = []
    results: dict[str, dict[int, dict[str, float]]] = {}
    for job in jobs:
        outcome = by_job[(job.variant, job.seed)]
        metrics = read_run_metrics(job.run_dir)
        runs.append(outcome | {"metrics": metrics})
        if metrics is not None:
            results.setdefault(job.variant, {})[job.seed] = metrics
    record = study_record(spec.name, spec.as_toml(), runs, summarise(results, spec.baseline))
    write_json(folder / "study.json", record)
    write_text_atomic(folder / "study.md", markdown(record))
    return record | {"dir": str(folder)}
