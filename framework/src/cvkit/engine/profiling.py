"""What a model costs: parameter counts, FLOPs (``torch.utils.flop_counter``), the size of
its weights, and its latency, throughput and peak memory on a device
(``torch.utils.benchmark``).

FLOPs follow torch's counter: a multiply-add is 2 FLOPs, and only the operations it has a
formula for are counted (convolutions, matrix products, attention); element-wise layers
(batch norm, activations, pooling) count 0, so the figures are those of the
convolutions and linear layers, which dominate a CNN. fvcore and ptflops report
multiply-adds (MACs): half of these figures.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import functools
import gc
import io
import logging
import resource
import statistics
import sys
import threading
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """``trainable`` (requires_grad) and ``total`` parameter counts; a parameter shared by
    several modules counts once."""
    unique = {id(p): p for p in model.parameters()}.values()
    return {
        "trainable": sum(p.numel() for p in unique if p.requires_grad),
        "total": sum(p.numel() for p in unique),
    }


def state_dict_megabytes(model: nn.Module) -> dict[str, float]:
    """The size of the weights in MB (10^6 bytes): ``fp32`` counts every floating-point
    parameter and buffer at 4 bytes (others at their own size); ``saved`` is the length of
    ``torch.save(model.state_dict())`` as the model holds it now."""
    fp32 = 0
    for tensor in model.state_dict().values():
        size = 4 if tensor.is_floating_point() else tensor.element_size()
        fp32 += tensor.numel() * size
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return {"fp32": fp32 / 1e6, "saved": buffer.getbuffer().nbytes / 1e6}


@torch.no_grad()
def forward_flops(model: nn.Module, images: Tensor) -> int:
    """FLOPs of one forward pass of ``model`` in eval mode over ``images`` (N, C, H, W), for
    the whole batch (divide by N for per image). The model's mode is restored."""
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter:
            model(images)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def training_step_flops(model: nn.Module, images: Tensor, num_classes: int) -> int:
    """FLOPs of one training step's forward and backward passes (cross-entropy against
    random labels) over ``images`` (N, C, H, W, N >= 2 for batch norm), for the whole
    batch. Runs on a copy of ``model``, whose weights and statistics stay untouched; the
    optimizer's update (element-wise) is not counted."""
    replica, labels = _training_copy(model, images, num_classes)
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(replica(images), labels).backward()
    return int(counter.get_total_flops())


def _training_copy(model: nn.Module, images: Tensor, num_classes: int) -> tuple[nn.Module, Tensor]:
    """A copy of ``model`` in training mode, to train without touching the original, and
    random labels (N,) for ``images`` (N, C, H, W)."""
    labels = torch.randint(num_classes, (images.shape[0],), device=images.device)
    return copy.deepcopy(model).train(), labels


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def latency_ms(
    model: nn.Module,
    image: Tensor,
    *,
    repeats: int = 100,
    warmup: int = 10,
    threads: int | None = None,
) -> dict[str, float]:
    """Batch-1 inference latency in milliseconds (``median``, ``p10``, ``p90`` over
    ``repeats`` timed forward passes after ``warmup`` untimed ones), eval mode under
    ``torch.inference_mode``; ``image`` (1, C, H, W) on the model's device; ``threads``:
    torch's CPU threads during the timing (default: as set)."""
    times = _call_times(_inference(model), image, repeats, warmup, threads)
    deciles = statistics.quantiles(times, n=10) if len(times) > 1 else times * 9
    return {
        "median": 1000 * statistics.median(times),
        "p10": 1000 * deciles[0],
        "p90": 1000 * deciles[-1],
        "repeats": repeats,
    }


def _inference(model: nn.Module) -> Any:
    model.eval()

    def run(images: Tensor) -> None:
        with torch.inference_mode():
            model(images)

    return run


def _benchmark() -> Any:
    """``torch.utils.benchmark``, imported on first use: importing it imports
    ``torch.utils.cpp_extension``, which logs a warning ("No CUDA runtime is found") on
    every machine without the CUDA toolkit; no compiler is used here, so it is silenced."""
    extension_log = logging.getLogger("torch.utils.cpp_extension")
    level = extension_log.level
    extension_log.setLevel(logging.ERROR)
    try:
        from torch.utils import benchmark
    finally:
        extension_log.setLevel(level)
    return benchmark


