"""Writing a recipe back: plain TOML-ready data, TOML text, flat dotted settings."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import tomli_w

from cvkit.recipe.schema import Recipe
from cvkit.registry.specs import ComponentSpec


def recipe_data(value: Any) -> Any:
    """Plain TOML-ready data of a :class:`Recipe` (or part of one); None values are left out."""
    if isinstance(value, ComponentSpec):
        return {"name": value.name} | recipe_data(dict(value.params))
    if attrs.has(type(value)):
        return recipe_data({f.alias: getattr(value, f.name) for f in attrs.fields(type(value))})
    if isinstance(value, Mapping):
        return {k: recipe_data(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [recipe_data(v) for v in value]
    if isinstance(value, Path):
        return value.as_posix()
    return value


def dump_recipe(recipe: Recipe, header: str = "") -> str:
    """``recipe`` as TOML text that :func:`~cvkit.recipe.loading.load_recipe` reads back to an
    equal Recipe; ``header`` becomes comment lines on top."""
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    return comment + tomli_w.dumps(recipe_data(recipe))


def flat_settings(data: Any, prefix: str = "") -> dict[str, Any]:
    """Every leaf of nested tables under its dotted key (``optimizer.lr``); lists are leaves."""
    if not isinstance(data, Mapping):
        return {prefix: data}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        flat |= flat_settings(value, f"{prefix}.{key}" if prefix else key)
    return flat


def recipe_differences(a: Recipe, b: Recipe) -> list[str]:
    """Dotted keys whose values differ between two recipes."""
    flat_a, flat_b = flat_settings(recipe_data(a)), flat_settings(recipe_data(b))
    return sorted(k for k in flat_a.keys() | flat_b.keys() if flat_a.get(k) != flat_b.get(k))
