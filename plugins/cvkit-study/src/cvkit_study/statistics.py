"""A study's statistics, through scipy.stats and statsmodels.

Per variant and metric: n, mean, sample standard deviation, the t interval of the mean and,
for accuracies, the evaluation set's own binomial standard error. Per comparison with the
baseline (paired by seed): the mean difference, its t interval and a percentile bootstrap
interval, Cohen's d_z, the paired t-test, the Wilcoxon signed-rank test with its smallest
attainable p, the Holm-adjusted p over the study's comparisons of quality metrics
(accuracies, losses, ECE; the times form a family of their own; ``significant`` from
it), and the power of the paired t-test to detect a stated effect with the seeds it has,
with the seeds 80% power needs."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import integrate, stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower

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

TIMES = ("train_seconds", "wall_seconds")
"""The metrics of cost, not of the model: Holm adjusts them as a family of their own, so
that timing noise (a resumed run, a busy machine) never moves the adjusted p of a quality
metric (accuracy, loss, calibration), whose family is the study's question."""

ACCURACIES = {"val_acc": "val", "test_acc": "test"}
"""The accuracy metrics and the eval.json split whose ``samples`` they are measured on."""

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
POWER = 0.8
BOOTSTRAP_RESAMPLES = 9999
MOST_SEEDS = 1000
"""Seeds-needed figures above this are reported as more than it."""


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


def read_run(run_dir: Path) -> dict[str, Any] | None:
    """What a study keeps of a finished run (None while it has no eval.json): its
    ``metrics``, ``samples`` (images per evaluated split) and ``weights`` (which weights
    were evaluated: ``last``, ``best (epoch k)``, ...)."""
    path = run_dir / "eval.json"
    if not path.is_file():
        return None
    evaluation = json.loads(path.read_text(encoding="utf-8"))
    samples = {
        split: evaluation[split]["samples"]
        for split in ACCURACIES.values()
        if isinstance(evaluation.get(split), Mapping) and "samples" in evaluation[split]
    }
    return {
        "metrics": metrics_of(evaluation),
        "samples": samples,
        "weights": str(evaluation.get("weights", "")),
    }


def describe(values: Sequence[float]) -> dict[str, Any]:
    """n, mean, sample standard deviation and the t-based 95% confidence interval of the
    mean (None for fewer than two values)."""
    array = np.asarray(values, dtype=float)
    n = len(array)
    summary: dict[str, Any] = {"n": n, "mean": float(array.mean()) if n else None}
    if n < 2:
        return summary | {"std": None, "ci95": None}
    sem = stats.sem(array)
    if sem > 0:
        low, high = stats.t.interval(CONFIDENCE, n - 1, loc=array.mean(), scale=sem)
    else:
        low = high = array.mean()
    return summary | {"std": float(array.std(ddof=1)), "ci95": [float(low), float(high)]}


def binomial_se(accuracies: Sequence[float], samples: Sequence[int]) -> float | None:
    """The evaluation set's own sampling error: the mean over runs of the binomial standard
    error sqrt(p (1 - p) / N) of an accuracy p measured on N images (a fraction)."""
    errors = [math.sqrt(p * (1 - p) / n) for p, n in zip(accuracies, samples, strict=True) if n > 0]
    return float(np.mean(errors)) if errors else None


def smallest_wilcoxon_p(n: int) -> float:
    """The smallest two-sided p the exact Wilcoxon signed-rank test can give with n
    non-zero differences: every sign the same, 2 / 2^n (0.0625 for 5 seeds)."""
    return min(1.0, 2.0 / 2**n)


