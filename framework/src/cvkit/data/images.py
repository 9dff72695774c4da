"""Images from files and arrays as uint8 (C, H, W) / (N, C, H, W) tensors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from cvkit.errors import DatasetError


def decode_image_file(
    path: Path | str, channels: int, size: list[int] | None = None
) -> torch.Tensor:
    """One image file (any format Pillow reads) as uint8 (channels, H, W), resized to ``size``
    ([height, width], antialiased bilinear) if given. Raises DatasetError naming the file."""
    try:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB" if channels == 3 else "L"))
    except (OSError, ValueError) as error:  # PIL.UnidentifiedImageError is an OSError
        raise DatasetError(f"cannot decode image {path}: {error}") from error
    tensor = torch.from_numpy(pixels.copy()).reshape(*pixels.shape[:2], -1).permute(2, 0, 1)
    return resize(tensor, size)


def resize(images: torch.Tensor, size: list[int] | None) -> torch.Tensor:
    """``images`` (..., H, W) resized to ``size`` = [height, width] (unchanged if None or equal)."""
    if size is None or list(images.shape[-2:]) == list(size):
        return images
    return TF.resize(images, list(size), antialias=True)


def as_image_batch(array: np.ndarray | torch.Tensor, channels: int, source: str) -> torch.Tensor:
    """An array of images as uint8 (N, channels, H, W).

    Accepted layouts: (N, C, H, W), (N, H, W, C), (N, H, W) for one channel, and flat rows
    (N, C*H*W) of square images in CIFAR's channel-major order (R plane, then G, then B).
    """
    tensor = torch.as_tensor(np.asarray(array)) if not isinstance(array, torch.Tensor) else array
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
