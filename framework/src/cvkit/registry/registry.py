"""The component registry: kind/name -> component, with parameters, docs and provenance."""

from __future__ import annotations

import contextlib
import fnmatch
import re
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import attrs

from cvkit.errors import (
    ComponentBuildError,
    ComponentConflictError,
    CvkitError,
    RecipeError,
    UnknownComponentError,
)
from cvkit.hookspecs import Register
from cvkit.registry.constraints import AttentionConstraints, Declared, check_declared, resolve
from cvkit.registry.kinds import KINDS, SHARED_CONTEXT, Kind, did_you_mean, get_kind
from cvkit.registry.parameters import (
    Parameter,
    accepted_names,
    parameters_of,
    summary_and_doc,
)
from cvkit.registry.specs import ComponentSpec
from cvkit.registry.validation import Validator

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")

COMMON_PARAMETERS: dict[str, tuple[Parameter, ...]] = {
    "model": (
        Parameter(
            "max_params",
            int | None,
            None,
            "parameter budget: building fails if the model has more trainable parameters (none: no limit)",
            attrs.validators.optional(attrs.validators.ge(1)),
        ),
        Parameter(
            "freeze",
            list[str],
            (),
            "module-name patterns whose parameters are frozen (requires_grad off), e.g. ['*']",
        ),
        Parameter(
            "trainable",
            list[str],
            (),
            "module-name patterns made trainable again after freeze, e.g. ['fc']",
        ),
    ),
    "optimizer": (
        Parameter(
            "groups",
            list[dict[str, Any]],
            (),
            "parameter groups chosen by rule (params, ndim, norm), each with its own settings "
            "or optimizer (see cvkit.engine.param_groups)",
        ),
    ),
}
"""Recipe parameters every component of a kind accepts; cvkit uses them, the factory never sees them."""


class Provenance:
    """``key`` and ``origin`` of a component record (its ``kind``, ``name``, ``plugin`` and
    ``version`` are the subclass's fields)."""

    kind: str
    name: str
    plugin: str
    version: str

    @property
    def key(self) -> str:
        """``kind/name``."""
        return f"{self.kind}/{self.name}"

    @property
    def origin(self) -> str:
        """``distribution version``."""
        return f"{self.plugin} {self.version}"


@attrs.frozen
class Component(Provenance):
    """A registered component: how to build it, its parameters and who provided it."""

    kind: str
    name: str
    factory: Callable[..., Any] = attrs.field(eq=False)
    params: tuple[Parameter, ...]
    summary: str
    doc: str
    plugin: str
    version: str
    examples: tuple[Mapping[str, Any], ...] = ({},)
    context: frozenset[str] = frozenset()
    runtime_names: Mapping[str, str] = attrs.field(factory=dict, eq=False)
    """The factory's names of runtime arguments that it calls otherwise (``channels`` -> ``dim``)."""
    constraints: Declared | None = attrs.field(default=None, eq=False)
    """The inputs an attention block takes (see :mod:`cvkit.registry.constraints`)."""


@attrs.define
class PluginInfo:
    """A loaded (or failed) plugin: its name, distribution, version, what it registered, its
    errors (with tracebacks for ``cvkit plugins --verbose``) and warnings.

    Attributes:
        name: the entry point's name, or the module name of a built-in or named plugin.
        dist: the providing distribution ("cvkit" for built-ins).
        version: the distribution's version.
        module: the plugin's module name ("" when it could not be loaded).
        registered: ``kind/name`` of every component it registered.
        errors: why it failed to load or register, one line each.
        tracebacks: the tracebacks behind ``errors``, where there was an exception.
        warnings: problems that do not stop it (e.g. parameters without type hints).
        disabled: skipped because ``CVKIT_DISABLE_PLUGINS`` names it.
    """

    name: str
    dist: str
    version: str
    module: str = ""
    registered: list[str] = attrs.field(factory=list)
    errors: list[str] = attrs.field(factory=list)
    tracebacks: list[str] = attrs.field(factory=list)
    warnings: list[str] = attrs.field(factory=list)
    disabled: bool = False


