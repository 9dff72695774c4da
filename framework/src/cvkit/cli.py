"""The ``cvkit`` command.

Exit status: 0 success; 2 bad input (usage, recipe, unknown component, missing data),
one ``error:`` line per problem and no traceback; 1 an unexpected error (a bug).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from cvkit import __version__
from cvkit.errors import CvkitError, UnknownComponentError
from cvkit.kinds import KINDS
from cvkit.params import REQUIRED, doc_body
from cvkit.plugins import ENV_STRICT, load_registry
from cvkit.recipe import dump_recipe, load_recipe, recipe_data
from cvkit.registry import Component, Registry


class _Group(click.Group):
    """Turns CvkitError into ``error:`` lines on stderr and exit status 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CvkitError as error:
            for line in error.lines():
                click.echo(f"error: {line}", err=True)
            ctx.exit(error.exit_code)


class _State:
    """Per-invocation state: the registry, loaded on first use."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self._registry: Registry | None = None

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = load_registry(strict=self.strict or None)
        return self._registry


def _registry() -> Registry:
    return click.get_current_context().find_object(_State).registry  # type: ignore[union-attr]


def _warn_problems(registry: Registry) -> None:
    for line in registry.problems():
        click.echo(f"warning: {line}", err=True)


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="cvkit", message="%(prog)s %(version)s")
@click.option(
    "--strict-plugins",
    is_flag=True,
    help=f"Fail if any plugin fails to load or two plugins register the same component ({ENV_STRICT}=1).",
)
@click.pass_context
def cli(ctx: click.Context, strict_plugins: bool) -> None:
    """cvkit: image-classification experiments from TOML recipes, built from plugins.

    \b
    cvkit run RECIPE              train, validate, test; write a run directory
    cvkit eval RUN_DIR            re-evaluate a run or checkpoint (--ensemble, --tta)
    cvkit tune RECIPE             hyperparameter search with Optuna
    cvkit predict CKPT INPUT      predict classes of images into a CSV file
    cvkit list [KIND] [PATTERN]   every installed component
    cvkit info KIND/NAME          parameters and docs of one component
    cvkit plugins                 installed plugins and load errors
    cvkit check RECIPE            validate a recipe and build its components
    """
    ctx.obj = _State(strict_plugins)


def _set_option(help: str) -> Any:
    """The repeatable ``--set KEY=VALUE`` option of the commands that read recipes."""
    return click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=help)


def _summary_rows(components: Sequence[Component]) -> None:
    name_width = max(len(c.name) for c in components)
    origin_width = max(len(c.origin) for c in components)
    kind = None
    for component in components:
        if component.kind != kind:
            kind = component.kind
            click.secho(kind, bold=True)
        click.echo(
            f"  {component.name:<{name_width}}  {component.origin:<{origin_width}}  {component.summary}"
        )


@cli.command("list")
@click.argument("kind", required=False)
@click.argument("pattern", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of components.")
def list_command(kind: str | None, pattern: str | None, as_json: bool) -> None:
    """List installed components, grouped by kind.

    KIND is one of: model, attention, augmentation, optimizer, scheduler, loss, dataset,
    callback, procedure. PATTERN is a glob on the name (e.g. '*cnn*').
    """
    registry = _registry()
    components = registry.components(kind, pattern)
    if as_json:
        _echo_json(
            [
                {
                    "kind": c.kind,
                    "name": c.name,
                    "plugin": c.plugin,
                    "version": c.version,
                    "summary": c.summary,
                }
                for c in components
            ]
        )
    elif components:
        _summary_rows(components)
    else:
        click.echo("no components match", err=True)
    _warn_problems(registry)


def _find(registry: Registry, key: str) -> Component:
    kind, sep, name = key.partition("/")
    if sep:
        return registry.get(kind, name)
    matches = [c for c in registry.components() if c.name == key]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise UnknownComponentError(f"{key!r} is ambiguous: {', '.join(c.key for c in matches)}")
    raise UnknownComponentError(
        f"no component named {key!r}; give KIND/NAME, e.g. attention/se (see cvkit list)"
    )


def _json_default(value: Any) -> Any:
    return None if value is REQUIRED else recipe_data(value)


@cli.command("info")
@click.argument("component")
@click.option("--json", "as_json", is_flag=True, help="Print the component as a JSON object.")
def info_command(component: str, as_json: bool) -> None:
    """Show a component's parameters, defaults and documentation (COMPONENT is KIND/NAME)."""
    found = _find(_registry(), component)
    kind = KINDS[found.kind]
    if as_json:
        _echo_json(
            {
                "kind": found.kind,
                "name": found.name,
                "plugin": found.plugin,
                "version": found.version,
                "summary": found.summary,
                "doc": found.doc,
                "runtime": list(kind.runtime) + sorted(found.context),
                "params": [
                    {
                        "name": p.name,
                        "type": p.type_name,
                        "required": p.required,
                        "default": _json_default(p.default),
                        "doc": p.doc,
                    }
                    for p in found.params
                ],
            }
        )
        return
    click.secho(f"{found.key}", bold=True, nl=False)
    click.echo(f"  ({found.origin})")
    click.echo(found.summary)
    runtime = list(kind.runtime) + sorted(found.context)
    if runtime:
        click.echo(f"built with: {', '.join(runtime)} (supplied by cvkit)")
    click.echo()
    if found.params:
        rows = [
            (p.name, p.type_name, "required" if p.required else _format_default(p.default), p.doc)
            for p in found.params
        ]
        widths = [
            max(len(r[i]) for r in [("parameter", "type", "default", ""), *rows]) for i in range(3)
        ]
        click.secho(
            "  ".join(
                h.ljust(w) for h, w in zip(("parameter", "type", "default"), widths, strict=True)
            ),
            bold=True,
        )
        for row in rows:
            click.echo(
                "  ".join(v.ljust(w) for v, w in zip(row[:3], widths, strict=True))
                + f"  {row[3]}".rstrip()
            )
    else:
        click.echo("no parameters")
    body = doc_body(found.doc)
    if body:
        click.echo()
        click.echo(body)


