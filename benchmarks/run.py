"""cvkit speed benchmarks; prints one JSON object (see benchmarks/README.md).

    python benchmarks/run.py                      # all four, on CUDA when available
    python benchmarks/run.py --only overhead --trials 9 --out results.json
    python benchmarks/run.py --only host_overhead --threads 1 --trials 9

(a) overhead: cvkit's training throughput / a minimal hand-written loop's, same model,
    data in memory (on the device before either timer), batch size, in one process, trials
    interleaved; a third arm runs the TensorBoard callback with per-step logging (4 points
    per trial) and times the callback.
(b) pipeline: augmented images/s of cvkit's tensor pipeline / torchvision's per-sample
    transforms (RandomCrop(32, 4) + flip + ToTensor + Normalize) in a 2-worker DataLoader,
    both warmed up by one epoch first.
(c) end_to_end: one epoch of recipes/cifar10_small_cnn.toml on ../shared/data/cifar10/train,
    training images/s / the same model's compute-only throughput (measured before and after).
(e) host_overhead: microseconds per step of a near-zero-compute model (model/linear) for
    the hand-written loop, TrainingLoop without callbacks and `cvkit run` with the default
    callbacks, and the host waits per step (cvkit.engine.host_syncs).
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from cvkit.builtins.flip import HorizontalFlip
from cvkit.builtins.normalize import NORMALIZATION_PRESETS, Normalize
from cvkit.builtins.random_crop import RandomCrop
from cvkit.builtins.simple_cnn import SimpleCNN
from cvkit.builtins.tensorboard import TensorBoard
from cvkit.data.batches import BatchLoader
from cvkit.data.tensors import ImageTensors
from cvkit.engine.trainer import TrainingLoop

ROOT = Path(__file__).resolve().parents[1]
TENSORBOARD_POINTS = 4
"""Per-step points the TensorBoard callback logs in each trial of (a)'s third arm."""
MEAN, STD = (list(v) for v in NORMALIZATION_PRESETS["cifar10"])


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cifar_resnet18(num_classes: int = 10) -> nn.Module:
    """torchvision's ResNet-18 adapted to 32x32 inputs: 3x3 stem, stride 1, no max-pool (11.2M)."""
    model = torchvision.models.resnet18(num_classes=num_classes)
    model.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    model.maxpool = nn.Identity()
    return model


def cifar_like(count: int) -> ImageTensors:
    """Random uint8 CIFAR-shaped images: speed does not depend on the pixel values."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=generator)
    return ImageTensors(
        images, torch.randint(0, 10, (count,), generator=generator), tuple(map(str, range(10)))
    )


def hand_written_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: ImageTensors,
    batch: int,
    device: torch.device,
    generator: torch.Generator,
) -> None:
    """The reference: what one writes by hand for in-memory data, the same work per batch
    as cvkit's loop without its bookkeeping: ``data`` already on ``device`` (as cvkit's
    loader holds it, made before the timer), an epoch's order, index, convert, normalize
    (the same operations as augmentation/normalize: precomputed mean and std), forward, the
    same ``nn.CrossEntropyLoss``, backward, step."""
    images, labels = data.images, data.labels
    mean, std = (torch.tensor(v, device=device).view(-1, 1, 1) for v in (MEAN, STD))
    order = torch.randperm(len(data), generator=generator).to(device)
    criterion = nn.CrossEntropyLoss()
    model.train()
    for start in range(0, len(data) - batch + 1, batch):
        index = order[start : start + batch]
        x = images[index].float().div_(255).sub(mean).div_(std)
        loss = criterion(model(x), labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def on_device(data: ImageTensors, device: torch.device) -> ImageTensors:
    """``data`` with its images and labels moved to ``device`` (before any timer)."""
    return ImageTensors(data.images.to(device), data.labels.to(device), data.classes)


def interleaved(arms: list[Any], trials: int) -> list[list[float]]:
    """Each trial runs every arm once, the order rotated from trial to trial so that drifts
    of the machine affect all alike; returns each trial's results in the arms' order."""
    results: list[list[float]] = []
    for trial in range(trials):
        order = [(trial + k) % len(arms) for k in range(len(arms))]
        measured = {k: arms[k]() for k in order}
        results.append([measured[k] for k in range(len(arms))])
    return results


def spread(values: list[float]) -> dict[str, float]:
    """Median, min and max of ``values``."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


