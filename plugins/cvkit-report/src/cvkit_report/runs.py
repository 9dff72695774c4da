"""Reading run directories: the resolved recipe, eval.json, the per-epoch metrics of every
stage, and the per-step scalars TensorBoard recorded."""

from __future__ import annotations

import glob
import json
import math
import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs

from cvkit import CvkitError, flat_settings, run_status

STEP_SCALARS = ("step/lr", "step/loss", "step/images_per_second", "step/grad_norm")
"""Per-step TensorBoard scalars a report plots when the run logged them."""


@attrs.frozen(eq=False)
class RunRecord:
    """One run directory as written by ``cvkit run``.

    Attributes:
        path: the run directory.
        recipe: its resolved recipe.toml as plain TOML data.
        evaluation: eval.json (None while the run is unfinished).
        epochs: metrics.jsonl lines of every stage in order; each has ``stage`` (its name,
            "" without stages) and ``global_epoch`` (epochs counted across stages).
        stage_ends: (name, global epoch, global step) at which each stage but the last ended.
        steps: per-step scalars from TensorBoard, name -> [(global step, value)].
        status: ``cvkit.run_status``: running, finished, failed, interrupted, stopped
            (killed) or unknown, with the reason.
    """

    path: Path
    recipe: dict[str, Any]
    evaluation: dict[str, Any] | None
    epochs: list[dict[str, Any]]
    stage_ends: list[tuple[str, int, int]]
    steps: dict[str, list[tuple[int, float]]]
    status: dict[str, Any] = attrs.field(factory=dict)

    @property
    def name(self) -> str:
        """``experiment.name/<run folder>``: short and unique among a project's runs; in a
        ``cvkit study`` directory, ``<study name>/<variant>/seed-<k>`` (runs of two studies
        compared side by side keep apart)."""
        study = self.path.parent.parent / "study.toml"
        if study.is_file():
            return f"{_study_name(study)}/{self.path.parent.name}/{self.path.name}"
        experiment = self.recipe.get("experiment", {}).get("name", "?")
        return f"{experiment}/{self.path.name}"

    @property
    def settings(self) -> dict[str, Any]:
        """The resolved recipe as leaf keys (see :func:`leaf_settings`)."""
        return leaf_settings(self.recipe)

    def best_val(self) -> tuple[float, int] | None:
        """The best validation accuracy of any epoch and its global epoch."""
        scored = [
            (e["val/acc"], e["global_epoch"]) for e in self.epochs if _finite(e.get("val/acc"))
        ]
        return max(scored, key=lambda pair: pair[0]) if scored else None

    def last_val(self) -> float | None:
        """The last epoch's validation accuracy."""
        values = [e["val/acc"] for e in self.epochs if _finite(e.get("val/acc"))]
        return values[-1] if values else None


def _study_name(path: Path) -> str:
    """The name in a study directory's study.toml, else the directory's name."""
    try:
        name = tomllib.loads(path.read_text(encoding="utf-8"))["study"]["name"]
    except (OSError, ValueError, KeyError, TypeError):
        return path.parent.name
    return name if isinstance(name, str) else path.parent.name


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def find_runs(patterns: Sequence[str]) -> list[RunRecord]:
    """The runs that ``patterns`` name: run directories, glob patterns (expanded here too,
    for quoted ones), or folders holding runs (``runs/quickstart``: each run in it, and
    ``runs``: each run two levels down). CvkitError when a name matches nothing or nothing
    is a run."""
    found: dict[Path, None] = {}
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not matches or not Path(matches[0]).exists():
            raise CvkitError(f"{pattern}: no such run directory")
        for match in matches:
            for run in _runs_under(Path(match)):
                found[run] = None
    if not found:
        raise CvkitError(f"{' '.join(patterns)}: no run directories (folders with a recipe.toml)")
    return [read_run(path) for path in found]


