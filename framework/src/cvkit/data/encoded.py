"""Splits kept encoded: the images stay JPEG/PNG/WebP bytes (in shards on disk, for datasets
larger than memory) and are decoded when a batch needs them, in the loader's worker
processes, at the size the recipe trains at."""

from __future__ import annotations

import io
from typing import Protocol, overload, runtime_checkable

import attrs
import torch
from PIL import Image

from cvkit.data.images import eight_bit, resize
from cvkit.errors import DatasetError


@runtime_checkable
class ImageBytes(Protocol):
    """Random access to a split's encoded images (what a sharded dataset's reader gives)."""

    def __len__(self) -> int: ...

    def encoded(self, index: int) -> bytes:
        """Image ``index`` (0-based) as its file's bytes."""
        ...

    def describe(self, index: int) -> str:
        """Where image ``index`` is, for error messages (a shard and a row)."""
        ...


def decode_bytes(data: bytes, channels: int, size: tuple[int, int], where: str) -> torch.Tensor:
    """Encoded image ``data`` as uint8 (channels, height, width) at ``size`` ([height, width],
    antialiased bilinear, the aspect ratio not kept: as dataset/imagefolder resizes). A JPEG
    larger than twice ``size`` is decoded at a reduced scale first (Pillow's ``draft``: DCT
    scaling by 1/2, 1/4 or 1/8, never below ``size``), so a large photo costs a fraction of
    its full decode. Raises DatasetError naming ``where`` for data Pillow cannot decode."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format == "JPEG":
                image.draft("RGB" if channels == 3 else "L", (size[1], size[0]))
            pixels = eight_bit(image, channels)
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as error:
        raise DatasetError(f"cannot decode image {where}: {error}") from error
    tensor = torch.from_numpy(pixels.copy()).reshape(*pixels.shape[:2], -1).permute(2, 0, 1)
    return resize(tensor, list(size)).contiguous()


@attrs.frozen(eq=False)
class EncodedImages:
    """A split's images, encoded, decoded one by one on access.

    Indexing with an int decodes that image: uint8 (channels, height, width) at ``size``;
    with a slice or an int64 tensor of positions it gives the subset, still encoded (as
    a tensor of images would give a smaller tensor), so splits and subsets never decode.

    Attributes:
        source: the encoded images (random access).
        channels: channels of every decoded image (3 RGB, 1 greyscale).
        size: (height, width) of every decoded image, in pixels.
        rows: positions in ``source`` of this split's images, in order (None: all of them).
    """

    source: ImageBytes
    channels: int
    size: tuple[int, int]
    rows: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.source) if self.rows is None else int(self.rows.numel())

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(N, C, H, W), as a tensor of the decoded images would have."""
        return (len(self), self.channels, *self.size)

    def position(self, index: int) -> int:
        """The position in ``source`` of this split's image ``index``."""
        return index if self.rows is None else int(self.rows[index])

    @overload
    def __getitem__(self, key: int) -> torch.Tensor: ...

    @overload
    def __getitem__(self, key: slice | torch.Tensor) -> EncodedImages: ...

    def __getitem__(self, key: int | slice | torch.Tensor) -> torch.Tensor | EncodedImages:
        if isinstance(key, int):
            at = self.position(key)
            return decode_bytes(
                self.source.encoded(at), self.channels, self.size, self.source.describe(at)
            )
        positions = torch.arange(len(self))[key]
        rows = positions if self.rows is None else self.rows[positions]
        return attrs.evolve(self, rows=rows.to(torch.int64))

    def decoded(self) -> torch.Tensor:
        """Every image decoded: uint8 (N, C, H, W); for a few (the checks before a run), not a split."""
        if len(self) == 0:
            return torch.empty((0, self.channels, *self.size), dtype=torch.uint8)
        return torch.stack([self[i] for i in range(len(self))])
