"""Built-in plugin: ``dataset/cifar10`` and ``dataset/cifar100``, read (and optionally
downloaded) by torchvision."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from cvkit.data.paths import dataset_dir
from cvkit.data.tensors import ImageTensors, check_split
from cvkit.errors import DatasetError
from cvkit.hookspecs import Register, hookimpl

if TYPE_CHECKING:
    from torchvision.datasets import CIFAR10


class TorchvisionCIFAR:
    """CIFAR-10 or CIFAR-100 read (and optionally downloaded) by torchvision.

    ``root`` holds torchvision's layout: the extracted ``cifar-10-batches-py/`` (or
    ``cifar-100-python/``) folder, or the downloaded archive, which is extracted on first use.
    """

    in_channels = 3
    splits = ("train", "test")
    image_size = (32, 32)

    def __init__(self, source: type[CIFAR10], name: str, root: Path | None, download: bool) -> None:
        self.source, self.name = source, name
        self.root = Path(root) if root is not None else dataset_dir(name)
        self.download = download
        self.num_classes = 100 if name == "cifar100" else 10
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
        check_split(self.name, split, self.splits)
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
    from torchvision.datasets import (
        CIFAR10,  # torchvision loads when used: listing components stays fast
    )

    return TorchvisionCIFAR(CIFAR10, "cifar10", root, download)


def cifar100(root: Path | None = None, download: bool = True) -> TorchvisionCIFAR:
    """CIFAR-100 (Krizhevsky, 2009): 32x32 RGB, 100 classes, 50,000 train and 10,000 test images.

    Args:
        root: directory holding cifar-100-python/ or cifar-100-python.tar.gz
            (default: $CVKIT_HOME/datasets/cifar100, CVKIT_HOME defaulting to ~/.cache/cvkit).
        download: download the archive into root if it is missing.
    """
    from torchvision.datasets import (
        CIFAR100,  # torchvision loads when used: listing components stays fast
    )

    return TorchvisionCIFAR(CIFAR100, "cifar100", root, download)


@hookimpl
def register_datasets(register: Register) -> None:
    # They need files: tests/test_builtin_datasets.py covers them.
    register("cifar10", cifar10, examples=[])
    register("cifar100", cifar100, examples=[])
