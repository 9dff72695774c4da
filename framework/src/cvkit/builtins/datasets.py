"""Built-in datasets: CIFAR-10/100 (torchvision), image folders, and seeded synthetic images."""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torchvision.datasets import CIFAR10, CIFAR100
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

from cvkit.data import ImageTensors
from cvkit.errors import DatasetError
from cvkit.images import decode_image_file
from cvkit.params import height_width
from cvkit.paths import dataset_dir


def _check_split(dataset: str, split: str, splits: tuple[str, ...]) -> None:
    if split not in splits:
        raise ValueError(f"{dataset} has no split {split!r}; splits: {', '.join(splits)}")


class TorchvisionCIFAR:
    """CIFAR-10 or CIFAR-100 read (and optionally downloaded) by torchvision.

    ``root`` holds torchvision's layout: the extracted ``cifar-10-batches-py/`` (or
    ``cifar-100-python/``) folder, or the downloaded archive, which is extracted on first use.
    """

    in_channels = 3
    splits = ("train", "test")

    def __init__(self, source: type[CIFAR10], name: str, root: Path | None, download: bool) -> None:
        self.source, self.name = source, name
        self.root = Path(root) if root is not None else dataset_dir(name)
        self.download = download
        self.num_classes = 100 if issubclass(source, CIFAR100) else 10
        if not download and not self._present():
            raise DatasetError(self._missing("files not found and download = false"))

    def fingerprint(self) -> str:
        """The resolved data directory (the default one depends on CVKIT_HOME)."""
        return str(self.root.resolve())

    def _expected_files(self) -> list[str]:
        names = [name for name, _ in self.source.train_list + self.source.test_list]
        return [*names, self.source.meta["filename"]]

    def _present(self) -> bool:
        folder = self.root / self.source.base_folder
        archive = self.root / self.source.filename
        return archive.is_file() or all((folder / f).is_file() for f in self._expected_files())

    def _missing(self, reason: str) -> str:
        files = ", ".join(self._expected_files())
        return (
            f"dataset {self.name}: {reason}. Put {self.source.filename} (from {self.source.url}) "
            f"in {self.root}, or its extracted folder {self.source.base_folder}/ with {files}; "
            f"or set root to where they are"
        )

    def load(self, split: str) -> ImageTensors:
        """The 50,000 training or 10,000 test images as uint8 (N, 3, 32, 32)."""
        _check_split(self.name, split, self.splits)
        try:
            data = self.source(str(self.root), train=split == "train", download=self.download)
        except (OSError, RuntimeError) as error:  # URLError is an OSError
            action = "download failed" if self.download else "not found"
            raise DatasetError(
                self._missing(f"{action} ({type(error).__name__}: {error})")
            ) from error
        images = torch.from_numpy(data.data).permute(0, 3, 1, 2).contiguous()
        return ImageTensors(
            images, torch.tensor(data.targets, dtype=torch.int64), tuple(data.classes)
        )


def cifar10(root: Path | None = None, download: bool = True) -> TorchvisionCIFAR:
    """CIFAR-10 (Krizhevsky, 2009): 32x32 RGB, 10 classes, 50,000 train and 10,000 test images.

    Args:
        root: directory holding cifar-10-batches-py/ or cifar-10-python.tar.gz
            (default: $CVKIT_HOME/datasets/cifar10, CVKIT_HOME defaulting to ~/.cache/cvkit).
        download: download the archive into root if it is missing.
    """
    return TorchvisionCIFAR(CIFAR10, "cifar10", root, download)


def cifar100(root: Path | None = None, download: bool = True) -> TorchvisionCIFAR:
    """CIFAR-100 (Krizhevsky, 2009): 32x32 RGB, 100 classes, 50,000 train and 10,000 test images.

    Args:
        root: directory holding cifar-100-python/ or cifar-100-python.tar.gz
            (default: $CVKIT_HOME/datasets/cifar100, CVKIT_HOME defaulting to ~/.cache/cvkit).
        download: download the archive into root if it is missing.
    """
    return TorchvisionCIFAR(CIFAR100, "cifar100", root, download)


