"""SimAM (Yang, Zhang, Li & Xie, "SimAM: A Simple, Parameter-Free Attention Module for
Convolutional Neural Networks", ICML 2021)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class SimAM(nn.Module):
    """SimAM: each activation weighted by the sigmoid of its inverse energy, no parameters.

    For every channel of every sample, with n = H * W - 1, mu the channel's mean over
    positions and d = (x - mu)^2, the inverse minimal energy is
    ``d / (4 * (sum(d) / n + e_lambda)) + 0.5`` (the paper's closed form, with the variance
    divided by n as its PyTorch listing does); the output is ``x * sigmoid`` of it. Maps
    (N, C, H, W) float to the same shape and dtype. A 1 x 1 map has n = 0, and the published
    formula gives 0 / 0 = NaN: the block declares a minimum size of 2 (which also refuses
    1 x W maps the formula could take).

    Args:
        e_lambda: the regulariser lambda of the energy function (the paper: 1e-4).
    """

    def __init__(self, channels: int, e_lambda: float = 1e-4) -> None:
        super().__init__()
        if e_lambda <= 0:
            raise ValueError(f"e_lambda must be > 0, got {e_lambda}")
        self.channels = channels
        self.e_lambda = e_lambda

    def forward(self, x: Tensor) -> Tensor:
        n = x.shape[2] * x.shape[3] - 1
        d = (x - x.mean(dim=(2, 3), keepdim=True)).pow(2)
        energy = d / (4 * (d.sum(dim=(2, 3), keepdim=True) / n + self.e_lambda)) + 0.5
        return x * torch.sigmoid(energy)

    def extra_repr(self) -> str:
        return f"e_lambda={self.e_lambda}"
