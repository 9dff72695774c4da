"""Built-in plugin: ``dataset/imagefolder``, images in class subfolders decoded into memory."""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import torch
from PIL import Image

from cvkit.data.images import decode_image_file
from cvkit.data.tensors import ImageTensors, check_split
from cvkit.errors import DatasetError
from cvkit.hookspecs import Register, hookimpl
from cvkit.progress import Meter
from cvkit.registry.parameters import height_width


def _image_extensions() -> tuple[str, ...]:
    """The file extensions torchvision's image folders read (.jpg, .png, .webp, ...)."""
    from torchvision.datasets.folder import (
        IMG_EXTENSIONS,  # torchvision loads when used: listing components stays fast
    )

    return IMG_EXTENSIONS


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
        self.size = None if image_size is None else height_width(image_size, "image_size")
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

    @property
    def image_size(self) -> list[int]:
        """[height, width] of the images: ``image_size`` when given, else the first training
        image's (read from its header only)."""
        if self.size is not None:
            return self.size
        first = next(
            (
                p
                for p in sorted(self.roots["train"].rglob("*"))
                if p.suffix.lower() in _image_extensions()
            ),
            None,
        )
        if first is None:
            raise DatasetError(f"imagefolder: no image files in {self.roots['train']}")
        try:
            with Image.open(first) as image:
                return [image.height, image.width]
        except OSError as error:
            raise DatasetError(f"imagefolder: cannot read image {first}: {error}") from error

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
        if not folder.exists():
            raise DatasetError(f"imagefolder: {folder} does not exist")
        if not folder.is_dir():
            raise DatasetError(f"imagefolder: {folder} is not a directory of class subfolders")
        try:
            from torchvision.datasets.folder import (
                find_classes,  # torchvision loads when used: listing components stays fast
            )

            return find_classes(str(folder))[0]
        except FileNotFoundError as error:
            raise DatasetError(f"imagefolder: {error}") from error

    def _decode(self, path: str) -> torch.Tensor:
        try:
            return decode_image_file(path, self.in_channels, self.size)
        except DatasetError as error:
            raise DatasetError(f"imagefolder: {error}") from error

    def load(self, split: str) -> ImageTensors:
        """Every image of ``split`` as uint8 (N, channels, H, W), decoded on ``workers`` threads."""
        check_split("imagefolder", split, self.splits)
        folder = self.roots[split]
        try:
            from torchvision.datasets.folder import (
                make_dataset,  # torchvision loads when used: listing components stays fast
            )

            samples = make_dataset(
                str(folder),
                {c: i for i, c in enumerate(self.classes)},
                extensions=_image_extensions(),
            )
        except FileNotFoundError as error:
            raise DatasetError(f"imagefolder: {error}") from error
        paths = [path for path, _ in samples]
        images = []
        with (
            ThreadPoolExecutor(self.workers) as pool,
            Meter(f"decoding {folder}", len(paths)) as meter,
        ):
            for image in pool.map(self._decode, paths):
                images.append(image)
                meter.update()
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


@hookimpl
def register_datasets(register: Register) -> None:
    # It needs files: tests/test_builtin_datasets.py covers it.
    register("imagefolder", ImageFolder, examples=[])
