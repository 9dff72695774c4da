"""Writing files so that a crash never leaves a half-written one, and JSON that always parses.

Every file cvkit writes goes to a temporary file beside its destination (``.<name>.*.tmp``),
is flushed to disk and renamed over the destination, so a reader sees the old file or the
new one, never a mix. The file gets the permissions ``open`` would give it (0666 less the
process's umask), not ``mkstemp``'s owner-only 0600. A failed write (a full disk, a read-only folder) raises
:class:`~cvkit.errors.StorageError` naming the file, and leaves the old file as it was.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from cvkit.errors import CvkitError, StorageError, short_reason


def _umask() -> int:
    """The process's file-creation mask (reading it means setting it; set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write_atomic(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Call ``write`` on a temporary file beside ``path``, fsync it, rename it over ``path``."""
    temporary: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
        )
        os.fchmod(handle, 0o666 & ~_umask())
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except OSError as error:
        raise StorageError(f"cannot write {path}: {error.strerror or error}") from error
    finally:
        if temporary is not None and Path(temporary).exists():
            Path(temporary).unlink(missing_ok=True)


def write_bytes_atomic(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Call ``write`` with a binary stream whose bytes replace ``path`` atomically (for
    writers such as ``torch.jit.save`` or ``onnx.save_model``)."""
    _write_atomic(path, write)


def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` ``obj`` to ``path`` atomically (see the module docstring)."""
    import torch  # loads when a checkpoint is written: `cvkit --version` needs no torch

    _write_atomic(path, lambda stream: torch.save(obj, stream))


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8, line endings as they are) to ``path`` atomically."""
    data = text.encode("utf-8")
    _write_atomic(path, lambda stream: stream.write(data))


def json_safe(value: Any) -> Any:
    """``value`` with NaN and infinite floats replaced by None, so ``json.dumps`` writes JSON
    that every parser accepts (it would write the non-standard ``NaN`` otherwise)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def json_text(data: Any, indent: int | None = 2) -> str:
    """``data`` as standard JSON (non-finite floats as null), ending in a newline when
    indented."""
    text = json.dumps(json_safe(data), indent=indent, allow_nan=False, default=str)
    return text + "\n" if indent is not None else text


def write_json(path: Path, data: Any) -> None:
    """Pretty, standard JSON (see :func:`json_text`) written to ``path`` atomically."""
    write_text_atomic(path, json_text(data))


def check_writable(path: Path, option: str, *, overwrite: bool = False) -> None:
    """Before any work whose result goes to ``path`` (named ``option``, e.g. ``--out``):
    CvkitError if it exists and ``overwrite`` is off, or if it cannot be written there."""
    if path.is_dir():
        raise CvkitError(f"{option} {path} is a directory; give a file name")
    if path.exists() and not overwrite:
        raise CvkitError(f"{option} {path} exists; pass --overwrite to replace it")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise StorageError(f"{option} {path}: cannot write in {folder}")


def remove_leftovers(folder: Path) -> list[Path]:
    """Delete the temporary files (``.<name>.*.tmp``) a killed write left in ``folder``;
    returns them. Only for folders no other process is writing to (a locked run)."""
    removed = []
    for leftover in sorted(folder.glob(".*.tmp")) if folder.is_dir() else []:
        leftover.unlink(missing_ok=True)
        removed.append(leftover)
    return removed


def load_tensors(path: Path, what: str, error: type[Exception]) -> Any:
    """What ``torch.save`` wrote at ``path``, loaded on the CPU with ``weights_only`` (no code
    runs); ``error`` (naming ``what`` and the path) if the file is missing or unreadable."""
    import torch  # loads when a checkpoint is read: `cvkit --version` needs no torch

    if not path.is_file():
        raise error(f"{what} not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as cause:  # any unreadable file is reported the same way
        raise error(f"{path}: not a readable {what} ({short_reason(cause)})") from cause
