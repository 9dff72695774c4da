"""Reading recipe files: TOML with line numbers, ``extends`` chains and ``unset`` keys.

The result is a :class:`RawRecipe`: merged TOML data with the file and line each key was
written on, for error messages. Keys are dotted paths with list indices (``a.b[0].c``).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from cvkit.errors import RecipeError
from cvkit.recipe.toml_lines import key_lines
from cvkit.registry.validation import join_key


@attrs.frozen
class Location:
    """Where a key was written: a file (or ``--set ...``) and its line when known."""

    file: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@attrs.define
class RawRecipe:
    """Merged TOML data of a recipe and its ``extends`` chain, with each key's origin."""

    data: dict[str, Any]
    origins: dict[str, Location]
    root: str

    def locate(self, key: str) -> Location:
        """Where ``key`` (or its nearest enclosing key) was written."""
        candidates = list(_prefixes(key))
        found = next((self.origins[c] for c in candidates if c in self.origins), None)
        if found is None:
            return Location(self.root)
        line = next(
            (
                self.origins[c].line
                for c in candidates
                if c in self.origins and self.origins[c].file == found.file and self.origins[c].line
            ),
            None,
        )
        return Location(found.file, line)

    def where(self, key: str) -> str:
        """``file:line: key`` for messages; when a ``--set`` chose the component the key
        belongs to (``--set optimizer.name=adam`` and the recipe's ``optimizer.momentum``),
        it is named too."""
        location = self.locate(key)
        text = f"{location}: {key}" if key else str(location)
        for prefix in list(_prefixes(key))[1:]:
            chosen = self.origins.get(f"{prefix}.name")
            if chosen is not None and chosen.file.startswith("--set") and chosen != location:
                if key not in self.origins:  # a key the recipe never wrote: the --set's doing
                    return f"{chosen}: {key}"
                return f"{text} (with {chosen})"
        return text

    def switched_away(self, key: str) -> bool:
        """Whether ``key`` belongs to the component a ``--set`` of its table's ``name``
        switched away from: the name's origin is that ``--set`` and the key was written
        elsewhere (the recipe, an earlier ``--set``)."""
        table = next(iter(list(_prefixes(key))[1:]), "")
        chosen = self.origins.get(f"{table}.name")
        return (
            chosen is not None
            and chosen.file.startswith("--set")
            and self.locate(key).file != chosen.file
        )


def _prefixes(key: str) -> Iterator[str]:
    """``a.b[0].c``, ``a.b[0]``, ``a.b``, ``a``."""
    while key:
        yield key
        cut = max(key.rfind("."), key.rfind("["))
        key = key[:cut] if cut > 0 else ""


def _display(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it, else absolute."""
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


def flat_keys(data: Any, prefix: str = "") -> Iterator[str]:
    """Every dotted key below ``data``, list items included (``a.b[0].c``)."""
    if isinstance(data, dict):
        items: Iterable[tuple[str | int, Any]] = data.items()
    elif isinstance(data, list):
        items = enumerate(data)
    else:
        return
    for k, v in items:
        key = join_key(prefix, k)
        yield key
        yield from flat_keys(v, key)


def deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Tables merge key by key; everything else (lists included) is replaced."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


MAX_DEPTH = 32
"""How deeply tables and arrays may nest in a recipe (real recipes need fewer than 8)."""


def nesting_depth(value: Any) -> int:
    """How many tables and arrays nest in ``value`` (0 for a scalar), without recursion."""
    deepest, todo = 0, [(value, 0)]
    while todo:
        item, depth = todo.pop()
        deepest = max(deepest, depth)
        if isinstance(item, dict):
            todo += [(v, depth + 1) for v in item.values()]
        elif isinstance(item, list):
            todo += [(v, depth + 1) for v in item]
    return deepest


def parse_toml(text: str, where: str) -> dict[str, Any]:
    """TOML ``text`` as data; RecipeError naming ``where`` (and the line) when it is not
    TOML or nests deeper than :data:`MAX_DEPTH`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        message = str(error)
        match = re.search(r"\(at line (\d+), column \d+\)", message)
        located = f"{where}:{match[1]}" if match else where
        raise RecipeError([f"{located}: invalid TOML: {message}"]) from None
    except RecursionError:
        data = None
    if data is None or nesting_depth(data) > MAX_DEPTH:
        raise RecipeError([f"{where}: tables or arrays nest deeper than {MAX_DEPTH} levels"])
    return data


def parse_recipe_text(text: str, source: str) -> RawRecipe:
    """The data of one recipe's TOML ``text`` (``extends`` is left in), ``source`` naming it."""
    data = parse_toml(text, source)
    lines = key_lines(text)
    return RawRecipe(
        data, {key: Location(source, lines.get(key)) for key in flat_keys(data)}, source
    )


def read_recipe(path: str | Path, _chain: Sequence[Path] = ()) -> RawRecipe:
    """The data of ``path`` merged over the recipes it extends (paths relative to each file)."""
    resolved = Path(path).resolve()
    shown = _display(resolved)
    if resolved in _chain:
        cycle = " -> ".join(_display(p) for p in [*_chain, resolved])
        raise RecipeError([f"{shown}: extends cycle: {cycle}"])
    try:
        text = resolved.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError([f"{shown}: recipe file not found"]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise RecipeError([f"{shown}: cannot read recipe: {error}"]) from None
    raw = parse_recipe_text(text, shown)
    parent = raw.data.pop("extends", None)
    unset = raw.data.pop("unset", None)
    if parent is None:
        if unset is not None:
            raise RecipeError(
                [
                    f"{raw.origins['unset']}: unset: only a recipe that extends another can unset keys"
                ]
            )
        return raw
    where = raw.origins.pop("extends")
    if not isinstance(parent, str):
        raise RecipeError([f"{where}: extends: expected a path string"])
    target = resolved.parent / parent
    if not target.is_file():
        raise RecipeError([f"{where}: extends: recipe file not found: {_display(target)}"])
    base = read_recipe(target, [*_chain, resolved])
    if unset is not None:
        _unset(base, unset, raw.origins.pop("unset"))
    return RawRecipe(deep_merge(base.data, raw.data), base.origins | raw.origins, shown)


def _unset(base: RawRecipe, keys: Any, where: Location) -> None:
    """Remove the dotted ``keys`` from the recipe being extended (TOML has no null to set)."""
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise RecipeError(
            [f'{where}: unset: expected a list of dotted keys, e.g. ["model.attention"]']
        )
    for key in keys:
        path = parse_key(key)
        node: Any = base.data
        for part in (path or [])[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if not path or not isinstance(node, dict) or path[-1] not in node:
            raise RecipeError(
                [f"{where}: unset: {key} is not a key of the recipes this one extends"]
            )
        del node[path[-1]]


_KEY_PART = re.compile(r"([^.\[\]]+)((?:\[\d+\])*)")


def parse_key(key: str) -> list[str | int] | None:
    """``"a.b[0].c"`` as ``["a", "b", 0, "c"]``; None if it is not a dotted key."""
    path: list[str | int] = []
    for segment in key.split("."):
        match = _KEY_PART.fullmatch(segment.strip())
        if not match:
            return None
        path.append(match[1])
        path += [int(i) for i in re.findall(r"\[(\d+)\]", match[2])]
    return path
