"""The study's statistics against independent computations from their definitions, written
here without the scipy and statsmodels calls the plugin makes: Student's t through its
density integrated by Simpson's rule, the exact bootstrap and Wilcoxon distributions by
enumeration, the sign test from the binomial, Holm's step-down by hand, the power of the
paired t-test by simulating it."""

from __future__ import annotations

import itertools
import math
import statistics

import numpy as np
import pytest

from cvkit_study.statistics import adjust, binomial_se, paired, power, summarise

A = [0.712, 0.698, 0.731, 0.705, 0.719]
B = [0.701, 0.699, 0.712, 0.688, 0.713]
DIFFERENCES = [a - b for a, b in zip(A, B, strict=True)]  # +1.1, -0.1, +1.9, +1.7, +0.6 points


def t_density(x: float, df: int) -> float:
    c = math.gamma((df + 1) / 2) / (math.sqrt(df * math.pi) * math.gamma(df / 2))
    return c * (1 + x * x / df) ** (-(df + 1) / 2)


def t_cdf(x: float, df: int, steps: int = 20_000) -> float:
    """P(T <= x) = 1/2 + the integral of the density from 0 to x (Simpson's rule)."""
    h = x / steps
    total = t_density(0, df) + t_density(x, df)
    total += sum((4 if i % 2 else 2) * t_density(i * h, df) for i in range(1, steps))
    return 0.5 + total * h / 3


def t_quantile(p: float, df: int) -> float:
    low, high = 0.0, 100.0
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if t_cdf(middle, df) < p else (low, middle)
    return (low + high) / 2


def test_the_reference_t_is_student_s_at_tabulated_points() -> None:
    assert t_quantile(0.975, 2) == pytest.approx(4.302653, rel=1e-5)  # tables
    assert t_quantile(0.975, 4) == pytest.approx(2.776445, rel=1e-5)


def test_paired_difference_t_interval_and_t_test_agree_with_the_definitions() -> None:
    result = paired(dict(enumerate(A)), dict(enumerate(B)))
    assert result is not None
    n, mean, sd = 5, statistics.fmean(DIFFERENCES), statistics.stdev(DIFFERENCES)
    half = t_quantile(0.975, n - 1) * sd / math.sqrt(n)
    t = mean / (sd / math.sqrt(n))
    assert result["mean_difference"] == pytest.approx(mean)
    assert result["ci95"] == pytest.approx([mean - half, mean + half], rel=1e-5)
    assert result["t_p"] == pytest.approx(2 * (1 - t_cdf(abs(t), n - 1)), rel=1e-5)
    assert result["p_value"] == result["t_p"] and result["test"] == "paired t"
    assert result["cohens_dz"] == pytest.approx(mean / sd)  # Cohen's d_z


def test_wilcoxon_is_the_exact_signed_rank_distribution_and_its_floor_is_stated() -> None:
    """All 2^5 sign assignments of the ranks of |d|; p = P(W <= w_observed or its mirror)."""
    result = paired(dict(enumerate(A)), dict(enumerate(B)))
    assert result is not None
    ranks = {d: r for r, d in enumerate(sorted(DIFFERENCES, key=abs), start=1)}
    observed = sum(ranks[d] for d in DIFFERENCES if d > 0)
    total = sum(ranks.values())
    sums = [sum(r for r, s in zip(ranks.values(), signs, strict=True) if s) for signs in
            itertools.product([0, 1], repeat=5)]  # fmt: skip
    extreme = min(observed, total - observed)
    p = sum(1 for w in sums if w <= extreme or w >= total - extreme) / len(sums)
    assert result["wilcoxon_p"] == pytest.approx(p)  # 4 / 32
    assert result["wilcoxon_smallest_p"] == pytest.approx(2 / 32)  # all signs alike


def test_ties_in_the_differences_keep_the_wilcoxon_test_exact() -> None:
    """Accuracies move in steps of 1/N, so |d| ties: midranks, all 2^5 signs enumerated."""
    a, b = [0.52, 0.51, 0.50, 0.53, 0.52], [0.51, 0.50, 0.52, 0.50, 0.50]
    d = [round(x - y, 10) for x, y in zip(a, b, strict=True)]  # +1, +1, -2, +3, +2 points
    ordered = sorted(abs(x) for x in d)
    midrank = {v: statistics.fmean(i + 1 for i, w in enumerate(ordered) if w == v) for v in ordered}
    ranks = [midrank[abs(x)] for x in d]
    observed = sum(r for r, x in zip(ranks, d, strict=True) if x > 0)
    total = sum(ranks)
    sums = [sum(r for r, s in zip(ranks, signs, strict=True) if s)
            for signs in itertools.product([0, 1], repeat=5)]  # fmt: skip
    extreme = min(observed, total - observed)
    p = sum(1 for w in sums if w <= extreme + 1e-9 or w >= total - extreme - 1e-9) / 32
    result = paired(dict(enumerate(a)), dict(enumerate(b)))
    assert result is not None and result["wilcoxon_p"] == pytest.approx(p)


