"""The GPU acceptance command (issue 23): every GPU check in one run, one JSON, one table.

    # on one GPU (about 8 minutes on an H100), from the repository root:
    python benchmarks/gpu.py --data /tmp/cifar10/train --airbench airbench94_muon.py \
        --seeds 5 --out benchmarks/results-gpu.json --table benchmarks/results-gpu.md
    # anywhere, in seconds, with tiny sizes on the CPU (tests/test_gpu_acceptance.py runs it):
    python benchmarks/gpu.py --smoke --out /tmp/gpu-smoke.json

Parts (``--parts`` chooses; all by default), each timed:

- ``cuda_tests``: ``pytest -m cuda`` (tests/test_cuda.py: AMP, channels-last, compile with
  CUDA graphs, EMA, data on the device, pinned batches, DDP over NCCL, no wait in a step);
- ``overhead``: benchmark (a) at batch 512 (run.py's ``overhead``, both models);
- ``host_overhead``: benchmark (e) at batch 512 (run.py's ``host_overhead``);
- ``speedrun``: recipes/speedrun_cifar10_val.toml (bf16, torch.compile) against
  airbench94_muon.py as published (fp16, torch.compile, its warm-up run;
  ``airbench_reference.py --as-published``) on the same split of ``--data``, ``--seeds``
  runs each: validation accuracy with TTA and training seconds per run, side by side;
- ``resnet18``: training images/s of the CIFAR ResNet-18 (bf16, channels-last, compile);
- ``lightweight``: training images/s of recipes/lightweight_cnn.toml's model (bf16).

``--smoke`` runs every part on the CPU with tiny sizes (fp32, no compile, synthetic images
for the speedrun recipe, airbench only when ``--airbench`` is given), so the command cannot
rot; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench
from airbench_reference import adapt, write_split

from cvkit.builtins.normalize import Normalize
from cvkit.builtins.simple_cnn import SimpleCNN
from cvkit.data.batches import BatchLoader
from cvkit.engine.trainer import TrainingLoop
from cvkit.recipe.schema import TrainerSettings

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("cuda_tests", "overhead", "host_overhead", "speedrun", "resnet18", "lightweight")


def cuda_tests() -> dict[str, Any]:
    """``pytest -m cuda``: its summary line and exit status (5: nothing collected to run)."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "tests/test_cuda.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return {"returncode": done.returncode, "summary": lines[-1] if lines else done.stderr[-500:]}


def overhead(device: torch.device, smoke: bool, trials: int) -> list[dict[str, Any]]:
    """Benchmark (a) at batch 512 (smoke: 4)."""
    batch, steps = (4, 2) if smoke else (512, 50)
    widths = [4, 8] if smoke else [48, 96, 144]
    return [
        bench.overhead(
            f"simple_cnn {widths}",
            lambda: SimpleCNN(10, 3, widths=widths),
            batch=batch,
            steps=steps,
            trials=trials,
            device=device,
        ),
        bench.overhead(
            "cifar_resnet18",
            bench.cifar_resnet18,
            batch=batch,
            steps=2 if smoke else 30,
            trials=trials,
            device=device,
        ),
    ]


def host_overhead(device: torch.device, smoke: bool, trials: int) -> dict[str, Any]:
    """Benchmark (e) at batch 512 (smoke: 4)."""
    return bench.host_overhead(
        batch=4 if smoke else 512, steps=10 if smoke else 1000, trials=trials, device=device
    )


def _cvkit_speedrun(
    sets: list[str], output: Path, seed: int, env: dict[str, str]
) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "cvkit",
        "run",
        str(ROOT / "recipes" / "speedrun_cifar10_val.toml"),
        "--output",
        str(output),
        "--set",
        f"experiment.seed={seed}",
    ]
    for value in sets:
        command += ["--set", value]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"cvkit run failed:\n{done.stderr[-3000:]}")
    epochs = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    evaluation = json.loads((output / "eval.json").read_text())
    seconds = [e["epoch_seconds"] for e in epochs]
    return {
        "seed": seed,
        "tta_val_acc": evaluation["val"]["top1"],
        "last_epoch_val_acc": epochs[-1]["val/acc"],
        "train_seconds": sum(seconds),
        "epochs_2_on_seconds": sum(seconds[1:]),
        "process_wall_seconds": wall,
    }