def paired(variant: Mapping[int, float], baseline: Mapping[int, float]) -> dict[str, Any] | None:
    """variant - baseline over the seeds both have (None for fewer than two).

    Returns ``seeds``, ``mean_difference``, ``sd_difference``, ``ci95`` (t interval),
    ``bootstrap_ci95`` (percentile bootstrap of the mean difference; None
    below 3 seeds), ``cohens_dz`` (mean / sd of the differences), ``t_p`` (paired t-test,
    scipy.stats.ttest_rel), ``wilcoxon_p`` and ``wilcoxon_smallest_p`` (the signed-rank
    test over the non-zero differences, exact by enumerating their 2^n signs up to 13 seeds,
    9,999 random sign sets beyond), ``p_value`` (the comparison's test: the t-test; the
    exact sign test, scipy.stats.binomtest, when the differences have no spread) and
    ``test`` naming it. ``p_adjusted`` and ``significant`` come from :func:`adjust`.

    When every seed differs by the same amount (accuracies move in steps of 1/N) the t
    statistic, its interval and d_z are undefined (None) and ``significant`` stays None:
    undetermined, never starred."""
    seeds = sorted(set(variant) & set(baseline))
    if len(seeds) < 2:
        return None
    difference = np.array([variant[s] - baseline[s] for s in seeds])
    n = len(seeds)
    spread = not np.allclose(difference, difference[0], rtol=0, atol=1e-12)
    nonzero = difference[np.abs(difference) > 1e-12]
    result: dict[str, Any] = {
        "seeds": seeds,
        "mean_difference": float(difference.mean()),
        "sd_difference": float(difference.std(ddof=1)),
        "ci95": None,
        "bootstrap_ci95": None,
        "cohens_dz": None,
        "t_p": None,
        "wilcoxon_p": 1.0,
        "wilcoxon_smallest_p": smallest_wilcoxon_p(len(nonzero)),
    }
    if len(nonzero) > 1 and spread:  # ties (steps of 1/N) are common: exact by permutation
        permutations = stats.PermutationMethod(rng=np.random.default_rng(0))
        result["wilcoxon_p"] = float(stats.wilcoxon(nonzero, method=permutations).pvalue)
    elif len(nonzero) and not spread:  # all alike: the signed-rank test is the sign test
        result["wilcoxon_p"] = float(stats.binomtest(int((nonzero > 0).sum()), len(nonzero)).pvalue)
    if not spread:
        return result | {"p_value": result["wilcoxon_p"], "test": "exact sign test (no spread)"}
    test = stats.ttest_rel(difference, np.zeros(n))
    interval = test.confidence_interval(CONFIDENCE)
    return result | {
        "ci95": [float(interval.low), float(interval.high)],
        "bootstrap_ci95": _bootstrap(difference) if n >= 3 else None,
        "cohens_dz": float(difference.mean() / difference.std(ddof=1)),
        "t_p": float(test.pvalue),
        "p_value": float(test.pvalue),
        "test": "paired t",
    }


def _bootstrap(difference: np.ndarray) -> list[float]:
    """The percentile bootstrap 95% interval of the mean of ``difference`` (9,999
    resamples from a fixed generator, so a study summarises to the same figures again)."""
    interval = stats.bootstrap(
        (difference,),
        np.mean,
        confidence_level=CONFIDENCE,
        n_resamples=BOOTSTRAP_RESAMPLES,
        method="percentile",
        rng=np.random.default_rng(0),
    ).confidence_interval
    return [float(interval.low), float(interval.high)]


def power(sd_difference: float, n: int, effect: float) -> dict[str, Any] | None:
    """The paired t-test's power (two-sided, alpha 0.05) to detect a true mean difference of
    ``effect`` when the differences have standard deviation ``sd_difference``, with ``n``
    seeds, and the fewest seeds with 80% power (None beyond 1,000), from statsmodels'
    TTestPower (see :func:`_power_by_integration` where it fails). None without spread."""
    if not sd_difference > 0 or effect == 0:
        return None
    size = abs(effect) / sd_difference
    analysis = TTestPower()

    def at(seeds: int) -> float:
        value = float(analysis.power(effect_size=size, nobs=seeds, alpha=ALPHA))
        return value if math.isfinite(value) else _power_by_integration(size, seeds)

    now = at(n)
    needed: int | None = None
    if at(MOST_SEEDS) >= POWER:  # power grows with the seeds: bisect for the first >= 80%
        low, high = 2, MOST_SEEDS
        while low < high:
            middle = (low + high) // 2
            low, high = (middle + 1, high) if at(middle) < POWER else (low, middle)
        needed = low
    return {"effect": float(effect), "power": now, "seeds_for_80": needed}


