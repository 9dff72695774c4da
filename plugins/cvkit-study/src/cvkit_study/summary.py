"""A study's summary: study.json (every run, every statistic) and study.md (the tables)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cvkit_study.statistics import METRICS

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
    percent), then each variant's paired difference from the baseline."""
    statistics = study["statistics"]
    present = [
        name for name in SHOWN if any(name in entry["metrics"] for entry in statistics.values())
    ]
    lines = [
        f"# Study {study['name']}",
        "",
        f"{len(study['seeds'])} seeds ({', '.join(map(str, study['seeds']))}) x "
        f"{len(study['variants'])} variants; baseline: {study['baseline']}. Mean ± sample "
        "standard deviation [95% confidence interval of the mean, Student's t]; accuracies "
        "and ECE in percent, losses in nats, times in seconds.",
        "",
        "| variant | n | " + " | ".join(present) + " |",
        "| --- | --- | " + " | ".join("---" for _ in present) + " |",
    ]
    for variant, entry in statistics.items():
        cells = [_cell(name, entry["metrics"].get(name)) for name in present]
        lines.append(f"| {variant} | {len(entry['seeds'])} | " + " | ".join(cells) + " |")
    lines += [f"\nwarning: {line}" for line in warnings(study)]
    compared = [
        (variant, entry["vs_baseline"]) for variant, entry in statistics.items() if _compared(entry)
    ]
    if compared:
        lines += [
            "",
            f"Paired by seed against {study['baseline']}: mean difference (variant - "
            "baseline) [95% CI], p of the paired t-test; * when the interval excludes 0.",
            "",
            "| variant | metric | seeds | difference [95% CI] | p |",
            "| --- | --- | --- | --- | --- |",
        ]
        for variant, differences in compared:
            for name in present:
                result = differences.get(name)
                if result is None:
                    continue
                difference = _signed(name, result["mean_difference"])
                if result["ci95"] is None:  # every seed differs by the same amount
                    interval = " (undetermined: the differences have no spread)"
                else:
                    low, high = result["ci95"]
                    flag = " *" if result["significant"] else ""
                    interval = f" [{_signed(name, low)}, {_signed(name, high)}]{flag}"
                p = "-" if result["p_value"] is None else f"{result['p_value']:.3f}"
                lines.append(
                    f"| {variant} | {name} | {len(result['seeds'])} | {difference}{interval} | {p} |"
                )
    failed = [run for run in study["runs"] if run["status"] != "finished"]
    if failed:
        lines += ["", "Runs without a result:", ""]
        lines += [
            f"- {r['variant']} seed {r['seed']}: {r.get('error', r['status'])}" for r in failed
        ]
    return "\n".join(lines) + "\n"


def _compared(entry: Mapping[str, Any]) -> bool:
    """Whether a variant has a paired comparison with the baseline for some metric."""
    return any(result is not None for result in (entry.get("vs_baseline") or {}).values())


def warnings(study: Mapping[str, Any]) -> list[str]:
    """What makes the tables less than they seem: variants with fewer than 3 seeds (their
    t intervals are very wide), seeds a variant lacks, variants with no paired comparison."""
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
    return found


def _signed(name: str, value: float) -> str:
    text = _value(name, abs(value))
    return f"-{text}" if value < 0 else f"+{text}"


def study_record(
    name: str,
    spec_toml: Mapping[str, Any],
    runs: Sequence[Mapping[str, Any]],
    statistics: Mapping[str, Any],
) -> dict[str, Any]:
    """study.json's content."""
    return {
        "name": name,
        "baseline": spec_toml["study"]["baseline"],
        "seeds": spec_toml["study"]["seeds"],
        "set": spec_toml["study"]["set"],
        "variants": spec_toml["variants"],
        "metrics": {key: ".".join(path) for key, path in METRICS.items()},
        "runs": list(runs),
        "statistics": dict(statistics),
    }
