"""Running a study's jobs: one run directory per (variant, seed), finished ones skipped,
interrupted ones resumed; in this process, in a local process pool, or through submitit
(its local executor, or SLURM job arrays for studies that outgrow one machine)."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Literal

import attrs

from cvkit import CvkitError, RunInterrupted
from cvkit_study.spec import StudySpec

Executor = Literal["pool", "local", "slurm"]

LEFTOVERS = frozenset({".lock", "env.json"})
"""What a run that was killed before writing its recipe leaves: removed before it restarts."""


@attrs.frozen
class Job:
    """One run of a study: a variant's recipe with the study's and the variant's ``--set``
    values and the seed, in ``run_dir``."""

    variant: str
    seed: int
    recipe: Path
    overrides: tuple[str, ...]
    run_dir: Path

    @property
    def state(self) -> Literal["finished", "interrupted", "new"]:
        """finished: eval.json written; interrupted: started (recipe.toml) but not finished."""
        if (self.run_dir / "eval.json").is_file():
            return "finished"
        if (self.run_dir / "recipe.toml").is_file():
            return "interrupted"
        return "new"

    @property
    def log_file(self) -> Path:
        """Where a worker's console output for the job goes: beside its run directory
        (``seed-<k>.log``)."""
        return self.run_dir.with_name(f"{self.run_dir.name}.log")


def study_jobs(spec: StudySpec, folder: Path) -> list[Job]:
    """Every (variant, seed) of ``spec``, variants in order, seeds in order, under ``folder``."""
    return [
        Job(
            variant.name,
            seed,
            variant.recipe,
            (*spec.sets, *variant.sets, f"experiment.seed={seed}"),
            folder / variant.name / f"seed-{seed}",
        )
        for variant in spec.variants
        for seed in spec.seeds
    ]


@contextlib.contextmanager
def _console_to(path: Path) -> Iterator[None]:
    """Inside the block, stdout and stderr (cvkit's epoch lines, warnings) go to ``path``,
    which is not a terminal, so no live progress bar is drawn. (Each run also logs to its
    own run.log.)"""
    path.parent.mkdir(parents=True, exist_ok=True)
    with (
        path.open("a", encoding="utf-8", buffering=1) as stream,
        contextlib.redirect_stdout(stream),
        contextlib.redirect_stderr(stream),
    ):
        yield


def run_job(
    job: Job, threads: int | None = None, device: str | None = None, quiet: bool = False
) -> dict[str, Any]:
    """Run ``job`` in this process, or finish it when it was interrupted; skip it when it is
    finished. ``threads``: torch's CPU threads for it; ``device``: its experiment.device;
    ``quiet``: its console output goes to its log file (a worker beside others).
    Returns its outcome (variant, seed, run_dir, status: finished or failed, error, action:
    skipped, resumed or started), never raising for a failed run."""
    from cvkit import resume, train  # the engine loads in the worker, not at import

    if threads:
        import torch

        torch.set_num_threads(threads)
    outcome: dict[str, Any] = {
        "variant": job.variant,
        "seed": job.seed,
        "run_dir": str(job.run_dir),
    }
    state = job.state
    if state == "finished":
        return outcome | {"status": "finished", "action": "skipped"}
    started = time.perf_counter()
    try:
        with _console_to(job.log_file) if quiet else contextlib.nullcontext():
            if state == "interrupted":
                resume(job.run_dir)
                action = "resumed"
            else:
                if job.run_dir.is_dir() and {p.name for p in job.run_dir.iterdir()} <= LEFTOVERS:
                    for leftover in job.run_dir.iterdir():
                        leftover.unlink()
                device_set = [f"experiment.device={device}"] if device else []
                train(job.recipe, overrides=[*job.overrides, *device_set], output=job.run_dir)
                action = "started"
    except RunInterrupted:  # Ctrl-C or SIGTERM: the run saved last.pt; the study stops
        raise
    except Exception as error:  # one failed run must not end the study
        return outcome | {
            "status": "failed",
            "action": "failed",
            "error": f"{type(error).__name__}: {error}",
        }
    return outcome | {
        "status": "finished",
        "action": action,
        "seconds": time.perf_counter() - started,
    }


_WORKER: dict[str, Any] = {}


def _start_worker(threads: int | None, devices: Any) -> None:
    """In each pool process, before any job: its thread count and its device (one per
    process, taken from the shared queue, so two processes never share a GPU by accident)."""
    if threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)
    _WORKER["threads"] = threads
    _WORKER["device"] = devices.get() if devices is not None else None


def _run_in_worker(job: Job) -> dict[str, Any]:
    return run_job(job, _WORKER.get("threads"), _WORKER.get("device"), quiet=True)


@attrs.frozen
class Execution:
    """How to run the jobs.

    Attributes:
        workers: runs at a time (processes of the pool, or tasks of the job array).
        threads: CPU threads per run (default: the machine's cores / workers).
        devices: devices handed out one per pool process (e.g. cuda:0, cuda:1); none: the recipes'.
        executor: 'pool' (this machine: in this process for one worker, else a process
            pool), 'local' (submitit's local executor) or 'slurm' (submitit, SLURM job arrays).
        slurm: submitit parameters for 'slurm' (partition, timeout_min, gpus_per_node, ...).
        folder: where submitit keeps its job files.
    """

    workers: int = 1
    threads: int | None = None
    devices: tuple[str, ...] = ()
    executor: Executor = "pool"
    slurm: dict[str, Any] = attrs.field(factory=dict)
    folder: Path | None = None

    def run(
        self, jobs: Sequence[Job], done: Callable[[dict[str, Any]], None]
    ) -> list[dict[str, Any]]:
        """Run ``jobs``; ``done`` is called with each outcome as it comes."""
        if self.workers < 1:
            raise CvkitError(f"--workers {self.workers}: expected at least 1")
        pending = [job for job in jobs if job.state != "finished"]
        outcomes = [
            run_job(job) for job in jobs if job.state == "finished"
        ]  # skipped: reported first
        for outcome in outcomes:
            done(outcome)
        if not pending:
            return outcomes
        run = self._pool if self.executor == "pool" else self._submitit
        return outcomes + run(pending, done)

    def _threads(self) -> int:
        return self.threads or max(1, (os.cpu_count() or 1) // self.workers)

    def _pool(
        self, jobs: Sequence[Job], done: Callable[[dict[str, Any]], None]
    ) -> list[dict[str, Any]]:
        if self.workers == 1 and not self.devices:
            outcomes = []
            for job in jobs:
                outcomes.append(run_job(job, self.threads))
                done(outcomes[-1])
            return outcomes
        context = multiprocessing.get_context("spawn")  # no forked copies of torch's threads
        manager = context.Manager() if self.devices else None
        devices = None
        if manager is not None:
            devices = manager.Queue()
            for i in range(self.workers):
                devices.put(self.devices[i % len(self.devices)])
        outcomes = []
        try:
            with ProcessPoolExecutor(
                self.workers,
                mp_context=context,
                initializer=_start_worker,
                initargs=(self._threads(), devices),
            ) as pool:
                futures = {pool.submit(_run_in_worker, job): job for job in jobs}
                for future in as_completed(futures):
                    job = futures[future]
                    try:
                        outcome = future.result()
                    except RunInterrupted:  # a worker's run was stopped by the signal
                        raise
                    except Exception as error:  # the worker process died (killed, out of memory)
                        outcome = _lost(job, error)
                    outcomes.append(outcome)
                    done(outcome)
        finally:
            if manager is not None:
                manager.shutdown()
        return outcomes

    def _submitit(
        self, jobs: Sequence[Job], done: Callable[[dict[str, Any]], None]
    ) -> list[dict[str, Any]]:
        import submitit

        if self.folder is None:
            raise CvkitError("a submitit executor needs a folder for its job files")
        executor = submitit.AutoExecutor(
            folder=self.folder, cluster="local" if self.executor == "local" else "slurm"
        )
        parameters: dict[str, Any] = {"cpus_per_task": self._threads()} | dict(self.slurm)
        if self.executor == "slurm":
            parameters["slurm_array_parallelism"] = self.workers
        executor.update_parameters(**parameters)
        # the local executor starts every job it is given at once: hand it `workers` at a time
        waves = [jobs] if self.executor == "slurm" else _chunks(jobs, self.workers)
        outcomes = []
        for wave in waves:
            count = len(wave)
            submitted = executor.map_array(
                run_job, wave, [self._threads()] * count, [None] * count, [True] * count
            )
            for job, handle in zip(wave, submitted, strict=True):
                try:
                    outcome = handle.result()
                except Exception as error:  # the job itself died or was cancelled
                    outcome = _lost(job, error)
                outcomes.append(outcome)
                done(outcome)
        return outcomes


def _chunks(jobs: Sequence[Job], size: int) -> list[Sequence[Job]]:
    return [jobs[i : i + size] for i in range(0, len(jobs), size)]


def _lost(job: Job, error: BaseException) -> dict[str, Any]:
    return {
        "variant": job.variant,
        "seed": job.seed,
        "run_dir": str(job.run_dir),
        "status": "failed",
        "action": "failed",
        "error": f"the process running it ended: {type(error).__name__}: {error}",
    }
