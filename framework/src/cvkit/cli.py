"""The ``cvkit`` command.

Exit status: 0 success; 2 bad input (usage, recipe, unknown component, missing data),
one ``error:`` line per problem and no traceback; 1 an unexpected error (a bug).
"""

from __future__ import annotations

import functools
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from cvkit.commands.catalog import Catalog, CommandEntry, Entry, catalog_of, load_catalog
from cvkit.commands.inputs import (
    existing_checkpoints,
    existing_input,
    readable_recipe,
    run_directory,
)
from cvkit.errors import CvkitError, Terminated, UnknownComponentError
from cvkit.files import check_writable, json_text, write_json
from cvkit.recipe.writing import dump_recipe, recipe_data
from cvkit.registry.kinds import KINDS
from cvkit.registry.loading import (
    ENV_STRICT,
    LoadedPlugins,
    load_plugins,
    load_registry,
    unregistered_distributions,
)
from cvkit.registry.parameters import doc_body
from cvkit.registry.registry import Registry
from cvkit.version import __version__


class _Group(click.Group):
    """The ``cvkit`` group: commands of plugins (``register_commands``) join on first use;
    CvkitError becomes ``error:`` lines on stderr with its exit status (2 for bad input),
    Ctrl-C one line and 130, SIGTERM one line and 143 (click alone says "Aborted!", exit 1)."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """As click's, but a usage error is one ``error:`` line as cvkit's own (click
        writes the usage, a hint and ``Error: ...``), naming the command's ``--help``."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except click.ClickException as error:
            click.echo(f"error: {_click_message(error)}", err=True)
            sys.exit(error.exit_code)
        except click.Abort:
            click.echo("error: aborted", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CvkitError as error:
            for line in error.lines():
                click.echo(f"error: {line}", err=True)
            ctx.exit(error.exit_code)
        except KeyboardInterrupt as stop:
            terminated = isinstance(stop, Terminated)
            click.echo(
                f"error: {'terminated (SIGTERM)' if terminated else 'interrupted'}", err=True
            )
            ctx.exit(Terminated.exit_code if terminated else 130)

    def list_commands(self, ctx: click.Context) -> list[str]:
        plugin_commands = [c.name for c in _catalog(ctx).commands]
        return sorted(set(self.commands) | set(plugin_commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """A core command as it is; a plugin's command loads the plugins first."""
        if cmd_name not in self.commands:
            _add_plugin_commands(self)
        return super().get_command(ctx, cmd_name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """``cvkit PLUGIN-COMMAND --help`` answered from the catalog, without the plugins."""
        if len(args) == 2 and args[0] not in self.commands and args[1] in ("--help", "-h"):
            cached = {c.name: c for c in _catalog(ctx).commands}
            if cached.get(args[0]) and cached[args[0]].page:
                return args[0], _HelpPage(args[0], cached[args[0]].page), args[1:]
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands section of ``cvkit --help``; plugin commands as the catalog has
        them, so listing them imports no plugin."""
        cached = {c.name: c for c in _catalog(ctx).commands}
        commands: list[tuple[str, click.Command]] = []
        for name in self.list_commands(ctx):
            command = self.commands.get(name)
            if command is None and name in cached:
                entry = cached[name]
                command = click.Command(
                    name, help=entry.help, short_help=entry.short_help, hidden=entry.hidden
                )
            if command is not None and not command.hidden:
                commands.append((name, command))
        if commands:
            limit = formatter.width - 6 - max(len(name) for name, _ in commands)
            with formatter.section("Commands"):
                formatter.write_dl(
                    [(name, command.get_short_help_str(limit)) for name, command in commands]
                )


class _HelpPage(click.Command):
    """A plugin command's cached ``--help`` page, shown without importing the plugin."""

    def __init__(self, name: str, page: str) -> None:
        super().__init__(name, add_help_option=True)
        self.page = page

    def get_help(self, ctx: click.Context) -> str:
        return self.page.rstrip("\n")


def _click_message(error: click.ClickException) -> str:
    """click's message, lower-cased as cvkit's, with the ``--help`` of the command it is about."""
    message = error.format_message().removesuffix(".")
    if message[:2].istitle():  # "Missing option" -> "missing option"; "JSON ..." stays
        message = message[0].lower() + message[1:]
    context = getattr(error, "ctx", None)
    if isinstance(error, click.UsageError) and context is not None:
        message += f" (see '{context.command_path} --help')"
    return message


@functools.cache
def _add_plugin_commands(group: click.Group) -> dict[str, list[str]]:
    """Let every plugin add its commands to ``group`` (once per process); returns the names
    each plugin added. A plugin whose hook fails is reported on stderr and the other
    commands keep working."""
    plugins: LoadedPlugins = load_plugins()
    added: dict[str, list[str]] = {}
    for impl in plugins.manager.hook.register_commands.get_hookimpls():
        before = set(group.commands)
        try:
            impl.function(cli=group)
        except Exception as error:  # a broken plugin must not break the command line
            click.echo(
                f"warning: plugin {impl.plugin_name}: register_commands: "
                f"{type(error).__name__}: {error}",
                err=True,
            )
        added[impl.plugin_name] = sorted(set(group.commands) - before)
    return added


def _catalog(ctx: click.Context) -> Catalog:
    """The catalog of the running command (see :mod:`cvkit.commands.catalog`)."""
    state = ctx.find_object(_State)
    return (state or _State(strict=False)).catalog


def _build_catalog(registry: Registry) -> Catalog:
    """The catalog of ``registry`` and of the commands plugins add to ``cvkit``."""
    root = click.Context(cli, info_name="cvkit")
    commands = [
        CommandEntry(
            name,
            plugin,
            command.help,
            command.short_help,
            command.hidden,
            command.get_help(click.Context(command, info_name=name, parent=root)),
        )
        for plugin, names in _add_plugin_commands(cli).items()
        for name in names
        for command in [cli.commands[name]]
    ]
    return catalog_of(registry, commands)


class _State:
    """Per-invocation state: the registry, loaded on first use, and the catalog, read from
    the cache when it is there."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self._registry: Registry | None = None
        self._catalog: Catalog | None = None

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            self._catalog = load_catalog(lambda: _build_catalog(self.registry), strict=self.strict)
        return self._catalog

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = load_registry(strict=self.strict or None)
        return self._registry


def cli_registry() -> Registry:
    """The component registry of the running ``cvkit`` command (for commands that plugins add
    through ``register_commands``); ``--strict-plugins`` applies to it."""
    state = click.get_current_context().find_object(_State)
    if state is None:
        raise RuntimeError("cli_registry() is only available while a cvkit command runs")
    return state.registry


def _registry() -> Registry:
    return cli_registry()


def _warn_problems(registry: Registry | Catalog) -> None:
    for line in registry.problems() if isinstance(registry, Registry) else registry.problems:
        click.echo(f"warning: {line}", err=True)


def _echo_json(data: Any) -> None:
    click.echo(json_text(data), nl=False)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="cvkit", message="%(prog)s %(version)s")
@click.option(
    "--strict-plugins",
    is_flag=True,
    help=f"Fail if any plugin fails to load, two plugins register the same component, or a "
    f"plugin has warnings ({ENV_STRICT}=1).",
)
@click.pass_context
def cli(ctx: click.Context, strict_plugins: bool) -> None:
    """cvkit: image-classification experiments from TOML recipes, built from plugins.

    \b
    cvkit run RECIPE              train, validate, test; write a run directory
    cvkit eval RUN_DIR            re-evaluate a run or checkpoint (--ensemble, --tta)
    cvkit tune RECIPE             hyperparameter search with Optuna (plugin cvkit-tune)
    cvkit study STUDY.toml        seeds x variants with statistics (plugin cvkit-study)
    cvkit predict CKPT INPUT      predict classes of an image, a folder or an array (CSV, JSON)
    cvkit export CKPT --format F  TorchScript, ExportedProgram or ONNX, preprocessing included
    cvkit list [KIND] [PATTERN]   every installed component
    cvkit info KIND/NAME          parameters and docs of one component
    cvkit plugins                 installed plugins, what each provides, load errors
    cvkit check RECIPE            validate a recipe, build its components, run the model once
    """
    ctx.obj = _State(strict_plugins)


def _set_option(help: str) -> Any:
    """The repeatable ``--set KEY=VALUE`` option of the commands that read recipes."""
    return click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=help)


def _unset_option() -> Any:
    """The repeatable ``--unset KEY`` option of the commands that read recipes."""
    return click.option(
        "--unset",
        multiple=True,
        metavar="KEY",
        help="Remove a recipe key, back to its default (repeatable; before --set), e.g. "
        "model.attention or callbacks.tensorboard.",
    )


def _summary_rows(components: Sequence[Entry]) -> None:
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
    callback, procedure. PATTERN is a part of the name (res: resnet18, se_resnet, ...) or,
    with * ? or [...], a glob on the whole name (e.g. 'res*').
    """
    catalog = _catalog(click.get_current_context())
    components = catalog.components(kind, pattern)
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
    _warn_problems(catalog)


def _find(catalog: Catalog, key: str) -> Entry:
    kind, sep, name = key.partition("/")
    if sep:
        return catalog.get(kind, name)
    matches = [c for c in catalog.components() if c.name == key]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise UnknownComponentError(f"{key!r} is ambiguous: {', '.join(c.key for c in matches)}")
    raise UnknownComponentError(
        f"no component named {key!r}; give KIND/NAME, e.g. attention/se (see cvkit list)"
    )


@cli.command("info")
@click.argument("component")
@click.option("--json", "as_json", is_flag=True, help="Print the component as a JSON object.")
def info_command(component: str, as_json: bool) -> None:
    """Show a component's parameters, defaults and documentation (COMPONENT is KIND/NAME)."""
    found = _find(_catalog(click.get_current_context()), component)
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
                "constraints": found.constraints,
                "params": [
                    {
                        "name": p.name,
                        "type": p.type_name,
                        "required": p.required,
                        "default": p.default,
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
    if found.constraints:
        click.echo(f"inputs (at the default parameters): {found.constraints}")
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


def _format_default(data: Any) -> str:
    """A default (recipe data) as ``cvkit info`` shows it."""
    return "none" if data is None else json.dumps(data) if not isinstance(data, str) else repr(data)


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print plugins as a JSON list.")
@click.option("--verbose", "-v", is_flag=True, help="Show the traceback of each load error.")
def plugins_command(as_json: bool, verbose: bool) -> None:
    """List plugins: distribution, version, plugin name (a built-in's module), components,
    warnings and load errors; distributions that depend on cvkit but register no plugin."""
    registry = _registry()
    unregistered = unregistered_distributions()
    commands = _add_plugin_commands(cli)
    if as_json:
        _echo_json(
            [
                {
                    "name": p.name,
                    "dist": p.dist,
                    "version": p.version,
                    "module": p.module,
                    "components": sorted(p.registered),
                    "commands": commands.get(p.name, []),
                    "errors": p.errors,
                    "warnings": p.warnings,
                    "disabled": p.disabled,
                }
                | ({"tracebacks": p.tracebacks} if verbose else {})
                for p in registry.plugins
            ]
        )
        return
    for plugin in registry.plugins:
        count = len(plugin.registered)
        status = (
            "disabled"
            if plugin.disabled
            else "FAILED"
            if plugin.errors
            else f"{count} component{'' if count == 1 else 's'}"
        )
        click.secho(f"{plugin.dist} {plugin.version}", bold=True, nl=False)
        click.echo(f"  [{plugin.name}]  {status}")
        for error in plugin.errors:
            click.echo(f"    error: {error}")
        for warning in plugin.warnings:
            click.echo(f"    warning: {warning}")
        if verbose:
            for trace in plugin.tracebacks:
                click.echo("    " + trace.rstrip().replace("\n", "\n    "))
        if plugin.registered:
            click.echo(f"    {', '.join(sorted(plugin.registered))}")
        if commands.get(plugin.name):
            click.echo(f"    commands: {', '.join(commands[plugin.name])}")
    for line in registry.conflicts():
        click.echo(f"conflict: {line}")
    for line in unregistered:
        click.echo(f"warning: {line}")
    if not verbose and any(p.tracebacks for p in registry.plugins):
        click.echo("(cvkit plugins --verbose shows the tracebacks)")


@cli.command("check")
@click.argument("recipe", type=click.Path(path_type=Path, dir_okay=False))
@_set_option("Override a recipe value (repeatable).")
@_unset_option()
@click.option("--json", "as_json", is_flag=True, help="Print {recipe, params, ...} as JSON.")
def check_command(
    recipe: Path, overrides: tuple[str, ...], unset: tuple[str, ...], as_json: bool
) -> None:
    """Validate RECIPE, print it resolved, build every component and run the model once.

    Reports the model's trainable (and, when some are frozen, total) parameter count, for
    each stage of a multi-stage recipe; checks each attention block's contract on one input
    and checks that the recipe agrees with its data: 2 random images of the dataset's size
    go through augment.train, the model and the loss, then augment.eval, the model and the
    loss (skipped when the dataset cannot tell its image size before reading the data;
    cvkit run checks the same on two of its images before the first step). A mismatch
    (channels, classes, image size, targets) is one line naming both recipe keys.
    Pretrained weights are not loaded (nor downloaded) here, only the architecture. Schedules
    are built for one step per epoch here; a run uses its real number of steps.
    """
    readable_recipe(recipe, overrides, unset)
    from cvkit.commands.check import check_recipe

    registry = _registry()
    report = check_recipe(recipe, overrides, registry, unset)
    for note in report.notes:
        click.echo(f"note: {note}", err=True)
    stages = [
        {
            "name": stage.name,
            "model": stage.model,
            "params": stage.params,
            "total_params": stage.total_params,
            "input_shape": list(stage.input_shape) if stage.input_shape else None,
        }
        for stage in report.stages
    ]
    if as_json:
        _echo_json(
            {
                "recipe": recipe_data(report.recipe),
                "params": stages[-1]["params"],
                "total_params": stages[-1]["total_params"],
                "input_shape": stages[-1]["input_shape"],
                "num_classes": report.dataset.num_classes,
                "in_channels": report.dataset.in_channels,
                "splits": list(report.dataset.splits),
            }
            | ({"stages": stages} if report.recipe.stages else {})
        )
    else:
        click.echo(dump_recipe(report.recipe, f"{recipe}, resolved by cvkit {__version__}"))
        for stage in report.stages:
            of_total = f" of {stage.total_params:,}" if stage.total_params != stage.params else ""
            prefix = f"stage {stage.name}: " if stage.name else ""
            click.echo(f"{prefix}{stage.model}: {stage.params:,}{of_total} trainable parameters")
            shape = "x".join(map(str, stage.input_shape)) if stage.input_shape else None
            click.echo(
                f"{prefix}{stage.model}: forward pass of {shape} images ok"
                if shape
                else f"{prefix}{stage.model}: forward pass skipped (the image size is unknown "
                "before reading the data; set data.image_size)"
            )
        click.echo(f"ok: {recipe} is valid and every component builds")
    _warn_problems(registry)


def _echo_metrics(evaluation: dict[str, Any]) -> None:
    weights = f", {evaluation['weights']} weights" if evaluation.get("weights") else ""
    for split in ("val", "test"):
        metrics = evaluation.get(split)
        if metrics:
            timing = f" in {metrics['seconds']:.2f} s" if "seconds" in metrics else ""
            click.echo(
                f"{split} accuracy: {metrics['top1']:.2%}  (top-5 {metrics['top5']:.2%}, loss {metrics['loss']:.4f}, "
                f"macro-F1 {metrics['macro_f1']:.4f}, {metrics['samples']} images{timing}{weights})"
            )


@cli.command("run")
@click.argument("recipe", required=False, type=click.Path(path_type=Path, dir_okay=False))
@_set_option("Override a recipe value (repeatable).")
@_unset_option()
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
    help="Continue an interrupted run from its checkpoints/last.pt (a finished one with "
    "--set experiment.epochs=N: train it further, its schedule over the N epochs).",
)
@click.option(
    "--force", is_flag=True, help="With --resume: accept --set values that change the run's recipe."
)
@click.option(
    "--init",
    "init",
    type=click.Path(path_type=Path),
    metavar="RUN_DIR|CHECKPOINT",
    help="Start the model from these weights (a run's best, else last): e.g. train a "
    "finished run further, with the recipe's own schedule (experiment.init).",
)
@click.option(
    "--nproc",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Train with this many processes on this machine (one per GPU, or gloo on CPU), "
    "started by torchrun.",
)
@click.option(
    "--dist-timeout",
    type=click.FloatRange(min=1),
    default=600,
    show_default=True,
    metavar="SECONDS",
    help="In a multi-process run: how long a process waits for the others before the job fails.",
)
def run_command(
    recipe: Path | None,
    overrides: tuple[str, ...],
    unset: tuple[str, ...],
    output: Path | None,
    resume_dir: Path | None,
    force: bool,
    init: Path | None,
    nproc: int,
    dist_timeout: float,
) -> None:
    """Train RECIPE: validate every epoch, evaluate on the test split, write a run directory.

    \b
    The run directory, <output_dir>/<experiment>/<time>-<id>/, holds recipe.toml (resolved),
    env.json, run.log, metrics.jsonl, tensorboard/, checkpoints/{last,best}.pt and eval.json.
    Ctrl-C saves last.pt and prints the command that resumes it.

    \b
    Several processes (DistributedDataParallel): --nproc N on one machine, or start
    `torchrun --nnodes M --nproc-per-node N ... -m cvkit run RECIPE` on each of M machines;
    data.batch_size stays the global batch.
    """
    if (recipe is None) == (resume_dir is None):
        raise click.UsageError("give a RECIPE to start a run, or --resume RUN_DIR to continue one")
    if resume_dir is not None and output is not None:
        raise click.UsageError(
            "--output cannot be combined with --resume (the run keeps its directory)"
        )
    if force and resume_dir is None:
        raise click.UsageError("--force only applies to --resume")
    if init is not None:
        if recipe is None:
            raise click.UsageError("--init starts a new run: give a RECIPE (not --resume)")
        existing_checkpoints([init])
        overrides = (*overrides, f'experiment.init="{init.absolute().as_posix()}"')
    if recipe is not None:
        readable_recipe(recipe, overrides, unset)
    elif resume_dir is not None:
        run_directory(resume_dir)
    from cvkit import distributed
    from cvkit.commands.run import resume, train

    if nproc > 1 and not distributed.launched():
        _launch_torchrun(nproc)
    main = True
    try:
        if recipe is not None:
            result = train(
                recipe,
                overrides=overrides,
                unset=unset,
                output=output,
                registry=_registry(),
                timeout_seconds=dist_timeout,
            )
        elif resume_dir is not None:
            result = resume(
                resume_dir,
                overrides=overrides,
                unset=unset,
                force=force,
                registry=_registry(),
                timeout_seconds=dist_timeout,
            )
        main = distributed.is_main()
    finally:
        distributed.shutdown()
    if main:
        click.echo(f"run: {result.run_dir}")
        _echo_metrics(result.evaluation)


def _launch_torchrun(nproc: int) -> None:
    """Run this ``cvkit run`` command again under torchrun with ``nproc`` processes on
    this machine (``--standalone`` rendezvous), and exit with its status."""
    import subprocess
    import sys

    arguments, rest = [], iter(sys.argv[1:])
    for argument in rest:  # without --nproc, which torchrun would take for its own option
        if argument == "--nproc":
            next(rest, None)
        elif not argument.startswith("--nproc="):
            arguments.append(argument)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "cvkit",
        *arguments,
    ]
    click.echo(f"starting {nproc} processes: torchrun {' '.join(command[3:])}", err=True)
    click.get_current_context().exit(subprocess.run(command, check=False).returncode)


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
    help="Test-time augmentation: average the softmax over views, comma-separated: flip, crop, shift.",
)
@click.option("--json", "as_json", is_flag=True, help="Print all metrics as JSON.")
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write all metrics to this JSON file.",
)
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
@click.option(
    "--device", help="Run on this device (cpu, cuda, cuda:N, mps) instead of the recipe's."
)
@click.option(
    "--split",
    "splits",
    type=click.Choice(["val", "test"]),
    multiple=True,
    help="Evaluate only this split (repeatable; default: val and test). Calibration is "
    "fitted on val, so it needs val.",
)
def eval_command(
    sources: tuple[Path, ...],
    overrides: tuple[str, ...],
    ensemble: bool,
    tta: str,
    as_json: bool,
    out: Path | None,
    overwrite: bool,
    device: str | None,
    splits: tuple[str, ...],
) -> None:
    """Evaluate a checkpoint (or a run's best, else last) on its validation and test splits.

    Also fits temperature scaling and class-specific thresholds on the validation split and
    reports expected calibration error and negative log-likelihood before and after.
    """
    existing_checkpoints(sources)
    from cvkit.commands.evaluate import evaluate

    views = [v.strip() for v in tta.split(",") if v.strip()]
    if out is not None:
        check_writable(out, "--out", overwrite=overwrite)  # before the evaluation, not after
    for source in sources:
        if (source / "recipe.toml").is_file() and not (source / "eval.json").is_file():
            click.echo(
                f"warning: {source} is not finished (no eval.json): its checkpoints may be "
                "from before its last epoch; cvkit run --resume finishes it",
                err=True,
            )
    result = evaluate(
        list(sources),
        overrides=overrides,
        ensemble=ensemble,
        tta=views,
        registry=_registry(),
        device=device,
        splits=splits or ("val", "test"),
    )
    count = len(result["members"])
    if out is not None:
        write_json(out, result)
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
@click.argument(
    "checkpoints",
    nargs=-1,
    required=True,
    type=click.Path(path_type=Path),
    metavar="CHECKPOINT|RUN_DIR... INPUT",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="File to write: CSV, or JSON (.json: a list; .jsonl: one object per line).",
)
@click.option("--probs", is_flag=True, help="Add every class's probability.")
@click.option(
    "--labels",
    type=click.Choice(["name", "index"]),
    default="name",
    show_default=True,
    help="Write each label as the class name or as its index 0..K-1.",
)
@click.option(
    "--topk",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Also write the next K-1 labels, each with its probability.",
)
@click.option(
    "--ensemble",
    is_flag=True,
    help="Soft-vote several checkpoints, run directories or snapshot folders.",
)
@click.option(
    "--tta",
    default="",
    metavar="VIEWS",
    help="Test-time augmentation views, comma-separated: flip, crop, shift.",
)
@click.option("--batch-size", type=click.IntRange(min=1), help="Images per forward pass.")
@click.option(
    "--device", help="Run on this device (cpu, cuda, cuda:N, mps) instead of the recipe's."
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["csv", "json", "jsonl"]),
    help="Output format (default: from --out's suffix, else csv).",
)
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
def predict_command(
    checkpoints: tuple[Path, ...],
    out: Path,
    probs: bool,
    labels: str,
    topk: int,
    ensemble: bool,
    tta: str,
    batch_size: int | None,
    device: str | None,
    output_format: str | None,
    overwrite: bool,
) -> None:
    """Predict classes of INPUT with a trained model, writing one row per image.

    INPUT (the last argument) is an image file, a folder of images (read in chunks, however
    large), a .npy or .pt array of uint8 images, or a pickle holding an array or a dict with 'data'
    (N x 3072 or N x H x W x C uint8) and 'ids', such as cifar_test_nolabel.pkl. Images are
    resized to the size the model was trained at. Rows: id, label (+ prob and the next
    labels with --topk, + one probability per class with --probs). --labels index writes
    class indices in the order of the model's classes (for CIFAR-10: 0 airplane ... 9
    truck), as a submission of integer labels needs. --ensemble and --tta as in cvkit eval.
    """
    if len(checkpoints) < 2:
        raise click.UsageError("give a CHECKPOINT (or run directory) and an INPUT")
    *sources, inputs = checkpoints
    existing_checkpoints(sources)
    existing_input(inputs)
    from cvkit.commands.predict import predict

    count = predict(
        sources,
        inputs,
        out,
        probabilities=probs,
        labels="index" if labels == "index" else "name",
        overwrite=overwrite,
        registry=_registry(),
        ensemble=ensemble,
        tta=[view for view in tta.split(",") if view],
        topk=topk,
        batch_size=batch_size,
        device=device,
        output_format=output_format,  # type: ignore[arg-type]  # click.Choice checked it
    )
    click.echo(f"wrote {count} predictions to {out}")


@cli.command("export")
@click.argument("checkpoint", type=click.Path(path_type=Path), metavar="CHECKPOINT|RUN_DIR")
@click.option(
    "--format",
    "export_format",
    type=click.Choice(["torchscript", "exported-program", "onnx"]),
    required=True,
    help="TorchScript (torch.jit), torch.export's ExportedProgram (.pt2), or ONNX (the onnx extra).",
)
@click.option(
    "--out", type=click.Path(path_type=Path, dir_okay=False), required=True, help="File to write."
)
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
def export_command(checkpoint: Path, export_format: str, out: Path, overwrite: bool) -> None:
    """Export a trained model with its preprocessing folded in, checked against the checkpoint.

    The exported model takes float32 images (N, C, H, W) in [0, 1] of any size, resizes
    them to the model's input size, normalises them as the recipe's augment.eval does and
    returns logits (N, K). Before keeping the file, cvkit loads it back and compares its
    logits with the checkpoint model's on random images (within 1e-5). <out>.json names
    the classes and the input.
    """
    existing_checkpoints([checkpoint])
    from cvkit.commands.export import export_model

    sidecar = export_model(
        checkpoint,
        out,
        export_format=export_format,  # type: ignore[arg-type]  # click.Choice checked it
        overwrite=overwrite,
        registry=_registry(),
    )
    click.echo(
        f"wrote {out} ({export_format}, {len(sidecar['classes'])} classes; logits within "
        f"{sidecar['max_abs_difference']:.1e} of the checkpoint's) and {out}.json"
    )


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated()


def main() -> None:
    """Entry point of the ``cvkit`` console script and ``python -m cvkit``. SIGTERM is raised
    as :class:`~cvkit.errors.Terminated`, handled like Ctrl-C (training saves and stops)."""
    signal.signal(signal.SIGTERM, _terminate)
    cli(prog_name="cvkit")
