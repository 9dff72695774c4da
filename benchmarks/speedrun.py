"""Benchmark (d): the speedrun recipe's training throughput per epoch against airbench's.

    python benchmarks/speedrun.py --source airbench94_muon.py --trials 3 \
        --train-subset 4000 --val-split 1000 --out benchmarks/results-cpu-speedrun.json

Trials alternate between the two programs, each a whole process running alone, and which
goes first alternates too: airbench94_muon.py with only the edits of
``airbench_reference.EDITS`` (benchmarks/airbench_reference.py), and ``cvkit run
recipes/speedrun_cifar10_val.toml``, both on the same images (the image folder at
``--data``, ``--val-split`` held out, ``--train-subset`` of the rest) for the full 8 epochs.
Each reports its own training seconds per epoch without evaluation (airbench: its timer;
cvkit: ``epoch_seconds`` of metrics.jsonl); epochs 2 to 8 are compared (the first includes
one-off work: airbench's normalisation and padding of the whole set, cvkit's first batches).
The ratio per trial is cvkit's images per second over airbench's; the JSON reports every
trial and the median and range of the ratios. Target: cvkit's training time / airbench's
<= 1.05, i.e. a throughput ratio >= 0.95.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from airbench_reference import adapt, write_split

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "speedrun_cifar10_val.toml"
BATCH = 2000


def airbench_epochs(source: str, data: Path, workdir: Path) -> list[float]:
    """airbench's training seconds of each epoch (one run)."""
    script = workdir / "airbench94_muon_adapted.py"
    script.write_text(adapt(source))
    env = os.environ | {"AIRBENCH_DATA": str(data), "AIRBENCH_RUNS": "1", "AIRBENCH_DEVICE": "cpu"}
    done = subprocess.run(
        [sys.executable, script.name], cwd=workdir, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"airbench failed:\n{done.stdout}\n{done.stderr}")
    cumulative = [
        json.loads(line.split(" ", 1)[1])["seconds"]
        for line in done.stdout.splitlines()
        if line.startswith("AIRBENCH_EPOCH ")
    ]
    return [b - a for a, b in zip([0.0, *cumulative], cumulative, strict=False)]


def cvkit_epochs(args: argparse.Namespace, output: Path, seed: int) -> list[float]:
    """cvkit's training seconds of each epoch (one run of the recipe)."""
    sets = [
        f'data.dataset={{ name = "imagefolder", root = "{args.data}" }}',
        f"data.val_split={args.val_split}",
        f"data.train_subset={args.train_subset}",
        f"experiment.seed={seed}",
    ]
    command = [sys.executable, "-m", "cvkit", "run", str(RECIPE), "--output", str(output)]
    for value in sets:
        command += ["--set", value]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"cvkit failed:\n{done.stderr}")
    lines = (output / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["epoch_seconds"] for line in lines]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, required=True, help="airbench94_muon.py")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/cifar10/train"))
    parser.add_argument("--val-split", type=int, default=1000)
    parser.add_argument("--train-subset", type=int, default=4000)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    source = args.source.read_text()
    steps = args.train_subset // BATCH
    trials: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        data = folder / "data"
        write_split(args.data, args.val_split, 0, args.train_subset, data)
        for trial in range(args.trials):
            arms = ["airbench", "cvkit"] if trial % 2 == 0 else ["cvkit", "airbench"]
            seconds: dict[str, list[float]] = {}
            for arm in arms:
                if arm == "airbench":
                    seconds[arm] = airbench_epochs(source, data.resolve(), folder)
                else:
                    seconds[arm] = cvkit_epochs(args, folder / f"cvkit-{trial}", trial)
            speed = {arm: steps * BATCH * (len(s) - 1) / sum(s[1:]) for arm, s in seconds.items()}
            trials.append(
                {
                    "order": arms,
                    "epoch_seconds": seconds,
                    "images_per_second": speed,
                    "ratio": speed["cvkit"] / speed["airbench"],
                }
            )
            print(json.dumps(trials[-1]), file=sys.stderr, flush=True)
    ratios = [t["ratio"] for t in trials]
    result = {
        "command": " ".join([sys.executable, *sys.argv]),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "train_images": steps * BATCH,
        "steps_per_epoch": steps,
        "trials": trials,
        "ratio_median": statistics.median(ratios),
        "ratio_range": [min(ratios), max(ratios)],
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
