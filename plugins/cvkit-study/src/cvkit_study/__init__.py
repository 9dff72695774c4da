"""cvkit plugin: ``cvkit study``, every variant of a comparison with every seed, in
parallel or on SLURM (submitit), with per-variant means and confidence intervals and paired
tests against a baseline (scipy.stats)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import attrs
import click

from cvkit import CvkitError, Registry, cli_registry, hookimpl
from cvkit_study.execution import Executor
from cvkit_study.spec import StudySpec, check_spec

__all__ = ["register_commands", "study_command"]


def _is_study_file(path: Path) -> bool:
    try:
        return "study" in tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return False  # a recipe, or a problem the recipe loader reports with its own words


@click.command("study")
@click.argument("source", type=click.Path(path_type=Path))
@click.option(
    "--seeds", help="Seeds, e.g. 0-4 or 0,3,7 (default 0-4; a study file's own otherwise)."
)
@click.option(
    "--vary",
    multiple=True,
    metavar="KEY=V1,V2",
    help="With a RECIPE: one variant per value of KEY, named by it, e.g. "
    "model.attention.name=none,se,cbam (keys the new component does not take are dropped, "
    "study.md says which) or 'model.attention={ name = \"se\", reduction = 4 },none'; "
    "repeated: their cross product.",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a recipe value in every run (repeatable).",
)
@click.option("--baseline", help="The variant the others are compared with (default: the first).")
@click.option("--name", help="The study's name (default: the study file's, or <experiment>-study).")
@click.option(
    "--output",
    type=click.Path(path_type=Path, file_okay=False),
    help="The study directory (default: <output_dir>/<name>); running again continues it.",
)
@click.option(
    "--effect",
    type=float,
    metavar="POINTS",
    help="The accuracy difference, in percentage points, whose power study.md states "
    "(default: each metric's smallest difference in the study).",
)
@click.option("--workers", type=int, default=1, show_default=True, help="Runs at a time.")
@click.option("--threads", type=int, help="CPU threads per run (default: cores / workers).")
@click.option(
    "--devices",
    default="",
    metavar="LIST",
    help="Devices handed out one per worker process, e.g. cuda:0,cuda:1.",
)
@click.option(
    "--executor",
    type=click.Choice(["pool", "local", "slurm"]),
    default="pool",
    show_default=True,
    help="pool: processes on this machine; local: submitit's local executor; slurm: "
    "submitit job arrays on a SLURM cluster.",
)
@click.option(
    "--slurm",
    "slurm_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="A submitit parameter for --executor slurm (repeatable), e.g. slurm_partition=gpu, "
    "timeout_min=120, gpus_per_node=1.",
)
def study_command(
    source: Path,
    seeds: str | None,
    vary: tuple[str, ...],
    overrides: tuple[str, ...],
    baseline: str | None,
    name: str | None,
    output: Path | None,
    effect: float | None,
    workers: int,
    threads: int | None,
    devices: str,
    executor: Executor,
    slurm_options: tuple[str, ...],
) -> None:
    """Run every variant with every seed and compare them: SOURCE is a study file
    ([study] and [[variants]]), a RECIPE with --vary, or a study directory (its statistics
    again, from its runs, running nothing).

    Each run is a normal run directory, <study>/<variant>/seed-<k>/. Finished runs are
    skipped and interrupted ones resumed, so running the same command again continues a
    study. At the end: study.json and study.md with, per variant, the mean, standard
    deviation and 95% confidence interval of each metric, and each variant's paired
    difference from the baseline: t and bootstrap intervals, Cohen's d_z, the paired t and
    Wilcoxon tests, the Holm-adjusted p over the study and the power for --effect.
    """
    from cvkit_study.execution import Execution
    from cvkit_study.spec import from_command_line, parse_seeds, read_study_file
    from cvkit_study.study import resummarise, run_study

    fraction = None if effect is None else effect / 100
    if source.is_dir():
        record = resummarise(source, fraction)
        click.echo((Path(record["dir"]) / "study.md").read_text(encoding="utf-8"))
        click.echo(f"study: {record['dir']} (study.json, study.md summarised again)")
        return
    registry = cli_registry()
    if _is_study_file(source):
        if vary:
            raise CvkitError(f"--vary: {source} is a study file; its [[variants]] are the variants")
        spec = read_study_file(source, overrides)
        if seeds is not None:
            spec = _replace(spec, seeds=parse_seeds(seeds))
        if baseline is not None or name is not None:
            spec = _replace(spec, baseline=baseline or spec.baseline, name=name or spec.name)
    else:
        recipe_name = _recipe_name(source, registry)
        spec = from_command_line(
            source,
            name=name or f"{recipe_name}-study",
            seeds=seeds or "0-4",
            vary=vary,
            sets=overrides,
            baseline=baseline,
        )
    execution = Execution(
        workers=workers,
        threads=threads,
        devices=tuple(d.strip() for d in devices.split(",") if d.strip()),
        executor=executor,
        slurm=_slurm_parameters(slurm_options),
    )
    record = run_study(
        spec,
        output=output,
        execution=execution,
        registry=registry,
        progress=click.echo,
        effect=fraction,
    )
    click.echo("")
    click.echo((Path(record["dir"]) / "study.md").read_text(encoding="utf-8"))
    click.echo(f"study: {record['dir']} (study.json, study.md)")
    failed = [r for r in record["runs"] if r["status"] != "finished"]
    if failed:
        raise click.ClickException(
            f"{len(failed)} of {len(record['runs'])} runs failed (study.md says why; their "
            "run.log has more); running the command again retries them"
        )


def _replace(spec: StudySpec, **changes: Any) -> StudySpec:
    return check_spec(attrs.evolve(spec, **changes), "--baseline")


def _recipe_name(path: Path, registry: Registry) -> str:
    from cvkit import load_recipe

    return load_recipe(path, registry=registry).experiment.name


def _slurm_parameters(options: tuple[str, ...]) -> dict[str, object]:
    parameters: dict[str, object] = {}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or not key.strip():
            raise CvkitError(f"--slurm {option!r}: expected KEY=VALUE, e.g. slurm_partition=gpu")
        text = value.strip()
        parameters[key.strip()] = int(text) if text.isdigit() else text
    return parameters


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(study_command)
