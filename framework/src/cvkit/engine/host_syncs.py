"""Counting the places where the host would wait for a GPU, on any device (the CPU included).

On a GPU the host queues work and runs ahead; it waits (a host-device synchronisation)
when it needs a value the device computes, and a few operations wait on their own. A step
that waits cannot be queued while the previous one runs, so on small models these waits,
not the arithmetic, set the speed. ``torch.cuda.set_sync_debug_mode`` finds them on a GPU
only; :func:`count_host_syncs` finds the same places on the CPU, by what the code asks for:

- ``reads``: a tensor's value read on the host from Python (``.item()``, ``.tolist()``,
  ``.numpy()``, ``bool(t)`` / ``if t:``, ``float(t)``, ``int(t)``);
- ``from_python``: a tensor made from Python values (``torch.tensor(x)``,
  ``torch.as_tensor(list)``), a blocking host-to-GPU copy when made on a GPU;
- ``data_dependent``: operations whose output size depends on the values (``nonzero``,
  boolean-mask indexing, ``masked_select``, ``unique``, ``bincount``), which wait on a GPU.

On the CPU every read counts, including reads of tensors that would stay on the CPU in a
GPU run (a generator's draw): the counts are an upper bound there.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

READS = frozenset({"item", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__"})
"""Tensor methods that read a value on the host."""

FROM_PYTHON = frozenset({"tensor", "as_tensor"})
"""Factories that copy Python values into a tensor."""

DATA_DEPENDENT = frozenset(
    {
        "aten::nonzero",
        "aten::masked_select",
        "aten::_unique2",
        "aten::unique_consecutive",
        "aten::unique_dim",
        "aten::bincount",
    }
)
"""Operations whose output's size depends on the input's values."""


class _Reads(TorchFunctionMode):
    """Counts host reads and tensors made from Python values, as they are asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: collections.Counter[str] = collections.Counter()

    def __torch_function__(
        self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None
    ) -> Any:
        name = getattr(func, "__name__", "")
        if name in READS:
            self.counts["reads"] += 1
        elif name in FROM_PYTHON and args and not isinstance(args[0], torch.Tensor):
            self.counts["from_python"] += 1
        return func(*args, **(kwargs or {}))


def count_host_syncs(run: Callable[[], Any]) -> dict[str, int]:
    """Call ``run()`` and count what in it would make the host wait for a GPU: ``reads``,
    ``from_python`` and ``data_dependent`` (see the module's docstring)."""
    reads = _Reads()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile, reads:
        run()
    data_dependent = sum(1 for event in profile.events() if event.name in DATA_DEPENDENT)
    return {
        "reads": reads.counts["reads"],
        "from_python": reads.counts["from_python"],
        "data_dependent": data_dependent,
    }
