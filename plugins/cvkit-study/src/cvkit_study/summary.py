"""A study's summary: study.json (every run, every statistic) and study.md (the tables)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cvkit_study.statistics import ACCURACIES, METRICS, TIMES

SHOWN = ("val_acc", "test_acc", "val_loss", "val_ece", "wall_seconds")
"""The metrics of the per-variant table (study.json has them all)."""

PERCENT = {"val_acc", "test_acc", "val_ece"}


def _value(name: str, value: float | None) -> str:
    if value is None:
        return "-"
    if name in PERCENT:
        return f"{100 * value:.2f}"
    if name.endswith("seconds"):
        return f"{value:.1f}"
    return f"{value:.4f}"


def _cell(name: str, stats: Mapping[str, Any] | None) -> str:
    if not stats or stats.get("mean") is None:
        return "-"
    text = _value(name, stats["mean"])
    if stats.get("std") is not None:
        low, high = stats["ci95"]
        text += f" ± {_value(name, stats['std'])} [{_value(name, low)}, {_value(name, high)}]"
    return text


def markdown(study: Mapping[str, Any]) -> str:
    """study.md: per variant mean ± sd [95% CI] of each metric (accuracies and ECE in
    percent), the evaluation set's sampling error, the warnings, then each variant's paired
    difference from the baseline with its intervals, tests, Holm-adjusted p and power."""
    statistics = study["statistics"]
    present = [
        name for name in SHOWN if any(name in entry["metrics"] for entry in statistics.values())
    ]
    header = [
        f"# Study {study['name']}",
        "",
        f"{len(study['seeds'])} seeds ({', '.join(map(str, study['seeds']))}) x "
        f"{len(study['variants'])} variants; baseline: {study['baseline']}. Mean ± sample "
        "standard deviation [95% confidence interval of the mean, Student's t]; accuracies "
        "and ECE in percent, losses in nats, times in seconds.",
    ]
    dropped = study.get("dropped") or {}
    if dropped:
        header += [
            "",
            "Recipe keys a variant's change of component leaves out (not taken by it):",
            "",
        ]
        header += [f"- {variant}: {note}" for variant, notes in dropped.items() for note in notes]
    lines = [
        *header,
        "",
        "| variant | n | " + " | ".join(present) + " |",
        "| --- | --- | " + " | ".join("---" for _ in present) + " |",
    ]
    for variant, entry in statistics.items():
        cells = [_cell(name, entry["metrics"].get(name)) for name in present]
        lines.append(f"| {variant} | {len(entry['seeds'])} | " + " | ".join(cells) + " |")
    lines += _sampling_error(study)
    lines += [f"\nwarning: {line}" for line in warnings(study)]
    compared = [
        (variant, entry["vs_baseline"]) for variant, entry in statistics.items() if _compared(entry)
    ]
    if compared:
        adjusted = [
            name
            for _, d in compared
            for name, r in d.items()
            if r and r.get("p_adjusted") is not None
        ]
        times = sum(name in TIMES for name in adjusted)
        lines += [
            "",
            f"Paired by seed against {study['baseline']}: mean difference (variant - "
            "baseline) [95% t interval]; bootstrap: percentile 95% interval; d_z: Cohen's "
            "(mean / sd of the differences); p: paired t-test (the exact sign test where the "
            "differences have no spread); Wilcoxon: signed-rank p (in parentheses the smallest "
            f"it can reach with these seeds); Holm: p adjusted over the study's "
            f"{len(adjusted) - times} comparisons of accuracy, loss and calibration (the {times} "
            "of times among themselves), * below 0.05; power: of the paired t-test to detect the stated "
            "difference with these seeds, and the seeds 80% power needs.",
            "",
            "| variant | metric | seeds | difference [95% CI] | bootstrap | d_z | p | "
            "Wilcoxon | Holm | power (difference) | seeds for 80% |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for variant, differences in compared:
            for name in present:
                result = differences.get(name)
                if result is not None:
                    lines.append(f"| {variant} | {name} | " + " | ".join(_row(name, result)) + " |")
    unfinished = [run for run in study["runs"] if run["status"] != "finished"]
    if unfinished:
        lines += ["", "Runs without a result:", ""]
        lines += [
            f"- {r['variant']} seed {r['seed']}: {r.get('error', r['status'])}" for r in unfinished
        ]
    return "\n".join(lines) + "\n"


def _p(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if value >= 0.001 else f"{value:.1e}"


def _interval(name: str, interval: Sequence[float] | None) -> str:
    if interval is None:
        return "-"
    return f"[{_signed(name, interval[0])}, {_signed(name, interval[1])}]"


def _row(name: str, result: Mapping[str, Any]) -> list[str]:
    """The cells of one comparison, after its variant and metric."""
    difference = _signed(name, result["mean_difference"])
    if result["ci95"] is None:  # every seed differs by the same amount
        difference += " (undetermined: the differences have no spread)"
    else:
        difference += f" {_interval(name, result['ci95'])}" + (
            " *" if result["significant"] else ""
        )
    power = result.get("power")
    if power is None:
        power_cells = ["-", "-"]
    else:
        needed = power["seeds_for_80"]
        share = "-" if power["power"] is None else f"{100 * power['power']:.0f}%"
        power_cells = [
            f"{share} ({_value(name, abs(power['effect']))})",
            str(needed) if needed is not None else "more than 1,000",
        ]
    dz = result.get("cohens_dz")
    return [
        str(len(result["seeds"])),
        difference,
        _interval(name, result.get("bootstrap_ci95")),
        "-" if dz is None else f"{dz:+.2f}",
        _p(result["p_value"]),
        f"{_p(result['wilcoxon_p'])} ({_p(result['wilcoxon_smallest_p'])})",
        _p(result.get("p_adjusted")),
        *power_cells,
    ]


def _sampling_error(study: Mapping[str, Any]) -> list[str]:
    """One line per accuracy: the binomial standard error of one run's figure on its
    evaluation images, against the seeds' standard deviation (which includes it)."""
    lines = []
    for name, split in ACCURACIES.items():
        errors = [
            (variant, entry["metrics"][name])
            for variant, entry in study["statistics"].items()
            if entry["metrics"].get(name, {}).get("binomial_se") is not None
        ]
        if not errors:
            continue
        samples = sorted(
            {r["samples"][split] for r in study["runs"] if split in (r.get("samples") or {})}
        )
        parts = ", ".join(
            f"{variant} ±{100 * m['binomial_se']:.2f}"
            + (f" (seed sd {100 * m['std']:.2f})" if m.get("std") is not None else "")
            for variant, m in errors
        )
        lines += [
            "",
            f"Sampling error of the evaluation set: one run's {name} is measured on "
            f"{' or '.join(f'{n:,}' for n in samples)} images, a binomial standard error of "
            f"{parts} points; the seeds' sd includes it.",
        ]
    return lines