def _format_default(value: Any) -> str:
    data = recipe_data(value)
    return "none" if data is None else json.dumps(data) if not isinstance(data, str) else repr(data)


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print plugins as a JSON list.")
def plugins_command(as_json: bool) -> None:
    """List loaded plugins: distribution, version, components, and load errors."""
    registry = _registry()
    if as_json:
        _echo_json(
            [
                {
                    "name": p.name,
                    "dist": p.dist,
                    "version": p.version,
                    "components": sorted(p.components),
                    "errors": p.errors,
                }
                for p in registry.plugins
            ]
        )
        return
    for plugin in registry.plugins:
        count = len(plugin.components)
        status = "FAILED" if plugin.errors else f"{count} component{'' if count == 1 else 's'}"
        click.secho(f"{plugin.dist} {plugin.version}", bold=True, nl=False)
        click.echo(f"  [{plugin.name}]  {status}")
        for error in plugin.errors:
            click.echo(f"    error: {error}")
        if plugin.components:
            click.echo(f"    {', '.join(sorted(plugin.components))}")
    for line in registry.conflicts():
        click.echo(f"conflict: {line}")


@cli.command("check")
@click.argument("recipe", type=click.Path(path_type=Path, dir_okay=False))
@_set_option("Override a recipe value (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print {recipe, params, ...} as JSON.")
def check_command(recipe: Path, overrides: tuple[str, ...], as_json: bool) -> None:
    """Validate RECIPE, print it resolved, and build every component without training.

    Reports the model's trainable (and, when some are frozen, total) parameter count, for
    each stage of a multi-stage recipe.
    Pretrained weights are not loaded (nor downloaded) here, only the architecture. Schedules
    are built for one step per epoch here; a run uses its real number of steps.
    """
    from cvkit.build import build_components, build_dataset, trainable_parameters
    from cvkit.loaders import check_order

    registry = _registry()
    resolved = load_recipe(recipe, overrides, registry)
    dataset = build_dataset(resolved, registry)
    stages = [(s.name, resolved.stage_recipe(s)) for s in resolved.stages] or [("", resolved)]
    counts = []
    for name, stage_recipe in stages:
        built = build_components(
            stage_recipe, registry, dataset, steps_per_epoch=1, load_weights=False
        )
        registry.build(stage_recipe.procedure)
        check_order(built.train_augment, "augment.train")
        check_order(built.eval_augment, "augment.eval")
        params = trainable_parameters(built.model)
        total = sum(p.numel() for p in built.model.parameters())
        counts.append(
            {"name": name, "model": stage_recipe.model.key, "params": params}
            | {"total_params": total}
        )
    if as_json:
        _echo_json(
            {
                "recipe": recipe_data(resolved),
                "params": counts[-1]["params"],
                "total_params": counts[-1]["total_params"],
                "num_classes": dataset.num_classes,
                "in_channels": dataset.in_channels,
                "splits": list(dataset.splits),
            }
            | ({"stages": counts} if resolved.stages else {})
        )
    else:
        click.echo(dump_recipe(resolved, f"{recipe}, resolved by cvkit {__version__}"))
        for count in counts:
            of_total = (
                f" of {count['total_params']:,}" if count["total_params"] != count["params"] else ""
            )
            stage = f"stage {count['name']}: " if count["name"] else ""
            click.echo(
                f"{stage}{count['model']}: {count['params']:,}{of_total} trainable parameters"
            )
        click.echo(f"ok: {recipe} is valid and every component builds")
    _warn_problems(registry)


