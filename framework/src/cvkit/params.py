"""Typed parameters: read them off a factory or attrs class, validate recipe values against them.

Validation collects every problem (dotted key and message) instead of stopping at the first,
so a recipe with three mistakes reports three lines.
"""

from __future__ import annotations

import copy
import inspect
import re
import types
import typing
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import attrs

from cvkit.components import ComponentOf, ComponentSpec
from cvkit.kinds import did_you_mean


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()
"""Default of a parameter that has none."""


@attrs.frozen
class Parameter:
    """One recipe parameter of a component or recipe section."""

    name: str
    annotation: Any = Any
    default: Any = REQUIRED
    doc: str = ""
    validator: Callable[..., Any] | None = attrs.field(default=None, eq=False)

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def type_name(self) -> str:
        return format_type(self.annotation)


def height_width(size: int | Sequence[int], name: str = "size") -> list[int]:
    """An image-size parameter as [height, width]: an int means a square. Raises ValueError
    naming ``name`` unless that is two positive ints."""
    hw = [size, size] if isinstance(size, int) else list(size)
    if len(hw) != 2 or min(hw) < 1:
        raise ValueError(f"{name}={hw} must be a positive int or [height, width]")
    return hw


def parameters_of(
    factory: Callable[..., Any], reserved: Collection[str] = ()
) -> tuple[Parameter, ...]:
    """The parameters of ``factory`` (function, class or attrs class), minus ``reserved`` names.

    Types come from annotations (``Any`` where there is none), docs from the docstring's
    ``Args:``/``Attributes:`` section. ``*args``/``**kwargs`` are not parameters.
    """
    docs = parse_arg_docs(inspect.getdoc(factory) or "")
    if inspect.isclass(factory):  # a subclass may leave its parameters to its bases' docs
        for base in reversed(factory.__mro__[1:]):
            docs = parse_arg_docs(inspect.getdoc(base) or "") | docs
    if attrs.has(factory):
        hints = typing.get_type_hints(factory, include_extras=True)
        return tuple(
            Parameter(
                name=field.alias,
                annotation=hints.get(field.name, Any),
                default=_attrs_default(field.default),
                doc=docs.get(field.alias, docs.get(field.name, "")),
                validator=field.validator,
            )
            for field in attrs.fields(factory)
            if field.init and field.alias not in reserved
        )
    target = factory.__init__ if inspect.isclass(factory) else factory
    hints = typing.get_type_hints(target, include_extras=True)
    signature = inspect.signature(factory)
    return tuple(
        Parameter(
            name=p.name,
            annotation=hints.get(p.name, Any),
            default=REQUIRED if p.default is inspect.Parameter.empty else p.default,
            doc=docs.get(p.name, ""),
        )
        for p in signature.parameters.values()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name not in reserved
    )


