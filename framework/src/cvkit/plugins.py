"""Plugin discovery: the built-in plugin, entry points in group ``cvkit``, and named modules.

Each entry point is loaded in its own ``try``: a plugin that fails to import or register is
recorded (plugin, distribution, version, error) and everything else keeps working; only a
recipe that needs one of its components fails, and the error names it.

Environment variables:

- ``CVKIT_DISABLE_PLUGIN_AUTOLOAD=1``: do not load entry points (built-ins only), so tests
  control exactly what is registered.
- ``CVKIT_PLUGINS=mod_a,mod_b``: also register these importable modules as plugins, exactly
  as entry points are.
- ``CVKIT_STRICT_PLUGINS=1``: any plugin failure or conflict is an error.
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Sequence
from importlib.metadata import entry_points
from types import ModuleType

import pluggy

from cvkit import PROJECT_NAME, __version__, hookspecs
from cvkit.errors import PluginError
from cvkit.kinds import KINDS, did_you_mean
from cvkit.registry import PluginInfo, Registry

ENTRY_POINT_GROUP = "cvkit"
ENV_DISABLE_AUTOLOAD = "CVKIT_DISABLE_PLUGIN_AUTOLOAD"
ENV_PLUGINS = "CVKIT_PLUGINS"
ENV_STRICT = "CVKIT_STRICT_PLUGINS"

_HOOKS = {kind.hook for kind in KINDS.values()}


def env_flag(name: str) -> bool:
    """Whether environment variable ``name`` is set to a true value (1, true, yes, on)."""
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def load_registry(
    *,
    autoload: bool | None = None,
    modules: Sequence[str | ModuleType] = (),
    strict: bool | None = None,
) -> Registry:
    """A registry filled by the built-in plugin, entry points and ``modules``.

    ``autoload`` and ``strict`` default to the environment variables above; modules named
    in ``CVKIT_PLUGINS`` are registered before ``modules``.
    """
    from cvkit import builtins

    autoload = not env_flag(ENV_DISABLE_AUTOLOAD) if autoload is None else autoload
    strict = env_flag(ENV_STRICT) if strict is None else strict
    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    plugins: dict[str, PluginInfo] = {}

    def add(module: object, info: PluginInfo) -> None:
        plugins[info.name] = info
        if info.errors:
            return
        unknown = [
            name
            for name in dir(module)
            if name not in _HOOKS and manager.parse_hookimpl_opts(module, name) is not None  # type: ignore[arg-type]
        ]
        info.errors += [f"unknown hook {name!r}{did_you_mean(name, _HOOKS)}" for name in unknown]
        if unknown:
            return
        try:
            manager.register(module, name=info.name)
        except (pluggy.PluginValidationError, ValueError) as error:
            info.errors.append(f"{type(error).__name__}: {error}")

    add(builtins, PluginInfo("builtins", "cvkit", __version__))
    if autoload:
        for entry_point in entry_points(group=ENTRY_POINT_GROUP):
            dist = entry_point.dist
            info = PluginInfo(
                entry_point.name, dist.name if dist else "?", dist.version if dist else "?"
            )
            try:
                module = entry_point.load()
            except Exception as error:  # a broken plugin must not break the others
                info.errors.append(f"{type(error).__name__}: {error}")
                module = None
            add(module, info)
    extra = [m for m in os.environ.get(ENV_PLUGINS, "").split(",") if m.strip()] + list(modules)
    for module in extra:
        name = module if isinstance(module, str) else module.__name__
        info = PluginInfo(name.strip(), name.strip(), "(module)")
        try:
            loaded = importlib.import_module(name.strip()) if isinstance(module, str) else module
        except Exception as error:
            info.errors.append(f"{type(error).__name__}: {error}")
            loaded = None
        add(loaded, info)

    registry = Registry()
    registry.plugins = list(plugins.values())
    for kind in KINDS.values():
        for impl in getattr(manager.hook, kind.hook).get_hookimpls():
            info = plugins[impl.plugin_name]
            args = (
                {"register": registry.registrar(kind, info)} if "register" in impl.argnames else {}
            )
            try:
                impl.function(**args)
            except Exception as error:
                info.errors.append(f"{kind.hook}: {type(error).__name__}: {error}")
    if strict and registry.problems():
        raise PluginError(registry.problems())
    return registry


@functools.cache
def default_registry() -> Registry:
    """The registry of this process (built-ins, installed plugins, ``CVKIT_PLUGINS``), loaded once."""
    return load_registry()
