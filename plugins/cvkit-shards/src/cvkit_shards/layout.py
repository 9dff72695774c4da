"""The on-disk layout of a shard folder, and reading it.

::

    OUT/cvkit-shards.json            the manifest, written last: classes, splits, shards, counts
    OUT/<split>/shard-00000/         one shard: a Hugging Face ``datasets`` folder
    OUT/<split>/shard-00001/         (Arrow files) of rows {image: bytes, label, height, width}

``image`` holds the file's bytes as they were (JPEG, PNG or WebP), or PNG for images that
were tensors or in another format. A conversion writes into ``OUT.partial`` and renames it to
``OUT`` when every shard is complete, so a folder with a manifest is always whole.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from cvkit import DatasetError

MANIFEST = "cvkit-shards.json"
FORMAT = 1
COLUMNS = ("image", "label", "height", "width")


def read_manifest(root: Path) -> dict[str, Any]:
    """The manifest of shard folder ``root``; DatasetError (one line) when it is not one."""
    path = root / MANIFEST
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder; expected a shard folder (cvkit data convert)")
    if not path.is_file():
        partial = root.with_name(root.name + ".partial")
        hint = f" ({partial} is an interrupted conversion)" if partial.is_dir() else ""
        raise DatasetError(
            f"{root}: not a shard folder, it has no {MANIFEST}{hint}; make one with "
            "cvkit data convert SOURCE OUT"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise DatasetError(f"{path}: unreadable manifest ({error})") from error
    if manifest.get("format") != FORMAT:
        raise DatasetError(
            f"{path}: shard format {manifest.get('format')!r}, this cvkit-shards reads {FORMAT}"
        )
    return manifest


class ShardReader:
    """Random access to one split's encoded images (:class:`cvkit.ImageBytes`): the split's
    shards memory-mapped (Arrow), opened on first use in each process, so the reader
    pickles as its paths into the loader's worker processes."""

    def __init__(self, root: Path, split: str, manifest: dict[str, Any]) -> None:
        self.root, self.split = root, split
        self.shards = [entry["images"] for entry in manifest["splits"][split]["shards"]]
        self._columns: Any = None

    def __len__(self) -> int:
        return sum(self.shards)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_columns": None}

    def _open(self) -> Any:
        if self._columns is None:
            import datasets

            parts = []
            for number, expected in enumerate(self.shards):
                folder = self.root / self.split / f"shard-{number:05d}"
                try:
                    part = datasets.load_from_disk(str(folder))
                except (OSError, ValueError) as error:  # FileNotFoundError, Arrow errors
                    raise DatasetError(f"{folder}: unreadable shard ({error})") from error
                if len(part) != expected or list(part.column_names) != list(COLUMNS):
                    raise DatasetError(
                        f"{folder}: a damaged shard: {len(part)} rows, the manifest says "
                        f"{expected}; convert the source again"
                    )
                parts.append(part)
            table = datasets.concatenate_datasets(parts).data
            self._columns = (table.column("image"), table.column("label"))
        return self._columns

    def encoded(self, index: int) -> bytes:
        value = self._open()[0][index].as_py()
        return bytes(value)

    def describe(self, index: int) -> str:
        shard = 0
        while index >= self.shards[shard]:
            index -= self.shards[shard]
            shard += 1
        return f"{self.root / self.split}/shard-{shard:05d} row {index}"

    def labels(self) -> torch.Tensor:
        """Every label of the split: int64 (N,)."""
        return torch.from_numpy(self._open()[1].to_numpy().astype("int64"))
