"""Built-in datasets on files made here: CIFAR in torchvision's format, image folders, synthetic."""

from __future__ import annotations

import pickle
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.datasets import CIFAR10, CIFAR100

from cvkit.builtins.cifar import cifar10, cifar100
from cvkit.builtins.imagefolder import ImageFolder
from cvkit.builtins.synthetic import SyntheticImages
from cvkit.errors import DatasetError
from cvkit.testing import check_dataset


def write_cifar(root: Path, source: type[CIFAR10], per_file: int = 6) -> dict[str, np.ndarray]:
    """Files in torchvision's CIFAR layout; returns the images written per split (N, 32, 32, 3)."""
    folder = root / source.base_folder
    folder.mkdir(parents=True)
    label_key = "fine_labels" if source is CIFAR100 else "labels"
    classes = 100 if source is CIFAR100 else 10
    rng = np.random.default_rng(0)
    written: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    for split, files in (("train", source.train_list), ("test", source.test_list)):
        for name, _ in files:
            data = rng.integers(0, 256, (per_file, 3 * 32 * 32), dtype=np.uint8)
            labels = [int(i) % classes for i in rng.integers(0, classes, per_file)]
            with open(folder / name, "wb") as f:
                pickle.dump({"data": data, label_key: labels}, f)
            written[split].append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    meta_key = source.meta["key"]
    with open(folder / source.meta["filename"], "wb") as f:
        pickle.dump({meta_key: [f"name{i}" for i in range(classes)]}, f)
    return {split: np.concatenate(parts) for split, parts in written.items()}


@pytest.fixture
def trust_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skip torchvision's MD5 checks: the files here are ours, not the published archive."""
    monkeypatch.setattr("torchvision.datasets.cifar.check_integrity", lambda *args, **kwargs: True)


@pytest.mark.parametrize(
    ("factory", "source", "splits"), [(cifar10, CIFAR10, 6), (cifar100, CIFAR100, 2)]
)
def test_cifar_loads_torchvisions_format_as_uint8_nchw(
    tmp_path, trust_files, factory, source, splits
) -> None:
    written = write_cifar(tmp_path, source)
    dataset = factory(root=tmp_path, download=False)
    train, test = dataset.load("train"), dataset.load("test")
    assert train.images.shape == (6 * (splits - 1), 3, 32, 32) and test.images.shape == (
        6,
        3,
        32,
        32,
    )
    assert torch.equal(train.images, torch.from_numpy(written["train"]).permute(0, 3, 1, 2))
    assert train.classes[:2] == ("name0", "name1") and len(train.classes) == dataset.num_classes
    check_dataset(lambda: factory(root=tmp_path, download=False))


def test_cifar_without_files_and_without_download_fails_on_construction(tmp_path) -> None:
    with pytest.raises(DatasetError) as error:
        cifar10(root=tmp_path, download=False)
    message = str(error.value)
    assert f"in {tmp_path}" in message and "cifar-10-python.tar.gz" in message
    assert (
        "cifar-10-batches-py/" in message and "data_batch_1" in message and "test_batch" in message
    )


def test_cifar_offline_download_names_url_directory_and_files(tmp_path, monkeypatch) -> None:
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr("torchvision.datasets.cifar.download_and_extract_archive", offline)
    dataset = cifar100(root=tmp_path / "c100")
    with pytest.raises(DatasetError) as error:
        dataset.load("train")
    message = str(error.value)
    assert "download failed (URLError" in message and str(tmp_path / "c100") in message
    assert CIFAR100.url in message and "cifar-100-python/" in message and "meta" in message


