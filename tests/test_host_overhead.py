"""What the training loop costs the host per step (issue 23): no stack traces, no per-step
reads of device values, no tensors made from Python values, no operations of data-dependent
size, whatever the callbacks; the stop vote of several processes never waits at a step."""

from __future__ import annotations

import os
import traceback
from pathlib import Path

import pytest
import torch
from torch import nn

from cvkit import distributed
from cvkit.builtins.checkpoint import Checkpoint
from cvkit.builtins.flip import HorizontalFlip
from cvkit.builtins.linear_model import LinearClassifier
from cvkit.builtins.metrics_jsonl import MetricsJSONL
from cvkit.builtins.normalize import Normalize
from cvkit.builtins.progress import Progress
from cvkit.builtins.random_crop import RandomCrop
from cvkit.builtins.synthetic import SyntheticImages
from cvkit.builtins.tensorboard import TensorBoard
from cvkit.data.batches import BatchLoader
from cvkit.engine.host_syncs import count_host_syncs
from cvkit.engine.trainer import TrainingLoop
from cvkit.recipe.schema import TrainerSettings

CPU = torch.device("cpu")


def _loader(steps: int, batch: int = 4) -> BatchLoader:
    data = SyntheticImages(num_classes=3, image_size=8, train_size=steps * batch, test_size=0)
    return BatchLoader(
        data.load("train"),
        batch_size=batch,
        device=CPU,
        augmentations=[
            RandomCrop(padding=1),
            HorizontalFlip(),
            Normalize(mean=[0.5] * 3, std=[0.25] * 3),
        ],
        shuffle=True,
        drop_last=True,
    )


def _epoch(steps: int, run_dir: Path | None = None) -> TrainingLoop:
    """A loop of one epoch of ``steps`` steps (EMA on), with the default callbacks writing
    into ``run_dir`` when given; the finite-loss check only at the epoch's end."""
    torch.manual_seed(0)
    model = LinearClassifier(3, 3, pool=2)
    callbacks = (
        [
            Progress(live="never", log_every_seconds=3600),
            MetricsJSONL(),
            TensorBoard(log_every=5, images=0),
            Checkpoint(),
        ]
        if run_dir is not None
        else []
    )
    loop = TrainingLoop(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
        nn.CrossEntropyLoss(),
        _loader(steps),
        epochs=1,
        device=CPU,
        settings=TrainerSettings(ema_decay=0.9, clip_grad_norm=1.0),
        callbacks=callbacks,
        run_dir=run_dir,
    )
    loop.check_every = 10_000
    return loop


def test_batch_seeding_formats_no_stack_traces(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.manual_seed queued a lazy seeding of each backend not initialised (CUDA, XPU,
    MTIA), formatting a stack trace for each, three per batch: most of the loop's host time
    with a small model."""
    formatted: list[int] = []
    original = traceback.format_stack
    monkeypatch.setattr(
        traceback, "format_stack", lambda *a, **k: formatted.append(1) or original(*a, **k)
    )
    loader = _loader(steps=20)
    batches = list(loader)
    assert len(batches) == 20
    assert formatted == []


@pytest.mark.parametrize("callbacks", [False, True], ids=["no callbacks", "default callbacks"])
def test_steps_make_no_host_wait_between_the_check_points(callbacks: bool, tmp_path: Path) -> None:
    """What an epoch of 60 steps asks of the host that would wait for a GPU is what an epoch
    of 20 asks: nothing per step (the reads are the epoch's own: its seed, its check,
    its metrics, the checkpoint)."""
    counts = []
    for steps in (20, 60):
        loop = _epoch(steps, tmp_path / f"run-{steps}" if callbacks else None)
        counts.append(count_host_syncs(loop.fit))
        assert loop.step == steps
    short, long = counts
    assert long == short, f"per-step host waits: {short} for 20 steps, {long} for 60"
    assert long["from_python"] == 0 and long["data_dependent"] == 0, long


def test_the_check_points_read_once_per_check(tmp_path: Path) -> None:
    """Each finite-loss check reads the pending losses and hits in one transfer."""
    loop = _epoch(60)
    baseline = count_host_syncs(_epoch(60).fit)["reads"]
    loop.check_every = 20  # two more checks inside the epoch (the third is its end)
    assert count_host_syncs(loop.fit)["reads"] == baseline + 2


def _vote(rank: int, port: int, polls: list[bool], results: dict[int, list[bool]]) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2"
    )
    distributed.initialize("cpu")
    try:
        vote = distributed.AnyRankVote()
        seen = [vote.poll(flag and rank == 1) for flag in polls]
        seen.append(vote.drain())
        results[rank] = seen
    finally:
        distributed.shutdown()


def test_the_stop_vote_of_two_processes_agrees_one_poll_late() -> None:
    """Rank 1 raises its flag at poll 3: both processes learn it at poll 4 (the all-reduce
    of poll 3 ran while they trained), and a flag at the last poll is read by drain()."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    polls = [False, False, True, False, False, True]
    manager = mp.Manager()
    results = manager.dict()
    mp.spawn(_vote, args=(port, polls, results), nprocs=2, join=True)
    expected = [False, False, False, True, False, False, True]
    assert results[0] == expected and results[1] == expected


def test_the_stop_vote_of_one_process_is_immediate() -> None:
    vote = distributed.AnyRankVote()
    assert [vote.poll(False), vote.poll(True), vote.drain()] == [False, True, False]
