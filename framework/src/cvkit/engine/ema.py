"""An exponential moving average of the weights that never waits for the device."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


class ExponentialMovingAverage(AveragedModel):
    """torch's ``AveragedModel`` with EMA averaging (``get_ema_multi_avg_fn(decay)``) of the
    parameters and buffers (``use_buffers=True``), with the same state dict.

    Its :meth:`update_parameters` does what torch's does without the two host-device waits
    torch's makes at every step on a GPU: its count of updates (``n_averaged``, a CPU
    tensor) is read on the host once and never copied to the device.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        super().__init__(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
        self._ema_update = get_ema_multi_avg_fn(decay)
        self._started = False  # once an update has been made (or loaded): n_averaged > 0

    @torch.no_grad()
    def update_parameters(self, model: nn.Module) -> None:
        """Average ``model``'s current weights and buffers in (the first update copies them)."""
        averaged = [*self.module.parameters(), *self.module.buffers()]
        current = [t.detach() for t in [*model.parameters(), *model.buffers()]]
        if not self._started:  # its count is read once, not at every step
            self._started = int(self.n_averaged) > 0
        if not self._started:
            torch._foreach_copy_(averaged, current)
            self._started = True
        else:
            groups: dict[torch.dtype, tuple[list[Tensor], list[Tensor]]] = {}
            for mine, theirs in zip(averaged, current, strict=True):
                pair = groups.setdefault(mine.dtype, ([], []))
                pair[0].append(mine.detach())
                pair[1].append(theirs)
            for mine_list, theirs_list in groups.values():
                self._ema_update(mine_list, theirs_list, None)
        self.n_averaged += 1
