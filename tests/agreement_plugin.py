"""Components with fixed expectations of their data, for the recipe-data agreement corpus
(tests/test_agreement.py): what third-party models and losses often are."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cvkit import hookimpl


class FixedSize(nn.Module):
    """A linear classifier over the flattened image: it takes exactly size x size inputs.

    Args:
        size: the height and width it takes.
    """

    def __init__(self, num_classes: int, in_channels: int, size: int = 8) -> None:
        super().__init__()
        self.head = nn.Linear(in_channels * size * size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.flatten(1))


class FixedClasses(nn.Module):
    """A model whose head has its own class count, whatever the dataset's.

    Args:
        classes: outputs of its head.
    """

    def __init__(self, num_classes: int, in_channels: int, classes: int = 7) -> None:
        super().__init__()
        self.head = nn.Linear(in_channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.mean((2, 3)))


class HardLabels(nn.Module):
    """Negative log-likelihood of class indices (N,) only, as torch's NLLLoss."""

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.nll_loss(F.log_softmax(logits, 1), targets)


@hookimpl
def register_models(register):
    register("fixed_size", FixedSize)
    register("fixed_classes", FixedClasses)


@hookimpl
def register_losses(register):
    register("hard_labels", HardLabels)