class TimedTensorBoard(TensorBoard):
    """The TensorBoard callback, adding up the seconds its events take."""

    seconds = 0.0

    def _timed(self, event: str, trainer: Any) -> None:
        start = time.perf_counter()
        getattr(super(), event)(trainer)
        self.seconds += time.perf_counter() - start

    def on_fit_start(self, trainer: Any) -> None:
        self._timed("on_fit_start", trainer)

    def on_epoch_start(self, trainer: Any) -> None:
        self._timed("on_epoch_start", trainer)

    def on_batch_end(self, trainer: Any) -> None:
        self._timed("on_batch_end", trainer)

    def on_epoch_end(self, trainer: Any) -> None:
        self._timed("on_epoch_end", trainer)

    def on_fit_end(self, trainer: Any) -> None:
        self._timed("on_fit_end", trainer)


def normalised_loader(images: ImageTensors, batch: int, device: torch.device) -> BatchLoader:
    """cvkit's loader for the loop benchmarks: shuffled, full batches, normalised as the
    hand-written loop normalises them."""
    return BatchLoader(
        images,
        batch_size=batch,
        device=device,
        shuffle=True,
        drop_last=True,
        augmentations=[Normalize(mean=MEAN, std=STD)],
    )


def overhead(
    name: str, make_model: Any, batch: int, steps: int, trials: int, device: torch.device
) -> dict:
    """Interleaved trials of the hand-written loop, cvkit's TrainingLoop, and the loop with
    the TensorBoard callback logging TENSORBOARD_POINTS per-step points, on the same batches."""
    data = cifar_like(batch * steps)
    torch.manual_seed(0)
    reference = make_model().to(device)
    reference_opt = torch.optim.SGD(reference.parameters(), lr=0.01, momentum=0.9)
    ours = make_model().to(device)
    ours_opt = torch.optim.SGD(ours.parameters(), lr=0.01, momentum=0.9)
    generator = torch.Generator().manual_seed(0)
    loader = normalised_loader(data, batch, device)
    logs = Path(tempfile.mkdtemp(prefix="cvkit-bench-tb-"))
    log_every = max(1, steps // TENSORBOARD_POINTS)
    callback_seconds: list[float] = []

    resident = on_device(data, device)  # the loader holds its copy on the device too

    def run_reference() -> float:
        synchronize(device)
        start = time.perf_counter()
        hand_written_epoch(reference, reference_opt, resident, batch, device, generator)
        synchronize(device)
        return batch * steps / (time.perf_counter() - start)

    def run_cvkit(tensorboard: bool = False) -> float:
        callbacks = [TimedTensorBoard(log_every=log_every, images=0)] if tensorboard else []
        trainer = TrainingLoop(
            ours,
            ours_opt,
            nn.CrossEntropyLoss(),
            loader,
            epochs=1,
            device=device,
            callbacks=callbacks,
            run_dir=logs if tensorboard else None,
        )
        synchronize(device)
        start = time.perf_counter()
        trainer.fit()
        synchronize(device)
        seconds = time.perf_counter() - start
        if tensorboard:
            callback_seconds.append(callbacks[0].seconds / seconds)
        return batch * steps / seconds

    arms = [run_reference, run_cvkit, lambda: run_cvkit(tensorboard=True)]
    for arm in arms:  # warm-up
        arm()
    callback_seconds.clear()
    rates = interleaved(arms, trials)
    ratios = [c / r for r, c, _ in rates]
    logging_ratios = [t / c for _, c, t in rates]
    return {
        "model": name,
        "parameters": sum(p.numel() for p in reference.parameters()),
        "batch_size": batch,
        "steps_per_trial": steps,
        "trials": trials,
        "cvkit_images_per_second": statistics.median(c for _, c, _ in rates),
        "hand_written_images_per_second": statistics.median(r for r, _, _ in rates),
        "ratio_median": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "tensorboard_log_every": log_every,
        "tensorboard_images_per_second": statistics.median(t for _, _, t in rates),
        "tensorboard_ratio_median": statistics.median(logging_ratios),
        "tensorboard_ratio_min": min(logging_ratios),
        "tensorboard_ratio_max": max(logging_ratios),
        "tensorboard_callback_share_median": statistics.median(callback_seconds),
        "tensorboard_callback_share_max": max(callback_seconds),
    }


def host_overhead(batch: int, steps: int, trials: int, device: torch.device) -> dict:
    """(e): microseconds per step of a near-zero-compute model (model/linear, 1,930
    parameters on 32x32 images) for (i) the hand-written loop, (ii) cvkit's TrainingLoop
    without callbacks, (iii) ``cvkit run benchmarks/host_overhead.toml`` with the default
    callbacks (its last epoch's seconds from metrics.jsonl); trials interleaved, the order
    rotated. Host waits per step (see cvkit.engine.host_syncs) from the difference between
    an epoch of ``steps`` and one of ``2 * steps``, so the epoch's own reads cancel."""
    from cvkit.builtins.linear_model import LinearClassifier
    from cvkit.commands.run import train
    from cvkit.engine.host_syncs import count_host_syncs
    from cvkit.registry.loading import default_registry

    registry = default_registry()
    recipe = ROOT / "benchmarks" / "host_overhead.toml"
    data = cifar_like(batch * steps)
    resident = on_device(data, device)
    torch.manual_seed(0)
    reference, ours = LinearClassifier(10, 3).to(device), LinearClassifier(10, 3).to(device)
    reference_opt = torch.optim.SGD(reference.parameters(), lr=0.01, momentum=0.9)
    ours_opt = torch.optim.SGD(ours.parameters(), lr=0.01, momentum=0.9)
    generator = torch.Generator().manual_seed(0)
    ours_loader = normalised_loader(data, batch, device)

    def loop(batches: BatchLoader) -> TrainingLoop:
        return TrainingLoop(ours, ours_opt, nn.CrossEntropyLoss(), batches, epochs=1, device=device)

    def run_reference() -> float:
        synchronize(device)
        start = time.perf_counter()
        hand_written_epoch(reference, reference_opt, resident, batch, device, generator)
        synchronize(device)
        return (time.perf_counter() - start) / steps * 1e6

    def run_loop() -> float:
        trainer = loop(ours_loader)
        synchronize(device)
        start = time.perf_counter()
        trainer.fit()
        synchronize(device)
        return (time.perf_counter() - start) / steps * 1e6

    def recipe_run(count: int, folder: Path) -> Any:
        overrides = [
            f"experiment.device={device.type}",
            f"data.batch_size={batch}",
            f"data.dataset.train_size={count + 256}",
        ]
        return train(recipe, overrides=overrides, output=folder, registry=registry)

    scratch = Path(tempfile.mkdtemp(prefix="cvkit-bench-e-"))
    runs = itertools.count()

    def run_recipe() -> float:
        result = recipe_run(batch * steps, scratch / f"run-{next(runs)}")
        last = json.loads((result.run_dir / "metrics.jsonl").read_text().splitlines()[-1])
        return last["epoch_seconds"] / steps * 1e6

    arms = [run_reference, run_loop, run_recipe]
    for arm in arms:  # warm-up
        arm()
    times = interleaved(arms, trials)
    loop_syncs = [
        count_host_syncs(loop(normalised_loader(cifar_like(batch * n), batch, device)).fit)
        for n in (steps, 2 * steps)
    ]
    recipe_syncs = [
        count_host_syncs(lambda n=n: recipe_run(batch * n, scratch / f"syncs-{n}"))
        for n in (steps, 2 * steps)
    ]

    def per_step(pair: list[dict[str, int]], epochs: int) -> dict[str, float]:
        return {k: (pair[1][k] - pair[0][k]) / (epochs * steps) for k in pair[0]}

    return {
        "model": "linear (1,930 parameters), 3x32x32 images",
        "batch_size": batch,
        "steps_per_trial": steps,
        "trials": trials,
        "threads": torch.get_num_threads(),
        "microseconds_per_step": {
            name: spread([t[k] for t in times])
            for k, name in enumerate(("hand_written", "training_loop", "cvkit_run"))
        },
        "ratio_loop": spread([t[1] / t[0] for t in times]),
        "ratio_recipe": spread([t[2] / t[0] for t in times]),
        "host_waits_per_step": {
            "training_loop": per_step(loop_syncs, 1),
            "cvkit_run": per_step(recipe_syncs, 2),
        },
        "host_waits_per_epoch_of_steps": {
            "training_loop": loop_syncs[0],
            "cvkit_run": recipe_syncs[0],
        },
    }


class _TorchvisionCIFAR(torch.utils.data.Dataset):
    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: Any) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def pipeline(count: int, batch: int, device: torch.device) -> dict:
    """Augmented images/s: cvkit's batched tensor pipeline vs torchvision per-sample + DataLoader."""
    from torchvision import transforms as T

    data = cifar_like(count)
    loader = BatchLoader(
        data,
        batch_size=batch,
        device=device,
        shuffle=True,
        augmentations=[RandomCrop(padding=4), HorizontalFlip(), Normalize(preset="cifar10")],
    )
    for _ in loader:  # warm-up
        pass
    synchronize(device)
    start = time.perf_counter()
    for _ in loader:
        pass
    synchronize(device)
    ours = count / (time.perf_counter() - start)

    transform = T.Compose(
        [
            T.RandomCrop(32, padding=4),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize(MEAN, STD),
        ]
    )
    dataset = _TorchvisionCIFAR(
        data.images.permute(0, 2, 3, 1).numpy(), data.labels.numpy(), transform
    )
    reference = torch.utils.data.DataLoader(
        dataset,
        batch_size=batch,
        shuffle=True,
        num_workers=2,
        pin_memory=device.type == "cuda",
        persistent_workers=True,  # warmed up below as cvkit's loader is: workers kept
    )

    def torchvision_epoch() -> None:
        for images, labels in reference:
            images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        synchronize(device)

    torchvision_epoch()  # warm-up: workers started, pages touched, as for cvkit above
    start = time.perf_counter()
    torchvision_epoch()
    theirs = count / (time.perf_counter() - start)
    return {
        "images": count,
        "batch_size": batch,
        "cvkit_images_per_second": ours,
        "torchvision_images_per_second": theirs,
        "ratio": ours / theirs,
    }


