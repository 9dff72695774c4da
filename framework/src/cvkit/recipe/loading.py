"""Loading a recipe: read it, apply ``--set`` overrides, validate it against the registry."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cvkit.errors import RecipeError
from cvkit.recipe.overrides import apply_override, apply_unset
from cvkit.recipe.reading import RawRecipe, deep_merge, read_recipe
from cvkit.recipe.schema import Recipe, stage_order_problems
from cvkit.registry.registry import Registry
from cvkit.registry.validation import Validator

log = logging.getLogger("cvkit")

STAGE_MERGED_TABLES = ("augment", "trainer")
"""Tables a stage merges key by key over the top-level ones (a stage's ``augment.train``
keeps the top-level ``augment.eval``); component tables and lists replace."""


def _stages_over_top_level(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with each stage's augment and trainer tables merged over the top-level ones."""
    stages = data.get("stages")
    if not isinstance(stages, list):
        return data
    merged = []
    for stage in stages:
        if isinstance(stage, dict):
            stage = dict(stage)
            for key in STAGE_MERGED_TABLES:
                if isinstance(stage.get(key), dict) and isinstance(data.get(key), dict):
                    stage[key] = deep_merge(data[key], stage[key])
        merged.append(stage)
    return {**data, "stages": merged}


CWD_RELATIVE_PATHS = ("experiment.output_dir",)
"""Path keys left as written, relative to the working directory wherever they are written:
runs go where the command runs, not next to a shared recipe file."""


def path_resolver(raw: RawRecipe) -> Callable[[str, Path], Path]:
    """Makes a recipe's path values absolute: relative to the directory of the recipe file
    that wrote the key (a file it ``extends`` for the keys that file wrote), and relative to
    the working directory for ``--set`` values; :data:`CWD_RELATIVE_PATHS` stay as written."""

    def resolve(key: str, path: Path) -> Path:
        if key in CWD_RELATIVE_PATHS:
            return path
        path = path.expanduser()
        if path.is_absolute():
            return Path(os.path.normpath(path))
        origin = raw.locate(key).file
        written_in_file = not origin.startswith("--set") and Path(origin).is_file()
        base = Path(origin).parent if written_in_file else Path.cwd()
        return Path(os.path.normpath(base.absolute() / path))

    return resolve


def validate_recipe(raw: RawRecipe, registry: Registry) -> Recipe:
    """The :class:`Recipe` of ``raw``; raises RecipeError listing every problem with its
    location. Path values come out absolute (see :func:`path_resolver`). Keys of a
    component that a ``--set`` of its ``name`` switched away from are dropped when the new
    component does not take them (logged; :func:`validate_recipe_noting` returns them)."""
    recipe, dropped = validate_recipe_noting(raw, registry)
    for line in dropped:
        log.info("note: %s", line)
    return recipe


def validate_recipe_noting(raw: RawRecipe, registry: Registry) -> tuple[Recipe, list[str]]:
    """:func:`validate_recipe`, returning the dropped keys' lines (``file:line: key
    (with --set ...): dropped: <component> does not take it``) instead of logging them."""
    validator = Validator(
        registry.lookup,
        locate=raw.where,
        resolve_path=path_resolver(raw),
        droppable=raw.switched_away,
    )
    recipe = validator.value(_stages_over_top_level(raw.data), Recipe, "")
    for key, message in stage_order_problems(raw.data.get("stages")):
        validator.problem(key, message)
    if validator.problems:
        raise RecipeError([f"{raw.where(p.key)}: {p.message}" for p in validator.problems])
    return recipe, [f"{raw.where(p.key)}: {p.message}" for p in validator.dropped]


def load_recipe(
    path: str | Path,
    overrides: Sequence[str] = (),
    *,
    registry: Registry,
    unset: Sequence[str] = (),
) -> Recipe:
    """Read the recipe at ``path``, remove the ``--unset`` keys ``unset``, apply the
    ``--set`` ``overrides`` and validate it against ``registry``; RecipeError lists every
    problem with its file, line and key. A ``--set`` of a component's ``name`` keeps the
    recipe's keys the new component takes and drops (and logs) the others."""
    return validate_recipe(read_with_changes(path, overrides, unset), registry)


def load_recipe_noting(
    path: str | Path,
    overrides: Sequence[str] = (),
    *,
    registry: Registry,
    unset: Sequence[str] = (),
) -> tuple[Recipe, list[str]]:
    """:func:`load_recipe`, with the lines of the keys a ``--set`` of a component's ``name``
    dropped instead of logging them."""
    return validate_recipe_noting(read_with_changes(path, overrides, unset), registry)


def read_with_changes(
    path: str | Path, overrides: Sequence[str] = (), unset: Sequence[str] = ()
) -> RawRecipe:
    """The recipe at ``path`` as read (``extends`` followed), without the ``unset`` keys and
    with the ``overrides``, not yet validated; RecipeError for a missing file, bad TOML or
    an override that does not apply."""
    raw = read_recipe(path)
    for key in unset:
        apply_unset(raw, key)
    for assignment in overrides:
        apply_override(raw, assignment)
    return raw
