"""``cvkit compare RUN_A RUN_B --test mcnemar|bootstrap``: two runs tested on the same images,
from their per-image predictions (predictions.npz), instead of from two accuracies.

McNemar's exact test looks only at the images the runs disagree on: ``b`` images only A
classifies right, ``c`` only B does; under "equally accurate" each is A's with probability
1/2, so the two-sided p is the binomial test of b in b + c (scipy.stats.binomtest). The
paired bootstrap resamples images (both runs' outcomes together) and gives a percentile 95%
interval of the accuracy difference A - B (scipy.stats.bootstrap, 9,999 resamples, a fixed
generator)."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from cvkit import CvkitError, read_predictions
from cvkit_report.runs import RunRecord

TESTS = ("mcnemar", "bootstrap")
RESAMPLES = 9999


def outcomes(a: RunRecord, b: RunRecord, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Whether each image of ``split`` was classified right, (N,) bool, by run ``a`` and
    run ``b``; CvkitError when a run has no predictions of that split or the two were not
    evaluated on the same images (their split hashes differ)."""
    found = []
    for run in (a, b):
        evaluation = run.evaluation or {}
        predictions = read_predictions(run.path, evaluation, split)
        if predictions is None:
            raise CvkitError(
                f"{run.path}: no per-image predictions of its {split} split (predictions.npz, "
                "written by the final evaluation of runs from this cvkit on); --test needs them"
            )
        found.append((evaluation["predictions"][split]["split_hash"], predictions))
    (hash_a, first), (hash_b, second) = found
    if hash_a != hash_b:
        raise CvkitError(
            f"{a.path} and {b.path} were not evaluated on the same {split} images (their "
            "split hashes differ: another dataset, data.val_split or data.split_seed); a "
            "paired test needs the same images"
        )
    return (
        first["predicted"] == first["labels"],
        second["predicted"] == second["labels"],
    )


def mcnemar(right_a: np.ndarray, right_b: np.ndarray) -> dict[str, Any]:
    """McNemar's exact test of two runs' outcomes (N,) bool on the same images."""
    only_a = int(np.sum(right_a & ~right_b))
    only_b = int(np.sum(~right_a & right_b))
    p = stats.binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
    return {
        "test": "mcnemar (exact)",
        "only_a_right": only_a,
        "only_b_right": only_b,
        "p_value": float(p),
    }


def bootstrap(right_a: np.ndarray, right_b: np.ndarray) -> dict[str, Any]:
    """The paired bootstrap's percentile 95% interval of accuracy(A) - accuracy(B), and the
    two-sided share of resampled differences beyond 0 as its p."""
    difference = right_a.astype(float) - right_b.astype(float)
    if np.all(difference == difference[0]):  # every resample gives the same difference
        return {
            "test": "paired bootstrap",
            "ci95": [float(difference[0])] * 2,
            "p_value": 1.0 if difference[0] == 0 else 0.0,
        }
    result = stats.bootstrap(
        (difference,),
        np.mean,
        n_resamples=RESAMPLES,
        method="percentile",
        batch=500,
        rng=np.random.default_rng(0),
    )
    means = result.bootstrap_distribution
    p = 2 * min(np.mean(means <= 0), np.mean(means >= 0))
    interval = result.confidence_interval
    return {
        "test": "paired bootstrap",
        "ci95": [float(interval.low), float(interval.high)],
        "p_value": float(min(1.0, p)),
    }


def paired_test(runs: list[RunRecord], test: str, split: str | None) -> dict[str, Any]:
    """``test`` (one of :data:`TESTS`) of the two ``runs`` on ``split`` (default: test when
    both have test predictions, else val): both accuracies, their difference A - B and the
    test's figures."""
    if len(runs) != 2:
        raise CvkitError(f"--test {test}: expected exactly two runs, got {len(runs)}")
    a, b = runs
    if split is None:
        split = "test" if all(_has(run, "test") for run in runs) else "val"
    right_a, right_b = outcomes(a, b, split)
    figures = mcnemar(right_a, right_b) if test == "mcnemar" else bootstrap(right_a, right_b)
    return {
        "a": str(a.path),
        "b": str(b.path),
        "split": split,
        "images": len(right_a),
        "accuracy_a": float(right_a.mean()),
        "accuracy_b": float(right_b.mean()),
        "difference": float(right_a.mean() - right_b.mean()),
    } | figures


def _has(run: RunRecord, split: str) -> bool:
    return split in ((run.evaluation or {}).get("predictions") or {})


def describe(result: dict[str, Any]) -> str:
    """The result as lines for the terminal."""
    lines = [
        f"{result['test']} on {result['images']:,} {result['split']} images",
        f"  A {result['a']}: {result['accuracy_a']:.2%}",
        f"  B {result['b']}: {result['accuracy_b']:.2%}",
        f"  A - B: {100 * result['difference']:+.2f} points",
    ]
    if "only_a_right" in result:
        lines.append(
            f"  only A right: {result['only_a_right']}, only B right: {result['only_b_right']}"
        )
    else:
        low, high = result["ci95"]
        lines.append(
            f"  95% interval (paired bootstrap): [{100 * low:+.2f}, {100 * high:+.2f}] points"
        )
    lines.append(f"  p = {result['p_value']:.4g}")
    return "\n".join(lines)