@attrs.frozen
class ComponentBuilder:
    """A component with its recipe parameters bound; call it with the runtime arguments.

    Context keywords the factory does not declare are dropped; a factory that declares
    ``registry`` receives ``registry``; runtime arguments go by the factory's own names
    (``runtime_names``). Any exception from the factory (but a CvkitError, already one line)
    becomes a :class:`ComponentBuildError` naming the recipe key and the component: a
    ValueError with its own message (a factory rejecting its parameters), any other with
    the parameters, its type and its text. An attention block is refused channels its
    constraints exclude, and remembered with them (:func:`built_attention`).
    """

    component: Component
    params: Mapping[str, Any]
    where: str = ""
    registry: Registry | None = attrs.field(default=None, eq=False, repr=False)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        kind = KINDS[self.component.kind]
        kwargs = {
            k: v for k, v in kwargs.items() if k not in kind.context or k in self.component.context
        }
        if "registry" in self.component.context:
            kwargs["registry"] = self.registry
        common = {p.name for p in COMMON_PARAMETERS.get(kind.name, ())}
        params = {k: v for k, v in self.params.items() if k not in common}
        where = f"{self.where}: " if self.where else ""
        limits = self.constraints if kind.name == "attention" else None
        if limits is not None:
            channels = args[0] if args else kwargs.get("channels")
            refused = limits.channel_violation(channels) if channels else None
            if refused:
                raise ComponentBuildError(f"{where}{self.component.key} cannot be built: {refused}")
        names = self.component.runtime_names
        if names:  # positional runtime arguments by the factory's own names
            kwargs |= {names.get(n, n): a for n, a in zip(kind.runtime, args, strict=False)}
            kwargs = {names.get(k, k): v for k, v in kwargs.items()}
            args = args[len(kind.runtime) :]
        try:
            built = self.component.factory(*args, **kwargs, **params)
        except CvkitError:
            raise
        except ValueError as error:  # the factory's own words about its parameters
            raise ComponentBuildError(f"{where}{self.component.key}: {error}") from error
        except Exception as error:
            shown = ", ".join(f"{k}={v!r}" for k, v in params.items())
            text = str(error) or "(no message)"
            raise ComponentBuildError(
                f"{where}{self.component.key}({shown}) could not be built: "
                f"{type(error).__name__}: {text}"
            ) from error
        if limits is not None:
            with contextlib.suppress(TypeError):  # an object without weak references: no record
                _BUILT_ATTENTION[built] = BuiltAttention(self.component.key, limits, self)
        return built

    @property
    def constraints(self) -> AttentionConstraints:
        """The inputs the component takes with these parameters (any, unless declared)."""
        return resolve(self.component.constraints, self.params)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"<{self.component.key}({params})>"


@attrs.frozen
class BuiltAttention:
    """What the registry remembers of an attention block it built: its ``kind/name``, its
    constraints and the builder that made it (to build it again at another input)."""

    key: str
    constraints: AttentionConstraints
    builder: ComponentBuilder


_BUILT_ATTENTION: weakref.WeakKeyDictionary[Any, BuiltAttention] = weakref.WeakKeyDictionary()


def built_attention(module: Any) -> BuiltAttention | None:
    """The record of ``module`` when the registry built it as an attention block, else None
    (kept beside the module, not on it: exports and state dicts see nothing)."""
    return _BUILT_ATTENTION.get(module)


