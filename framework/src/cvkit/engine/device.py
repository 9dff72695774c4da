"""The training device and numeric precision: ``experiment.device`` and ``experiment.precision``."""

from __future__ import annotations

import contextlib

import torch

from cvkit.errors import CvkitError

AUTOCAST_DTYPES: dict[str, torch.dtype | None] = {
    "fp32": None,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}
"""The autocast dtype of each ``experiment.precision`` (None: full precision)."""


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to ``dtype`` on ``device``, or nothing for full precision (None)."""
    return (
        torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
    )


def resolve_device(name: str) -> torch.device:
    """``auto``: CUDA when available, else CPU; otherwise the named device, which must exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CvkitError(
            f"experiment.device = {name!r} but CUDA is not available here; use 'auto' or 'cpu'"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise CvkitError(
            f"experiment.device = {name!r} but MPS is not available here; use 'auto' or 'cpu'"
        )
    return device
