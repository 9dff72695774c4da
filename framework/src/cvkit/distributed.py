"""Training one run with several processes: torch.distributed as ``torchrun`` starts it.

``torchrun --nproc-per-node N -m cvkit run RECIPE`` starts N processes with ``RANK``,
``LOCAL_RANK``, ``WORLD_SIZE`` and the rendezvous in their environment; :func:`initialize`
joins them into one process group (NCCL on GPUs, gloo on CPU), each GPU process on GPU
``LOCAL_RANK``. A second, gloo group carries the loop's control messages (stop signals,
non-finite checks, running sums) on the CPU, so they never wait for a GPU stream.

Every helper here is also correct in a single process (``world_size() == 1``), where it
returns its input and communicates with nobody; the engine calls them unconditionally.
"""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from cvkit.errors import CvkitError

log = logging.getLogger("cvkit")

DEFAULT_TIMEOUT_SECONDS = 600
"""How long a collective waits for the other processes before the job fails (seconds)."""

_control: Any = None  # the gloo group for control messages, set by initialize()


def launched() -> bool:
    """Whether this process was started by torchrun for a job of more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def initialize(device_name: str, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS) -> None:
    """Join the process group torchrun's environment describes (nothing to do in a single
    process): NCCL when this process trains on a GPU (``experiment.device`` 'auto' or 'cuda'
    with CUDA available; it then uses GPU ``LOCAL_RANK``), else gloo."""
    global _control
    if not launched() or dist.is_initialized():
        return
    gpu = device_name != "cpu" and device_name.split(":")[0] in ("auto", "cuda")
    gpu = gpu and torch.cuda.is_available()
    if gpu:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    timeout = datetime.timedelta(seconds=timeout_seconds)
    try:
        dist.init_process_group("nccl" if gpu else "gloo", timeout=timeout)
    except (RuntimeError, ValueError) as error:
        raise CvkitError(f"torchrun: cannot join the process group: {error}") from None
    _control = dist.new_group(backend="gloo", timeout=timeout) if gpu else dist.group.WORLD
    log.debug("rank %d of %d (%s)", rank(), world_size(), dist.get_backend())


def shutdown() -> None:
    """Leave the process group (at the end of a command)."""
    global _control
    if dist.is_initialized():
        dist.destroy_process_group()
    _control = None


def rank() -> int:
    """This process's rank (0 in a single process)."""
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    """The number of processes training the run (1 in a single process)."""
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    """Whether this process writes the run directory (rank 0)."""
    return rank() == 0


def local_device(device: torch.device) -> torch.device:
    """``device`` with a GPU process's own index (GPU ``LOCAL_RANK``)."""
    if device.type == "cuda" and dist.is_initialized():
        return torch.device("cuda", torch.cuda.current_device())
    return device


def any_rank(flag: bool) -> bool:
    """Whether ``flag`` holds on any process (every process must call it)."""
    if world_size() == 1:
        return flag
    value = torch.tensor([int(flag)])
    dist.all_reduce(value, op=dist.ReduceOp.MAX, group=_control)
    return bool(value.item())


class AnyRankVote:
    """Whether a flag holds on any process, agreed without waiting for the others at each
    step: :meth:`poll` starts an asynchronous MAX all-reduce of this step's flag on the CPU
    control group and returns the previous poll's result, which every process reads at the
    same poll, so they all act on it at the same step, one step after it was raised. In a
    single process it returns the flag at once. :meth:`drain` reads the last poll's vote
    (at the end of an epoch), so no vote is left in flight."""

    def __init__(self) -> None:
        self._pending: tuple[Any, Tensor] | None = None
        self._alone = world_size() == 1

    def poll(self, flag: bool) -> bool:
        """The vote started at the previous poll (False at the first); starts this one's."""
        if self._alone:
            return flag
        previous = self.drain()
        value = torch.tensor([int(flag)])
        work = dist.all_reduce(value, op=dist.ReduceOp.MAX, group=_control, async_op=True)
        self._pending = (work, value)
        return previous

    def drain(self) -> bool:
        """The vote in flight, waited for (False if there is none)."""
        if self._pending is None:
            return False
        work, value = self._pending
        self._pending = None
        work.wait()
        return bool(value.item())  # a CPU tensor: no device is waited for


def all_sum(values: Sequence[float]) -> list[float]:
    """Element-wise sums of ``values`` over the processes, in float64."""
    if world_size() == 1:
        return [float(v) for v in values]
    total = torch.tensor(list(values), dtype=torch.float64)
    dist.all_reduce(total, group=_control)
    return total.tolist()


def gather_objects(value: Any) -> list[Any]:
    """Every process's ``value`` (picklable), in rank order, on every process."""
    if world_size() == 1:
        return [value]
    values: list[Any] = [None] * world_size()
    dist.all_gather_object(values, value, group=_control)
    return values


def broadcast_object(value: Any) -> Any:
    """Rank 0's ``value`` (picklable), on every process."""
    if world_size() == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0, group=_control)
    return box[0]


def gather_rows(tensor: Tensor) -> Tensor:
    """The processes' tensors concatenated along dim 0 in rank order (their lengths may
    differ; the other dimensions must agree), on every process."""
    if world_size() == 1:
        return tensor
    pieces = gather_objects(tensor.cpu())
    return torch.cat(pieces).to(tensor.device)


def broadcast_buffers(module: nn.Module) -> None:
    """Give every process rank 0's buffers (batch-norm running statistics), which each
    process has updated with its own batches, before an evaluation."""
    if world_size() == 1:
        return
    for buffer in module.buffers():
        dist.broadcast(buffer.data, src=0)


def shard(count: int) -> slice:
    """This process's contiguous part of ``count`` items (the first ones get one more when
    ``count`` does not divide evenly), so the parts in rank order are the whole."""
    size, extra = divmod(count, world_size())
    start = rank() * size + min(rank(), extra)
    return slice(start, start + size + (1 if rank() < extra else 0))


def barrier() -> None:
    """Wait until every process gets here."""
    if world_size() > 1:
        dist.barrier(group=_control)
