"""Batch norm over the whole global batch of a multi-process run: ``trainer.sync_batchnorm``.

On GPUs this is torch's :class:`torch.nn.SyncBatchNorm`. torch's implementation refuses CPU
tensors, so on CPU (gloo) :class:`GlooSyncBatchNorm` computes the same statistics with
torch.distributed's differentiable all-reduce: two small all-reduces per layer and step,
fine for the CPU runs it exists for (tests, and checking a multi-process run against a
single-process one), not a fast path.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.distributed.nn as dist_nn
from torch import Tensor, nn


class GlooSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm whose training statistics are the mean and (biased) variance over every
    process's batch, as one process with the whole batch would compute them; the running
    statistics get the unbiased variance, as torch's batch norm. Input (N, C, ...) of any
    number of trailing dimensions; in eval mode, or in a single process, plain batch norm."""

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input (N, C, ...), got {input.dim()}-D")

    def forward(self, input: Tensor) -> Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(input)
        self._check_input_dim(input)
        dims = [0, *range(2, input.dim())]
        shape = [1, -1] + [1] * (input.dim() - 2)
        count = torch.tensor([input.numel() // input.shape[1]], dtype=torch.float64)
        dist.all_reduce(count)
        n = float(count)
        mean = dist_nn.all_reduce(input.sum(dims)) / n
        centered = input - mean.view(shape)
        variance = dist_nn.all_reduce((centered * centered).sum(dims)) / n
        if self.track_running_stats and self.running_mean is not None:
            assert self.running_var is not None and self.num_batches_tracked is not None
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = (
                    self.momentum
                    if self.momentum is not None
                    else 1.0 / float(self.num_batches_tracked)
                )
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), factor)
                unbiased = variance.detach() * (n / max(n - 1, 1))
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), factor)
        output = centered * torch.rsqrt(variance + self.eps).view(shape)
        if self.affine:
            output = output * self.weight.view(shape) + self.bias.view(shape)
        return output


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` with every batch-norm layer replaced by one that normalises over the
    global batch (torch's SyncBatchNorm on GPUs, :class:`GlooSyncBatchNorm` elsewhere),
    sharing the original layers' parameters and buffers, so optimizers built on them still
    hold the right tensors."""
    if device.type != "cpu":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(
        module, GlooSyncBatchNorm
    ):
        converted = GlooSyncBatchNorm(
            module.num_features,
            module.eps,
            module.momentum,
            module.affine,
            module.track_running_stats,
        )
        if module.affine:
            converted.weight, converted.bias = module.weight, module.bias
        converted.running_mean = module.running_mean
        converted.running_var = module.running_var
        converted.num_batches_tracked = module.num_batches_tracked
        converted.train(module.training)
        return converted
    for name, child in module.named_children():
        module.add_module(name, convert_sync_batchnorm(child, device))
    return module
