"""Validation of recipe values against typed parameters.

Validation collects every problem (dotted key and message) instead of stopping at the first,
so a recipe with three mistakes reports three lines.
"""

from __future__ import annotations

import copy
import inspect
import math
import types
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePath
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import attrs

from cvkit.registry.kinds import did_you_mean
from cvkit.registry.parameters import (
    NONE_TYPE,
    Parameter,
    component_kind,
    format_type,
    parameters_of,
)
from cvkit.registry.specs import ComponentSpec, InsideRun


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return f"{type(value).__name__} {value!r}"


def join_key(prefix: str, key: str | int) -> str:
    """Extend a dotted key: ``join_key("a", "b") == "a.b"``, ``join_key("a", 0) == "a[0]"``."""
    if isinstance(key, int):
        return f"{prefix}[{key}]"
    return f"{prefix}.{key}" if prefix else key


@attrs.frozen
class Problem:
    """A problem found at a dotted ``key`` of the input."""

    key: str
    message: str


ComponentLookup = Callable[[str, str], tuple[str, Sequence[Parameter]]]
"""``(kind, name) -> (owner label, parameters)``; raises CvkitError for an unknown component."""


class Validator:
    """Validates raw TOML data against parameters, collecting :class:`Problem` s.

    ``lookup`` resolves nested component tables; ``locate`` turns a dotted key into the
    location stored on each :class:`ComponentSpec` for later error messages;
    ``resolve_path(key, path)`` makes a path-typed value absolute (default: as given);
    ``droppable(key)``: whether a key its component does not take is dropped (and listed in
    ``dropped``) instead of being a problem, e.g. a key of the recipe's component that a
    ``--set`` of the table's ``name`` switched away from.
    """

    def __init__(
        self,
        lookup: ComponentLookup,
        locate: Callable[[str], str] = str,
        resolve_path: Callable[[str, Path], Path] = lambda key, path: path,
        droppable: Callable[[str], bool] = lambda key: False,
    ) -> None:
        self.lookup = lookup
        self.locate = locate
        self.resolve_path = resolve_path
        self.droppable = droppable
        self.problems: list[Problem] = []
        self.dropped: list[Problem] = []

    def problem(self, key: str, message: str) -> None:
        self.problems.append(Problem(key, message))

    def table(
        self, raw: Any, params: Sequence[Parameter], key: str, owner: str
    ) -> dict[str, Any] | None:
        """Every parameter's value (defaults filled in) from the table ``raw``, or None."""
        if not isinstance(raw, dict):
            self.problem(key, f"expected a table for {owner}, got {_describe(raw)}")
            return None
        by_name = {p.name: p for p in params}
        for name in raw:
            if name not in by_name:
                sub = join_key(key, name)
                if self.droppable(sub):
                    self.dropped.append(Problem(sub, f"dropped: {owner} does not take it"))
                    continue
                valid = ", ".join(sorted(by_name)) or "none"
                self.problem(
                    sub,
                    f"unknown key for {owner}{did_you_mean(name, by_name)}; valid keys: {valid}",
                )
        values: dict[str, Any] = {}
        for param in params:
            sub = join_key(key, param.name)
            if param.name not in raw:
                if param.required:
                    self.problem(sub, f"missing required parameter of {owner} ({param.type_name})")
                elif not callable(param.default):  # a class or function: the factory's own
                    values[param.name] = self._default(param, sub)
                continue
            before = len(self.problems)
            value = self.value(raw[param.name], param.annotation, sub)
            if len(self.problems) == before and param.validator is not None:
                try:
                    param.validator(None, _FieldView(param.name), value)
                except (ValueError, TypeError) as error:
                    self.problem(sub, str(error) or f"invalid value {value!r}")
            values[param.name] = value
        return values

    def _default(self, param: Parameter, key: str) -> Any:
        """The default, normalised like a recipe value (component tables become specs) when
        it validates; a default that does not match its own annotation is kept as it is."""
        default = copy.deepcopy(param.default)
        trial = Validator(self.lookup, self.locate)
        value = trial.value(default, param.annotation, key)
        return default if trial.problems else value

    def _trial(self) -> Validator:
        """A validator for one alternative of a union: its problems stay its own."""
        return Validator(self.lookup, self.locate, droppable=self.droppable)

    def component(self, raw: Any, kind: str, key: str) -> ComponentSpec | None:
        """A :class:`ComponentSpec` of ``kind`` from a table with ``name`` (or a bare name)."""
        if isinstance(raw, ComponentSpec):
            return raw
        if isinstance(raw, str):
            raw = {"name": raw}
        if not isinstance(raw, dict):
            self.problem(key, f"expected a {kind} table with a 'name', got {_describe(raw)}")
            return None
        name = raw.get("name")
        if not isinstance(name, str):
            what = (
                "missing 'name'"
                if name is None
                else f"'name' must be a string, got {_describe(name)}"
            )
            self.problem(key, f"{what} of the {kind} component")
            return None
        try:
            owner, params = self.lookup(kind, name)
        except LookupError as error:
            self.problem(join_key(key, "name"), str(error))
            return None
        values = self.table({k: v for k, v in raw.items() if k != "name"}, params, key, owner)
        if values is None:
            return None
        return ComponentSpec(kind, name, values, where=self.locate(key))

    def value(self, value: Any, annotation: Any, key: str) -> Any:
        """``value`` checked against ``annotation`` and normalised (int -> float, list -> tuple)."""
        if annotation is Any or annotation is inspect.Parameter.empty:
            return value
        origin, args = get_origin(annotation), get_args(annotation)
        if origin is Annotated:
            kind = component_kind(annotation)
            if any(isinstance(meta, InsideRun) for meta in args[1:]):
                return self._inside_run(value, key)
            return self.component(value, kind, key) if kind else self.value(value, args[0], key)
        if origin in (Union, types.UnionType):
            return self._union(value, annotation, args, key)
        if origin is Literal:
            if any(value == a and type(value) is type(a) for a in args):
                return value
            choices = ", ".join(repr(a) for a in args)
            return self._wrong(key, f"one of {choices}", value)
        if origin in (list, tuple, Sequence):
            return self._sequence(value, annotation, origin, args, key)
        if origin in (dict, Mapping):
            if not isinstance(value, dict):
                return self._wrong(key, "a table", value)
            value_type = args[1] if len(args) == 2 else Any
            return {k: self.value(v, value_type, join_key(key, k)) for k, v in value.items()}
        if attrs.has(annotation):
            before = len(self.problems)
            values = self.table(
                value, parameters_of(annotation), key, f"[{key}]" if key else "the recipe"
            )
            return (
                annotation(**values)
                if len(self.problems) == before and values is not None
                else None
            )
        return self._scalar(value, annotation, key)

    def _inside_run(self, value: Any, key: str) -> Any:
        if not isinstance(value, str):
            return self._wrong(key, "a path in the run directory", value)
        path = PurePath(value)
        if not value.strip() or path.is_absolute() or ".." in path.parts or path.anchor:
            self.problem(
                key,
                f"{value!r} must be a path inside the run directory (relative, without '..')",
            )
            return None
        return value

    def _union(self, value: Any, annotation: Any, args: tuple[Any, ...], key: str) -> Any:
        if value is None and NONE_TYPE in args:
            return None
        options = [a for a in args if a is not NONE_TYPE]
        attempts = []
        for option in options:
            trial = self._trial()
            result = trial.value(value, option, key)
            if not trial.problems:
                self.dropped.extend(trial.dropped)
                return result
            attempts.append(trial.problems)
        if len(options) == 1 or isinstance(value, dict):
            # One real alternative (X | None), or a table: the detailed problems say more.
            best = min(attempts, key=len) if len(options) > 1 else attempts[0]
            self.problems.extend(best)
            return None
        return self._wrong(key, format_type(annotation), value)

    def _sequence(
        self, value: Any, annotation: Any, origin: Any, args: tuple[Any, ...], key: str
    ) -> Any:
        if not isinstance(value, list | tuple):
            return self._wrong(key, format_type(annotation), value)
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis) and args:
            if len(value) != len(args):
                return self._wrong(key, f"{format_type(annotation)} ({len(args)} items)", value)
            return tuple(
                self.value(v, a, join_key(key, i))
                for i, (v, a) in enumerate(zip(value, args, strict=True))
            )
        item_type = args[0] if args else Any
        items = [self.value(v, item_type, join_key(key, i)) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items

    def _scalar(self, value: Any, annotation: Any, key: str) -> Any:
        if annotation is NONE_TYPE:
            return None if value is None else self._wrong(key, "none", value)
        if annotation is bool:
            return value if isinstance(value, bool) else self._wrong(key, "bool", value)
        if annotation is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
            return value if ok else self._wrong(key, "int", value)
        if annotation is float:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if ok and not math.isfinite(value):
                return self._wrong(key, "a finite float", value)
            return float(value) if ok else self._wrong(key, "float", value)
        if annotation is str:
            return value if isinstance(value, str) else self._wrong(key, "str", value)
        if isinstance(annotation, type) and issubclass(annotation, Path):
            if not isinstance(value, str | Path):
                return self._wrong(key, "path", value)
            return self.resolve_path(key, Path(value))
        if isinstance(annotation, type) and not isinstance(value, annotation):
            return self._wrong(key, format_type(annotation), value)
        return value

    def _wrong(self, key: str, expected: str, value: Any) -> None:
        self.problem(key, f"expected {expected}, got {_describe(value)}")
        return None


@attrs.frozen
class _FieldView:
    """What attrs validators read from their ``attribute`` argument."""

    name: str