def _airbench_runs(source: Path, data: Path, workdir: Path, runs: int, device: str) -> list[dict]:
    script = workdir / "airbench94_muon_adapted.py"
    script.write_text(adapt(source.read_text(), published=device.startswith("cuda")))
    env = os.environ | {
        "AIRBENCH_DATA": str(data.resolve()),
        "AIRBENCH_RUNS": str(runs),
        "AIRBENCH_DEVICE": device,
    }
    done = subprocess.run(
        [sys.executable, script.name], cwd=workdir, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"airbench failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    results, epochs = [], []
    for line in done.stdout.splitlines():
        if line.startswith("AIRBENCH_EPOCH "):
            epochs.append(json.loads(line.split(" ", 1)[1])["seconds"])
        elif line.startswith("AIRBENCH_RUN "):
            run = json.loads(line.split(" ", 1)[1])
            # the first epoch's time holds the whitening initialisation
            run["epochs_2_on_seconds"] = epochs[-1] - epochs[0] if len(epochs) > 1 else 0.0
            results.append(run)
            epochs = []
    return results


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "mean": statistics.fmean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


def speedrun(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """The speedrun recipe against airbench94_muon.py on the same images, ``--seeds`` each."""
    workdir = Path(tempfile.mkdtemp(prefix="cvkit-gpu-speedrun-"))
    env = os.environ | {"CVKIT_HOME": str(workdir / "home")}
    if args.smoke:
        sets = [
            'data.dataset={ name = "synthetic", image_size = 32, train_size = 300, test_size = 0 }',
            "data.val_split=100",
            "data.batch_size=100",
            "data.eval_batch_size=100",
            "experiment.epochs=1",
            "experiment.device=cpu",
        ]
    else:
        sets = [
            f'data.dataset={{ name = "imagefolder", root = "{args.data.resolve().as_posix()}" }}',
            f"experiment.device={device.type}",
            "experiment.precision=bf16",
            "trainer.compile=true",
        ]
    seeds = list(range(1 if args.smoke else args.seeds))
    cvkit_runs = [_cvkit_speedrun(sets, workdir / f"cvkit-{s}", s, env) for s in seeds]
    result: dict[str, Any] = {
        "cvkit_settings": sets,
        "cvkit": cvkit_runs,
        "cvkit_tta_val_acc": _summary([r["tta_val_acc"] for r in cvkit_runs]),
        "cvkit_train_seconds": _summary([r["train_seconds"] for r in cvkit_runs]),
    }
    if args.airbench is None:
        result["airbench"] = "not run: give --airbench airbench94_muon.py"
        return result
    data = workdir / "airbench-data"
    if args.smoke:  # a tiny folder of synthetic PNGs stands for the JPEG folder
        args.data = _tiny_image_folder(workdir / "folder")
    os.environ["CVKIT_HOME"] = env["CVKIT_HOME"]  # write_split decodes into the same cache
    write_split(args.data.resolve(), 5000 if not args.smoke else 100, 0, None, data)
    runs = _airbench_runs(args.airbench, data, workdir, len(seeds), device.type)
    result |= {
        "airbench": runs,
        "airbench_tta_val_acc": _summary([r["tta_val_acc"] for r in runs]),
        "airbench_train_seconds": _summary([r["train_seconds"] for r in runs]),
        "time_ratio": statistics.fmean(r["train_seconds"] for r in cvkit_runs)
        / statistics.fmean(r["train_seconds"] for r in runs),
        "time_ratio_epochs_2_on": statistics.fmean(r["epochs_2_on_seconds"] for r in cvkit_runs)
        / statistics.fmean(r["epochs_2_on_seconds"] for r in runs),
        "accuracy_difference_points": 100
        * (
            statistics.fmean(r["tta_val_acc"] for r in cvkit_runs)
            - statistics.fmean(r["tta_val_acc"] for r in runs)
        ),
    }
    return result


def _tiny_image_folder(root: Path) -> Path:
    from PIL import Image

    generator = torch.Generator().manual_seed(0)
    for label in range(2):
        (root / f"class{label}").mkdir(parents=True, exist_ok=True)
        for i in range(150):
            pixels = torch.randint(0, 256, (32, 32, 3), dtype=torch.uint8, generator=generator)
            Image.fromarray(pixels.numpy()).save(root / f"class{label}" / f"{i}.png")
    return root


def throughput(
    name: str,
    make_model: Callable[[], nn.Module],
    *,
    batch: int,
    steps: int,
    device: torch.device,
    precision: str,
    channels_last: bool,
    compile: bool,
) -> dict[str, Any]:
    """Training images/s of ``make_model()`` on in-memory CIFAR-shaped images (normalize
    only), cvkit's loop: the second of two epochs (the first compiles and warms up)."""
    torch.manual_seed(0)
    model = make_model()
    loader = BatchLoader(
        bench.cifar_like(batch * steps),
        batch_size=batch,
        device=device,
        augmentations=[Normalize(preset="cifar10")],
        shuffle=True,
        drop_last=True,
        channels_last=channels_last,
    )
    loop = TrainingLoop(
        model,
        torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True),
        nn.CrossEntropyLoss(),
        loader,
        epochs=2,
        device=device,
        precision=precision,
        settings=TrainerSettings(channels_last=channels_last, compile=compile),
    )
    loop.fit()
    return {
        "model": name,
        "parameters": sum(p.numel() for p in model.parameters()),
        "batch_size": batch,
        "steps_per_epoch": steps,
        "precision": precision,
        "channels_last": channels_last,
        "compile": compile,
        "images_per_second": loop.history[-1]["images_per_second"],
    }


def lightweight_model() -> nn.Module:
    """recipes/lightweight_cnn.toml's model, built from the recipe."""
    from cvkit.engine.build import build_model
    from cvkit.recipe.loading import load_recipe
    from cvkit.registry.loading import default_registry

    registry = default_registry()
    recipe = load_recipe(ROOT / "recipes" / "lightweight_cnn.toml", [], registry=registry)
    return build_model(recipe, registry, num_classes=10, in_channels=3)


def table(results: dict[str, Any]) -> str:
    """The results as markdown rows for benchmarks/RESULTS.md."""
    rows = ["| check | result |", "| --- | --- |"]
    parts = results["parts"]
    if "cuda_tests" in parts:
        rows.append(f"| `pytest -m cuda` | {parts['cuda_tests']['summary']} |")
    for item in parts.get("overhead", []):
        rows.append(
            f"| (a) {item['model']}, batch {item['batch_size']} | ratio "
            f"{item['ratio_median']:.3f} ({item['ratio_min']:.3f}-{item['ratio_max']:.3f}), "
            f"cvkit {item['cvkit_images_per_second']:,.0f} img/s |"
        )
    if "host_overhead" in parts:
        e = parts["host_overhead"]
        us = e["microseconds_per_step"]
        rows.append(
            f"| (e) host overhead, batch {e['batch_size']} | hand-written "
            f"{us['hand_written']['median']:.1f} us/step, TrainingLoop "
            f"{us['training_loop']['median']:.1f} ({e['ratio_loop']['median']:.3f}x), cvkit run "
            f"{us['cvkit_run']['median']:.1f} ({e['ratio_recipe']['median']:.3f}x); waits per "
            f"step {e['host_waits_per_step']['training_loop']} |"
        )
    if "speedrun" in parts:
        s = parts["speedrun"]
        acc, secs = s["cvkit_tta_val_acc"], s["cvkit_train_seconds"]
        line = (
            f"| speedrun, {len(s['cvkit'])} seeds | cvkit {100 * acc['mean']:.2f}% "
            f"(sd {100 * acc['sd']:.2f}) in {secs['mean']:.2f} s"
        )
        if isinstance(s.get("airbench"), list):
            a, b = s["airbench_tta_val_acc"], s["airbench_train_seconds"]
            line += (
                f"; airbench {100 * a['mean']:.2f}% (sd {100 * a['sd']:.2f}) in "
                f"{b['mean']:.2f} s; time ratio {s['time_ratio']:.3f} (epochs 2-8: "
                f"{s['time_ratio_epochs_2_on']:.3f}), accuracy {s['accuracy_difference_points']:+.2f} points"
            )
        rows.append(line + " |")
    for key in ("resnet18", "lightweight"):
        if key in parts:
            t = parts[key]
            rows.append(
                f"| {t['model']} training, batch {t['batch_size']}, {t['precision']}"
                f"{', channels-last' if t['channels_last'] else ''}"
                f"{', compiled' if t['compile'] else ''} | {t['images_per_second']:,.0f} img/s |"
            )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="every part, tiny, on the CPU")
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated subset")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/cifar10/train"))
    parser.add_argument("--airbench", type=Path, help="airbench94_muon.py (not shipped)")
    parser.add_argument("--seeds", type=int, default=5, help="speedrun runs of each program")
    parser.add_argument("--trials", type=int, default=5, help="interleaved trials of (a), (e)")
    parser.add_argument("--out", type=Path, help="write the JSON here")
    parser.add_argument("--table", type=Path, help="write the markdown table here")
    args = parser.parse_args(argv)
    device = torch.device("cpu" if args.smoke or not torch.cuda.is_available() else "cuda")
    if device.type != "cuda" and not args.smoke:
        raise SystemExit("benchmarks/gpu.py: no CUDA GPU here; --smoke runs it on the CPU")
    trials = 1 if args.smoke else args.trials
    cuda = not args.smoke
    runners: dict[str, Callable[[], Any]] = {
        "cuda_tests": cuda_tests,
        "overhead": lambda: overhead(device, args.smoke, trials),
        "host_overhead": lambda: host_overhead(device, args.smoke, trials),
        "speedrun": lambda: speedrun(args, device),
        "resnet18": lambda: throughput(
            "CIFAR ResNet-18",
            bench.cifar_resnet18,
            batch=4 if args.smoke else 512,
            steps=2 if args.smoke else 60,
            device=device,
            precision="bf16" if cuda else "fp32",
            channels_last=cuda,
            compile=cuda,
        ),
        "lightweight": lambda: throughput(
            "lightweight_cnn.toml's model",
            lightweight_model,
            batch=4 if args.smoke else 512,
            steps=2 if args.smoke else 80,
            device=device,
            precision="bf16" if cuda else "fp32",
            channels_last=cuda,
            compile=False,
        ),
    }
    chosen = [p for p in args.parts.split(",") if p]
    unknown = sorted(set(chosen) - set(PARTS))
    if unknown:
        raise SystemExit(f"--parts: unknown {unknown}; choose from {', '.join(PARTS)}")
    results: dict[str, Any] = {
        "command": " ".join([sys.executable, *sys.argv]),
        "machine": bench.machine(device),
        "smoke": args.smoke,
        "parts": {},
        "seconds": {},
    }
    for part in chosen:
        started = time.perf_counter()
        results["parts"][part] = runners[part]()
        results["seconds"][part] = time.perf_counter() - started
        print(f"{part}: {results['seconds'][part]:.1f} s", file=sys.stderr, flush=True)
    results["table"] = table(results)
    text = json.dumps(results, indent=2)
    if args.out is not None:
        args.out.write_text(text + "\n")
    if args.table is not None:
        args.table.write_text(results["table"] + "\n")
    print(results["table"])
    return results


if __name__ == "__main__":
    main()
