"""``--set KEY=VALUE`` and ``--unset KEY`` overrides: TOML value syntax, dotted keys with
list indices, and entries of a list of component tables addressed by their name
(``callbacks.tensorboard.log_every=5``, ``augment.train.random_crop.padding=2``)."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

from cvkit.errors import RecipeError
from cvkit.recipe.reading import Location, RawRecipe, flat_keys, parse_key, parse_toml
from cvkit.recipe.schema import DEFAULT_CALLBACKS
from cvkit.registry.validation import join_key


def parse_value(text: str, where: str = "--set") -> Any:
    """A ``--set`` value: TOML value syntax (``0.1``, ``true``, ``[1, 2]``, ``"x"``), else the
    string; RecipeError naming ``where`` when it nests too deeply."""
    try:
        value = parse_toml(f"value = {text}", where)["value"]
    except RecipeError as error:
        if "nest deeper" in str(error):
            raise
        return text
    return text if isinstance(value, datetime.date | datetime.time) else value


def apply_override(raw: RawRecipe, assignment: str) -> None:
    """Apply ``a.b.c=VALUE`` (indices allowed: ``augment.train[0].p=1``) to ``raw`` in place."""
    key, sep, text = assignment.partition("=")
    path = parse_key(key.strip()) if sep else None
    shown = assignment if len(assignment) <= 80 else f"{assignment[:77]}..."
    origin = f"--set {shown}"
    if not path:
        raise RecipeError(
            [f"{origin}: expected KEY=VALUE with a dotted KEY, e.g. model.dropout=0.2"]
        )
    path = _named_entries(raw.data, path, origin)
    node: Any = raw.data
    for i, part in enumerate(path[:-1]):
        nxt = path[i + 1]
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                raise RecipeError([f"{origin}: {_path_text(path[: i + 1])} does not exist"])
        elif isinstance(node, dict):
            child = node.get(part)
            if isinstance(child, str) and isinstance(nxt, str):
                node[part] = {"name": child}  # component shorthand ("se") -> table
            elif child is None:
                node[part] = {} if isinstance(nxt, str) else []
        else:
            raise RecipeError([f"{origin}: {_path_text(path[:i])} is not a table"])
        node = node[part]
    last = path[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last >= len(node):
            raise RecipeError([f"{origin}: {_path_text(path)} does not exist"])
    elif not isinstance(node, dict):
        raise RecipeError([f"{origin}: {_path_text(path[:-1])} is not a table"])
    node[last] = parse_value(text.strip(), origin)
    prefix = _path_text(path)
    replaced = [key for key in raw.origins if key.startswith((f"{prefix}.", f"{prefix}["))]
    for key in replaced:  # the old value's keys are gone: problems below are the --set's
        del raw.origins[key]
    raw.origins[prefix] = Location(origin)
    raw.origins.update({key: Location(origin) for key in flat_keys(node[last], prefix)})


def apply_unset(raw: RawRecipe, key: str) -> None:
    """Remove ``key`` (a dotted key, a list index or a component's name in a list:
    ``callbacks.tensorboard``) from ``raw`` in place, as the recipe key ``unset`` does."""
    origin = f"--unset {key}"
    path = parse_key(key.strip())
    if not path:
        raise RecipeError([f"{origin}: expected a dotted KEY, e.g. model.attention"])
    path = _named_entries(raw.data, path, origin)
    node: Any = raw.data
    for part in path[:-1]:
        node = _child(node, part)
    last = path[-1]
    if _child(node, last) is None:
        raise RecipeError([f"{origin}: {key} is not a key of the recipe"])
    del node[last]
    prefix = _path_text(path)
    for gone in [
        k for k in raw.origins if k == prefix or k.startswith((f"{prefix}.", f"{prefix}["))
    ]:
        del raw.origins[gone]


def _child(node: Any, part: str | int) -> Any:
    """``node[part]`` when it exists, else None."""
    if isinstance(part, int):
        return node[part] if isinstance(node, list) and part < len(node) else None
    return node.get(part) if isinstance(node, dict) else None


def _named_entries(data: dict[str, Any], path: list[str | int], origin: str) -> list[str | int]:
    """``path`` with each name that addresses a list of component tables replaced by the
    index of the one entry of that name; a recipe without ``callbacks`` gets the default
    list first, so that ``callbacks.NAME`` reaches a default callback."""
    if len(path) > 1 and path[0] == "callbacks" and isinstance(path[1], str):
        data.setdefault("callbacks", [{"name": name} for name in DEFAULT_CALLBACKS])
    resolved: list[str | int] = []
    node: Any = data
    for part in path:
        if isinstance(node, list) and isinstance(part, str):
            names = [item.get("name") if isinstance(item, dict) else None for item in node]
            if names.count(part) != 1:
                listed = ", ".join(str(n) for n in names if n is not None) or "none"
                count = "no entry" if part not in names else "several entries"
                raise RecipeError(
                    [
                        f"{origin}: {_path_text(resolved)} has {count} named {part!r} "
                        f"(its entries: {listed}); address it by index, e.g. "
                        f"{_path_text([*resolved, 0])}"
                    ]
                )
            part = names.index(part)
        resolved.append(part)
        node = _child(node, part)
    return resolved


def _path_text(path: Sequence[str | int]) -> str:
    text = ""
    for part in path:
        text = join_key(text, part)
    return text
