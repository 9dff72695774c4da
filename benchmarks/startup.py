"""Benchmark (f): how long the ``cvkit`` command takes to answer what needs no training.

Each command runs as a user types it (the ``cvkit`` console script beside this Python),
``--trials`` times, rotated so that no command always runs first; wall-clock seconds from
start to exit, median and range. The catalog (what ``list``, ``info`` and ``--help``
show; see cvkit.commands.catalog) lives in a fresh ``$CVKIT_HOME``: ``list (cold)`` is the
first command after an install, which builds it by importing every plugin; the others
read it.

Targets (issue 24): ``--help``, ``--version`` and errors about missing files or bad TOML
under 0.5 s; ``list`` and ``info`` under 1.0 s.

    python benchmarks/startup.py --trials 9 --out benchmarks/results-cpu-startup.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS: dict[str, list[str]] = {
    "--version": ["--version"],
    "--help": ["--help"],
    "run --help": ["run", "--help"],
    "report --help (a plugin's)": ["report", "--help"],
    "run missing.toml": ["run", "missing.toml"],
    "run bad.toml": ["run", "{bad}"],
    "eval missing-run": ["eval", "missing-run"],
    "list": ["list"],
    "list model res": ["list", "model", "res"],
    "info attention/se": ["info", "attention/se"],
}
TARGETS = {"list": 1.0, "list model res": 1.0, "info attention/se": 1.0}
"""Seconds; every other command: 0.5."""


def cvkit_command() -> list[str]:
    script = Path(sys.executable).with_name("cvkit")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "cvkit"]


def seconds(command: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, cwd=cwd, capture_output=True, check=False, timeout=120)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=9)
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="cvkit-startup-"))
    try:
        (folder / "bad.toml").write_text("[experiment\nname = 1\n")
        env = {**os.environ, "CVKIT_HOME": str(folder / "home")}
        base = cvkit_command()
        cold = seconds([*base, "list"], env, folder)
        names = list(COMMANDS)
        times: dict[str, list[float]] = {name: [] for name in names}
        for trial in range(args.trials):
            for name in names[trial % len(names) :] + names[: trial % len(names)]:
                argv = [a.format(bad=folder / "bad.toml") for a in COMMANDS[name]]
                times[name].append(seconds([*base, *argv], env, folder))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    rows = {"list (cold: builds the catalog)": {"median": cold, "min": cold, "max": cold}}
    for name, values in times.items():
        rows[name] = {
            "median": statistics.median(values),
            "min": min(values),
            "max": max(values),
            "target": TARGETS.get(name, 0.5),
        }
    result = {"benchmark": "startup", "trials": args.trials, "command": base, "seconds": rows}
    print(f"{'command':<34} {'median':>7} {'min':>7} {'max':>7} {'target':>7}")
    for name, row in rows.items():
        target = f"{row['target']:.1f}" if "target" in row else "-"
        print(f"{name:<34} {row['median']:7.3f} {row['min']:7.3f} {row['max']:7.3f} {target:>7}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