class Registry:
    """Components by kind and name, filled by the plugins' registration hooks."""

    def __init__(self) -> None:
        self._components: dict[tuple[str, str], Component] = {}
        self._conflicts: dict[tuple[str, str], list[Component]] = {}
        self.plugins: list[PluginInfo] = []

    def registrar(self, kind: Kind, plugin: PluginInfo) -> Register:
        """The ``register`` callback handed to ``plugin``'s hook for ``kind``."""

        def register(
            name: str,
            factory: Callable[..., Any],
            *,
            examples: Sequence[Mapping[str, Any]] | None = None,
            runtime: Mapping[str, str] | None = None,
            constraints: Declared | None = None,
            doc: str | None = None,
        ) -> None:
            component = _make_component(
                kind, name, factory, plugin, examples, dict(runtime or {}), constraints, doc
            )
            self.add(component)
            plugin.registered.append(component.key)
            plugin.warnings.extend(
                f"{component.key}: parameter {p.name!r} has no type hint, so its recipe values "
                "are not checked"
                for p in component.params
                if not p.annotated
            )

        return register

    def add(self, component: Component) -> None:
        """Add ``component``; a second one with the same kind/name is recorded as a conflict."""
        key = (component.kind, component.name)
        if key in self._conflicts:
            self._conflicts[key].append(component)
        elif key in self._components:
            self._conflicts[key] = [self._components.pop(key), component]
        else:
            self._components[key] = component

    def get(self, kind: str, name: str) -> Component:
        """The component ``kind/name``; unknown names list close matches and failed plugins."""
        kind = get_kind(kind).name
        if (kind, name) in self._conflicts:
            raise ComponentConflictError(self._conflict_message(kind, name))
        try:
            return self._components[(kind, name)]
        except KeyError:
            pass
        names = sorted(n for k, n in self._components if k == kind)
        raise unknown_component(kind, name, names, self.failed_plugins())

    def components(self, kind: str | None = None, pattern: str | None = None) -> list[Component]:
        """Registered components sorted by kind then name, optionally filtered: ``pattern``
        is a glob on the name when it has ``*``, ``?`` or ``[``, else a substring of it."""
        return select_components(self._components.values(), kind, pattern)

    def __iter__(self) -> Iterator[Component]:
        return iter(self.components())

    def failed_plugins(self) -> list[str]:
        """``"dist (first error)"`` of each plugin that failed to load or register."""
        return [f"{p.dist} ({p.errors[0]})" for p in self.plugins if p.errors]

    def problems(self) -> list[str]:
        """Plugin load errors and conflicting registrations, one line each."""
        errors = [
            f"plugin {p.name} ({p.dist} {p.version}) failed: {e}"
            for p in self.plugins
            for e in p.errors
        ]
        return errors + self.conflicts()

    def warnings(self) -> list[str]:
        """Plugin warnings (problems that ``--strict-plugins`` refuses), one line each."""
        return [
            f"plugin {p.name} ({p.dist} {p.version}): {w}" for p in self.plugins for w in p.warnings
        ]

    def conflicts(self) -> list[str]:
        """One line per kind/name registered by more than one distribution."""
        return list(self.conflict_messages().values())

    def conflict_messages(self) -> dict[str, str]:
        """``kind/name`` -> the line of :meth:`conflicts` about it, sorted by key."""
        return {f"{k}/{n}": self._conflict_message(k, n) for k, n in sorted(self._conflicts)}

    def _conflict_message(self, kind: str, name: str) -> str:
        origins = " and ".join(c.origin for c in self._conflicts[(kind, name)])
        return f"{kind}/{name} is registered by both {origins}; uninstall one of them"

    def lookup(self, kind: str, name: str) -> tuple[str, Sequence[Parameter]]:
        """``(label, parameters)`` of ``kind/name``, as :class:`Validator` needs."""
        component = self.get(kind, name)
        return component.key, component.params

    def spec(self, kind: str, table: Mapping[str, Any] | str, key: str = "") -> ComponentSpec:
        """A validated :class:`ComponentSpec` from a recipe-style table; raises RecipeError."""
        validator = Validator(self.lookup)
        spec = validator.component(
            dict(table) if isinstance(table, Mapping) else table, kind, key or kind
        )
        if validator.problems or spec is None:
            raise RecipeError([f"{p.key}: {p.message}" for p in validator.problems])
        return spec

    def bind(self, spec: ComponentSpec) -> ComponentBuilder:
        """``spec`` as a callable of its runtime arguments, nested components bound too."""
        return ComponentBuilder(
            self.get(spec.kind, spec.name), self._bind_value(spec.params), spec.where, self
        )

    def build(self, spec: ComponentSpec, *args: Any, **kwargs: Any) -> Any:
        """Build ``spec``'s component from its runtime arguments."""
        return self.bind(spec)(*args, **kwargs)

    def _bind_value(self, value: Any) -> Any:
        if isinstance(value, ComponentSpec):
            return self.bind(value)
        if isinstance(value, Mapping):
            return {k: self._bind_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self._bind_value(v) for v in value)
        return value


