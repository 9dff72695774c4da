"""Splits kept encoded: the images stay JPEG/PNG/WebP bytes (in shards on disk, for datasets
larger than memory) and are decoded when a batch needs them, in the loader's worker
processes, at the size the recipe trains at."""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from typing import Any, Protocol, overload, runtime_checkable

import attrs
import torch
from PIL import Image

from cvkit.data.images import UNDECODABLE, as_tensor, resize
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


Box = tuple[int, int, int, int]
"""A crop as (top, left, height, width), in pixels of the image at its stored size."""


def decode_bytes(
    data: bytes,
    channels: int,
    size: tuple[int, int],
    where: str,
    box: Callable[[int, int], Box] | None = None,
) -> torch.Tensor:
    """Encoded image ``data`` as uint8 (channels, height, width) at ``size`` ([height, width],
    antialiased bilinear, the aspect ratio not kept: as dataset/imagefolder resizes), the
    whole image or, given ``box``, the crop ``box(height, width)`` draws for the stored
    image's height and width. A JPEG whose image (or crop) is larger than twice ``size`` is
    decoded at a reduced scale first (Pillow's ``draft``: DCT scaling by 1/2, 1/4 or 1/8,
    never below ``size``), so a large photo costs a fraction of its full decode. Raises
    DatasetError naming ``where`` for data Pillow cannot decode."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            top, left, h, w = (0, 0, height, width) if box is None else box(height, width)
            if image.format == "JPEG":  # the smallest scale whose crop still covers ``size``
                wanted = (math.ceil(width * size[1] / w), math.ceil(height * size[0] / h))
                image.draft("RGB" if channels == 3 else "L", wanted)
            tensor = as_tensor(image, channels)
    except UNDECODABLE as error:
        raise DatasetError(f"cannot decode image {where}: {error}") from error
    if box is not None:
        sy, sx = tensor.shape[1] / height, tensor.shape[2] / width  # 1 unless drafted
        top, left = (
            min(int(top * sy), tensor.shape[1] - 1),
            min(int(left * sx), tensor.shape[2] - 1),
        )
        h, w = max(1, round(h * sy)), max(1, round(w * sx))
        tensor = tensor[:, top : top + h, left : left + w]
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

    def cropped(self, index: int, crop: Any) -> torch.Tensor:
        """Image ``index`` cropped while decoded by ``crop``, an augmentation that declares
        ``crops_at_decode``: the box its ``box(height, width)`` draws for the stored image,
        resized to its ``size`` ([height, width]); uint8 (channels, *size)."""
        at = self.position(index)
        size = (int(crop.size[0]), int(crop.size[1]))
        return decode_bytes(
            self.source.encoded(at), self.channels, size, self.source.describe(at), crop.box
        )

    def decoded(self) -> torch.Tensor:
        """Every image decoded: uint8 (N, C, H, W); for a few (the checks before a run), not a split."""
        if len(self) == 0:
            return torch.empty((0, self.channels, *self.size), dtype=torch.uint8)
        return torch.stack([self[i] for i in range(len(self))])