def _call_times(
    function: Any, inputs: Tensor, repeats: int, warmup: int, threads: int | None
) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``function(inputs)`` timed one by one by
    torch.utils.benchmark (which synchronises CUDA), after ``warmup`` calls."""
    timer = _benchmark().Timer(
        stmt="function(inputs)",
        globals={"function": function, "inputs": inputs},
        num_threads=threads or torch.get_num_threads(),
    )
    for _ in range(warmup):
        function(inputs)
    _synchronize(inputs.device)
    return [timer.timeit(1).mean for _ in range(repeats)]


def throughput(
    model: nn.Module,
    images: Tensor,
    num_classes: int,
    *,
    repeats: int = 10,
    warmup: int = 2,
    threads: int | None = None,
) -> dict[str, float]:
    """Images per second over batches ``images`` (N, C, H, W) on the model's device:
    ``inference`` (eval mode, inference_mode) and ``training`` (forward, cross-entropy,
    backward and an SGD step, on a copy of the model), each from the median of ``repeats``
    timed calls after ``warmup``."""
    replica, labels = _training_copy(model, images, num_classes)
    optimizer = torch.optim.SGD(replica.parameters(), lr=1e-3)

    def step(batch: Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(replica(batch), labels).backward()
        optimizer.step()

    count = images.shape[0]
    inference = statistics.median(_call_times(_inference(model), images, repeats, warmup, threads))
    training = statistics.median(_call_times(step, images, repeats, warmup, threads))
    return {"inference": count / inference, "training": count / training}


def peak_memory_megabytes(model: nn.Module, images: Tensor, num_classes: int) -> dict[str, Any]:
    """Peak memory in MB (10^6 bytes) of one inference batch and one training step (forward
    and backward, on a copy of the model) over ``images``: on CUDA
    ``torch.cuda.max_memory_allocated`` from a reset (tensors only); on the CPU the peak
    growth of the process's resident set during the call, sampled every millisecond after
    freed memory is handed back to the system (Linux; elsewhere the growth of the peak
    resident set, a lower bound). ``what`` says which."""
    device = images.device
    replica, labels = _training_copy(model, images, num_classes)
    infer = _inference(model)

    def train() -> None:
        F.cross_entropy(replica(images), labels).backward()

    result: dict[str, Any] = {}
    for name, function in (("inference", functools.partial(infer, images)), ("training", train)):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            function()
            torch.cuda.synchronize(device)
            result[name] = torch.cuda.max_memory_allocated(device) / 1e6
        else:
            result[name] = _resident_growth(function) / 1e6
    result["what"] = "torch.cuda.max_memory_allocated" if device.type == "cuda" else _RSS_METHOD
    return result


_STATM = Path("/proc/self/statm")
_RSS_METHOD = (
    "peak resident-set growth, sampled every ms"
    if _STATM.exists()
    else "growth of the peak resident set (lower bound)"
)


def _resident_bytes() -> int:
    """The process's resident set now (Linux: /proc/self/statm)."""
    return int(_STATM.read_text().split()[1]) * resource.getpagesize()


def _resident_growth(function: Any) -> int:
    """Bytes by which the resident set grew at most while ``function()`` ran."""
    gc.collect()
    if not _STATM.exists():
        before = _peak_rss_bytes()
        function()
        return _peak_rss_bytes() - before
    _release_free_memory()
    baseline = peak = _resident_bytes()
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.001):
            peak = max(peak, _resident_bytes())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        function()
        peak = max(peak, _resident_bytes())
    finally:
        done.set()
        sampler.join()
    return peak - baseline


def _release_free_memory() -> None:
    """Hand memory that was freed but kept by glibc's allocator back to the system, so that
    reusing it shows as growth (no-op without glibc)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _peak_rss_bytes() -> int:
    """The process's peak resident set size in bytes (ru_maxrss is KiB on Linux, bytes on
    macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024
