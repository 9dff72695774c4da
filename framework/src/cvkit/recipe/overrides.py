"""``--set KEY=VALUE`` overrides: TOML value syntax, dotted keys with list indices."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

from cvkit.errors import RecipeError
from cvkit.recipe.reading import Location, RawRecipe, flat_keys, parse_key, parse_toml
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


def _path_text(path: Sequence[str | int]) -> str:
    text = ""
    for part in path:
        text = join_key(text, part)
    return text
