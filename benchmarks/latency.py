"""Per-image inference latency of trained models: batch 1, eval mode, on the CPU.

    python benchmarks/latency.py runs/lightweight_cnn/<run> [more runs or checkpoints ...]
    python benchmarks/latency.py RUN --threads 1 --repeats 500

For each run directory (its best.pt, else last.pt) or checkpoint, the model is rebuilt from
the checkpoint's recipe with its weights, given one image of the size it was trained on
(``data.image_size`` when the recipe sets it, else the dataset's) and timed over
``--repeats`` forward passes after ``--warmup`` untimed ones, under ``torch.inference_mode``.
Prints one JSON object per model: trainable parameters, median / 10th / 90th percentile
latency in milliseconds, torch threads, and the machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from cvkit.engine.build import trainable_parameters
from cvkit.engine.trained_model import restore
from cvkit.registry.loading import default_registry


def latency(source: Path, *, threads: int, warmup: int, repeats: int) -> dict[str, Any]:
    """Batch-1 CPU latency of the model saved at ``source`` (a run directory or checkpoint)."""
    trained = restore(source, default_registry())
    recipe, checkpoint, model = trained.recipe, trained.checkpoint, trained.model.eval()
    size = recipe.data.input_size or checkpoint["image_size"]
    image = torch.rand(1, checkpoint["in_channels"], *size)
    torch.set_num_threads(threads)
    times = []
    with torch.inference_mode():
        for _ in range(warmup):
            model(image)
        for _ in range(repeats):
            start = time.perf_counter()
            model(image)
            times.append((time.perf_counter() - start) * 1000)
    deciles = statistics.quantiles(times, n=10)
    return {
        "checkpoint": str(trained.path),
        "model": recipe.model.key,
        "trainable_parameters": trainable_parameters(model),
        "input": [1, checkpoint["in_channels"], *size],
        "latency_ms_median": round(statistics.median(times), 4),
        "latency_ms_p10": round(deciles[0], 4),
        "latency_ms_p90": round(deciles[-1], 4),
        "repeats": repeats,
        "threads": threads,
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="+", type=Path, help="run directories or checkpoints")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=500)
    args = parser.parse_args()
    for source in args.sources:
        result = latency(source, threads=args.threads, warmup=args.warmup, repeats=args.repeats)
        print(json.dumps(result))


if __name__ == "__main__":
    main()
