"""What ``cvkit list``, ``cvkit info`` and ``cvkit --help`` show of the installed components
and plugin commands, kept on disk per installed-plugin set, so that they answer without
importing the plugins (and torch, which every plugin imports: about 1.6 s).

The file, ``$CVKIT_HOME/catalog/<fingerprint>.json``, is named by a fingerprint of what
decides the registry: cvkit's version, Python's, the plugin environment variables, the
modification times of the directories on ``sys.path`` but the working directory (installing or removing a
distribution changes its directory) and of every source file of cvkit and of each plugin
package (an editable install's edits). Any change gives another name, so a stale catalog
is never read; a missing or unreadable one is rebuilt from the plugins (and written when the
cache directory is writable). ``--strict-plugins`` always loads the plugins.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import attrs

from cvkit.data.paths import cvkit_home
from cvkit.errors import ComponentConflictError, StorageError
from cvkit.files import json_text, write_text_atomic
from cvkit.recipe.writing import recipe_data
from cvkit.registry.constraints import resolve
from cvkit.registry.kinds import get_kind
from cvkit.registry.loading import (
    ENTRY_POINT_GROUP,
    ENV_DISABLE,
    ENV_DISABLE_AUTOLOAD,
    ENV_PLUGINS,
    ENV_STRICT,
    env_flag,
    env_list,
)
from cvkit.registry.parameters import Parameter
from cvkit.registry.registry import (
    Component,
    Provenance,
    Registry,
    select_components,
    unknown_component,
)
from cvkit.version import __version__

CATALOG_FORMAT = 3
"""Bumped whenever the catalog's fields change, so an older file is not read."""


@attrs.frozen
class ParameterEntry:
    """One parameter as ``cvkit info`` shows it: ``default`` is recipe data (None when
    ``required``)."""

    name: str
    type_name: str
    required: bool
    default: Any
    doc: str


@attrs.frozen
class Entry(Provenance):
    """A registered component as ``cvkit list`` and ``cvkit info`` show it."""

    kind: str
    name: str
    plugin: str
    version: str
    summary: str
    doc: str
    params: tuple[ParameterEntry, ...]
    context: tuple[str, ...]
    constraints: str = ""
    """An attention block's declared input constraints at its defaults ("" when none)."""


@attrs.frozen
class CommandEntry:
    """A command a plugin adds (``register_commands``), as ``cvkit --help`` lists it."""

    name: str
    plugin: str
    help: str | None
    short_help: str | None
    hidden: bool = False
    page: str = ""
    """Its whole ``cvkit NAME --help`` text."""


@attrs.frozen
class Catalog:
    """The components, plugin problems and plugin commands of one installed-plugin set.

    Attributes:
        entries: every component, sorted by kind then name.
        problems: plugin load errors and conflicts, one line each (``Registry.problems``).
        failed: ``"dist (first error)"`` of each plugin that failed, for unknown-name errors.
        conflicts: ``kind/name`` -> the conflict's message.
        commands: the commands plugins add.
    """

    entries: tuple[Entry, ...]
    problems: tuple[str, ...]
    failed: tuple[str, ...]
    conflicts: dict[str, str]
    commands: tuple[CommandEntry, ...]

    def components(self, kind: str | None = None, pattern: str | None = None) -> list[Entry]:
        """As :meth:`cvkit.registry.registry.Registry.components`."""
        return select_components(self.entries, kind, pattern)

    def get(self, kind: str, name: str) -> Entry:
        """As :meth:`cvkit.registry.registry.Registry.get`."""
        kind = get_kind(kind).name
        if f"{kind}/{name}" in self.conflicts:
            raise ComponentConflictError(self.conflicts[f"{kind}/{name}"])
        for entry in self.entries:
            if (entry.kind, entry.name) == (kind, name):
                return entry
        names = sorted(e.name for e in self.entries if e.kind == kind)
        raise unknown_component(kind, name, names, self.failed)


def _default_constraints(component: Component) -> str:
    """``component``'s declared constraints resolved at its defaults, as text."""
    if component.constraints is None:
        return ""
    defaults = {p.name: p.default for p in component.params if not p.required}
    return str(resolve(component.constraints, defaults))


def _default_data(parameter: Parameter) -> Any:
    """A parameter's default as JSON-ready recipe data (a class or function: its name)."""
    if parameter.required:
        return None
    data = recipe_data(parameter.default)
    try:
        json.dumps(data)
    except (TypeError, ValueError):
        return qualified_name(parameter.default)
    return data


def qualified_name(value: Any) -> str:
    """A class or function as ``module.QualName`` (``torch.nn.modules.activation.ReLU``), a
    ``functools.partial`` as ``partial(module.name, k=v)``, anything else as its repr."""
    if isinstance(value, functools.partial):
        fixed = [repr(a) for a in value.args] + [f"{k}={v!r}" for k, v in value.keywords.items()]
        return f"partial({', '.join([qualified_name(value.func), *fixed])})"
    qualname = getattr(value, "__qualname__", None)
    if isinstance(qualname, str):
        module = getattr(value, "__module__", None)
        return f"{module}.{qualname}" if module else qualname
    return repr(value)


