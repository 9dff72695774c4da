"""What a study runs: a recipe, its variants (each a list of ``--set`` values, or its own
recipe), the seeds, the baseline; read from a study file or from the command line."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from cvkit import CvkitError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=+-]*$")


@attrs.frozen
class Variant:
    """One arm of a study: a name (its folder), a recipe file and ``--set`` values over it."""

    name: str
    recipe: Path
    sets: tuple[str, ...] = ()


@attrs.frozen
class StudySpec:
    """Variants x seeds of one comparison; ``sets`` apply to every run before the variant's."""

    name: str
    variants: tuple[Variant, ...]
    seeds: tuple[int, ...]
    baseline: str
    sets: tuple[str, ...] = ()

    def as_toml(self) -> dict[str, Any]:
        """The spec as a study file's tables (paths absolute), stored in the study directory."""
        return {
            "study": {
                "name": self.name,
                "seeds": list(self.seeds),
                "baseline": self.baseline,
                "set": list(self.sets),
            },
            "variants": [
                {"name": v.name, "recipe": str(v.recipe.resolve()), "set": list(v.sets)}
                for v in self.variants
            ],
        }


def parse_seeds(text: str | Sequence[int], where: str = "--seeds") -> tuple[int, ...]:
    """``"0-4"``, ``"0,3,7"``, ``"0-2,9"`` or a list of ints -> the seeds, in order, unique."""
    if not isinstance(text, str):
        values = list(text)
        if not values or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise CvkitError(f"{where}: expected a non-empty list of integer seeds, got {text!r}")
    else:
        values = []
        for part in text.split(","):
            first, dash, last = part.strip().partition("-")
            try:
                low, high = int(first), int(last if dash else first)
            except ValueError:
                raise CvkitError(
                    f"{where}: {text!r} is not a seed list such as 0-4 or 0,3,7"
                ) from None
            if high < low:
                raise CvkitError(f"{where}: {part.strip()!r} counts down; write {high}-{low}")
            values += range(low, high + 1)
    if len(set(values)) != len(values):
        raise CvkitError(f"{where}: seeds repeat in {text!r}")
    return tuple(values)


def split_values(text: str) -> list[str]:
    """``a,b,{ x = 1, y = 2 }`` -> its top-level comma-separated values (commas inside
    brackets, braces and quotes do not split)."""
    values, depth, quote, current = [], 0, "", ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 0:
            values.append(current.strip())
            current = ""
            continue
        current += char
    values.append(current.strip())
    return [v for v in values if v]


def from_command_line(
    recipe: Path,
    *,
    name: str,
    seeds: str,
    vary: Sequence[str],
    sets: Sequence[str],
    baseline: str | None,
) -> StudySpec:
    """The study of ``cvkit study RECIPE --vary KEY=V1,V2 ...``: one variant per value of a
    ``--vary`` key (named by its value); several keys give their cross product, in order,
    each variant named by its values joined by ``+`` (``se+0.1``); the recipe alone
    without ``--vary``."""
    variants = [Variant("recipe", recipe)]
    if vary:
        variants = [Variant("", recipe)]
        for option in vary:
            key, sep, text = option.partition("=")
            values = split_values(text)
            if not sep or not key.strip() or not values:
                raise CvkitError(f"--vary {option!r}: expected KEY=VALUE1,VALUE2,...")
            variants = [
                Variant(
                    f"{v.name}+{_variant_name(value, '--vary')}".strip("+"),
                    recipe,
                    (*v.sets, f"{key.strip()}={value}"),
                )
                for v in variants
                for value in values
            ]
    return check_spec(
        StudySpec(
            name, tuple(variants), parse_seeds(seeds), baseline or variants[0].name, tuple(sets)
        ),
        "--baseline",
    )


def _variant_name(value: str, where: str) -> str:
    compact = re.sub(r"\s*=\s*", "=", value).replace('"', "").replace("'", "")  # name=se
    name = re.sub(r"[^A-Za-z0-9_.=-]+", "_", compact).strip("_.")
    if not name:
        raise CvkitError(f"{where}: {value!r} gives no usable folder name")
    return name


def read_study_file(path: Path, extra_sets: Sequence[str] = ()) -> StudySpec:
    """The study in the TOML file ``path``: ``[study]`` with ``recipe`` (relative to the
    file), ``seeds``, ``baseline``, ``set``, ``name``; ``[[variants]]`` with ``name`` and
    ``set`` (and optionally their own ``recipe``). ``extra_sets`` (the command line's
    ``--set``) apply after the file's common ones."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CvkitError(f"{path}: file not found") from None
    except tomllib.TOMLDecodeError as error:
        raise CvkitError(f"{path}: invalid TOML: {error}") from None
    study = data.get("study")
    if not isinstance(study, dict):
        raise CvkitError(f"{path}: expected a [study] table (recipe, seeds, baseline)")
    _only(study, {"name", "recipe", "seeds", "baseline", "set"}, f"{path}: study")
    recipe = study.get("recipe")
    if not isinstance(recipe, str):
        raise CvkitError(f"{path}: study.recipe: expected the path of a recipe file")
    base = (path.parent / recipe).resolve()
    tables = data.get("variants")
    if not isinstance(tables, list) or not tables:
        raise CvkitError(f"{path}: expected [[variants]] tables (name, set)")
    variants = []
    for i, table in enumerate(tables):
        where = f"{path}: variants[{i}]"
        if not isinstance(table, dict):
            raise CvkitError(f"{where}: expected a table")
        _only(table, {"name", "set", "recipe"}, where)
        name = table.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise CvkitError(
                f"{where}.name: expected a folder name (letters, digits, _ . = + -), got {name!r}"
            )
        own = table.get("recipe")
        variants.append(
            Variant(
                name,
                (path.parent / own).resolve() if isinstance(own, str) else base,
                _strings(table.get("set", []), f"{where}.set"),
            )
        )
    spec = StudySpec(
        name=str(study.get("name", path.stem)),
        variants=tuple(variants),
        seeds=parse_seeds(study.get("seeds", "0-4"), f"{path}: study.seeds"),
        baseline=str(study.get("baseline", variants[0].name)),
        sets=_strings(study.get("set", []), f"{path}: study.set") + tuple(extra_sets),
    )
    return check_spec(spec, f"{path}: study.baseline")


def _only(table: dict[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise CvkitError(
            f"{where}: unknown keys {', '.join(unknown)}; valid: {', '.join(sorted(known))}"
        )


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CvkitError(f"{where}: expected a list of KEY=VALUE strings, got {value!r}")
    return tuple(value)


def check_spec(spec: StudySpec, where: str) -> StudySpec:
    """``spec`` if its variant names are unique and its baseline is one of them."""
    names = [v.name for v in spec.variants]
    for name in names:
        if names.count(name) > 1:
            raise CvkitError(f"variant names must be unique: {name!r} repeated")
    if spec.baseline not in names:
        raise CvkitError(f"{where}: {spec.baseline!r} is not a variant ({', '.join(names)})")
    return spec
