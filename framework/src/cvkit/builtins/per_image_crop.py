"""Built-in plugin: ``augmentation/random_resized_crop_per_image``, the Inception crop per image in
DataLoader workers, taken as the image is decoded when the split is kept encoded (shards)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from cvkit.data.augmentation import PerSampleAugmentation
from cvkit.hookspecs import Register, hookimpl
from cvkit.registry.parameters import crop_ranges, height_width


class RandomResizedCropPerImage(PerSampleAugmentation):
    """Crop a random area and aspect ratio of each image and resize it to ``size``: torchvision's
    ``RandomResizedCrop`` (its ``get_params`` draw, then ``resized_crop``, antialiased
    bilinear), per image in DataLoader workers.

    On a split kept encoded (``dataset/shards``), where it must come first in augment.train,
    the crop is drawn for the stored image and taken as it is decoded: a JPEG is decoded at
    the smallest DCT scale (1/2, 1/4, 1/8) that still gives the crop ``size``'s pixels, and
    only the crop is resized, as timm's and FFCV's loaders do; the dataset's ``image_size``
    then only sizes evaluation images. On images held in memory it crops the uint8 image it
    receives. Input one uint8 (C, H, W) image, output uint8 (C, *size).

    Args:
        size: output size: an int for square images, or [height, width].
        scale: [min, max] fraction of the image's area to crop.
        ratio: [min, max] aspect ratio (width / height) of the crop.
    """

    changes_size = True
    crops_at_decode = True

    def __init__(
        self,
        size: int | list[int] = 224,
        scale: Sequence[float] = (0.08, 1.0),
        ratio: Sequence[float] = (3 / 4, 4 / 3),
    ) -> None:
        super().__init__()
        self.size = height_width(size)
        self.scale, self.ratio = crop_ranges(scale, ratio)

    def box(self, height: int, width: int) -> tuple[int, int, int, int]:
        """A crop (top, left, height, width) in pixels of a ``height`` x ``width`` image, drawn
        from torch's generator (which cvkit seeds per image)."""
        from torchvision.transforms import (
            RandomResizedCrop,  # torchvision loads when used: listing components stays fast
        )

        shape_only = torch.empty(()).expand(1, height, width)  # get_params reads the size only
        top, left, h, w = RandomResizedCrop.get_params(shape_only, self.scale, self.ratio)
        return int(top), int(left), int(h), int(w)

    def forward(self, image: Tensor) -> Tensor:
        """(C, H, W) uint8 -> (C, *size) uint8."""
        from torchvision.transforms.v2 import functional as TF

        top, left, h, w = self.box(*image.shape[-2:])
        return TF.resized_crop(image, top, left, h, w, self.size, antialias=True)


@hookimpl
def register_augmentations(register: Register) -> None:
    register(
        "random_resized_crop_per_image",
        RandomResizedCropPerImage,
        examples=[{"size": 12}, {"size": [9, 6], "scale": [0.5, 1.0], "ratio": [1.0, 1.0]}],
    )
