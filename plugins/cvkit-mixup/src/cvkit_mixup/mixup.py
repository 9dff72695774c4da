"""MixUp (Zhang, Cisse, Dauphin, Lopez-Paz: "mixup: Beyond Empirical Risk Minimization",
ICLR 2018)."""

from __future__ import annotations

import torch
from torch import Tensor

from cvkit import BatchAugmentation, soft_targets


def draw_lambda(alpha: float, p: float, device: torch.device) -> Tensor:
    """lambda ~ Beta(alpha, alpha) as a 0-d tensor on ``device``; 1 (no mixing) with
    probability 1 - p. Drawn from torch's generator there, without a host sync."""
    concentration = torch.full((), float(alpha), device=device)  # made there: no copy, no wait
    lam = torch.distributions.Beta(concentration, concentration, validate_args=False).sample()
    if p < 1.0:
        lam = torch.where(torch.rand((), device=device) < p, lam, torch.ones_like(lam))
    return lam


class MixUp(BatchAugmentation):
    """MixUp (Zhang et al., ICLR 2018): blend each image with another of the batch, labels alike.

    x' = lam * x + (1 - lam) * x[perm], y' = lam * y + (1 - lam) * y[perm] with one
    lam ~ Beta(alpha, alpha) per batch and a random permutation of the batch (torchvision's
    MixUp pairs each image with its neighbour, ``perm = roll(1)``; :meth:`mix` takes any).
    Input images (N, C, H, W) float, output the same; targets (N,) or (N, K) in, soft
    (N, K) float out. Training batches only.

    Args:
        num_classes: classes K (supplied by cvkit).
        alpha: Beta concentration (the paper: 0.2 to 0.4 on ImageNet, 1.0 on CIFAR-10).
        p: probability of mixing a batch.
    """

    soft_targets = True

    def __init__(self, num_classes: int, alpha: float = 0.2, p: float = 1.0) -> None:
        super().__init__()
        if num_classes < 1 or alpha <= 0 or not 0.0 <= p <= 1.0:
            raise ValueError(f"num_classes={num_classes} >= 1, alpha={alpha} > 0, p={p} in [0, 1]")
        self.num_classes, self.alpha, self.p = num_classes, alpha, p

    def mix(
        self, images: Tensor, targets: Tensor, lam: Tensor | float, perm: Tensor
    ) -> tuple[Tensor, Tensor]:
        """The mixed batch for a given ``lam`` and permutation ``perm`` (N,) of the batch."""
        soft = soft_targets(targets, self.num_classes)
        lam_images = torch.as_tensor(lam, dtype=images.dtype, device=images.device)
        mixed = images.lerp(images[perm], 1 - lam_images)  # lam * x + (1 - lam) * x[perm]
        return mixed, soft.lerp(
            soft[perm], 1 - torch.as_tensor(lam, dtype=soft.dtype, device=soft.device)
        )

    def forward(self, images: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        lam = draw_lambda(self.alpha, self.p, images.device)
        perm = torch.randperm(images.shape[0], device=images.device)
        return self.mix(images, targets, lam, perm)
