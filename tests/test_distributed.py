"""One run trained by several processes (torchrun, gloo on CPU), and gradient accumulation.

The multi-process runs start real torchrun jobs of 2 processes on the tiny recipe, so the
module's runs are made once (``runs``) and checked by several tests.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from cvkit import distributed
from cvkit.builtins.flip import HorizontalFlip
from cvkit.builtins.normalize import Normalize
from cvkit.builtins.random_crop import RandomCrop
from cvkit.builtins.synthetic import SyntheticImages
from cvkit.data.batches import BatchLoader, evaluation_loader
from cvkit.engine.checkpoint import load_checkpoint
from cvkit.engine.trainer import TrainingLoop
from cvkit.recipe.schema import DataSettings, TrainerSettings
from cvkit.registry.specs import ComponentSpec

from helpers import ROOT
from test_run import run_summary

CPU = torch.device("cpu")
ENV = {
    "CVKIT_PLUGINS": "engine_plugin",
    "PYTHONPATH": os.pathsep.join(
        filter(None, [str(ROOT / "tests"), os.environ.get("PYTHONPATH")])
    ),
}
CALLBACKS = (
    'callbacks=[{{ name = "{fault}", epoch = 2, batch = 3, rank = 1, marker = "{marker}" }}, '
    '{{ name = "metrics_jsonl" }}, {{ name = "checkpoint" }}]'
)
SETTINGS = ["trainer.sync_batchnorm=true"]
TIMEOUT = 30  # --dist-timeout of the multi-process runs, seconds


def cvkit(*args: str, processes: int = 1) -> subprocess.CompletedProcess:
    """``python -m cvkit ARGS`` alone, or under torchrun with ``processes`` on this machine."""
    launcher = (
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={processes}",
        ]
        if processes > 1
        else [sys.executable]
    )
    return subprocess.run(
        [*launcher, "-m", "cvkit", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **ENV},
        timeout=240,
    )


def sets(marker: Path, fault: str = "kill") -> list[str]:
    return [
        arg
        for value in [*SETTINGS, CALLBACKS.format(fault=fault, marker=marker.as_posix())]
        for arg in ("--set", value)
    ]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The tiny recipe trained by 1 process, by 2 (``cvkit run --nproc 2``), and by 2 with
    rank 1 killed in epoch 2 (a copy of it kept for a resume by 1 process), then resumed."""
    from cvkit.testing.fixtures import TINY_RECIPE

    root = tmp_path_factory.mktemp("distributed")
    recipe = root / "tiny.toml"
    recipe.write_text(TINY_RECIPE.format(runs=(root / "runs").as_posix()))
    never = root / "never"
    never.touch()
    result: dict[str, Any] = {"root": root}
    single = cvkit("run", str(recipe), "--output", str(root / "single"), *sets(never))
    assert single.returncode == 0, single.stderr
    double = cvkit(
        "run", str(recipe), "--nproc", "2", "--output", str(root / "double"), *sets(never)
    )
    assert double.returncode == 0, double.stderr
    result["double_stdout"] = double.stdout
    started = time.perf_counter()
    killed = cvkit(
        "run",
        str(recipe),
        "--dist-timeout",
        str(TIMEOUT),
        "--output",
        str(root / "cut"),
        *sets(root / "killed"),
        processes=2,
    )
    result["killed"] = (killed, time.perf_counter() - started)
    result["cut_epoch"] = load_checkpoint(root / "cut" / "checkpoints" / "last.pt")["epoch"]
    result["cut_has_eval"] = (root / "cut" / "eval.json").exists()
    shutil.copytree(root / "cut", root / "cut-for-one")
    result["resumed"] = cvkit("run", "--resume", str(root / "cut"), processes=2)
    result["resumed_by_one"] = cvkit("run", "--resume", str(root / "cut-for-one"))
    result["terminated"] = cvkit(
        "run",
        str(recipe),
        "--dist-timeout",
        str(TIMEOUT),
        "--output",
        str(root / "term"),
        *sets(root / "terminated", "terminate"),
        processes=2,
    )
    result["term_state"] = {
        k: load_checkpoint(root / "term" / "checkpoints" / "last.pt")[k] for k in ("epoch", "batch")
    }
    result["term_resumed"] = cvkit("run", "--resume", str(root / "term"), processes=2)
    return result


def _close(a: Any, b: Any, tolerance: float) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], tolerance) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_close(x, y, tolerance) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return abs(a - b) <= tolerance * max(1.0, abs(a))
    return a == b


@pytest.mark.slow
def test_two_processes_train_as_one_process_does(runs: dict[str, Any]) -> None:
    root = runs["root"]
    single, double = run_summary(root / "single"), run_summary(root / "double")
    # the same batches, augmentations and batch-norm statistics; sums in another order
    assert _close(double["weights"], single["weights"], 1e-4)
    assert _close(double["metrics"], single["metrics"], 1e-4)
    assert _close(double["eval"], single["eval"], 1e-4)
    assert double["eval"]["test"]["samples"] == 32 and double["eval"]["val"]["samples"] == 16
    env = json.loads((root / "double" / "env.json").read_text())
    assert env["processes"] == 2
    assert runs["double_stdout"].count("test accuracy:") == 1  # rank 0 alone reports


