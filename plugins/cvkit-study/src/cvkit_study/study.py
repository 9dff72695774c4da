"""``cvkit study``: every variant of a comparison with every seed, then the statistics."""

from __future__ import annotations

import json
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
    load_recipe_noting,
    write_json,
    write_text_atomic,
)
from cvkit_study.execution import Execution, study_jobs
from cvkit_study.spec import StudySpec
from cvkit_study.statistics import read_run, summarise
from cvkit_study.summary import markdown, study_record


def check_recipes(
    spec: StudySpec, registry: Registry
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Each variant's recipe with its overrides (and the first seed), validated before
    anything runs, so a typo in one variant fails the study at once (CvkitError naming the
    variant). Returns the resolved recipes by variant name and, by variant, the lines of
    the recipe's keys its ``--set`` of a component's name dropped (the new component does
    not take them)."""
    recipes, dropped = {}, {}
    for variant in spec.variants:
        overrides = [*spec.sets, *variant.sets, f"experiment.seed={spec.seeds[0]}"]
        try:
            recipes[variant.name], notes = load_recipe_noting(
                variant.recipe, overrides, registry=registry
            )
        except CvkitError as error:
            raise CvkitError(f"variant {variant.name}: {error}") from None
        if notes:
            dropped[variant.name] = notes
    return recipes, dropped


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
    effect: float | None = None,
) -> dict[str, Any]:
    """Run every (variant, seed) of ``spec`` not yet finished (resuming interrupted ones),
    then write and return the summary (study.json; study.md beside it). ``effect``: the
    accuracy difference (a fraction) whose power the summary states."""
    recipes, dropped = check_recipes(spec, registry)
    folder = study_folder(spec, output, recipes)
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
    runs = [by_job[(job.variant, job.seed)] | _kept(job.run_dir) for job in jobs]
    return write_summary(folder, spec.name, spec.as_toml(), runs, effect, dropped)


def _kept(run_dir: Path) -> dict[str, Any]:
    """What study.json keeps of a run: read_run()'s metrics, samples and weights (metrics
    None while it has no eval.json)."""
    return read_run(run_dir) or {"metrics": None}


def write_summary(
    folder: Path,
    name: str,
    spec_toml: Mapping[str, Any],
    runs: list[dict[str, Any]],
    effect: float | None,
    dropped: Mapping[str, list[str]],
) -> dict[str, Any]:
    """Summarise ``runs`` (study.json's run entries), write study.json and study.md in
    ``folder`` and return the record (``dropped``: see :func:`check_recipes`)."""
    results: dict[str, dict[int, dict[str, Any]]] = {}
    for run in runs:
        if run.get("metrics") is not None:
            results.setdefault(run["variant"], {})[run["seed"]] = run
    statistics = summarise(results, spec_toml["study"]["baseline"], effect)
    record = study_record(name, spec_toml, runs, statistics, effect, dropped)
    write_json(folder / "study.json", record)
    write_text_atomic(folder / "study.md", markdown(record))
    return record | {"dir": str(folder)}


def resummarise(folder: Path, effect: float | None) -> dict[str, Any]:
    """The statistics of the study in ``folder`` again, from its runs' eval.json files (from
    the metrics study.json kept, for runs whose directory is gone), without running
    anything: after cvkit's statistics change, or with another ``effect``."""
    path = folder / "study.json"
    if not path.is_file():
        raise CvkitError(f"{folder}: no study.json here; expected a study directory")
    stored = json.loads(path.read_text(encoding="utf-8"))
    spec_toml = {
        "study": {k: stored[k] for k in ("name", "seeds", "baseline", "set")},
        "variants": stored["variants"],
    }
    runs = []
    for run in stored["runs"]:
        found = read_run(Path(run["run_dir"]))
        runs.append(run | found if found else run)
    dropped = stored.get("dropped", {})
    return write_summary(folder, stored["name"], spec_toml, runs, effect, dropped)