def _echo_metrics(evaluation: dict[str, Any]) -> None:
    for split in ("val", "test"):
        metrics = evaluation.get(split)
        if metrics:
            click.echo(
                f"{split} accuracy: {metrics['top1']:.2%}  (top-5 {metrics['top5']:.2%}, loss {metrics['loss']:.4f}, "
                f"macro-F1 {metrics['macro_f1']:.4f}, {metrics['samples']} images)"
            )


@cli.command("run")
@click.argument("recipe", required=False, type=click.Path(path_type=Path, dir_okay=False))
@_set_option("Override a recipe value (repeatable).")
@click.option(
    "--output",
    type=click.Path(path_type=Path, file_okay=False),
    help="Write the run to exactly this directory (absent or empty).",
)
@click.option(
    "--resume",
    "resume_dir",
    type=click.Path(path_type=Path, file_okay=False),
    metavar="RUN_DIR",
    help="Continue an interrupted run from its checkpoints/last.pt.",
)
@click.option(
    "--force", is_flag=True, help="With --resume: accept --set values that change the run's recipe."
)
def run_command(
    recipe: Path | None,
    overrides: tuple[str, ...],
    output: Path | None,
    resume_dir: Path | None,
    force: bool,
) -> None:
    """Train RECIPE: validate every epoch, evaluate on the test split, write a run directory.

    \b
    The run directory, <output_dir>/<experiment>/<time>-<id>/, holds recipe.toml (resolved),
    env.json, run.log, metrics.jsonl, tensorboard/, checkpoints/{last,best}.pt and eval.json.
    Ctrl-C saves last.pt and prints the command that resumes it.
    """
    from cvkit.run import resume, train

    if (recipe is None) == (resume_dir is None):
        raise click.UsageError("give a RECIPE to start a run, or --resume RUN_DIR to continue one")
    if resume_dir is not None and output is not None:
        raise click.UsageError(
            "--output cannot be combined with --resume (the run keeps its directory)"
        )
    if force and resume_dir is None:
        raise click.UsageError("--force only applies to --resume")
    if resume_dir is not None:
        result = resume(resume_dir, overrides=overrides, force=force, registry=_registry())
    else:
        result = train(recipe, overrides=overrides, output=output, registry=_registry())
    click.echo(f"run: {result.run_dir}")
    _echo_metrics(result.evaluation)


