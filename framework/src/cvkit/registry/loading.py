"""Plugin loading: the built-in plugins, entry points in group ``cvkit``, and named modules.

Built-in plugins are modules of :mod:`cvkit.builtins` listed in :data:`DEFAULT_PLUGINS` and
loaded by name, through the same path as entry points (as pytest's ``default_plugins``).
Each plugin is loaded in its own ``try``: a plugin that fails to import or register is
recorded (plugin, distribution, version, error and traceback) and everything else keeps
working; only a recipe that needs one of its components fails, and the error names it.

Environment variables:

- ``CVKIT_DISABLE_PLUGIN_AUTOLOAD=1``: do not load entry points (built-ins only), so tests
  control exactly what is registered.
- ``CVKIT_PLUGINS=mod_a,mod_b``: also register these importable modules as plugins, exactly
  as entry points are.
- ``CVKIT_DISABLE_PLUGINS=name,...``: skip these plugins, built-in or installed, by plugin
  name (as ``cvkit plugins`` shows it in brackets) or distribution name (as pytest's
  ``-p no:NAME``).
- ``CVKIT_STRICT_PLUGINS=1``: any plugin failure, conflict or warning is an error.
"""

from __future__ import annotations

import functools
import importlib
import os
import re
import traceback
from collections.abc import Callable, Iterable, Sequence
from importlib.metadata import EntryPoint, distributions, entry_points
from types import ModuleType
from typing import Any

import attrs
import pluggy

from cvkit import hookspecs
from cvkit.errors import PluginError
from cvkit.hookspecs import PROJECT_NAME
from cvkit.registry.kinds import KINDS, did_you_mean
from cvkit.registry.registry import PluginInfo, Registry
from cvkit.version import __version__

ENTRY_POINT_GROUP = "cvkit"
ENV_DISABLE_AUTOLOAD = "CVKIT_DISABLE_PLUGIN_AUTOLOAD"
ENV_PLUGINS = "CVKIT_PLUGINS"
ENV_DISABLE = "CVKIT_DISABLE_PLUGINS"
ENV_STRICT = "CVKIT_STRICT_PLUGINS"

DEFAULT_PLUGINS: tuple[str, ...] = tuple(
    f"cvkit.builtins.{name}"
    for name in (
        "simple_cnn",
        "linear_model",
        "no_attention",
        "torchvision_models",
        "torch_optimizers",
        "muon",
        "schedules",
        "cross_entropy",
        "cifar",
        "imagefolder",
        "synthetic",
        "random_crop",
        "flip",
        "normalize",
        "resizing",
        "per_image_crop",
        "torchvision_transforms",
        "progress",
        "metrics_jsonl",
        "tensorboard",
        "checkpoint",
        "early_stopping",
        "unfreeze",
        "dropout_schedule",
        "progressive_resizing",
        "standard_procedure",
    )
)
"""The built-in plugins: one module per feature, each with its own ``@hookimpl``."""

HOOKS = frozenset(
    name for name, value in vars(hookspecs).items() if hasattr(value, f"{PROJECT_NAME}_spec")
)
"""The names of every hook specification."""


def env_flag(name: str) -> bool:
    """Whether environment variable ``name`` is set to a true value (1, true, yes, on)."""
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str) -> list[str]:
    """The comma-separated items of environment variable ``name``."""
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


@attrs.define
class LoadedPlugins:
    """The plugins of this process: pluggy's manager holding the loaded ones, and a record
    of every plugin tried (loaded, failed or disabled) by name."""

    manager: pluggy.PluginManager
    infos: dict[str, PluginInfo] = attrs.field(factory=dict)
    disabled: frozenset[str] = frozenset()

    def is_disabled(self, info: PluginInfo) -> bool:
        """Whether ``CVKIT_DISABLE_PLUGINS`` names the plugin or its distribution."""
        return info.name in self.disabled or info.dist in self.disabled

    def add(self, module: ModuleType | None, info: PluginInfo) -> None:
        """Register ``module`` as the plugin ``info`` describes, recording what goes wrong."""
        self.infos[info.name] = info
        info.disabled = self.is_disabled(info)
        if module is None or info.errors or info.disabled:
            return
        info.module = module.__name__
        info.errors += _hook_mistakes(self.manager, module)
        if info.errors:
            return
        try:
            self.manager.register(module, name=info.name)
        except (pluggy.PluginValidationError, ValueError) as error:
            info.errors.append(f"{type(error).__name__}: {error}")

    def add_module(self, name: str, info: PluginInfo) -> None:
        """Import the module ``name`` (unless disabled) and add it as a plugin."""
        load = functools.partial(importlib.import_module, name)
        self.add(None if self.is_disabled(info) else _guarded(load, info), info)

    def add_entry_point(self, entry_point: EntryPoint) -> None:
        """Load an entry point of group ``cvkit`` and add it as a plugin."""
        dist = entry_point.dist
        info = PluginInfo(
            entry_point.name, dist.name if dist else "?", dist.version if dist else "?"
        )
        self.add(None if self.is_disabled(info) else _guarded(entry_point.load, info), info)