def accepted_names(factory: Callable[..., Any]) -> tuple[set[str], bool]:
    """The keyword names ``factory`` accepts, and whether it takes ``**kwargs``."""
    parameters = inspect.signature(factory).parameters.values()
    names = {p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    return names, any(p.kind is p.VAR_KEYWORD for p in parameters)


def _attrs_default(default: Any) -> Any:
    if default is attrs.NOTHING:
        return REQUIRED
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        return default.factory() if not default.takes_self else REQUIRED
    return default


_SECTION = re.compile(r"^(Args|Arguments|Attributes|Parameters|Params):\s*$")
_ARG_LINE = re.compile(r"^(\w+)(?:\s*\([^)]*\))?:\s*(.*)$")


def parse_arg_docs(doc: str) -> dict[str, str]:
    """Parameter descriptions from a Google-style ``Args:`` section of ``doc``."""
    found: dict[str, str] = {}
    lines = doc.splitlines()
    for i, line in enumerate(lines):
        if not _SECTION.match(line.strip()):
            continue
        current, current_indent = None, 0
        for item in lines[i + 1 :]:
            if item and not item[0].isspace():
                break  # next section
            stripped = item.strip()
            match = _ARG_LINE.match(stripped)
            indent = len(item) - len(item.lstrip())
            if match and (current is None or indent <= current_indent):
                current, current_indent = match[1], indent
                found[current] = match[2]
            elif current and stripped:
                found[current] = f"{found[current]} {stripped}".strip()
    return found


def doc_body(doc: str) -> str:
    """``doc`` without its summary line and its ``Args:`` section (shown as a table instead)."""
    kept: list[str] = []
    skipping = False
    for line in doc.splitlines()[1:]:
        if _SECTION.match(line.strip()) and not line[:1].isspace():
            skipping = True
        elif skipping and line and not line[0].isspace():
            skipping = False
        if not skipping:
            kept.append(line)
    return "\n".join(kept).strip()


def summary_and_doc(factory: Callable[..., Any]) -> tuple[str, str]:
    """The first docstring line of ``factory`` and the whole docstring."""
    doc = inspect.getdoc(factory) or ""
    return (doc.splitlines()[0].strip() if doc else "", doc)


_NONE_TYPE = type(None)


def format_type(annotation: Any) -> str:
    """A readable name for an annotation: ``float``, ``list[int]``, ``'a' | 'b'``, ``attention``."""
    if annotation is Any or annotation is inspect.Parameter.empty:
        return "any"
    if annotation is _NONE_TYPE:
        return "none"
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        kind = _component_kind(annotation)
        return f"{kind} component" if kind else format_type(args[0])
    if origin in (Union, types.UnionType):
        return " | ".join(format_type(a) for a in args)
    if origin is Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (list, Sequence):
        return f"list[{format_type(args[0])}]" if args else "list"
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"list[{format_type(args[0])}]"
        return f"list[{', '.join(format_type(a) for a in args)}]"
    if origin in (dict, Mapping):
        return "table"
    if attrs.has(annotation):
        return "table"
    if isinstance(annotation, type):
        return "path" if issubclass(annotation, Path) else annotation.__name__
    return str(annotation)


def _component_kind(annotation: Any) -> str | None:
    for meta in get_args(annotation)[1:]:
        if isinstance(meta, ComponentOf):
            return meta.kind
    return None


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
    location stored on each :class:`ComponentSpec` for later error messages.
    """

    def __init__(self, lookup: ComponentLookup, locate: Callable[[str], str] = str) -> None:
        self.lookup = lookup
        self.locate = locate
        self.problems: list[Problem] = []

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
                valid = ", ".join(sorted(by_name)) or "none"
                self.problem(
                    join_key(key, name),
                    f"unknown key for {owner}{did_you_mean(name, by_name)}; valid keys: {valid}",
                )
        values: dict[str, Any] = {}
        for param in params:
            sub = join_key(key, param.name)
            if param.name not in raw:
                if param.required:
                    self.problem(sub, f"missing required parameter of {owner} ({param.type_name})")
                else:
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
            kind = _component_kind(annotation)
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

    def _union(self, value: Any, annotation: Any, args: tuple[Any, ...], key: str) -> Any:
        if value is None and _NONE_TYPE in args:
            return None
        options = [a for a in args if a is not _NONE_TYPE]
        attempts = []
        for option in options:
            trial = Validator(self.lookup, self.locate)
            result = trial.value(value, option, key)
            if not trial.problems:
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
        if annotation is _NONE_TYPE:
            return None if value is None else self._wrong(key, "none", value)
        if annotation is bool:
            return value if isinstance(value, bool) else self._wrong(key, "bool", value)
        if annotation is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
            return value if ok else self._wrong(key, "int", value)
        if annotation is float:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            return float(value) if ok else self._wrong(key, "float", value)
        if annotation is str:
            return value if isinstance(value, str) else self._wrong(key, "str", value)
        if isinstance(annotation, type) and issubclass(annotation, Path):
            return Path(value) if isinstance(value, str | Path) else self._wrong(key, "path", value)
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
