"""``cvkit data convert``: an image folder or a registered dataset into a shard folder, in
worker processes, idempotent, never leaving a folder a reader would take as complete."""

from __future__ import annotations

import collections
import io
import json
import multiprocessing
import os
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import attrs
import torch

from cvkit import DatasetError, ImageDataset, write_text_atomic
from cvkit_shards.layout import FORMAT, MANIFEST

SPLIT_FOLDERS = ("train", "val", "test")
"""Subfolders of an image folder read as its splits (when it has them)."""

KEPT_FORMATS = {"JPEG": "jpeg", "PNG": "png", "WEBP": "webp"}
"""Formats stored as the file's bytes; other formats are stored re-encoded as PNG."""


@attrs.frozen
class ShardWork:
    """One shard to write: ``split``, its ``number`` and its images, either ``files``
    ((path, label) pairs) or ``images`` uint8 (n, C, H, W) with ``labels`` int64 (n,)."""

    split: str
    number: int
    files: tuple[tuple[str, int], ...] = ()
    images: torch.Tensor | None = None
    labels: torch.Tensor | None = None


@attrs.frozen
class Source:
    """What a conversion reads: ``classes`` and, per split, the shards to write."""

    description: str
    classes: tuple[str, ...]
    work: tuple[ShardWork, ...]


def _image_files(folder: Path) -> list[Path]:
    from PIL import Image

    extensions = set(Image.registered_extensions())
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in extensions)


def _class_folders(folder: Path) -> list[str]:
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DatasetError(f"{folder}: no class subfolders; expected {folder}/<class>/<image>")
    return classes


def folder_source(root: Path, shard_size: int) -> Source:
    """An image folder: ``root/<class>/<image>`` (one split, train), or ``root/<split>/<class>/
    <image>`` for splits among train, val and test, whose class sets must be the same."""
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder")
    split_dirs = [s for s in SPLIT_FOLDERS if (root / s).is_dir()]
    folders = {s: root / s for s in split_dirs} if split_dirs else {"train": root}
    if "train" not in folders:
        raise DatasetError(f"{root}: split folders {', '.join(split_dirs)} but no train/")
    classes = _class_folders(folders["train"])
    for folder in folders.values():
        found = _class_folders(folder)
        if found != classes:
            missing = sorted(set(classes) - set(found))
            extra = sorted(set(found) - set(classes))
            raise DatasetError(
                f"{folder}: its classes differ from those of {folders['train']} (missing: "
                f"{', '.join(missing) or 'none'}; not in train: {', '.join(extra) or 'none'})"
            )
    work = []
    for split, folder in folders.items():
        files = [
            (str(path), label)
            for label, name in enumerate(classes)
            for path in _image_files(folder / name)
        ]
        if not files:
            raise DatasetError(f"{folder}: no image files in its class folders")
        for number, first in enumerate(range(0, len(files), shard_size)):
            work.append(ShardWork(split, number, files=tuple(files[first : first + shard_size])))
    return Source(str(root), tuple(classes), tuple(work))


def dataset_source(name: str, dataset: ImageDataset, shard_size: int) -> Source:
    """A registered dataset: each of its splits loaded (as a recipe would), then sharded."""
    work, classes = [], None
    for split in dataset.splits:
        data = dataset.load(split)
        images = data.images
        if not isinstance(images, torch.Tensor):
            raise DatasetError(f"{name}: split {split} is already kept encoded; nothing to convert")
        classes = classes or data.classes
        for number, first in enumerate(range(0, len(data), shard_size)):
            part = slice(first, first + shard_size)
            work.append(
                ShardWork(
                    split, number, images=images[part].clone(), labels=data.labels[part].clone()
                )
            )
    return Source(name, tuple(classes or ()), tuple(work))


def _png(image: torch.Tensor) -> bytes:
    from PIL import Image

    array = image.permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array).save(buffer, "PNG")
    return buffer.getvalue()


def _rows(work: ShardWork, skipped: list[str]) -> Iterator[tuple[bytes, int, int, int]]:
    """(bytes, label, height, width) of each image of ``work``; unreadable files are
    appended to ``skipped``."""
    from PIL import Image

    if work.images is not None and work.labels is not None:
        for image, label in zip(work.images, work.labels.tolist(), strict=True):
            yield _png(image), label, image.shape[1], image.shape[2]
        return
    for path, label in work.files:
        try:
            data = Path(path).read_bytes()
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                if image.format not in KEPT_FORMATS:
                    image.load()
                    buffer = io.BytesIO()
                    image.save(buffer, "PNG")
                    data = buffer.getvalue()
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
            skipped.append(f"{path} ({type(error).__name__}: {error})")
            continue
        yield data, label, height, width