@cli.command("eval")
@click.argument(
    "sources", nargs=-1, required=True, type=click.Path(path_type=Path), metavar="SOURCE..."
)
@_set_option("Override the checkpoints' recipes, e.g. data.dataset.root=... (repeatable).")
@click.option(
    "--ensemble",
    is_flag=True,
    help="Soft-vote (average the softmax of) every SOURCE: run directories, checkpoints, "
    "or folders of checkpoints such as a run's snapshots/.",
)
@click.option(
    "--tta",
    default="",
    metavar="VIEWS",
    help="Test-time augmentation: average the softmax over views, comma-separated: flip, crop.",
)
@click.option("--json", "as_json", is_flag=True, help="Print all metrics as JSON.")
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write all metrics to this JSON file.",
)
def eval_command(
    sources: tuple[Path, ...],
    overrides: tuple[str, ...],
    ensemble: bool,
    tta: str,
    as_json: bool,
    out: Path | None,
) -> None:
    """Evaluate a checkpoint (or a run's best, else last) on its validation and test splits.

    Also fits temperature scaling and class-specific thresholds on the validation split and
    reports expected calibration error and negative log-likelihood before and after.
    """
    from cvkit.inference import evaluate

    views = [v.strip() for v in tta.split(",") if v.strip()]
    result = evaluate(
        list(sources), overrides=overrides, ensemble=ensemble, tta=views, registry=_registry()
    )
    count = len(result["members"])
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if as_json:
        _echo_json(result)
        return
    if count > 1:
        click.echo(f"ensemble of {count} checkpoints (soft voting)")
    else:
        click.echo(f"checkpoint: {result['checkpoint']} (epoch {result['epoch']})")
    if views:
        click.echo(f"test-time augmentation: {', '.join(views)}")
    _echo_metrics(result)
    _echo_calibration(result.get("calibration"))


def _echo_calibration(report: dict[str, Any] | None) -> None:
    if not report:
        return
    for split in ("val", "test"):
        effect = report[split]
        if effect:
            click.echo(
                f"{split} calibration: temperature {report['temperature']:.3f} (fitted on val), "
                f"ECE {effect['ece_before']:.2%} -> {effect['ece_after']:.2%}, "
                f"NLL {effect['nll_before']:.4f} -> {effect['nll_after']:.4f}; "
                f"class thresholds: accuracy {effect['top1']:.2%} -> {effect['top1_thresholds']:.2%}, "
                f"macro-F1 {effect['macro_f1']:.4f} -> {effect['macro_f1_thresholds']:.4f}"
            )


@cli.command("predict")
@click.argument("checkpoint", type=click.Path(path_type=Path), metavar="CHECKPOINT|RUN_DIR")
@click.argument("inputs", type=click.Path(path_type=Path), metavar="INPUT")
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="CSV file to write.",
)
@click.option("--probs", is_flag=True, help="Add one probability column per class.")
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
def predict_command(
    checkpoint: Path, inputs: Path, out: Path, probs: bool, overwrite: bool
) -> None:
    """Predict classes of INPUT, writing CSV rows id,label (+ probabilities with --probs).

    INPUT is a folder of images, a .npy or .pt array of uint8 images, or a pickle holding an
    array or a dict with 'data' (N x 3072 or N x H x W x C uint8) and 'ids', such as
    cifar_test_nolabel.pkl. Images are resized to the size the model was trained at.
    """
    from cvkit.inference import predict

    count = predict(
        checkpoint, inputs, out, probabilities=probs, overwrite=overwrite, registry=_registry()
    )
    click.echo(f"wrote {count} predictions to {out}")


@cli.command("tune")
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
@_set_option("Override a recipe value in every trial (repeatable).")
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
    from cvkit.tune import tune

    summary = tune(
        recipe,
        space,
        trials=trials,
        overrides=overrides,
        storage=storage,
        study_name=study_name,
        output=output,
        registry=_registry(),
    )
    best = summary["best"]
    click.echo(f"study {summary['study']}: {len(summary['trials'])} trials in {summary['dir']}")
    click.echo(
        f"best: trial {best['trial']}, {summary['metric']} {best['value']:.2%}, {best['params']}"
    )
    click.echo(f"best recipe: {summary['best_recipe']}")


def main() -> None:
    """Entry point of the ``cvkit`` console script and ``python -m cvkit``."""
    cli(prog_name="cvkit")
