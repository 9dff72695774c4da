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
@click.option("--trials", type=int, default=20, show_default=True, help="Trials to run here.")
@click.option(
    "--storage",
    metavar="URL",
    help="Optuna storage URL shared by several machines (default: SQLite in the tune directory).",
)
@click.option("--study-name", help="Study to create or join (default: experiment.name).")
@click.option(
    "--output",
    type=click.Path(path_type=Path, file_okay=False),
    help="Write the study to exactly this directory (absent or empty).",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a recipe value in every trial (repeatable).",
)
def tune_command(
    recipe: Path,
    space: Path,
    trials: int,
    storage: str | None,
    study_name: str | None,
    output: Path | None,
    overrides: tuple[str, ...],
) -> None:
    """Search hyperparameters of RECIPE with Optuna (TPE sampler, median pruner).

    Each trial is a run in <tune dir>/trial-<N>/ maximising validation accuracy; trials
    that fall below the median of earlier ones at the same epoch are pruned. Writes
    best.toml (the best trial's resolved recipe) and tune.json (every trial) to the tune
    directory, runs/<experiment>-tune/<time>/ unless --output is given.
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
    )
    best = summary["best"]
    click.echo(f"study {summary['study']}: {len(summary['trials'])} trials in {summary['dir']}")
    click.echo(
        f"best: trial {best['trial']}, {summary['metric']} {best['value']:.2%}, {best['params']}"
    )
    click.echo(f"best recipe: {summary['best_recipe']}")


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(tune_command)