def write_shard(work: ShardWork, partial: Path) -> dict[str, Any]:
    """Write ``work`` as ``partial/<split>/shard-<number>`` (into a temporary folder renamed
    when complete; an existing complete shard is kept: an interrupted conversion continues).
    Returns its manifest entry: images, bytes, per-class counts, sizes, skipped files."""
    import datasets

    datasets.disable_progress_bars()  # the command draws one bar for the whole conversion
    folder = partial / work.split / f"shard-{work.number:05d}"
    record = folder.with_name(folder.name + ".json")
    if folder.is_dir() and record.is_file():
        return dict(json.loads(record.read_text(encoding="utf-8")))
    skipped: list[str] = []
    rows = list(_rows(work, skipped))
    columns = {
        "image": [r[0] for r in rows],
        "label": [r[1] for r in rows],
        "height": [r[2] for r in rows],
        "width": [r[3] for r in rows],
    }
    features = datasets.Features(
        {
            "image": datasets.Value("binary"),
            "label": datasets.Value("int64"),
            "height": datasets.Value("int32"),
            "width": datasets.Value("int32"),
        }
    )
    temporary = folder.with_name(folder.name + ".writing")
    shutil.rmtree(temporary, ignore_errors=True)
    datasets.Dataset.from_dict(columns, features=features).save_to_disk(str(temporary))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(temporary, folder)
    entry = {
        "split": work.split,
        "number": work.number,
        "images": len(rows),
        "bytes": sum(len(r[0]) for r in rows),
        "per_class": dict(collections.Counter(str(r[1]) for r in rows)),
        "sizes": dict(collections.Counter(f"{r[2]}x{r[3]}" for r in rows)),
        "skipped": skipped,
    }
    write_text_atomic(record, json.dumps(entry))
    return entry


def _manifest(source: Source, entries: list[dict[str, Any]]) -> dict[str, Any]:
    splits: dict[str, Any] = {}
    for entry in sorted(entries, key=lambda e: (e["split"], e["number"])):
        split = splits.setdefault(
            entry["split"],
            {
                "images": 0,
                "bytes": 0,
                "per_class": collections.Counter(),
                "sizes": collections.Counter(),
                "skipped": [],
                "shards": [],
            },
        )
        split["images"] += entry["images"]
        split["bytes"] += entry["bytes"]
        split["per_class"].update(entry["per_class"])
        split["sizes"].update(entry["sizes"])
        split["skipped"] += entry["skipped"]
        split["shards"].append({"images": entry["images"], "bytes": entry["bytes"]})
    for split in splits.values():
        split["per_class"] = [split["per_class"].get(str(k), 0) for k in range(len(source.classes))]
        split["sizes"] = dict(split["sizes"].most_common())
    return {
        "format": FORMAT,
        "source": source.description,
        "classes": list(source.classes),
        "splits": splits,
    }


def convert(
    source: Source, out: Path, workers: int, progress: Callable[[int], None] = lambda n: None
) -> tuple[dict[str, Any], bool]:
    """Write ``source`` as the shard folder ``out``. Returns (its manifest, whether it was
    written now: False when ``out`` was already a complete conversion). Shards are written
    by ``workers`` processes (0: in this one); ``progress(n)`` is told of each shard's
    ``n`` images. Raises DatasetError for an ``out`` that exists but is no shard folder."""
    if (out / MANIFEST).is_file():
        return json.loads((out / MANIFEST).read_text(encoding="utf-8")), False
    if out.exists():
        raise DatasetError(f"{out}: exists and is not a shard folder; choose another OUT")
    partial = out.with_name(out.name + ".partial")
    for split in {w.split for w in source.work}:
        (partial / split).mkdir(parents=True, exist_ok=True)
    entries = []
    if workers == 0:
        for work in source.work:
            entries.append(write_shard(work, partial))
            progress(entries[-1]["images"])
    else:
        context = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            for entry in pool.map(write_shard, source.work, [partial] * len(source.work)):
                entries.append(entry)
                progress(entry["images"])
    manifest = _manifest(source, entries)
    if not any(s["images"] for s in manifest["splits"].values()):
        raise DatasetError(f"{source.description}: no readable image; nothing converted")
    write_text_atomic(partial / MANIFEST, json.dumps(manifest, indent=1))
    os.replace(partial, out)  # the folder appears complete, or not at all
    return manifest, True