def study_dirs(patterns: Sequence[str]) -> list[Path]:
    """The ``cvkit study`` directories (those with a study.json) that ``patterns`` name."""
    found = []
    for pattern in patterns:
        for match in sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]:
            if (Path(match) / "study.json").is_file():
                found.append(Path(match))
    return found


def _runs_under(path: Path) -> Iterable[Path]:
    if (path / "recipe.toml").is_file():
        yield path
        return
    if path.is_dir():
        for depth in ("*/recipe.toml", "*/*/recipe.toml"):
            runs = sorted(p.parent for p in path.glob(depth))
            if runs:
                yield from runs
                return


def read_run(path: Path) -> RunRecord:
    """The :class:`RunRecord` of the run directory ``path``."""
    recipe_file = path / "recipe.toml"
    try:
        recipe = tomllib.loads(recipe_file.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise CvkitError(f"{recipe_file}: not a readable run recipe ({error})") from None
    evaluation = _read_json(path / "eval.json")
    stages = [s["name"] for s in recipe.get("stages", []) if isinstance(s, dict)]
    folders = [(name, path / "stages" / name) for name in stages] or [("", path)]
    epochs: list[dict[str, Any]] = []
    steps: dict[str, list[tuple[int, float]]] = {}
    ends: list[tuple[str, int, int]] = []
    step_offset = 0
    for name, folder in folders:
        lines = _read_jsonl(folder / "metrics.jsonl")
        for line in lines:
            epochs.append(line | {"stage": name, "global_epoch": len(epochs) + 1})
        for key, values in tensorboard_scalars(folder / "tensorboard", STEP_SCALARS).items():
            steps.setdefault(key, []).extend((step + step_offset, value) for step, value in values)
        if lines:
            step_offset += int(lines[-1].get("step", 0))
        ends.append((name, len(epochs), step_offset))
    return RunRecord(path, recipe, evaluation, epochs, ends[:-1], steps, run_status(path))


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise CvkitError(f"{path}: unreadable ({error})") from None
    return data if isinstance(data, dict) else None


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The complete lines of a metrics.jsonl (a line cut short by a crash is skipped)."""
    if not path.is_file():
        return []
    lines = []
    for text in path.read_text(encoding="utf-8").splitlines():
        try:
            lines.append(json.loads(text))
        except ValueError:
            continue
    return lines


def tensorboard_scalars(folder: Path, tags: Iterable[str]) -> dict[str, list[tuple[int, float]]]:
    """Each of ``tags`` that the event files in ``folder`` hold: [(step, value)] in step
    order, the latest value for a step written twice (a resumed run)."""
    if not folder.is_dir():
        return {}
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    accumulator.Reload()
    available = set(accumulator.Tags().get("scalars", []))
    result = {}
    for tag in tags:
        if tag in available:
            by_step = {event.step: event.value for event in accumulator.Scalars(tag)}
            result[tag] = sorted(by_step.items())
    return result


def leaf_settings(recipe: dict[str, Any]) -> dict[str, Any]:
    """``recipe`` as dotted keys down to its leaves (``optimizer.lr``), lists of tables
    included (``augment.train[1].padding``, ``callbacks[0].name``), so that two runs
    differing in one augmentation's parameter differ in that key, not in the whole list;
    other lists (``model.widths``) are leaves."""
    leaves: dict[str, Any] = {}
    for key, value in flat_settings(recipe).items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for i, table in enumerate(value):
                leaves |= {f"{key}[{i}].{k}": v for k, v in leaf_settings(table).items()}
        else:
            leaves[key] = value
    return leaves


def differing_settings(settings: Sequence[dict[str, Any]]) -> list[str]:
    """Dotted recipe keys whose values differ between runs' ``settings`` (each a
    :attr:`RunRecord.settings`): what changed between them, less
    ``experiment.output_dir``, sorted."""
    keys = set().union(*settings) - {"experiment.output_dir"}
    return sorted(
        k for k in keys if len({json.dumps(f.get(k), sort_keys=True) for f in settings}) > 1
    )
