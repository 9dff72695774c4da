"""The part of ``cvkit report STUDY_DIR`` that shows a ``cvkit study``'s statistics, read from
its study.json: the per-variant table with intervals, a forest plot of the paired
differences against the baseline with their Holm-adjusted p, every seed's result as a dot
(lines join a seed across variants: the pairs the tests compare), and the power of each
accuracy comparison."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from cvkit import CvkitError

SHOWN = {
    "val_acc": "validation accuracy (points)",
    "test_acc": "test accuracy (points)",
    "val_loss": "validation loss (nats)",
    "val_ece": "validation ECE (points)",
}
"""The metrics the study panels show, and their axis labels (percent metrics in points)."""

PERCENT = {"val_acc", "test_acc", "val_ece"}


def read_study(folder: Path) -> dict[str, Any]:
    """A study directory's study.json; CvkitError naming the folder when it has none."""
    path = folder / "study.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CvkitError(f"{folder}: not a readable study directory ({error})") from None


def _scale(metric: str) -> float:
    return 100.0 if metric in PERCENT else 1.0


def _format(metric: str, value: float | None) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.2f}" if metric in PERCENT else f"{value:.4f}"


def shown_metrics(study: Mapping[str, Any]) -> list[str]:
    """The :data:`SHOWN` metrics some variant of ``study`` has."""
    statistics = study["statistics"]
    return [m for m in SHOWN if any(m in entry["metrics"] for entry in statistics.values())]


def variant_rows(study: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The per-variant table: n, then per metric mean ± sd [95% CI]."""
    metrics = shown_metrics(study)
    rows = []
    for variant, entry in study["statistics"].items():
        cells = [variant, str(len(entry["seeds"]))]
        for metric in metrics:
            stats = entry["metrics"].get(metric) or {}
            text = _format(metric, stats.get("mean"))
            if stats.get("std") is not None:
                low, high = stats["ci95"]
                text += (
                    f" ± {_format(metric, stats['std'])} "
                    f"[{_format(metric, low)}, {_format(metric, high)}]"
                )
            cells.append(text)
        rows.append(cells)
    return ["variant", "n", *metrics], rows


def forest_plot(study: Mapping[str, Any]) -> Figure:
    """Per metric, each variant's mean paired difference from the baseline with its 95% t
    interval (thick) and bootstrap interval (thin), labelled with the Holm-adjusted p
    (``*`` below 0.05); a difference without spread is a hollow marker without interval."""
    metrics = shown_metrics(study)
    compared = [
        (v, e["vs_baseline"]) for v, e in study["statistics"].items() if e.get("vs_baseline")
    ]
    figure = Figure(
        figsize=(4 * max(1, len(metrics)), 1.6 + 0.8 * len(compared)), layout="constrained"
    )
    axes = np.atleast_1d(figure.subplots(1, max(1, len(metrics))))
    for ax, metric in zip(axes, metrics, strict=False):
        scale = _scale(metric)
        for y, (_, differences) in enumerate(compared):
            result = differences.get(metric)
            if not result:
                continue
            mean = scale * result["mean_difference"]
            if result.get("ci95") is None:
                ax.plot(mean, y, "o", markerfacecolor="none", color="C0")
                label = "no spread"
            else:
                low, high = (scale * v for v in result["ci95"])
                ax.plot([low, high], [y, y], color="C0", linewidth=3)
                if result.get("bootstrap_ci95"):
                    b_low, b_high = (scale * v for v in result["bootstrap_ci95"])
                    ax.plot([b_low, b_high], [y - 0.15, y - 0.15], color="C1", linewidth=1)
                ax.plot(mean, y, "o", color="C0")
                adjusted = result.get("p_adjusted")
                label = "-" if adjusted is None else f"p_Holm {adjusted:.3f}"
                label += " *" if result.get("significant") else ""
            ax.annotate(label, (mean, y), textcoords="offset points", xytext=(0, 7),
                        ha="center", fontsize=7)  # fmt: skip
        ax.axvline(0, color="#888", linewidth=0.8)
        ax.set_yticks(range(len(compared)), [v for v, _ in compared])
        ax.set_ylim(-0.6, len(compared) - 0.4)
        ax.set(xlabel=f"difference in {SHOWN[metric]}", title=f"{metric} - {study['baseline']}")
    return figure


def seed_dots(study: Mapping[str, Any], metric: str) -> Figure:
    """Every run's ``metric`` by variant, one dot per seed, a line joining each seed across
    the variants, and each variant's mean with its 95% t interval."""
    variants = list(study["statistics"])
    figure = Figure(figsize=(1.5 + 1.2 * len(variants), 4.5), layout="constrained")
    ax = figure.subplots()
    scale = _scale(metric)
    by_seed: dict[int, dict[int, float]] = {}
    for run in study["runs"]:
        value = (run.get("metrics") or {}).get(metric)
        if value is not None and run["variant"] in variants:
            by_seed.setdefault(run["seed"], {})[variants.index(run["variant"])] = scale * value
    for index, (seed, points) in enumerate(sorted(by_seed.items())):
        xs = sorted(points)
        ax.plot(xs, [points[x] for x in xs], "o-", color=f"C{index % 10}", alpha=0.6,
                markersize=4, linewidth=0.8, label=f"seed {seed}")  # fmt: skip
    for x, variant in enumerate(variants):
        stats = study["statistics"][variant]["metrics"].get(metric) or {}
        if stats.get("mean") is None:
            continue
        if stats.get("ci95"):
            low, high = (scale * v for v in stats["ci95"])
            ax.plot([x + 0.2, x + 0.2], [low, high], color="black", linewidth=2)
        ax.plot(x + 0.2, scale * stats["mean"], "D", color="black", markersize=5)
    ax.set_xticks(range(len(variants)), variants)
    ax.set_xlim(-0.5, len(variants) - 0.3)
    ax.set(ylabel=SHOWN[metric], title=f"{metric} by seed (black: mean, 95% t interval)")
    if len(by_seed) <= 12:
        ax.legend(fontsize=7, loc="best")
    return figure


def power_lines(study: Mapping[str, Any]) -> list[str]:
    """For each accuracy comparison, its power to detect the stated difference with the seeds
    it has, and the seeds 80% power needs."""
    lines = []
    for variant, entry in study["statistics"].items():
        for metric, result in (entry.get("vs_baseline") or {}).items():
            power = (result or {}).get("power")
            if metric not in ("val_acc", "test_acc") or not power:
                continue
            needed, share = power["seeds_for_80"], power["power"]
            lines.append(
                f"{variant} vs {study['baseline']}, {metric}: "
                + ("-" if share is None else f"{100 * share:.0f}%")
                + f" power to detect a difference of {100 * abs(power['effect']):.2f} points "
                f"with {len(result['seeds'])} seeds; "
                + (f"{needed} seeds give 80%" if needed else "more than 1,000 seeds for 80%")
            )
    return lines


def warnings(folder: Path) -> list[str]:
    """The warning lines of the study's study.md."""
    path = folder / "study.md"
    if not path.is_file():
        return []
    prefix = "warning: "
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line[len(prefix) :] for line in lines if line.startswith(prefix)]