def test_the_bootstrap_interval_is_the_exact_bootstrap_distribution_s() -> None:
    """With 3 seeds the 27 equally likely resamples give 10 means; the smallest and the
    largest each have probability 1/27 > 2.5%, so the exact 95% percentile interval is
    [min d, max d]. With 5 seeds: the 3,125 resamples enumerated, their 2.5% and 97.5%
    quantiles; 9,999 random resamples land within a few hundredths of a point of them."""
    three = paired({0: 0.71, 1: 0.70, 2: 0.73}, {0: 0.70, 1: 0.705, 2: 0.71})
    assert three is not None
    assert three["bootstrap_ci95"] == pytest.approx([-0.005, 0.02])
    five = paired(dict(enumerate(A)), dict(enumerate(B)))
    assert five is not None
    means = sorted(
        statistics.fmean(resample) for resample in itertools.product(DIFFERENCES, repeat=5)
    )
    exact = [means[round(0.025 * (len(means) - 1))], means[round(0.975 * (len(means) - 1))]]
    assert five["bootstrap_ci95"] == pytest.approx(exact, abs=3e-4)


def test_no_spread_uses_the_exact_sign_test_and_is_never_starred() -> None:
    """Every seed 2 points better: no t statistic, interval or d_z; the exact sign test
    gives 2 / 2^n (6 seeds: 1/32); even when that survives Holm it is not starred."""
    base = {s: 0.40 + 0.02 * s for s in range(6)}
    shift = {s: v + 0.02 for s, v in base.items()}
    result = paired(shift, base)
    assert result is not None
    assert result["ci95"] is None and result["t_p"] is None and result["cohens_dz"] is None
    assert result["p_value"] == pytest.approx(2 * 0.5**6) and "sign test" in result["test"]
    adjust([result])
    assert result["p_adjusted"] == pytest.approx(1 / 32) and result["significant"] is None
    same = paired(base, base)
    assert same is not None and same["p_value"] == 1.0 and same["mean_difference"] == 0


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down: sorted ascending, p_(i) x (m - i + 1), running maximum, at most 1."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def test_holm_adjusts_every_comparison_and_significance_follows_the_adjusted_p() -> None:
    comparisons = [{"p_value": p, "t_p": p} for p in (0.0075, 0.0008, 0.003, 0.2, 0.81, 0.04)]
    adjust(comparisons)
    expected = holm([c["p_value"] for c in comparisons])
    assert [c["p_adjusted"] for c in comparisons] == pytest.approx(expected)
    assert [c["significant"] for c in comparisons] == [p < 0.05 for p in expected]
    assert comparisons[0]["significant"] is True and comparisons[5]["significant"] is False


def simulated_power(effect_size: float, n: int, trials: int = 200_000) -> float:
    """The share of simulated paired studies (differences ~ N(d, 1), n seeds) whose t
    statistic lies beyond the two-sided 5% critical value."""
    rng = np.random.default_rng(1)
    d = rng.normal(effect_size, 1.0, size=(trials, n))
    t = d.mean(axis=1) / (d.std(axis=1, ddof=1) / math.sqrt(n))
    critical = t_quantile(0.975, n - 1) if n < 200 else 1.962339  # t(0.975; 999), tables
    return float(np.mean(np.abs(t) > critical))


def test_power_and_seeds_needed_agree_with_simulated_t_tests() -> None:
    """0.94 points to detect at a spread of 1.21 points (the SE ablation's figures): the
    power with 5 seeds, and the smallest n whose simulated power reaches 80%."""
    stated = power(0.0121, 5, 0.0094)
    assert stated is not None
    assert stated["power"] == pytest.approx(simulated_power(0.94 / 1.21, 5), abs=0.005)
    needed = stated["seeds_for_80"]
    assert simulated_power(0.94 / 1.21, needed) >= 0.8 - 0.004
    assert simulated_power(0.94 / 1.21, needed - 1) < 0.8 + 0.004
    assert power(0.0, 5, 0.0094) is None  # no spread: no power to state


