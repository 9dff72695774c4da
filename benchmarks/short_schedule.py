"""Short-schedule accuracy runs of study recipes, one after another, with a summary row each.

    python benchmarks/short_schedule.py recipes/lightweight_cnn_residual.toml [more recipes] \
        --output runs/short --data ../shared/data/cifar10/train
    python benchmarks/short_schedule.py RECIPE --label adam_constant \
        --set 'optimizer={ name = "adam", lr = 1e-3 }' --set 'scheduler={ name = "constant" }'

Every recipe runs through ``cvkit run`` in its own process with the short schedule of
docs/results.md: the image folder at ``--data``, the recipe's validation split, 10,000 of
the remaining training images, 5 epochs, no DataLoader workers unless the recipe needs them
(per-image augmentations keep the recipe's ``data.workers``), plus any ``--set`` given.
Afterwards it prints one JSON object per run: the label, the run directory, the trainable
parameters, the best validation accuracy (the final evaluation, with the best checkpoint's
weights), the last epoch's validation accuracy, the mean training images per second over the
epochs, the wall time of the process, the git revision and the exact command. Runs never
overlap: measure on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SHORT_SCHEDULE = ["data.train_subset=10000", "experiment.epochs=5"]


def _revision() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def _needs_workers(recipe: Path) -> bool:
    """Whether the recipe keeps per-image augmentations in DataLoader workers."""
    from cvkit.recipe.loading import load_recipe
    from cvkit.registry.loading import default_registry

    resolved = load_recipe(recipe, registry=default_registry())
    return resolved.data.workers > 0


def short_run(
    recipe: Path, output: Path, data: Path, extra: list[str], label: str
) -> dict[str, Any]:
    """Run ``recipe`` on the short schedule into ``output / label``; its summary row."""
    run_dir = output / label
    sets = [
        f'data.dataset={{ name = "imagefolder", root = "{data.as_posix()}" }}',
        *SHORT_SCHEDULE,
        *([] if _needs_workers(recipe) else ["data.workers=0"]),
        *extra,
    ]
    command = ["cvkit", "run", str(recipe), "--output", str(run_dir)]
    command += [x for s in sets for x in ("--set", s)]
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "cvkit", *command[1:]], capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        return {"label": label, "command": shlex.join(command), "error": done.stderr.strip()}
    evaluation = json.loads((run_dir / "eval.json").read_text())
    epochs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    params = next(
        int(part.split(" trainable")[0].split()[-1].replace(",", ""))
        for part in (run_dir / "run.log").read_text().splitlines()
        if " trainable parameters" in part
    )
    return {
        "label": label,
        "run": str(run_dir),
        "params": params,
        "best_val_acc": evaluation["val"]["top1"],
        "weights": evaluation["weights"],
        "last_val_acc": epochs[-1]["val/acc"],
        "val_acc_per_epoch": [e["val/acc"] for e in epochs],
        "train_images_per_second": sum(e["images_per_second"] for e in epochs) / len(epochs),
        "wall_seconds": wall,
        "revision": _revision(),
        "command": shlex.join(command),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipes", nargs="+", type=Path)
    parser.add_argument("--output", type=Path, default=Path("runs/short"))
    parser.add_argument("--data", type=Path, default=Path("../shared/data/cifar10/train"))
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--label", help="run folder name (default: the recipe's file name)")
    args = parser.parse_args()
    for recipe in args.recipes:
        label = args.label or recipe.stem
        print(json.dumps(short_run(recipe, args.output, args.data, args.sets, label)), flush=True)


if __name__ == "__main__":
    main()
