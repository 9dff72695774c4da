"""A joint classifier over the penultimate features of several complete sub-models."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from cvkit import ModelFactory


def classification_layer(model: nn.Module, num_classes: int) -> tuple[str, nn.Module, int]:
    """The last layer of ``model`` that produces the ``num_classes`` logits: an ``nn.Linear``
    with ``num_classes`` outputs or a 1x1 ``nn.Conv2d`` with ``num_classes`` channels.
    Returns its name, the layer and its number of input features."""
    found: tuple[str, nn.Module, int] | None = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and module.out_features == num_classes:
            found = name, module, module.in_features
        elif (
            isinstance(module, nn.Conv2d)
            and module.out_channels == num_classes
            and module.kernel_size == (1, 1)
        ):
            found = name, module, module.in_channels
    if found is None:
        raise ValueError(
            f"{type(model).__name__} has no Linear or 1x1 Conv2d layer with {num_classes} outputs "
            "to take its features from"
        )
    return found


class FeatureFusion(nn.Module):
    """Joint classifier over the features of several sub-models (the study's stage 2).

    Each branch is a complete classifier built from its model table, so that an earlier
    stage's checkpoint of that model loads into it unchanged (``init = { "branches.0" =
    "raw" }``). Its features are the input of its classification layer (the last Linear, or
    1x1 convolution, with num_classes outputs), taken with a forward hook and flattened to
    (N, D_i); the branch's own classification layer is kept, so that checkpoints load
    unchanged, but unused and frozen (an ``unfreeze`` of it gives it no gradient). The features of all branches are
    concatenated to (N, sum D_i) and classified by a new head: dropout - Linear, or with
    ``hidden`` > 0, Linear(hidden) - ReLU - dropout - Linear. Input (N, in_channels, H, W),
    output logits (N, num_classes). Module names for freezing: ``branches.<i>.*``, ``head``.

    Args:
        branches: the sub-models, two or more model tables.
        hidden: units of a hidden layer in the joint head (0: a single linear layer).
        dropout: dropout on the concatenated features (or on the hidden layer).
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        branches: Sequence[ModelFactory],
        hidden: int = 0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if len(branches) < 2 or hidden < 0 or not 0.0 <= dropout < 1.0:
            raise ValueError(
                f"branches needs two or more models (got {len(branches)}), hidden={hidden} >= 0, "
                f"dropout={dropout} in [0, 1)"
            )
        self.branches = nn.ModuleList(build(num_classes, in_channels) for build in branches)
        layers = [classification_layer(branch, num_classes) for branch in self.branches]
        self.layer_names = [name for name, _, _ in layers]
        for _, layer, _ in layers:
            layer.requires_grad_(False)  # kept for the checkpoints' sake; its output is unused
        width = sum(features for _, _, features in layers)
        if hidden:
            self.head = nn.Sequential(
                nn.Linear(width, hidden),
                nn.ReLU(inplace=True),
                nn.Dropout(dropout),
                nn.Linear(hidden, num_classes),
            )
        else:
            self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        features: list[Tensor] = []

        def keep_input(_: nn.Module, inputs: tuple[Tensor, ...]) -> None:
            features.append(inputs[0].flatten(1))

        for branch, name in zip(self.branches, self.layer_names, strict=True):
            # a hook per call, not per module: copies of the model (EMA) stay independent
            handle = branch.get_submodule(name).register_forward_pre_hook(keep_input)
            try:
                branch(x)
            finally:
                handle.remove()
        return self.head(torch.cat(features, 1))