@pytest.mark.parametrize(("effect_size", "n"), [(5.6, 2), (13.0, 5), (0.78, 1000)])
def test_power_where_the_noncentral_t_fails_still_agrees_with_simulation(effect_size, n) -> None:
    """Noncentralities above about 8 (statsmodels' and scipy's noncentral t give NaN there)."""
    stated = power(1.0, n, effect_size)
    assert stated is not None and stated["power"] is not None
    trials = 200_000 if n < 100 else 20_000
    assert stated["power"] == pytest.approx(simulated_power(effect_size, n, trials), abs=0.006)


def test_binomial_error_is_the_evaluation_set_s_own() -> None:
    """sqrt(p (1 - p) / N): 0.64 points for 71% on 5,000 images."""
    assert binomial_se([0.71], [5000]) == pytest.approx(math.sqrt(0.71 * 0.29 / 5000))
    assert 100 * binomial_se([0.71], [5000]) == pytest.approx(0.6417, abs=1e-4)
    assert binomial_se([0.71, 0.69], [5000, 2000]) == pytest.approx(
        (math.sqrt(0.71 * 0.29 / 5000) + math.sqrt(0.69 * 0.31 / 2000)) / 2
    )


def test_summarise_adjusts_over_all_variants_and_metrics_and_states_power() -> None:
    runs = {
        variant: {
            s: {"metrics": {"val_acc": acc[s], "val_loss": 1 - acc[s]}, "samples": {"val": 500}}
            for s in range(5)
        }
        for variant, acc in (("base", B), ("a", A), ("b", [x + 0.003 for x in B]))
    }
    runs["b"][2]["metrics"]["val_acc"] += 0.004  # some spread
    summary = summarise(runs, "base", effect=0.01)
    comparisons = [
        summary[v]["vs_baseline"][m] for v in ("a", "b") for m in ("val_acc", "val_loss")
    ]
    assert [c["p_adjusted"] for c in comparisons] == pytest.approx(
        holm([c["p_value"] for c in comparisons])
    )
    accuracy = summary["a"]["vs_baseline"]["val_acc"]
    assert accuracy["power"]["effect"] == 0.01  # --effect for accuracies
    loss = summary["a"]["vs_baseline"]["val_loss"]  # other metrics: the smallest difference
    assert loss["power"]["effect"] == pytest.approx(
        min(abs(summary[v]["vs_baseline"]["val_loss"]["mean_difference"]) for v in ("a", "b"))
    )
    assert summary["a"]["metrics"]["val_acc"]["binomial_se"] == pytest.approx(
        statistics.fmean(math.sqrt(p * (1 - p) / 500) for p in A)
    )


def test_times_are_a_family_of_their_own_so_timing_noise_never_moves_a_quality_p() -> None:
    """The same accuracies with two draws of wall times (a resumed run, a busy machine):
    the quality metrics' adjusted p are the same (it made an interrupted and continued study
    differ from an uninterrupted one in its Holm p), and each family is Holm's by hand."""

    def summary(seconds: list[float]) -> dict:
        return summarise(
            {
                variant: {
                    s: {"metrics": {"val_acc": acc[s], "wall_seconds": times[s]}} for s in range(5)
                }
                for variant, acc, times in (
                    ("base", B, seconds),
                    ("a", A, [11.0, 12.0, 11.0, 11.5, 12.0]),
                )
            },
            "base",
        )

    quiet, busy = summary([10.0, 11.0, 10.5, 10.2, 10.9]), summary([10.0, 31.0, 10.5, 12.0, 10.9])
    for name in ("val_acc", "wall_seconds"):
        alone = quiet["a"]["vs_baseline"][name]
        assert alone["p_adjusted"] == pytest.approx(alone["p_value"])  # a family of one
    assert (
        busy["a"]["vs_baseline"]["val_acc"]["p_adjusted"]
        == quiet["a"]["vs_baseline"]["val_acc"]["p_adjusted"]
    )
    assert busy["a"]["vs_baseline"]["wall_seconds"]["p_value"] != pytest.approx(
        quiet["a"]["vs_baseline"]["wall_seconds"]["p_value"]
    )


def test_a_single_non_zero_difference_has_no_signed_rank_evidence() -> None:
    """Two seeds, one tied with the baseline: one sign, Wilcoxon p = 1 (its floor 2/2^1)."""
    result = paired({0: 0.50, 1: 0.53}, {0: 0.50, 1: 0.51})
    assert result is not None
    assert result["wilcoxon_p"] == 1.0 and result["wilcoxon_smallest_p"] == 1.0
    assert result["bootstrap_ci95"] is None  # fewer than 3 seeds
