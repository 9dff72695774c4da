"""Run airbench94_muon.py unmodified but for its data loading and device, on cvkit's split.

    python benchmarks/airbench_reference.py --source airbench94_muon.py --runs 1 \
        --data ../shared/data/cifar10/train --val-split 5000 --workdir /tmp/airbench-ref

``--source`` is airbench94_muon.py as published in github.com/KellerJordan/cifar10-airbench
(not shipped with cvkit; download it). This script

1. writes the training and validation images of the split cvkit's recipes use (the image
   folder at ``--data``, ``--val-split`` images held out with ``--split-seed``, as
   ``data.val_split`` and ``data.split_seed``; optionally ``--train-subset`` images of the
   rest, as ``data.train_subset``) in airbench's own format, ``<workdir>/data/train.pt`` and
   ``test.pt`` (uint8 N x 32 x 32 x 3 images, labels, classes). The training images are
   stored in a random order (seed 0), so that airbench's whitening images, the first 5,000,
   are a random sample, as in CIFAR-10's own file order and in cvkit's recipe;
2. applies the edits in :data:`EDITS` to a copy of the source, each of which must match
   exactly once (with ``--as-published``, on a GPU, only those outside :data:`CPU_EDITS`:
   data, device, runs and JSON lines): the device (``AIRBENCH_DEVICE``, default cpu) and the data directory,
   fp32 instead of fp16 (fp16 convolutions are a GPU format), no torch.compile (cvkit's
   recipe runs eager too), a wall-clock timer instead of CUDA events, no warm-up run (it
   only warms up the compiled model), ``--runs`` runs instead of 200, and one JSON line per
   epoch and per run;
3. runs the copy in ``<workdir>`` and prints one JSON object: each run's accuracy with and
   without TTA on the held-out images, its training seconds (airbench's timer: whitening
   initialisation and training epochs, not the per-epoch evaluations; without the final
   TTA evaluation) and per-epoch cumulative seconds, plus the command and machine.

Nothing else of airbench changes: network, optimizers, schedules, augmentation, evaluation.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

EDITS: list[tuple[str, str, str]] = [
    (
        "settings from the environment",
        "from math import ceil\n",
        "from math import ceil\nimport json, time\n"
        'DEVICE = os.environ.get("AIRBENCH_DEVICE", "cpu")\n'
        'DATA = os.environ["AIRBENCH_DATA"]\n'
        'RUNS = int(os.environ.get("AIRBENCH_RUNS", "1"))\n',
    ),
    (
        "no torch.compile",
        "@torch.compile\ndef zeropower_via_newtonschulz5",
        "def zeropower_via_newtonschulz5",
    ),
    (
        "device",
        'map_location=torch.device("cuda")',
        "map_location=torch.device(DEVICE)",
    ),
    ("fp32 images", "(self.images.half() / 255)", "(self.images.float() / 255)"),
    ("fp32 weights", "                mod.half()", "                mod.float()"),
    (
        "wall-clock timer",
        "    starter = torch.cuda.Event(enable_timing=True)\n"
        "    ender = torch.cuda.Event(enable_timing=True)\n"
        "    time_seconds = 0.0\n"
        "    def start_timer():\n"
        "        starter.record()\n"
        "    def stop_timer():\n"
        "        ender.record()\n"
        "        torch.cuda.synchronize()\n"
        "        nonlocal time_seconds\n"
        "        time_seconds += 1e-3 * starter.elapsed_time(ender)\n",
        "    time_seconds = 0.0\n"
        "    started = [0.0]\n"
        "    def start_timer():\n"
        '        torch.cuda.synchronize() if DEVICE.startswith("cuda") else None\n'
        "        started[0] = time.perf_counter()\n"
        "    def stop_timer():\n"
        '        torch.cuda.synchronize() if DEVICE.startswith("cuda") else None\n'
        "        nonlocal time_seconds\n"
        "        time_seconds += time.perf_counter() - started[0]\n",
    ),
    (
        "test data",
        'CifarLoader("cifar10", train=False',
        "CifarLoader(DATA, train=False",
    ),
    (
        "training data",
        'CifarLoader("cifar10", train=True',
        "CifarLoader(DATA, train=True",
    ),
    (
        "per-epoch line",
        "        print_training_details(locals(), is_final_entry=False)\n",
        "        print_training_details(locals(), is_final_entry=False)\n"
        '        print("AIRBENCH_EPOCH " + json.dumps({"epoch": epoch + 1, '
        '"seconds": time_seconds, "val_acc": val_acc}), flush=True)\n',
    ),
    (
        "training time without the TTA evaluation",
        "    start_timer()\n    tta_val_acc = evaluate(",
        "    train_seconds = time_seconds\n    start_timer()\n    tta_val_acc = evaluate(",
    ),
    (
        "per-run line",
        "    return tta_val_acc\n",
        '    print("AIRBENCH_RUN " + json.dumps({"tta_val_acc": tta_val_acc, "val_acc": val_acc, '
        '"train_seconds": train_seconds, "seconds_with_tta": time_seconds}), flush=True)\n'
        "    return tta_val_acc\n",
    ),
    (
        "device, no compile",
        "    model = CifarNet().cuda().to(memory_format=torch.channels_last)\n"
        '    model.compile(mode="max-autotune")\n',
        "    model = CifarNet().to(DEVICE).to(memory_format=torch.channels_last)\n",
    ),
    ("no warm-up run", '    main("warmup", model)\n', ""),
    ("runs", "for run in range(200)", "for run in range(RUNS)"),
]
"""(why, old text, new text): the only changes made to airbench94_muon.py."""

CPU_EDITS = frozenset(
    {
        "no torch.compile",
        "fp32 images",
        "fp32 weights",
        "wall-clock timer",
        "device, no compile",
        "no warm-up run",
    }
)
"""The edits that make it run on a CPU; ``adapt(published=True)`` leaves them out, so that on
a GPU airbench runs as published: fp16, torch.compile (max-autotune), its warm-up run
(compilation, outside its timer) and its CUDA-event timer."""


def adapt(source: str, published: bool = False) -> str:
    """``source`` with every edit of :data:`EDITS` applied (``published``: only those that
    are not :data:`CPU_EDITS`, for a GPU); ValueError if one does not match once."""
    for why, old, new in EDITS:
        if published and why in CPU_EDITS:
            continue
        count = source.count(old)
        if count != 1:
            raise ValueError(
                f"edit {why!r}: expected its text once in the source, found it {count} times "
                "(a different version of airbench94_muon.py?)"
            )
        source = source.replace(old, new)
    return source


def write_split(
    data: Path, val_split: int, split_seed: int, train_subset: int | None, out: Path
) -> dict[str, int]:
    """The split cvkit's recipes use, in airbench's format, in ``out``; image counts."""
    from cvkit.data.cache import load_split
    from cvkit.data.splits import choose_subset, split_train_val
    from cvkit.registry.loading import default_registry

    registry = default_registry()
    spec = registry.spec("dataset", {"name": "imagefolder", "root": str(data)}, "--data")
    images = load_split(registry.build(spec), spec, "train", cache=True, cache_dir=None)
    train, val = split_train_val(images, val_split, split_seed)
    if train_subset is not None:
        train = choose_subset(train, train_subset, split_seed)
    out.mkdir(parents=True, exist_ok=True)
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))
    for name, part, chosen in (("train", train, order), ("test", val, None)):
        if part is None:
            raise SystemExit("--val-split 0 leaves airbench nothing to evaluate on")
        images, labels = part.images, part.labels
        if chosen is not None:
            images, labels = images[chosen], labels[chosen]
        torch.save(
            {
                "images": images.permute(0, 2, 3, 1).contiguous(),
                "labels": labels,
                "classes": list(part.classes),
            },
            out / f"{name}.pt",
        )
    return {"train_images": len(train), "test_images": len(val) if val is not None else 0}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, required=True, help="airbench94_muon.py")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/cifar10/train"))
    parser.add_argument("--val-split", type=int, default=5000)
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--train-subset", type=int, default=None)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--as-published",
        action="store_true",
        help="on a GPU: keep fp16, torch.compile, the warm-up run and the CUDA-event timer",
    )
    parser.add_argument("--workdir", type=Path, default=Path("runs/airbench-reference"))
    parser.add_argument("--out", type=Path, help="also write the JSON object here")
    args = parser.parse_args(argv)

    args.workdir.mkdir(parents=True, exist_ok=True)
    counts = write_split(
        args.data, args.val_split, args.split_seed, args.train_subset, args.workdir / "data"
    )
    script = args.workdir / "airbench94_muon_adapted.py"
    script.write_text(adapt(args.source.read_text(), published=args.as_published))
    env = os.environ | {
        "AIRBENCH_DEVICE": args.device,
        "AIRBENCH_DATA": str((args.workdir / "data").resolve()),
        "AIRBENCH_RUNS": str(args.runs),
    }
    done = subprocess.run(
        [sys.executable, script.name],
        cwd=args.workdir,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    sys.stderr.write(done.stdout + done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"airbench exited with status {done.returncode}")
    runs: list[dict[str, Any]] = []
    epochs: list[dict[str, Any]] = []
    for line in done.stdout.splitlines():
        if line.startswith("AIRBENCH_EPOCH "):
            epochs.append(json.loads(line.split(" ", 1)[1]))
        elif line.startswith("AIRBENCH_RUN "):
            runs.append(json.loads(line.split(" ", 1)[1]) | {"epochs": epochs})
            epochs = []
    result = {
        "command": " ".join([sys.executable, *sys.argv]),
        "source": str(args.source),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "torch": torch.__version__,
        "device": args.device,
        "as_published": args.as_published,
        "threads": torch.get_num_threads(),
        **counts,
        "runs": runs,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
