"""A study's statistics: per variant the mean, standard deviation and 95% confidence
interval of each metric; against the baseline the paired difference by seed, its 95%
confidence interval and Student's paired t-test (scipy.stats)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

METRICS: dict[str, tuple[str, ...]] = {
    "val_acc": ("val", "top1"),
    "test_acc": ("test", "top1"),
    "val_loss": ("val", "loss"),
    "test_loss": ("test", "loss"),
    "val_ece": ("calibration", "val", "ece_before"),
    "train_seconds": ("training", "seconds"),
    "wall_seconds": ("training", "wall_seconds"),
}
"""Each metric a study reports and where it is in a run's eval.json (accuracies as
fractions, losses in nats, ECE of the uncalibrated model, seconds)."""

CONFIDENCE = 0.95


def metrics_of(evaluation: Mapping[str, Any]) -> dict[str, float]:
    """The study metrics of one eval.json (those it has: no test split, no test metrics)."""
    values = {}
    for name, path in METRICS.items():
        node: Any = evaluation
        for key in path:
            node = node.get(key) if isinstance(node, Mapping) else None
        if isinstance(node, int | float) and math.isfinite(node):
            values[name] = float(node)
    return values


def read_run_metrics(run_dir: Path) -> dict[str, float] | None:
    """The metrics of a finished run (None while it has no eval.json)."""
    path = run_dir / "eval.json"
    if not path.is_file():
        return None
    return metrics_of(json.loads(path.read_text(encoding="utf-8")))


def describe(values: Sequence[float]) -> dict[str, Any]:
    """n, mean, sample standard deviation and the t-based 95% confidence interval of the
    mean (None for fewer than two values)."""
    array = np.asarray(values, dtype=float)
    n = len(array)
    summary: dict[str, Any] = {"n": n, "mean": float(array.mean()) if n else None}
    if n < 2:
        return summary | {"std": None, "ci95": None}
    sem = stats.sem(array)
    low, high = (
        stats.t.interval(CONFIDENCE, n - 1, loc=array.mean(), scale=sem)
        if sem > 0
        else (
            array.mean(),
            array.mean(),
        )
    )
    return summary | {"std": float(array.std(ddof=1)), "ci95": [float(low), float(high)]}


def paired(variant: Mapping[int, float], baseline: Mapping[int, float]) -> dict[str, Any] | None:
    """variant - baseline over the seeds both have: the mean difference, its 95%
    confidence interval and the two-sided p-value of the paired t-test
    (scipy.stats.ttest_rel); ``significant`` when the interval excludes 0. When every seed
    differs by the same amount (accuracies move in steps of 1/N) the test is undefined:
    ``ci95``, ``p_value`` and ``significant`` are None (undetermined). None for fewer than
    two common seeds."""
    seeds = sorted(set(variant) & set(baseline))
    if len(seeds) < 2:
        return None
    a = np.array([variant[s] for s in seeds])
    b = np.array([baseline[s] for s in seeds])
    difference = a - b
    if np.allclose(difference, difference[0]):  # no spread: the t-test is undefined
        return {
            "seeds": seeds,
            "mean_difference": float(difference[0]),
            "ci95": None,  # no interval can be estimated from differences without spread
            "p_value": None,
            "significant": None,  # undetermined, never starred
        }
    test = stats.ttest_rel(a, b)
    interval = test.confidence_interval(CONFIDENCE)
    low, high = float(interval.low), float(interval.high)
    return {
        "seeds": seeds,
        "mean_difference": float(difference.mean()),
        "ci95": [low, high],
        "p_value": float(test.pvalue),
        "significant": low > 0 or high < 0,
    }


def summarise(
    results: Mapping[str, Mapping[int, Mapping[str, float]]], baseline: str
) -> dict[str, Any]:
    """``results``: variant -> seed -> metrics of its finished runs. Returns, per variant,
    ``metrics`` (describe() of each metric) and ``vs_baseline`` (paired() of each metric
    against the ``baseline`` variant; absent for the baseline itself)."""
    names = [n for n in METRICS if any(n in m for runs in results.values() for m in runs.values())]
    summary: dict[str, Any] = {}
    for variant, runs in results.items():
        by_metric = {
            name: {seed: m[name] for seed, m in runs.items() if name in m} for name in names
        }
        entry: dict[str, Any] = {
            "seeds": sorted(runs),
            "metrics": {
                name: describe(list(values.values())) for name, values in by_metric.items()
            },
        }
        if variant != baseline and baseline in results:
            base = results[baseline]
            entry["vs_baseline"] = {
                name: paired(values, {seed: m[name] for seed, m in base.items() if name in m})
                for name, values in by_metric.items()
            }
        summary[variant] = entry
    return summary
