"""cvkit plugin: ``cvkit tune``, hyperparameter search over a recipe with Optuna (Akiba et al.,
"Optuna: A Next-generation Hyperparameter Optimization Framework", KDD 2019)."""

from __future__ import annotations

from pathlib import Path

import click

from cvkit import cli_registry, hookimpl

__all__ = ["register_commands", "tune_command"]


@click.command("tune")
@click.argument("recipe", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--space",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="TOML file: one table per recipe key with type, low/high (log, step) or choices.",
)
@click.option(
    "--trials",
    type=int,
    default=20,
    show_default=True,
    help="Trials of the study in all (complete, pruned or failed), counting earlier ones.",
)
@click.option(
    "--storage",
    metavar="URL",
    help="Optuna storage URL shared by several machines (default: SQLite in the tune directory).",
)
@click.option("--study-name", help="Study to create or join (default: experiment.name).")
@click.option(
    "--output",
    type=click.Path(path_type=Path, file_okay=False),
    help="The tune directory (default: <output_dir>/<experiment>-tune); running again continues it.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Continue a tune (or join a shared study) whose stored settings differ from these.",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a recipe value in every trial (repeatable).",
)
@click.option(
    "--metric",
    type=click.Choice(["val/acc", "val/top5", "val/loss"]),
    default="val/acc",
    show_default=True,
    help="Validation metric each trial reports per epoch and is judged by at the end.",
)
@click.option(
    "--direction",
    type=click.Choice(["maximize", "minimize"]),
    help="Whether larger --metric is better (default: minimize a loss, maximize the rest).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Start no new trial after this many seconds (the running one finishes).",
)
@click.option(
    "--sampler",
    type=click.Choice(["tpe", "random", "grid"]),
    default="tpe",
    show_default=True,
    help="How values are proposed; grid: every combination of a categorical space once.",
)
@click.option(
    "--pruner",
    type=click.Choice(["median", "hyperband", "none"]),
    default="median",
    show_default=True,
    help="How trials are stopped early from their per-epoch metric.",
)
def tune_command(
    recipe: Path,
    space: Path,
    trials: int,
    storage: str | None,
    study_name: str | None,
    output: Path | None,
    force: bool,
    overrides: tuple[str, ...],
    metric: str,
    direction: str | None,
    timeout: float | None,
    sampler: str,
    pruner: str,
) -> None:
    """Search hyperparameters of RECIPE with Optuna (TPE sampler, median pruner by default).

    Each trial is a run in <tune dir>/trial-<N>/ judged by its validation --metric (the
    test split is not evaluated while tuning); trials that fall behind earlier ones at the
    same epoch are pruned, and trials whose loss becomes NaN or infinite are recorded as
    failed while the study goes on. Writes best.toml (the best trial's resolved recipe) and
    tune.json (every trial) to the tune directory, <output_dir>/<experiment>-tune/ unless
    --output is given. Ctrl-C stops the tune at once (exit 130); the same command continues
    it (the interrupted trial resumes from its last.pt, keeping its number and parameters)
    until --trials trials are done; other settings are refused without --force.
    """
    # Optuna and the training engine load when a study runs, not whenever cvkit starts.
    from cvkit_tune.tune import tune

    summary = tune(
        recipe,
        space,
        trials=trials,
        overrides=overrides,
        storage=storage,
        study_name=study_name,
        output=output,
        registry=cli_registry(),
        metric=metric,
        direction=direction,
        timeout=timeout,
        sampler=sampler,
        pruner=pruner,
        force=force,
    )
    best = summary["best"]
    states = [t["state"] for t in summary["trials"]]
    counts = ", ".join(f"{states.count(s)} {s.lower()}" for s in sorted(set(states)))
    click.echo(f"study {summary['study']}: {len(states)} trials ({counts}) in {summary['dir']}")
    value = f"{best['value']:.4f}" if summary["metric"] == "val/loss" else f"{best['value']:.2%}"
    click.echo(f"best: trial {best['trial']}, {summary['metric']} {value}, {best['params']}")
    click.echo(f"best recipe: {summary['best_recipe']}")


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(tune_command)
