"""Progress: log lines inside an epoch without a terminal, ETAs past a day, results once."""

from __future__ import annotations

import json
import re
from pathlib import Path

from cvkit.progress import Meter

from helpers import run_cvkit


def test_a_run_without_a_terminal_logs_progress_inside_each_epoch(
    tiny_recipe: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    result = run_cvkit(  # stderr is a pipe here, as under nohup or SLURM
        "run",
        str(tiny_recipe),
        "--output",
        str(run),
        "--set",
        'callbacks=[{ name = "progress", log_every_seconds = 1e-9, refresh_seconds = 0 }, '
        '{ name = "metrics_jsonl" }, { name = "checkpoint" }]',
    )
    assert result.returncode == 0, result.stderr
    inside = re.findall(r"epoch 2/3:\s+(\d+)% (\d+)/80 \[.*img/s, loss [\d.]+, acc", result.stderr)
    assert inside and any(int(percent) < 100 for percent, _ in inside)
    assert "run ETA" in result.stderr
    assert "validation:" in result.stderr and "evaluating test:" in result.stderr
    # the final results once, on stdout; the detailed lines go to run.log
    output = result.stdout + result.stderr
    assert output.count("test accuracy") == 1 and "test (best" not in output
    assert "test (best" in (run / "run.log").read_text()


def test_the_epoch_line_shows_the_rate_the_epoch_trained_with(
    tiny_recipe: Path, tmp_path: Path
) -> None:
    result = run_cvkit("run", str(tiny_recipe), "--output", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    epochs = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    assert epochs[0]["lr"] == 0.05  # the recipe's rate: cosine starts there
    assert 0 < epochs[-1]["lr"] < epochs[0]["lr"]  # the last epoch trained above 0
    assert "epoch 1/3  train loss" in result.stderr and "lr 0.05 " in result.stderr


def test_time_remaining_past_a_day_counts_hours_on() -> None:
    meter = Meter("epoch 1/90", 1000, live="never", every_seconds=0)
    meter.update(1)
    meter.started -= 200.0  # 1 image in 200 s: the 999 others take 55.5 hours
    line = meter.line()
    assert "<55:30:00," in line, line  # 999 x 200 s
    assert Meter("decoding", None, live="never").line().startswith("decoding: 0 [")
