"""The runs table: one row per run with its cost and accuracies, and a column for each
recipe setting that differs between the runs."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from cvkit import CvkitError
from cvkit_report.runs import RunRecord, differing_settings

COLUMNS = (
    "run",
    "status",
    "seed",
    "params",
    "flops",
    "best_val",
    "best_epoch",
    "last_val",
    "test",
    "wall_s",
    "img_s",
)
"""The fixed columns: accuracies are fractions, ``flops`` forward FLOPs per image,
``wall_s`` seconds of training and validation, ``img_s`` mean training images per second."""


def _status(run: RunRecord) -> str:
    """finished, or the run's status with the epochs it trained: ``failed (0 epochs)``."""
    status = run.status.get("status", "unknown")
    if status == "finished" or (status == "unknown" and run.evaluation is not None):
        return "finished"
    return f"{status} ({len(run.epochs)} epochs)"


def run_row(run: RunRecord) -> dict[str, Any]:
    """The fixed columns of ``run`` (None where the run did not record a value)."""
    evaluation = run.evaluation or {}
    model = evaluation.get("model") or {}
    training = evaluation.get("training") or {}
    best = run.best_val()
    test = evaluation.get("test") or {}
    wall = training.get("wall_seconds") or sum(e.get("epoch_seconds", 0.0) for e in run.epochs)
    speeds = [e["images_per_second"] for e in run.epochs if e.get("images_per_second")]
    return {
        "run": run.name,
        "status": _status(run),
        "seed": evaluation.get("seed", run.recipe.get("experiment", {}).get("seed")),
        "params": model.get("trainable_parameters"),
        "flops": model.get("flops_per_image"),
        "best_val": best[0] if best else None,
        "best_epoch": best[1] if best else None,
        "last_val": run.last_val(),
        "test": test.get("top1"),
        "wall_s": wall or None,
        "img_s": training.get("images_per_second")
        or (sum(speeds) / len(speeds) if speeds else None),
    }


def runs_table(
    runs: Sequence[RunRecord], sort: str | None = None, descending: bool = False
) -> tuple[list[str], list[dict[str, Any]]]:
    """Column names and rows: :data:`COLUMNS`, then each differing recipe key; sorted by
    the column ``sort`` (missing values last) when given."""
    settings = [run.settings for run in runs]  # each recipe flattened once
    keys = differing_settings(settings) if len(runs) > 1 else []
    columns = [*COLUMNS, *keys]
    rows = [
        run_row(run) | {key: flat.get(key) for key in keys}
        for run, flat in zip(runs, settings, strict=True)
    ]
    if sort is not None:
        if sort not in columns:
            raise CvkitError(f"--sort {sort}: no such column; columns: {', '.join(columns)}")
        present = [row for row in rows if row[sort] is not None]
        missing = [row for row in rows if row[sort] is None]
        present.sort(key=lambda row: _sort_key(row[sort]), reverse=descending)
        rows = present + missing
    return columns, rows


def _sort_key(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, int | float) else (1, str(value))


def cell(column: str, value: Any) -> str:
    """A value as the terminal and markdown tables show it."""
    if value is None:
        return "-"
    if column in ("best_val", "last_val", "test"):
        return f"{100 * value:.2f}%"
    if column == "params":
        return f"{value:,}"
    if column == "flops":
        return f"{value / 1e6:,.1f}M"
    if column in ("wall_s", "img_s"):
        return f"{value:,.0f}" if value >= 10 else f"{value:.2f}"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def as_markdown(columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> str:
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(cell(c, row[c]).replace("|", "\\|") for c in columns) + " |")
    return "\n".join(lines) + "\n"


def as_csv(columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> str:
    """CSV with raw values (fractions, counts, seconds); lists and tables as JSON."""
    stream = io.StringIO()
    writer = csv.DictWriter(stream, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in row.items()}
        )
    return stream.getvalue()


MAX_KEY_COLUMNS = 6
"""Beyond this many differing recipe keys, the terminal table shows them in one column."""


def compact(
    columns: Sequence[str], rows: Sequence[dict[str, Any]]
) -> tuple[list[str], list[dict[str, Any]]]:
    """With more than :data:`MAX_KEY_COLUMNS` differing recipe keys, one ``changes`` column
    instead: for each run, the keys whose value differs from the most common one among the
    runs, as ``key=value`` (an empty cell: the run has the common value everywhere)."""
    keys = [c for c in columns if c not in COLUMNS]
    if len(keys) <= MAX_KEY_COLUMNS:
        return list(columns), list(rows)
    common = {}
    for key in keys:
        values = [json.dumps(row[key], sort_keys=True) for row in rows]
        common[key] = max(set(values), key=values.count)
    compacted = []
    for row in rows:
        changes = [
            f"{key}={cell(key, row[key])}"
            for key in keys
            if json.dumps(row[key], sort_keys=True) != common[key]
        ]
        compacted.append({c: row[c] for c in COLUMNS} | {"changes": "; ".join(changes) or None})
    return [*COLUMNS, "changes"], compacted


def as_rich_table(columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> Any:
    """A rich Table for the terminal (see :func:`compact`); recipe keys in their own colour."""
    from rich.table import Table

    columns, rows = compact(columns, rows)
    table = Table(show_lines=False, header_style="bold")
    for column in columns:
        fixed = column in COLUMNS
        numeric = column not in ("run", "status")
        table.add_column(
            column,
            justify="right" if numeric and fixed else "left",
            style=None if fixed else "cyan",
            overflow="fold",
        )
    for row in rows:
        table.add_row(*(cell(c, row[c]) for c in columns))
    return table