def _compared(entry: Mapping[str, Any]) -> bool:
    """Whether a variant has a paired comparison with the baseline for some metric."""
    return any(result is not None for result in (entry.get("vs_baseline") or {}).values())


def warnings(study: Mapping[str, Any]) -> list[str]:
    """What makes the tables less than they seem: variants with fewer than 3 seeds (their
    t intervals are very wide), seeds a variant lacks, variants with no paired comparison,
    val metrics of weights selected on the validation split."""
    seeds = list(study["seeds"])
    found = []
    for variant, entry in study["statistics"].items():
        have = list(entry["seeds"])
        if len(have) < 3:
            found.append(
                f"{variant} has {len(have)} seed{'s' if len(have) != 1 else ''}: with fewer "
                "than 3 its interval is very wide and its test has little power"
            )
        missing = [s for s in seeds if s not in have]
        if missing:
            found.append(f"{variant} lacks seed {', '.join(map(str, missing))} (no result)")
        if variant != study["baseline"] and not _compared(entry):
            found.append(
                f"{variant} is not compared with {study['baseline']}: fewer than 2 seeds in common"
            )
    best = sorted(
        {r["variant"] for r in study["runs"] if str(r.get("weights", "")).startswith("best")}
    )
    if best:
        found.append(
            f"{', '.join(best)} evaluated the best validation epoch's weights "
            '(trainer.eval_weights = "best"): their val metrics are selected on the split they '
            "report and so are optimistic; test metrics, where there are any, are not"
        )
    return found


def _signed(name: str, value: float) -> str:
    text = _value(name, abs(value))
    return f"-{text}" if value < 0 else f"+{text}"


def study_record(
    name: str,
    spec_toml: Mapping[str, Any],
    runs: Sequence[Mapping[str, Any]],
    statistics: Mapping[str, Any],
    effect: float | None = None,
    dropped: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """study.json's content (``effect``: the accuracy difference, a fraction, whose power it
    states; None: each metric's smallest reported difference; ``dropped``: by variant, the
    recipe keys its switch of a component left out)."""
    return {
        "name": name,
        "baseline": spec_toml["study"]["baseline"],
        "seeds": spec_toml["study"]["seeds"],
        "set": spec_toml["study"]["set"],
        "variants": spec_toml["variants"],
        "metrics": {key: ".".join(path) for key, path in METRICS.items()},
        "effect": effect,
        "dropped": {variant: list(lines) for variant, lines in (dropped or {}).items()},
        "runs": list(runs),
        "statistics": dict(statistics),
    }