def catalog_of(registry: Registry, commands: Sequence[CommandEntry]) -> Catalog:
    """The catalog of a loaded ``registry`` and the plugin ``commands``."""
    entries = tuple(
        Entry(
            kind=c.kind,
            name=c.name,
            plugin=c.plugin,
            version=c.version,
            summary=c.summary,
            doc=c.doc,
            params=tuple(
                ParameterEntry(p.name, p.type_name, p.required, _default_data(p), p.doc)
                for p in c.params
            ),
            context=tuple(sorted(c.context)),
            constraints=_default_constraints(c),
        )
        for c in registry.components()
    )
    failed = tuple(registry.failed_plugins())
    return Catalog(
        entries, tuple(registry.problems()), failed, registry.conflict_messages(), tuple(commands)
    )


def _to_data(catalog: Catalog) -> dict[str, Any]:
    return {"format": CATALOG_FORMAT, "cvkit": __version__} | attrs.asdict(catalog)


def _from_data(data: dict[str, Any]) -> Catalog:
    if data.get("format") != CATALOG_FORMAT or data.get("cvkit") != __version__:
        raise ValueError("another catalog format")
    entries = tuple(
        Entry(
            **{k: v for k, v in e.items() if k not in ("params", "context")},
            params=tuple(ParameterEntry(**p) for p in e["params"]),
            context=tuple(e["context"]),
        )
        for e in data["entries"]
    )
    return Catalog(
        entries,
        tuple(data["problems"]),
        tuple(data["failed"]),
        dict(data["conflicts"]),
        tuple(CommandEntry(**c) for c in data["commands"]),
    )


def _source_files(module: str) -> Iterator[Path]:
    """The Python files of top-level module or package ``module``, found without importing it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return
    if spec is None:
        return
    for location in spec.submodule_search_locations or []:
        for folder, _, files in os.walk(location):
            yield from (Path(folder, f) for f in sorted(files) if f.endswith(".py"))
    if spec.origin and not spec.submodule_search_locations:
        yield Path(spec.origin)


def fingerprint() -> str:
    """A digest of everything that decides this process's registry (see the module docstring)."""
    plugin_env = (ENV_DISABLE_AUTOLOAD, ENV_PLUGINS, ENV_DISABLE)
    packages = {"cvkit", *(m.split(".")[0] for m in env_list(ENV_PLUGINS))}
    declared = []  # the entry points, as their distributions declare them
    if not env_flag(ENV_DISABLE_AUTOLOAD):
        for entry_point in entry_points(group=ENTRY_POINT_GROUP):
            declared.append(f"{entry_point.name}={entry_point.value}")
            packages.add(entry_point.value.split(":")[0].split(".")[0])
    digest = hashlib.sha256()
    for part in (
        str(CATALOG_FORMAT),
        __version__,
        sys.version,
        sys.executable,
        *(f"{name}={os.environ.get(name, '')}" for name in plugin_env),
        *(f"{p}:{_mtime(Path(p))}" for p in _install_paths()),
        *declared,
    ):
        digest.update(part.encode() + b"\0")
    for package in sorted(packages):
        for path in _source_files(package):
            digest.update(f"{path}:{_mtime(path)}\0".encode())
    return digest.hexdigest()[:32]


def _install_paths() -> list[str]:
    """``sys.path`` without the working directory (which ``python -m`` and ``-c`` put first):
    the catalog of ``python -m cvkit`` does not depend on where it is run; plugin modules
    named in ``CVKIT_PLUGINS`` are fingerprinted by their own files."""
    here = os.getcwd()
    return [p for p in sys.path if p and os.path.abspath(p) != here]


def _mtime(path: Path) -> str:
    try:
        stat = path.stat()
    except OSError:
        return "-"
    return f"{stat.st_mtime_ns}:{stat.st_size}"


def load_catalog(build: Callable[[], Catalog], *, strict: bool = False) -> Catalog:
    """The catalog of this process's plugin set: read from the cache when there is one for
    its fingerprint, else ``build()`` (which loads the plugins) and cached. ``strict`` (or
    ``CVKIT_STRICT_PLUGINS``): always ``build()``, which refuses plugin problems."""
    if strict or env_flag(ENV_STRICT):
        return build()
    path = cvkit_home() / "catalog" / f"{fingerprint()}.json"
    try:
        return _from_data(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        pass  # none yet, another format, or damaged: rebuilt below
    catalog = build()
    # a read-only cache directory only costs the next command the same wait
    with contextlib.suppress(StorageError):
        write_text_atomic(path, json_text(_to_data(catalog)))
    return catalog