def _guarded(load: Callable[[], Any], info: PluginInfo) -> ModuleType | None:
    """``load()``, or None with the error and traceback recorded on ``info``."""
    try:
        module: ModuleType = load()
        return module
    except Exception as error:  # a broken plugin must not break the others
        info.errors.append(f"{type(error).__name__}: {error}")
        info.tracebacks.append(traceback.format_exc())
        return None


def _hook_mistakes(manager: pluggy.PluginManager, module: ModuleType) -> list[str]:
    """Functions that look like hook implementations but would never be called: a marked
    function whose name is no hook, and a hook-named function without ``@hookimpl``."""
    mistakes = []
    for name in dir(module):
        marked = manager.parse_hookimpl_opts(module, name) is not None
        if marked and name not in HOOKS:
            mistakes.append(f"unknown hook {name!r}{did_you_mean(name, HOOKS)}")
        elif not marked and name in HOOKS and callable(getattr(module, name)):
            mistakes.append(
                f"{name} is not marked with @hookimpl (from cvkit import hookimpl), "
                "so cvkit would never call it"
            )
    return mistakes


def load_plugins(
    *,
    autoload: bool | None = None,
    modules: Sequence[str | ModuleType] = (),
    disabled: Iterable[str] | None = None,
) -> LoadedPlugins:
    """The built-in plugins, entry points (unless ``autoload`` is off) and ``modules``.

    ``autoload`` defaults to the environment (``CVKIT_DISABLE_PLUGIN_AUTOLOAD``), ``disabled``
    to ``CVKIT_DISABLE_PLUGINS``; modules named in ``CVKIT_PLUGINS`` come before ``modules``.
    """
    autoload = not env_flag(ENV_DISABLE_AUTOLOAD) if autoload is None else autoload
    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    skip = frozenset(env_list(ENV_DISABLE) if disabled is None else disabled)
    plugins = LoadedPlugins(manager, disabled=skip)
    for name in DEFAULT_PLUGINS:
        plugins.add_module(name, PluginInfo(name, "cvkit", __version__))
    if autoload:
        for entry_point in entry_points(group=ENTRY_POINT_GROUP):
            plugins.add_entry_point(entry_point)
    for module in [*env_list(ENV_PLUGINS), *modules]:
        if isinstance(module, str):
            plugins.add_module(module, PluginInfo(module, module, "(module)"))
        else:
            plugins.add(module, PluginInfo(module.__name__, module.__name__, "(module)"))
    return plugins


def build_registry(plugins: LoadedPlugins, *, strict: bool = False) -> Registry:
    """A registry filled by every loaded plugin's registration hooks.

    ``strict``: raise :class:`PluginError` on any plugin failure, conflict or warning,
    and on installed distributions that depend on cvkit but register no entry point.
    """
    registry = Registry()
    registry.plugins = list(plugins.infos.values())
    for kind in KINDS.values():
        for impl in getattr(plugins.manager.hook, kind.hook).get_hookimpls():
            info = plugins.infos[impl.plugin_name]
            register = registry.registrar(kind, info)
            try:
                impl.function(**({"register": register} if "register" in impl.argnames else {}))
            except Exception as error:
                info.errors.append(f"{kind.hook}: {type(error).__name__}: {error}")
                info.tracebacks.append(traceback.format_exc())
    if strict:
        problems = registry.problems() + registry.warnings() + unregistered_distributions()
        if problems:
            raise PluginError(problems)
    return registry


def load_registry(
    *,
    autoload: bool | None = None,
    modules: Sequence[str | ModuleType] = (),
    strict: bool | None = None,
) -> Registry:
    """A registry filled by the built-in plugins, entry points and ``modules``.

    ``autoload`` and ``strict`` default to the environment variables above; modules named
    in ``CVKIT_PLUGINS`` are registered before ``modules``.
    """
    strict = env_flag(ENV_STRICT) if strict is None else strict
    return build_registry(load_plugins(autoload=autoload, modules=modules), strict=strict)


@functools.cache
def default_registry() -> Registry:
    """The registry of this process (built-ins, installed plugins, ``CVKIT_PLUGINS``), loaded once."""
    return load_registry()


_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def unregistered_distributions() -> list[str]:
    """One line per installed distribution that depends on cvkit but has no entry point in
    the ``cvkit`` group (a misspelt group name registers nothing, silently otherwise)."""
    found = []
    for dist in distributions():
        names = [_REQUIREMENT_NAME.match(r) for r in dist.requires or []]
        if not any(m and _normalise(m[1]) == PROJECT_NAME for m in names):
            continue
        groups = {entry_point.group for entry_point in dist.entry_points}
        if ENTRY_POINT_GROUP in groups:
            continue
        other = sorted(groups - {"console_scripts", "gui_scripts", "pytest11"})
        found.append(
            f"distribution {dist.name} {dist.version} depends on cvkit but has no entry point "
            f"in the {ENTRY_POINT_GROUP!r} group"
            + (f" (its groups: {', '.join(other)})" if other else "")
        )
    return sorted(found)


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