def test_cifar_default_root_is_under_cvkit_home(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CVKIT_HOME", str(tmp_path))
    assert cifar10().root == tmp_path / "datasets" / "cifar10"


def write_image(path: Path, height: int, width: int, value: int, jpeg: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"quality": 95} if jpeg else {}
    Image.fromarray(np.full((height, width, 3), value, dtype=np.uint8)).save(path, **options)


def make_folder(root: Path, sizes: dict[str, list[tuple[int, int]]]) -> None:
    for label, (name, shapes) in enumerate(sizes.items()):
        for i, (h, w) in enumerate(shapes):
            write_image(
                root / name / f"{i}.{'jpg' if i % 2 else 'png'}",
                h,
                w,
                40 * label + 10,
                jpeg=bool(i % 2),
            )


def test_imagefolder_reads_class_folders_in_sorted_order(tmp_path) -> None:
    make_folder(tmp_path / "train", {"dog": [(8, 8)] * 3, "cat": [(8, 8)] * 2})
    make_folder(tmp_path / "test", {"dog": [(8, 8)], "cat": [(8, 8)]})
    dataset = ImageFolder(tmp_path / "train", test_root=tmp_path / "test")
    assert (dataset.num_classes, dataset.in_channels, dataset.splits) == (2, 3, ("train", "test"))
    train = dataset.load("train")
    assert train.classes == ("cat", "dog") and train.labels.tolist() == [0, 0, 1, 1, 1]
    assert train.images.shape == (5, 3, 8, 8) and train.images.dtype == torch.uint8
    # cat (written with value 50) and dog (value 10) keep their pixel values
    assert (
        abs(int(train.images[0].float().mean()) - 50) <= 2
        and abs(int(train.images[-1].float().mean()) - 10) <= 2
    )
    check_dataset(lambda: ImageFolder(tmp_path / "train", test_root=tmp_path / "test"))


def test_imagefolder_of_mixed_sizes_needs_image_size(tmp_path) -> None:
    make_folder(tmp_path, {"a": [(8, 8), (12, 6)], "b": [(20, 20)]})
    with pytest.raises(DatasetError, match=r"is 12x6 but .*0\.png is 8x8; set image_size"):
        ImageFolder(tmp_path).load("train")
    resized = ImageFolder(tmp_path, image_size=[10, 14]).load("train")
    assert resized.images.shape == (3, 3, 10, 14)
    square = ImageFolder(tmp_path, image_size=16, channels=1).load("train")
    assert square.images.shape == (3, 1, 16, 16)


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ("missing", "data does not exist"),
        ("no_classes", "Couldn't find any class folder"),
        ("empty_class", "Found no valid file for the classes"),
        ("other_classes", "class folders of"),
    ],
)
def test_imagefolder_explains_bad_folders(tmp_path, layout, message) -> None:
    root = tmp_path / "data"
    test_root = None
    if layout == "no_classes":
        root.mkdir()
    elif layout == "empty_class":
        make_folder(root, {"a": [(4, 4)]})
        (root / "b").mkdir()
    elif layout == "other_classes":
        make_folder(root, {"a": [(4, 4)]})
        make_folder(tmp_path / "test", {"z": [(4, 4)]})
        test_root = tmp_path / "test"
    with pytest.raises(DatasetError, match=message):
        ImageFolder(root, test_root=test_root).load("train")


def test_imagefolder_names_an_undecodable_file(tmp_path) -> None:
    make_folder(tmp_path, {"a": [(4, 4)]})
    (tmp_path / "a" / "broken.png").write_bytes(b"not an image")
    with pytest.raises(DatasetError, match=r"cannot decode .*broken\.png"):
        ImageFolder(tmp_path).load("train")


def test_synthetic_is_seeded_balanced_and_learnable() -> None:
    dataset = SyntheticImages(num_classes=4, image_size=8, train_size=400, test_size=100, seed=3)
    train, test = dataset.load("train"), dataset.load("test")
    assert torch.equal(
        train.images, SyntheticImages(4, 8, 3, 400, 100, seed=3).load("train").images
    )
    assert not torch.equal(
        train.images, SyntheticImages(4, 8, 3, 400, 100, seed=4).load("train").images
    )
    assert torch.bincount(train.labels).tolist() == [100] * 4
    # A nearest-class-mean classifier fitted on train separates the test images.
    x_train, x_test = train.images.flatten(1).float(), test.images.flatten(1).float()
    means = torch.stack([x_train[train.labels == k].mean(0) for k in range(4)])
    predicted = torch.cdist(x_test, means).argmin(1)
    assert (predicted == test.labels).float().mean() > 0.9
    assert SyntheticImages(test_size=0).splits == ("train",)
