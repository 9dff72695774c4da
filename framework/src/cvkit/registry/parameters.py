"""Typed parameters: read a factory's or attrs class's parameters, types, defaults and docs."""

from __future__ import annotations

import functools
import inspect
import operator
import re
import types
import typing
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import attrs

from cvkit.registry.specs import ComponentOf, InsideRun


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
    annotated: bool = attrs.field(default=True, eq=False)
    """False when the factory gave no type hint: any value is accepted unchecked."""

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


def crop_ranges(scale: Sequence[float], ratio: Sequence[float]) -> tuple[list[float], list[float]]:
    """A random-resized crop's ``scale`` (area fraction) and ``ratio`` (width / height)
    parameters as lists. Raises ValueError unless each is [min, max], 0 < min <= max (and
    max <= 1 for the scale)."""
    if len(scale) != 2 or not 0 < scale[0] <= scale[1] <= 1:
        raise ValueError(f"scale={list(scale)} must be [min, max] with 0 < min <= max <= 1")
    if len(ratio) != 2 or not 0 < ratio[0] <= ratio[1]:
        raise ValueError(f"ratio={list(ratio)} must be [min, max] with 0 < min <= max")
    return list(scale), list(ratio)


TORCH_FACTORY_KWARGS = ("device", "dtype")
"""torch's factory keyword arguments (``nn.Conv2d(..., device=None, dtype=None)``): not recipe
parameters where they default to None; cvkit builds in float32 on the CPU and moves the model."""


def parameters_of(
    factory: Callable[..., Any], reserved: Collection[str] = (), doc: str = ""
) -> tuple[Parameter, ...]:
    """The parameters of ``factory`` (function, class or attrs class), minus ``reserved`` names
    and :data:`TORCH_FACTORY_KWARGS` that default to None.

    Types come from annotations (``Any`` where there is none), docs from the ``Args:``/
    ``Attributes:`` section of the docstring (a class's, its bases' or its ``__init__``'s),
    and of ``doc`` over them (the docs a plugin gives a library's class). ``*args``/
    ``**kwargs`` are not parameters.
    """
    docs = parse_arg_docs(inspect.getdoc(_documented(factory)) or "")
    if inspect.isclass(factory):  # a subclass may leave its parameters to its bases' docs
        for base in reversed(factory.__mro__[1:]):
            docs = parse_arg_docs(inspect.getdoc(base) or "") | docs
        init_doc = factory.__init__.__doc__  # only its own: inspect.getdoc would inherit
        docs |= parse_arg_docs(inspect.cleandoc(init_doc) if init_doc else "")
    docs |= parse_arg_docs(doc)
    if inspect.isclass(factory) and attrs.has(factory):
        hints = typing.get_type_hints(factory, include_extras=True)
        return tuple(
            Parameter(
                name=field.alias,
                annotation=hints.get(field.name, Any),
                default=_attrs_default(field.default),
                doc=docs.get(field.alias, docs.get(field.name, "")),
                validator=field.validator,
                annotated=field.name in hints,
            )
            for field in attrs.fields(factory)
            if field.init and field.alias not in reserved
        )
    target = _documented(factory)  # a partial's function or class
    hints = parse_arg_types(doc) | _type_hints(
        target.__init__ if inspect.isclass(target) else target
    )
    signature = inspect.signature(factory)  # a partial's: without the arguments it fixes
    return tuple(
        Parameter(
            name=p.name,
            annotation=hints.get(p.name, Any),
            default=REQUIRED if p.default is inspect.Parameter.empty else p.default,
            doc=docs.get(p.name, ""),
            annotated=p.name in hints,
        )
        for p in signature.parameters.values()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        and p.name not in reserved
        and not (p.name in TORCH_FACTORY_KWARGS and p.default is None)
    )


def _documented(factory: Callable[..., Any]) -> Callable[..., Any]:
    """The function behind ``functools.partial`` factories (their docs and type hints);
    ``factory`` itself otherwise."""
    while isinstance(factory, functools.partial):
        factory = factory.func
    return factory


def _type_hints(target: Any) -> dict[str, Any]:
    """``typing.get_type_hints`` of ``target``; where they cannot be resolved (a library's
    annotations naming what is not importable at run time), its raw annotations that are
    types, the rest unannotated."""
    try:
        return typing.get_type_hints(target, include_extras=True)
    except Exception:  # NameError, TypeError from a third party's annotations
        raw = getattr(target, "__annotations__", {}) or {}
        return {name: hint for name, hint in raw.items() if not isinstance(hint, str)}


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
_TYPED_ARG_LINE = re.compile(r"^(\w+)\s*\(([^)]*)\):")


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


_TYPE_NAMES = {t.__name__: t for t in (int, float, bool, str, list, tuple, dict)} | {
    "None": type(None)
}


def parse_arg_types(doc: str) -> dict[str, Any]:
    """Types given in an ``Args:`` section as ``name (int | None): text``, for factories
    without annotations: builtin scalar and container names joined by ``|``; other
    descriptions (``(int, optional)``) are left out."""
    found: dict[str, Any] = {}
    for line in doc.splitlines():
        match = _TYPED_ARG_LINE.match(line.strip())
        if not match:
            continue
        names = [part.strip() for part in match[2].split("|")]
        if names and all(name in _TYPE_NAMES for name in names):
            found[match[1]] = functools.reduce(operator.or_, [_TYPE_NAMES[n] for n in names])
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


def summary_and_doc(factory: Callable[..., Any], doc: str = "") -> tuple[str, str]:
    """The first line and the whole of ``doc``, else of ``factory``'s docstring (of the
    function behind a partial)."""
    doc = inspect.cleandoc(doc) if doc else inspect.getdoc(_documented(factory)) or ""
    return (doc.splitlines()[0].strip() if doc else "", doc)


NONE_TYPE = type(None)


def format_type(annotation: Any) -> str:
    """A readable name for an annotation: ``float``, ``list[int]``, ``'a' | 'b'``, ``attention``."""
    if annotation is Any or annotation is inspect.Parameter.empty:
        return "any"
    if annotation is NONE_TYPE:
        return "none"
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        kind = component_kind(annotation)
        if any(isinstance(meta, InsideRun) for meta in args[1:]):
            return "path in the run directory"
        return f"{kind} component" if kind else format_type(args[0])
    if origin in (Union, types.UnionType):
        return " | ".join(format_type(a) for a in args)
    if origin is Literal:
        return " | ".join(repr(a) for a in args)
    if origin is type:
        return "class"
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


def component_kind(annotation: Any) -> str | None:
    """The kind of an ``Annotated[..., ComponentOf(kind)]`` annotation, else None."""
    for meta in get_args(annotation)[1:]:
        if isinstance(meta, ComponentOf):
            return meta.kind
    return None
