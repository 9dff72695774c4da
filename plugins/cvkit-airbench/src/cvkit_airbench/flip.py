"""airbench's alternating flip: every image mirrored in every other epoch."""

from __future__ import annotations

import torch
from torch import Tensor

from cvkit import BatchAugmentation


class AlternatingFlip(BatchAugmentation):
    """Mirror each image left-right in every other epoch, starting mirrored or not at random.

    Over any two consecutive epochs every image is seen once as it is and once mirrored,
    where random flipping would show a quarter of them the same way twice (airbench's
    "alternating flip", arXiv:2404.00498, section 3.6). Whether an image starts mirrored
    comes from its sample key (fixed for the run, from the run's seed), the alternation from
    the epoch. Images (N, C, H, W), any dtype; targets unchanged. In ``augment.eval`` every
    validation pass counts as an epoch: use it in ``augment.train`` only.
    """

    uses_sample_keys = True
    random = False  # the keys and the epoch decide

    def forward(  # type: ignore[override]
        self, images: Tensor, targets: Tensor, keys: Tensor, epoch: int
    ) -> tuple[Tensor, Tensor]:
        mirrored = ((keys >> 17) & 1).bool() ^ bool(epoch % 2)
        return torch.where(mirrored.view(-1, 1, 1, 1), images.flip(-1), images), targets