class ImageFolder:
    """Images in class subfolders, root/<class>/<image>, decoded into memory.

    Classes are the subfolder names in sorted order (torchvision's ``find_classes``); files
    with torchvision's image extensions (JPEG, PNG, WebP, ...) are decoded by Pillow. Images
    of different sizes need ``image_size``. An optional ``test_root`` with the same class
    folders is the test split.

    Args:
        root: folder of class subfolders: the training split.
        test_root: folder of the test split, with the same class subfolders, or none.
        image_size: resize every image to this size (an int for square, or [height, width]);
            none keeps the files' size, which must then be the same for all.
        channels: 3 to decode as RGB, 1 for grayscale.
        workers: decoding threads (0 for one per CPU core, at most 8).
    """

    def __init__(
        self,
        root: Path,
        test_root: Path | None = None,
        image_size: int | list[int] | None = None,
        channels: Literal[1, 3] = 3,
        workers: int = 0,
    ) -> None:
        self.roots = {"train": Path(root)} | (
            {"test": Path(test_root)} if test_root is not None else {}
        )
        self.image_size = None if image_size is None else height_width(image_size, "image_size")
        self.in_channels = channels
        self.workers = workers or min(8, os.cpu_count() or 1)
        self.splits = tuple(self.roots)
        self.classes = self._classes(self.roots["train"])
        for split, folder in self.roots.items():
            if split != "train" and self._classes(folder) != self.classes:
                raise DatasetError(
                    f"imagefolder: class folders of {folder} differ from those of {root}"
                )
        self.num_classes = len(self.classes)

    def fingerprint(self) -> str:
        """Names, sizes and modification times of every file, so an edited folder is re-read."""
        digest = hashlib.sha256()
        for split, root in self.roots.items():
            for path in sorted(root.rglob("*")):
                if path.is_file():
                    stat = path.stat()
                    digest.update(
                        f"{split}/{path.relative_to(root)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode()
                    )
        return digest.hexdigest()

    @staticmethod
    def _classes(folder: Path) -> list[str]:
        if not folder.is_dir():
            raise DatasetError(f"imagefolder: {folder} is not a directory of class subfolders")
        try:
            return find_classes(str(folder))[0]
        except FileNotFoundError as error:
            raise DatasetError(f"imagefolder: {error}") from error

    def _decode(self, path: str) -> torch.Tensor:
        try:
            return decode_image_file(path, self.in_channels, self.image_size)
        except DatasetError as error:
            raise DatasetError(f"imagefolder: {error}") from error

    def load(self, split: str) -> ImageTensors:
        """Every image of ``split`` as uint8 (N, channels, H, W), decoded on ``workers`` threads."""
        _check_split("imagefolder", split, self.splits)
        folder = self.roots[split]
        try:
            samples = make_dataset(
                str(folder), {c: i for i, c in enumerate(self.classes)}, extensions=IMG_EXTENSIONS
            )
        except FileNotFoundError as error:
            raise DatasetError(f"imagefolder: {error}") from error
        paths = [path for path, _ in samples]
        with ThreadPoolExecutor(self.workers) as pool:
            images = list(pool.map(self._decode, paths))
        first = images[0].shape[1:]
        for path, image in zip(paths, images, strict=True):
            if image.shape[1:] != first:
                raise DatasetError(
                    f"imagefolder: {path} is {_hw(image)} but {paths[0]} is {_hw(images[0])}; "
                    "set image_size to resize them all"
                )
        labels = torch.tensor([label for _, label in samples], dtype=torch.int64)
        return ImageTensors(torch.stack(images), labels, tuple(self.classes))


def _hw(image: torch.Tensor) -> str:
    return f"{image.shape[-2]}x{image.shape[-1]}"


class SyntheticImages:
    """Seeded synthetic images: one smooth random prototype per class plus Gaussian noise.

    Learnable but not trivial, for tests, demos and benchmarks without any files. The same
    parameters always give the same images and labels; classes are balanced.

    Args:
        num_classes: number of classes.
        image_size: height and width in pixels.
        channels: image channels.
        train_size: images in the train split.
        test_size: images in the test split (0 for no test split).
        noise: standard deviation of the per-pixel noise, in units of the 0..1 range.
        seed: seed of the generator.
    """

    def __init__(
        self,
        num_classes: int = 10,
        image_size: int = 32,
        channels: int = 3,
        train_size: int = 1000,
        test_size: int = 200,
        noise: float = 0.25,
        seed: int = 0,
    ) -> None:
        if (
            num_classes < 1
            or image_size < 1
            or channels < 1
            or train_size < 1
            or test_size < 0
            or noise < 0
        ):
            raise ValueError(
                "num_classes, image_size, channels, train_size must be >= 1; test_size, noise >= 0"
            )
        self.cacheable = False  # generating is as fast as reading a cache file
        self.num_classes, self.image_size, self.in_channels = num_classes, image_size, channels
        self.sizes = {"train": train_size} | ({"test": test_size} if test_size else {})
        self.splits = tuple(self.sizes)
        self.noise, self.seed = noise, seed

    def load(self, split: str) -> ImageTensors:
        """The split as uint8 (N, channels, image_size, image_size), labels balanced."""
        _check_split("synthetic", split, self.splits)
        generator = torch.Generator().manual_seed(self.seed)
        coarse = torch.rand(self.num_classes, self.in_channels, 4, 4, generator=generator)
        size = (self.image_size, self.image_size)
        prototypes = F.interpolate(coarse, size=size, mode="bilinear", align_corners=False)
        generator.manual_seed(self.seed * 3 + 1 + self.splits.index(split))
        n = self.sizes[split]
        labels = (torch.arange(n) % self.num_classes)[torch.randperm(n, generator=generator)]
        noise = torch.randn(n, self.in_channels, *size, generator=generator) * self.noise
        images = ((prototypes[labels] + noise).clamp(0, 1) * 255).round().to(torch.uint8)
        return ImageTensors(images, labels, tuple(f"class_{i}" for i in range(self.num_classes)))
