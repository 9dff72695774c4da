"""Memory estimates: refuse an allocation the machine cannot hold before trying it (a
split of 1e9 synthetic images, a 100,000-pixel ``image_size``), instead of swapping or being
killed by the operating system."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from cvkit.errors import CvkitError

GIB = 1024**3


def available_memory(device: torch.device | None = None) -> int | None:
    """Bytes that can be allocated now on ``device`` (CPU: the operating system's available
    memory; CUDA: the free device memory), or None where it cannot be told."""
    if device is not None and device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(nbytes: float, what: str, device: torch.device | None = None) -> None:
    """CvkitError naming ``what`` when ``nbytes`` exceed the memory available on ``device``."""
    available = available_memory(device)
    if available is not None and nbytes > available:
        place = f"{device} memory" if device is not None and device.type != "cpu" else "memory"
        raise CvkitError(
            f"{what} needs about {nbytes / GIB:,.1f} GiB, more than the {available / GIB:,.1f} "
            f"GiB of {place} available here"
        )
