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
            ctx.exit(2)


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
    cvkit list [KIND] [PATTERN]   every installed component
    cvkit info KIND/NAME          parameters and docs of one component
    cvkit plugins                 installed plugins and load errors
    cvkit check RECIPE            validate a recipe and build its components
    """
    ctx.obj = _State(strict_plugins)


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
    callback. PATTERN is a glob on the name (e.g. '*cnn*').
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
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a recipe value (repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="Print {recipe, params, ...} as JSON.")
def check_command(recipe: Path, overrides: tuple[str, ...], as_json: bool) -> None:
    """Validate RECIPE, print it resolved, and build every component without training.

    Reports the model's trainable parameter count. Schedules are built for one step per
    epoch here; a run uses its real number of steps.
    """
    from cvkit.build import build_components, trainable_parameters

    registry = _registry()
    resolved = load_recipe(recipe, overrides, registry)
    built = build_components(resolved, registry, steps_per_epoch=1)
    params = trainable_parameters(built.model)
    if as_json:
        _echo_json(
            {
                "recipe": recipe_data(resolved),
                "params": params,
                "num_classes": built.dataset.num_classes,
                "in_channels": built.dataset.in_channels,
                "splits": list(built.dataset.splits),
            }
        )
    else:
        click.echo(dump_recipe(resolved, f"{recipe}, resolved by cvkit {__version__}"))
        click.echo(f"{resolved.model.key}: {params:,} trainable parameters")
        click.echo(f"ok: {recipe} is valid and every component builds")
    _warn_problems(registry)


def main() -> None:
    """Entry point of the ``cvkit`` console script and ``python -m cvkit``."""
    cli(prog_name="cvkit")
