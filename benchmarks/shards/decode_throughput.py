"""Issue 27's throughput target: training images decoded and augmented per second, at 224 px,
from ImageNet-sized JPEGs (about 400 x 350), with the same number of DataLoader workers:

- torchvision: ImageFolder + RandomResizedCrop(224) + RandomHorizontalFlip + ToTensor +
  Normalize (torchvision's reference training transforms) + DataLoader;
- cvkit: the folder converted to shards (cvkit data convert), dataset/shards through
  cvkit's BatchLoader with random_resized_crop_per_image (cropped as decoded), then hflip and
  normalize on the batch (the device here is the CPU).

Each trial times one whole epoch (worker start-up included, for both); trials interleave.

    .venv/bin/python benchmarks/shards/decode_throughput.py --images 1000 --workers 1 --trials 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def write_jpegs(root: Path, count: int) -> None:
    """``count`` JPEGs of 380-420 x 330-370 px in two class folders: smooth random content
    (a coarse noise field upsampled), so they compress as photos do (~20-40 KB)."""
    rng = np.random.default_rng(0)
    for i in range(count):
        folder = root / f"class{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        width, height = int(rng.integers(380, 421)), int(rng.integers(330, 371))
        coarse = rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8)
        image = Image.fromarray(coarse).resize((width, height), Image.BICUBIC)
        noisy = np.asarray(image).astype(np.int16) + rng.integers(-12, 13, (height, width, 3))
        Image.fromarray(noisy.clip(0, 255).astype(np.uint8)).save(folder / f"{i}.jpg", quality=90)


def torchvision_epoch(root: Path, workers: int, batch: int) -> float:
    from torchvision import datasets, transforms

    transform = transforms.Compose(
        [
            transforms.RandomResizedCrop(224),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(MEAN, STD),
        ]
    )
    loader = torch.utils.data.DataLoader(
        datasets.ImageFolder(str(root), transform=transform),
        batch_size=batch,
        shuffle=True,
        num_workers=workers,
    )
    start = time.perf_counter()
    count = sum(images.shape[0] for images, _ in loader)
    return count / (time.perf_counter() - start)


def cvkit_epoch(shards: Path, workers: int, batch: int) -> float:
    from cvkit.builtins.flip import HorizontalFlip
    from cvkit.builtins.normalize import Normalize
    from cvkit.builtins.per_image_crop import RandomResizedCropPerImage
    from cvkit.data.batches import BatchLoader
    from cvkit_shards import Shards

    split = Shards(root=str(shards), image_size=[224, 224]).load("train")
    loader = BatchLoader(
        split,
        batch_size=batch,
        device=torch.device("cpu"),
        augmentations=[RandomResizedCropPerImage(224), HorizontalFlip(), Normalize(MEAN, STD)],
        shuffle=True,
        workers=workers,
    )
    start = time.perf_counter()
    count = sum(images.shape[0] for images, _ in loader)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()
    from cvkit_shards.convert import convert, folder_source

    with tempfile.TemporaryDirectory() as tmp:
        folder, shards = Path(tmp) / "jpegs", Path(tmp) / "shards"
        write_jpegs(folder, args.images)
        convert(folder_source(folder, 1024), shards, workers=0)
        rates: dict[str, list[float]] = {"torchvision": [], "cvkit": []}
        for _ in range(args.trials):
            rates["torchvision"].append(torchvision_epoch(folder, args.workers, args.batch))
            rates["cvkit"].append(cvkit_epoch(shards, args.workers, args.batch))
    ratios = [c / t for c, t in zip(rates["cvkit"], rates["torchvision"], strict=True)]
    print(
        json.dumps(
            {
                "images": args.images,
                "workers": args.workers,
                "threads": torch.get_num_threads(),
                "images_per_s": {k: statistics.median(v) for k, v in rates.items()},
                "per_trial": rates,
                "ratio_median": statistics.median(ratios),
                "ratio_range": [min(ratios), max(ratios)],
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