@pytest.mark.slow
def test_a_killed_process_ends_the_job_and_the_run_resumes(runs: dict[str, Any]) -> None:
    killed, seconds = runs["killed"]
    assert killed.returncode != 0
    assert seconds < TIMEOUT + 60  # ended by torchrun or the timeout, no hang
    assert runs["cut_epoch"] == 1 and not runs["cut_has_eval"]  # epoch 1's checkpoint survived
    resumed = runs["resumed"]
    assert resumed.returncode == 0, resumed.stderr
    assert run_summary(runs["root"] / "cut") == run_summary(runs["root"] / "double")


@pytest.mark.slow
def test_sigterm_to_one_process_stops_both_at_the_same_step_and_the_run_resumes(
    runs: dict[str, Any],
) -> None:
    """Rank 1 gets SIGTERM after batch 3 of epoch 2; the vote on it runs during batch 4, so
    both processes stop after batch 4, rank 0 saves last.pt there, and the resumed run ends
    as the uninterrupted one."""
    terminated = runs["terminated"]
    assert terminated.returncode != 0
    assert "SIGTERM" in terminated.stderr
    assert runs["term_state"] == {"epoch": 1, "batch": 4}
    resumed = runs["term_resumed"]
    assert resumed.returncode == 0, resumed.stderr
    assert run_summary(runs["root"] / "term") == run_summary(runs["root"] / "double")


@pytest.mark.slow
def test_a_run_of_two_processes_resumes_in_one(runs: dict[str, Any]) -> None:
    resumed = runs["resumed_by_one"]
    assert resumed.returncode == 0, resumed.stderr
    root = runs["root"]
    assert _close(run_summary(root / "cut-for-one"), run_summary(root / "single"), 1e-4)