_C = TypeVar("_C", bound=Provenance)


def select_components(
    components: Iterable[_C], kind: str | None = None, pattern: str | None = None
) -> list[_C]:
    """``components`` of ``kind`` (any when None) whose name matches ``pattern`` (a glob when
    it has ``*``, ``?`` or ``[``, else a substring, as timm's ``list_models``; case-sensitive),
    sorted by kind (in :data:`KINDS` order) then name."""
    order = list(KINDS)
    wanted = get_kind(kind).name if kind else None
    glob = pattern is not None and any(c in pattern for c in "*?[")

    def matches(name: str) -> bool:
        if pattern is None:
            return True
        return fnmatch.fnmatchcase(name, pattern) if glob else pattern in name

    found = [c for c in components if (wanted is None or c.kind == wanted) and matches(c.name)]
    return sorted(found, key=lambda c: (order.index(c.kind), c.name))


SHOWN_NAMES = 16
"""Names an unknown-component error lists before pointing to ``cvkit list``."""


def unknown_component(
    kind: str, name: str, names: Sequence[str], failed: Sequence[str]
) -> UnknownComponentError:
    """The error for a ``kind/name`` not among ``names``: close matches, what is available
    (the first :data:`SHOWN_NAMES`) and the plugins that failed to load
    (``"dist (error)"``), which may be where it lives."""
    shown = ", ".join(names[:SHOWN_NAMES]) or "none"
    if len(names) > SHOWN_NAMES:
        shown += f" and {len(names) - SHOWN_NAMES} more (cvkit list {kind})"
    message = f"unknown {kind} {name!r}{did_you_mean(name, names)}; available: {shown}"
    if failed:
        message += "; plugins that failed to load: " + "; ".join(failed)
    return UnknownComponentError(message)


def _make_component(
    kind: Kind,
    name: str,
    factory: Callable[..., Any],
    plugin: PluginInfo,
    examples: Sequence[Mapping[str, Any]] | None,
    runtime: Mapping[str, str] | None = None,
    constraints: Declared | None = None,
    doc: str | None = None,
) -> Component:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"{kind.name} name {name!r} must match {_NAME.pattern}")
    if not callable(factory):
        raise TypeError(f"{kind.name}/{name}: factory {factory!r} is not callable")
    runtime = dict(runtime or {})
    unknown = sorted(set(runtime) - set(kind.runtime))
    if unknown:
        raise TypeError(
            f"{kind.name}/{name}: runtime names {', '.join(unknown)}, but a {kind.name}'s "
            f"runtime arguments are {', '.join(kind.runtime) or 'none'}"
        )
    if constraints is not None and kind.name != "attention":
        raise TypeError(f"{kind.name}/{name}: only attention blocks declare constraints")
    names, takes_kwargs = accepted_names(factory)
    missing = [
        runtime.get(arg, arg)
        for arg in kind.runtime
        if runtime.get(arg, arg) not in names and not takes_kwargs
    ]
    if missing:
        raise TypeError(
            f"{kind.name}/{name}: factory must accept {', '.join(kind.runtime)} (missing "
            f"{', '.join(missing)}; a factory that calls it otherwise registers with "
            f"runtime={{{missing[0]!r}: '<its name>'}})"
        )
    params = parameters_of(factory, (*kind.reserved, *runtime.values()), doc or "")
    check_declared(constraints, {p.name for p in params}, f"{kind.name}/{name}")
    common = COMMON_PARAMETERS.get(kind.name, ())
    clash = sorted({p.name for p in params} & {p.name for p in common})
    if clash:
        raise TypeError(
            f"{kind.name}/{name}: parameter {', '.join(clash)} is reserved by cvkit for every {kind.name}"
        )
    summary, doc = summary_and_doc(factory, doc or "")
    return Component(
        kind=kind.name,
        name=name,
        factory=factory,
        params=params + common,
        summary=summary,
        doc=doc,
        plugin=plugin.dist,
        version=plugin.version,
        examples=tuple(examples) if examples is not None else ({},),
        context=frozenset(c for c in kind.context + SHARED_CONTEXT if c in names),  # by name only
        runtime_names=runtime,
        constraints=constraints,
    )