def end_to_end(device: torch.device, compute_steps: int) -> dict:
    """One epoch of the small-CNN recipe on the CIFAR-10 JPEGs vs the model's compute alone."""
    from cvkit.commands.run import train
    from cvkit.engine.build import build_model
    from cvkit.recipe.loading import load_recipe
    from cvkit.registry.loading import default_registry

    recipe_path = ROOT / "recipes" / "cifar10_small_cnn.toml"
    registry = default_registry()
    device_name = "cuda" if device.type == "cuda" else "cpu"
    overrides = ["experiment.epochs=1", f"experiment.device={device_name}"]
    recipe = load_recipe(recipe_path, overrides, registry=registry)
    batch = recipe.data.batch_size
    torch.manual_seed(0)
    model = build_model(recipe, registry, num_classes=10, in_channels=3).to(device)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4
    )
    x = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)

    def steps(n: int) -> float:
        synchronize(device)
        start = time.perf_counter()
        for _ in range(n):
            loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        synchronize(device)
        return n * batch / (time.perf_counter() - start)

    steps(max(2, compute_steps // 10))  # warm-up
    before = steps(compute_steps)
    with tempfile.TemporaryDirectory() as folder:
        result = train(
            recipe_path, overrides=overrides, output=Path(folder) / "run", registry=registry
        )
        metrics = json.loads((result.run_dir / "metrics.jsonl").read_text().splitlines()[0])
    after = steps(compute_steps)  # compute-only on both sides of the epoch, against drifts
    compute = (before + after) / 2
    return {
        "recipe": "recipes/cifar10_small_cnn.toml",
        "epoch_images_per_second": metrics["images_per_second"],
        "epoch_seconds": metrics["epoch_seconds"],
        "compute_only_images_per_second": compute,
        "compute_only_before_and_after": [before, after],
        "ratio": metrics["images_per_second"] / compute,
        "val_acc_after_one_epoch": metrics["val/acc"],
    }


def machine(device: torch.device) -> dict:
    return {
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"cpu ({platform.processor() or platform.machine()})",
        "cpu_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--only",
        default="overhead,pipeline,end_to_end,host_overhead",
        help="comma-separated subset",
    )
    parser.add_argument(
        "--threads", type=int, help="torch's CPU threads (default: torch's own choice)"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument(
        "--trials", type=int, default=7, help="interleaved trials per overhead measurement"
    )
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = (
        torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if args.device == "auto"
        else torch.device(args.device)
    )
    cuda = device.type == "cuda"
    only = set(args.only.split(","))
    results: dict[str, Any] = {"machine": machine(device), "command": " ".join(sys.argv)}
    if "overhead" in only:
        results["overhead"] = [
            overhead(
                "simple_cnn [48, 96, 144]",
                lambda: SimpleCNN(10, 3, widths=[48, 96, 144]),
                batch=512 if cuda else 128,
                steps=50 if cuda else 40,
                trials=args.trials,
                device=device,
            ),
            overhead(
                "cifar_resnet18",
                cifar_resnet18,
                batch=512 if cuda else 32,
                steps=30 if cuda else 8,
                trials=args.trials,
                device=device,
            ),
        ]
    if "host_overhead" in only:
        results["host_overhead"] = host_overhead(
            batch=512 if cuda else 8, steps=2000, trials=args.trials, device=device
        )
    if "pipeline" in only:
        results["pipeline"] = pipeline(count=50_000 if cuda else 10_000, batch=128, device=device)
    if "end_to_end" in only:
        results["end_to_end"] = end_to_end(device, compute_steps=300 if cuda else 100)
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