def _plain_net() -> nn.Module:
    """A CNN without batch norm: its gradient over a batch is the mean of its parts'."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 3),
    )


def _images(count: int) -> Any:
    return SyntheticImages(
        num_classes=3, image_size=8, train_size=count, test_size=0, noise=0.2
    ).load("train")


# 56: the epoch ends with a group of one batch; 60 and 44: with a group of 8 + 4 images,
# which a mean of the batches' means would weight 1/2 + 1/2 instead of 8/12 + 4/12
@pytest.mark.parametrize("count", [48, 56, 60, 44])
def test_accumulating_two_batches_steps_as_one_batch_twice_the_size(count: int) -> None:
    data = _images(count)
    normalize = [Normalize(mean=[0.5] * 3, std=[0.25] * 3)]
    trained = []
    for batch_size, accumulate in ((16, 1), (8, 2)):
        model = _plain_net()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        loop = TrainingLoop(
            model,
            optimizer,
            nn.CrossEntropyLoss(),
            BatchLoader(
                data, batch_size=batch_size, device=CPU, augmentations=normalize, shuffle=True
            ),
            scheduler=torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.9**step),
            epochs=2,
            device=CPU,
            settings=TrainerSettings(accumulate_steps=accumulate),
        )
        loop.fit()
        trained.append(loop)
    whole, accumulated = trained
    assert accumulated.step == whole.step == 2 * -(-count // 16)
    assert accumulated.steps_per_epoch == whole.steps_per_epoch
    assert accumulated.scheduler.last_epoch == whole.scheduler.last_epoch
    for a, b in zip(accumulated.model.parameters(), whole.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert accumulated.metrics["train/loss"] == pytest.approx(whole.metrics["train/loss"], rel=1e-5)


def test_accumulation_is_refused_for_an_optimizer_that_steps_with_a_closure() -> None:
    from cvkit.errors import CvkitError

    model = _plain_net()

    class ClosureSGD(torch.optim.SGD):
        requires_closure = True

    with pytest.raises(CvkitError, match="accumulate_steps = 2"):
        TrainingLoop(
            model,
            ClosureSGD(model.parameters(), lr=0.1),
            nn.CrossEntropyLoss(),
            BatchLoader(_images(16), batch_size=8, device=CPU),
            epochs=1,
            device=CPU,
            settings=TrainerSettings(accumulate_steps=2),
        )


def _augmenting_loader(data: Any, **kwargs: Any) -> BatchLoader:
    augmentations = [
        RandomCrop(padding=2),
        HorizontalFlip(),
        Normalize(mean=[0.5] * 3, std=[0.25] * 3),
    ]
    return BatchLoader(
        data, batch_size=12, device=CPU, augmentations=augmentations, shuffle=True, seed=3, **kwargs
    )


def test_a_batch_is_augmented_the_same_whatever_else_draws_random_numbers() -> None:
    data = _images(36)
    quiet = [images for images, _ in _augmenting_loader(data)]
    busy = []
    for images, _ in _augmenting_loader(data):
        busy.append(images)
        torch.rand(1000)  # dropout in the model draws from the same generators
    for a, b in zip(quiet, busy, strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(quiet[0], quiet[1])


def _as_rank(monkeypatch: pytest.MonkeyPatch, rank: int, processes: int) -> None:
    monkeypatch.setattr(distributed, "rank", lambda: rank)
    monkeypatch.setattr(distributed, "world_size", lambda: processes)


def test_the_processes_parts_of_each_batch_make_the_whole_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = _images(36)  # batches of 12 shared by 5 processes: parts of 3, 3, 2, 2, 2
    whole = list(_augmenting_loader(data))
    parts, weights = [], []
    for rank in range(5):
        _as_rank(monkeypatch, rank, 5)
        loader = _augmenting_loader(data, shard=True)
        parts.append(list(loader))
        weights.append(loader.shard_weight)
    for number, (images, targets) in enumerate(whole):
        assert torch.equal(torch.cat([p[number][0] for p in parts]), images)
        assert torch.equal(torch.cat([p[number][1] for p in parts]), targets)
    assert weights == [3 * 5 / 12] * 2 + [2 * 5 / 12] * 3


def test_evaluation_parts_cover_the_split_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _images(10)
    settings = DataSettings(dataset=ComponentSpec("dataset", "synthetic"), batch_size=4)
    seen = []
    for rank in range(3):
        _as_rank(monkeypatch, rank, 3)
        loader = evaluation_loader(data, settings, device=CPU, augmentations=[], shard=True)
        assert loader.part_of_split
        seen += [labels for _, labels in loader]
    assert torch.equal(torch.cat(seen), data.labels)


def test_a_batch_too_small_to_share_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from cvkit.errors import CvkitError

    _as_rank(monkeypatch, 0, 4)
    with pytest.raises(CvkitError, match="batch of 2 images cannot be shared by 4 processes"):
        _augmenting_loader(_images(14), shard=True)  # its last batch holds 2 images


def _sync_batchnorm_half(rank: int, port: int, results: dict) -> None:
    """Rank ``rank``'s half of a batch of 8 through GlooSyncBatchNorm: output, input
    gradient and running statistics."""
    from cvkit.engine.sync_batchnorm import convert_sync_batchnorm

    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2"
    )
    distributed.initialize("cpu")
    try:
        torch.manual_seed(0)  # the same layer and batch in both processes
        layer = convert_sync_batchnorm(nn.BatchNorm2d(4, momentum=0.3), CPU)
        with torch.no_grad():
            layer.weight.uniform_(0.5, 1.5)
            layer.bias.uniform_(-0.5, 0.5)
        batch = torch.randn(8, 4, 5, 5) * 3 + 1
        part = batch[4 * rank : 4 * rank + 4].clone().requires_grad_(True)
        output = layer(part)
        (output * torch.arange(output.numel()).view_as(output).float().sin()).sum().backward()
        results[rank] = (output.detach(), part.grad, layer.running_mean, layer.running_var)
    finally:
        distributed.shutdown()


def test_sync_batchnorm_of_two_processes_is_batch_norm_over_their_whole_batch() -> None:
    """Each process holds half of the batch: outputs, input gradients (through the
    differentiable all-reduce) and running statistics are those of one BatchNorm2d over
    all 8 images."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    results = mp.Manager().dict()
    mp.spawn(_sync_batchnorm_half, args=(port, results), nprocs=2, join=True)
    torch.manual_seed(0)
    reference = nn.BatchNorm2d(4, momentum=0.3)
    with torch.no_grad():
        reference.weight.uniform_(0.5, 1.5)
        reference.bias.uniform_(-0.5, 0.5)
    batch = (torch.randn(8, 4, 5, 5) * 3 + 1).requires_grad_(True)
    output = reference(batch)
    weights = torch.cat([torch.arange(4 * 100).view(4, 4, 5, 5).float().sin()] * 2)
    (output * weights).sum().backward()
    for rank in (0, 1):
        out, grad, mean, var = results[rank]
        half = slice(4 * rank, 4 * rank + 4)
        torch.testing.assert_close(out, output[half].detach())
        torch.testing.assert_close(grad, batch.grad[half])
        torch.testing.assert_close(mean, reference.running_mean)
        torch.testing.assert_close(var, reference.running_var)  # unbiased over 8 x 25 values


def test_converting_to_sync_batchnorm_keeps_the_layer_s_tensors() -> None:
    """Optimizers built before the conversion still hold the parameters it trains."""
    from cvkit.engine.sync_batchnorm import GlooSyncBatchNorm, convert_sync_batchnorm

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    weight, running_mean = model[1].weight, model[1].running_mean
    converted = convert_sync_batchnorm(model, CPU)
    assert isinstance(converted[1], GlooSyncBatchNorm)
    assert converted[1].weight is weight and converted[1].running_mean is running_mean
