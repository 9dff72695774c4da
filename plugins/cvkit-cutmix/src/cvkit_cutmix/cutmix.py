"""CutMix (Yun, Han, Oh, Chun, Choe, Yoo: "CutMix: Regularization Strategy to Train Strong
Classifiers with Localizable Features", ICCV 2019), and a switch between MixUp and CutMix."""

from __future__ import annotations

import torch
from torch import Tensor

from cvkit import BatchAugmentation, soft_targets
from cvkit_mixup import MixUp, draw_lambda


class CutMix(BatchAugmentation):
    """CutMix (Yun et al., ICCV 2019): paste a box of another image in, mix labels by area.

    Per batch: lam ~ Beta(alpha, alpha), a box of sides sqrt(1 - lam) * (H, W) centred at a
    uniform pixel and clipped to the image, the same box for every image; each image gets
    that box from image ``perm[i]``; labels mix by the pasted area, lam' = 1 - box / (H W),
    as torchvision's CutMix computes it. Input images (N, C, H, W) float, output the same;
    targets (N,) or (N, K) in, soft (N, K) float out. Training batches only.

    Args:
        num_classes: classes K (supplied by cvkit).
        alpha: Beta concentration (the paper: 1.0).
        p: probability of mixing a batch.
    """

    soft_targets = True

    def __init__(self, num_classes: int, alpha: float = 1.0, p: float = 1.0) -> None:
        super().__init__()
        if num_classes < 1 or alpha <= 0 or not 0.0 <= p <= 1.0:
            raise ValueError(f"num_classes={num_classes} >= 1, alpha={alpha} > 0, p={p} in [0, 1]")
        self.num_classes, self.alpha, self.p = num_classes, alpha, p

    def mix(
        self, images: Tensor, targets: Tensor, lam: Tensor | float, perm: Tensor, centre: Tensor
    ) -> tuple[Tensor, Tensor]:
        """The mixed batch for ``lam``, permutation ``perm`` (N,) and box ``centre`` = (row, column)."""
        soft = soft_targets(targets, self.num_classes)
        h, w = images.shape[-2:]
        device = images.device
        lam = torch.as_tensor(lam, dtype=torch.float32, device=device)
        centre = torch.as_tensor(centre, device=device)
        ratio = 0.5 * (1.0 - lam).sqrt()
        half_h, half_w = (ratio * h).floor().long(), (ratio * w).floor().long()
        top, bottom = (centre[0] - half_h).clamp(min=0), (centre[0] + half_h).clamp(max=h)
        left, right = (centre[1] - half_w).clamp(min=0), (centre[1] + half_w).clamp(max=w)
        rows = torch.arange(h, device=device)[:, None]
        cols = torch.arange(w, device=device)[None, :]
        box = (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)  # (H, W)
        mixed = torch.where(box, images[perm], images)
        kept = 1.0 - ((bottom - top) * (right - left)).float() / (h * w)
        return mixed, soft.lerp(soft[perm], 1 - kept.to(soft.dtype))

    def forward(self, images: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        device = images.device
        lam = draw_lambda(self.alpha, self.p, device)
        perm = torch.randperm(images.shape[0], device=device)
        centre = torch.stack([torch.randint(0, s, (), device=device) for s in images.shape[-2:]])
        return self.mix(images, targets, lam, perm, centre)


class MixUpOrCutMix(BatchAugmentation):
    """Per batch, CutMix with probability switch_prob, else MixUp (as timm's Mixup does).

    Both are computed and one is kept, so the choice needs no host sync (the blends are
    cheap next to the model). Input images (N, C, H, W) float; soft (N, K) targets out.

    Args:
        num_classes: classes K (supplied by cvkit).
        mixup_alpha: MixUp's Beta concentration.
        cutmix_alpha: CutMix's Beta concentration.
        switch_prob: probability of CutMix rather than MixUp for a batch.
        p: probability of mixing a batch at all.
    """

    soft_targets = True

    def __init__(
        self,
        num_classes: int,
        mixup_alpha: float = 0.8,
        cutmix_alpha: float = 1.0,
        switch_prob: float = 0.5,
        p: float = 1.0,
    ) -> None:
        super().__init__()
        if not 0.0 <= switch_prob <= 1.0:
            raise ValueError(f"switch_prob={switch_prob} must be in [0, 1]")
        self.mixup = MixUp(num_classes, mixup_alpha, p)
        self.cutmix = CutMix(num_classes, cutmix_alpha, p)
        self.switch_prob = switch_prob

    def forward(self, images: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        use_cutmix = torch.rand((), device=images.device) < self.switch_prob
        mixed = self.mixup(images, targets)
        cut = self.cutmix(images, targets)
        return torch.where(use_cutmix, cut[0], mixed[0]), torch.where(use_cutmix, cut[1], mixed[1])
