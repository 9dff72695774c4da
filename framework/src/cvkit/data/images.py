"""Images from files and arrays as uint8 (C, H, W) / (N, C, H, W) tensors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cvkit.errors import DatasetError


def decode_image_file(
    path: Path | str, channels: int, size: list[int] | None = None
) -> torch.Tensor:
    """One image file (any format Pillow reads) as uint8 (channels, H, W), resized to ``size``
    ([height, width], antialiased bilinear) if given. 16-bit images are scaled to 8 bits
    (65535 -> 255), not clipped. Raises DatasetError naming the file, also for an image
    larger than Pillow's decompression-bomb limit."""
    try:
        with Image.open(path) as image:
            tensor = as_tensor(image, channels)
    except UNDECODABLE as error:
        raise DatasetError(f"cannot decode image {path}: {error}") from error
    return resize(tensor, size)


UNDECODABLE = (OSError, ValueError, Image.DecompressionBombError, SyntaxError)
"""What Pillow raises for data it cannot decode (PIL.UnidentifiedImageError is an OSError;
a damaged PNG chunk raises SyntaxError)."""


def as_tensor(image: Image.Image, channels: int) -> torch.Tensor:
    """The pixels of ``image`` (decoded now) as uint8 (channels, H, W)."""
    pixels = eight_bit(image, channels)
    return torch.from_numpy(pixels.copy()).reshape(*pixels.shape[:2], -1).permute(2, 0, 1)


def eight_bit(image: Image.Image, channels: int) -> np.ndarray:
    """The pixels of ``image`` as uint8 (H, W) for one channel or (H, W, 3). Pillow's own
    conversion of 16-bit greyscale ("I;16", or "I" holding 16-bit values) clips at 255."""
    if image.mode.startswith("I;16") or image.mode == "I":
        values = np.asarray(image).astype(np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or values.max() <= 65535 else 2.0**32 - 1
        grey = np.clip(np.round(values * (255.0 / top)), 0, 255).astype(np.uint8)
        return grey if channels == 1 else np.repeat(grey[:, :, None], 3, axis=2)
    return np.asarray(image.convert("RGB" if channels == 3 else "L"))


def resize(images: torch.Tensor, size: list[int] | None) -> torch.Tensor:
    """``images`` (..., H, W) resized to ``size`` = [height, width] (unchanged if None or equal)."""
    if size is None or list(images.shape[-2:]) == list(size):
        return images
    from torchvision.transforms.v2 import (
        functional as TF,  # torchvision loads when used: listing components stays fast
    )

    return TF.resize(images, list(size), antialias=True)


def as_image_batch(array: np.ndarray | torch.Tensor, channels: int, source: str) -> torch.Tensor:
    """An array of images as uint8 (N, channels, H, W).

    Accepted layouts: (N, C, H, W), (N, H, W, C), (N, H, W) for one channel, and flat rows
    (N, C*H*W) of square images in CIFAR's channel-major order (R plane, then G, then B).
    """
    if not isinstance(array, np.ndarray | torch.Tensor):
        raise DatasetError(
            f"{source}: expected an array of uint8 images, got {type(array).__name__}"
        )
    if isinstance(array, np.ndarray) and array.dtype != np.uint8:
        raise DatasetError(f"{source}: expected uint8 images (values 0-255), got {array.dtype}")
    tensor = torch.from_numpy(array) if isinstance(array, np.ndarray) else array
    if tensor.dtype != torch.uint8:
        raise DatasetError(f"{source}: expected uint8 images (values 0-255), got {tensor.dtype}")
    if tensor.ndim == 2:
        side = math.isqrt(tensor.shape[1] // channels)
        if side * side * channels != tensor.shape[1]:
            raise DatasetError(
                f"{source}: rows of {tensor.shape[1]} values are not square {channels}-channel images"
            )
        return tensor.reshape(-1, channels, side, side)
    if tensor.ndim == 3 and channels == 1:
        return tensor[:, None]
    if tensor.ndim == 4 and tensor.shape[1] == channels:
        return tensor
    if tensor.ndim == 4 and tensor.shape[3] == channels:
        return tensor.permute(0, 3, 1, 2).contiguous()
    raise DatasetError(
        f"{source}: cannot read shape {tuple(tensor.shape)} as {channels}-channel images; expected "
        "(N, C, H, W), (N, H, W, C) or flat rows (N, C*H*W)"
    )