def _power_by_integration(effect_size: float, n: int) -> float:
    """The two-sided paired t-test's power for Cohen's d ``effect_size`` and ``n`` seeds, as
    the expectation over the variance: with noncentrality nc = d sqrt(n), df = n - 1, the
    critical value c and s = sqrt(V / df) for V ~ chi-square(df), the power is
    E[Phi(nc - c s) + Phi(-nc - c s)] (scipy.integrate.quad). Where statsmodels' (and
    scipy's) noncentral t returns NaN, above a noncentrality of about 8."""
    df, nc = n - 1, effect_size * math.sqrt(n)
    critical = stats.t.ppf(1 - ALPHA / 2, df)

    def integrand(v: float) -> float:
        s = math.sqrt(v / df)
        return float(
            (stats.norm.cdf(nc - critical * s) + stats.norm.cdf(-nc - critical * s))
            * stats.chi2.pdf(v, df)
        )

    low, high = stats.chi2.ppf([1e-12, 1 - 1e-12], df)  # where the variance's mass is
    value, _ = integrate.quad(integrand, low, high, limit=200)
    return float(min(1.0, value))


def adjust(comparisons: Sequence[dict[str, Any]]) -> None:
    """Holm's step-down adjustment of every comparison's ``p_value`` (statsmodels'
    multipletests), in place: ``p_adjusted``, and ``significant`` = p_adjusted < 0.05 where
    the differences have spread (None where they have none: undetermined)."""
    tested = [c for c in comparisons if c.get("p_value") is not None]
    if not tested:
        return
    _, adjusted, _, _ = multipletests([c["p_value"] for c in tested], alpha=ALPHA, method="holm")
    for comparison, p in zip(tested, adjusted, strict=True):
        comparison["p_adjusted"] = float(p)
        comparison["significant"] = bool(p < ALPHA) if comparison["t_p"] is not None else None


def default_effects(summary: Mapping[str, Any]) -> dict[str, float]:
    """Per metric, the smallest non-zero |mean difference| the study reports: the effect its
    power is stated for when none is given."""
    effects: dict[str, float] = {}
    for entry in summary.values():
        for name, comparison in (entry.get("vs_baseline") or {}).items():
            size = abs(comparison["mean_difference"]) if comparison else 0.0
            if size > 1e-12:
                effects[name] = min(effects.get(name, math.inf), size)
    return effects


def summarise(
    results: Mapping[str, Mapping[int, Mapping[str, Any]]],
    baseline: str,
    effect: float | None = None,
) -> dict[str, Any]:
    """``results``: variant -> seed -> what :func:`read_run` keeps of its finished run.
    ``effect``: the difference in accuracy (a fraction) whose power is stated; other metrics
    and the default use the smallest difference the study reports for each.

    Returns, per variant, ``seeds``, ``metrics`` (describe() of each metric, with
    ``binomial_se`` for accuracies) and ``vs_baseline`` (paired() of each metric against
    ``baseline``, Holm-adjusted over all quality metrics' comparisons (the times' among
    themselves), with ``power``; absent for the baseline)."""
    names = [
        n
        for n in METRICS
        if any(n in r["metrics"] for runs in results.values() for r in runs.values())
    ]
    summary: dict[str, Any] = {}
    base = {
        name: {
            s: r["metrics"][name]
            for s, r in results.get(baseline, {}).items()
            if name in r["metrics"]
        }
        for name in names
    }
    for variant, runs in results.items():
        by_metric = {
            name: {seed: r["metrics"][name] for seed, r in runs.items() if name in r["metrics"]}
            for name in names
        }
        metrics = {name: describe(list(values.values())) for name, values in by_metric.items()}
        for name, split in ACCURACIES.items():
            counted = [
                (r["metrics"][name], r["samples"][split])
                for r in runs.values()
                if name in r["metrics"] and split in r.get("samples", {})
            ]
            if counted:
                metrics[name]["binomial_se"] = binomial_se(*map(list, zip(*counted, strict=True)))
        entry: dict[str, Any] = {"seeds": sorted(runs), "metrics": metrics}
        if variant != baseline and baseline in results:
            entry["vs_baseline"] = {
                name: paired(values, base[name]) for name, values in by_metric.items()
            }
        summary[variant] = entry
    for times in (False, True):  # two families: the quality metrics, the times
        adjust(
            [
                c
                for entry in summary.values()
                for name, c in (entry.get("vs_baseline") or {}).items()
                if c and (name in TIMES) == times
            ]
        )
    effects = default_effects(summary)
    for entry in summary.values():
        for name, comparison in (entry.get("vs_baseline") or {}).items():
            if comparison is None:
                continue
            size = effect if effect is not None and name in ACCURACIES else effects.get(name)
            comparison.setdefault("significant", None)
            comparison.setdefault("p_adjusted", None)
            comparison["power"] = (
                power(comparison["sd_difference"], len(comparison["seeds"]), size)
                if size is not None
                else None
            )
    return summary
