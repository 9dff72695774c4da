"""Run directories: where they go, the environment record, and the run's log.

Layout of ``<output_dir>/<experiment>/<YYYYmmdd-HHMMSS>-<id>/``: ``recipe.toml`` (resolved),
``env.json``, ``status.json``, ``run.log``, ``metrics.jsonl``, ``tensorboard/``,
``checkpoints/{last,best}.pt``, ``eval.json``. A run never writes into a directory that
holds something already.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

from cvkit import distributed
from cvkit.errors import CvkitError
from cvkit.files import write_json
from cvkit.registry.registry import Registry
from cvkit.version import __version__

log = logging.getLogger("cvkit")


def new_run_dir(output_dir: Path, experiment: str, exact: Path | None = None) -> Path:
    """Create the run directory: ``exact`` if given (absent or empty), else a fresh one in
    ``output_dir/experiment``; CvkitError when it cannot be created there."""
    if exact is not None:
        if exact.exists() and (not exact.is_dir() or any(exact.iterdir())):
            raise CvkitError(
                f"--output {exact} already exists and is not empty; runs are never overwritten"
            )
        _make_directory(exact, "--output")
        return exact
    stamp = time.strftime("%Y%m%d-%H%M%S")
    while True:
        path = output_dir / experiment / f"{stamp}-{secrets.token_hex(3)}"
        if not path.exists():
            _make_directory(path, "experiment.output_dir")
            return path


def _make_directory(path: Path, key: str) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CvkitError(
            f"{key}: cannot create the run directory {path}: {error.strerror or error}"
        ) from None


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold the lock of ``run_dir`` (``<run>/.lock``) while a process trains in it, so a
    second ``cvkit run --resume`` of the same run is refused instead of interleaving. The
    operating system releases the lock when the process ends, however it ends, so a lock
    left by a killed run is no obstacle. (Where ``fcntl`` is missing, Windows, there is no
    lock.) In a run of several processes, rank 0 holds it for all of them."""
    if not distributed.is_main():
        yield
        return
    try:
        stream = (run_dir / ".lock").open("a+", encoding="utf-8")
    except OSError as error:
        raise CvkitError(f"cannot lock {run_dir}: {error.strerror or error}") from None
    with stream:
        if fcntl is not None:
            try:
                fcntl.flock(stream.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                stream.seek(0)
                holder = stream.read().strip() or "another process"
                raise CvkitError(
                    f"{run_dir} is in use by {holder}; a run trains in one process at a time"
                ) from None
        stream.seek(0)
        stream.truncate()
        stream.write(f"cvkit process {os.getpid()} on {platform.node()}\n")
        stream.flush()
        yield


STATUSES = ("running", "finished", "pruned", "failed", "interrupted", "stopped", "unknown")
"""What :func:`run_status` may say: ``status.json``'s word (``pruned``: a tuner stopped it
early on purpose, see cvkit-tune), ``stopped`` for a run that says running but whose process
is gone (killed), ``unknown`` for a directory without one."""


def write_status(run_dir: Path, status: str, reason: str | None = None) -> None:
    """Record ``status`` (running, finished, pruned, failed or interrupted) and why, with the time,
    in ``run_dir/status.json``; in a run of several processes, rank 0 alone writes it."""
    if not distributed.is_main():
        return
    write_json(
        run_dir / "status.json",
        {"status": status, "reason": reason, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
    )


def run_status(run_dir: Path) -> dict[str, Any]:
    """``{"status", "reason", "time"}`` of the run in ``run_dir`` (one of :data:`STATUSES`):
    its status.json, except that a run recorded as running whose lock nobody holds was
    stopped without a word (SIGKILL, a power cut); a directory without status.json (written
    by an older cvkit) is finished when it has eval.json, else unknown."""
    try:
        record = json.loads((run_dir / "status.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        finished = (run_dir / "eval.json").is_file()
        return {"status": "finished" if finished else "unknown", "reason": None, "time": None}
    if record.get("status") == "running" and not _locked(run_dir):
        return record | {
            "status": "stopped",
            "reason": f"its process ended without a word; cvkit run --resume {run_dir} continues it",
        }
    return record


def _locked(run_dir: Path) -> bool:
    """Whether a process holds the lock of ``run_dir`` (see :func:`run_lock`)."""
    if fcntl is None:
        return True  # no locks here: believe status.json
    try:
        with (run_dir / ".lock").open("a+", encoding="utf-8") as stream:
            try:
                fcntl.flock(stream.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(stream.fileno(), fcntl.LOCK_UN)
            return False
    except OSError:
        return False


def git_revision(folder: Path) -> str | None:
    """``HEAD``'s commit (``+dirty`` with uncommitted changes) of the repository around ``folder``."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}+dirty" if dirty else head


def environment(registry: Registry, device: torch.device, argv: list[str]) -> dict[str, Any]:
    """What ran this: versions of Python, torch, cvkit and plugins, the device, git, command."""
    device_name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu"
    )
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": argv,
        "cwd": str(Path.cwd()),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "cvkit": __version__,
        "plugins": {p.dist: p.version for p in registry.plugins if not (p.errors or p.disabled)},
        "device": str(device),
        "device_name": device_name,
        "cpu_threads": torch.get_num_threads(),
        "processes": distributed.world_size(),
        "git": git_revision(Path.cwd()),
    }


@contextlib.contextmanager
def run_logging(run_dir: Path) -> Iterator[None]:
    """Log cvkit's messages to stderr and, with timestamps, to ``run_dir/run.log`` (appended).
    A record logged with ``extra={"file_only": True}`` goes to run.log only (an error the
    CLI prints anyway). In a run of several processes, rank 0 logs so; the others print
    only their warnings and errors, prefixed with their rank."""
    if not distributed.is_main():
        with _process_logging(distributed.rank()):
            yield
        return
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter("%(message)s"))
    console.addFilter(lambda record: not getattr(record, "file_only", False))
    logfile = logging.FileHandler(run_dir / "run.log", encoding="utf-8")
    logfile.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    previous = log.level
    log.setLevel(logging.INFO)
    log.addHandler(console)
    log.addHandler(logfile)
    log.propagate = False
    try:
        yield
    finally:
        log.removeHandler(console)
        log.removeHandler(logfile)
        logfile.close()
        log.setLevel(previous)
        log.propagate = True


@contextlib.contextmanager
def _process_logging(rank: int) -> Iterator[None]:
    """Warnings and errors of a process other than rank 0, to stderr with its rank."""
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter(f"[rank {rank}] %(message)s"))
    console.setLevel(logging.WARNING)
    console.addFilter(lambda record: not getattr(record, "file_only", False))
    log.addHandler(console)
    log.propagate = False
    try:
        yield
    finally:
        log.removeHandler(console)
        log.propagate = True
