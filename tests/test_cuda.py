"""The CUDA paths (issue 23): mixed precision, channels-last, torch.compile with CUDA graphs,
EMA, in-memory data that stays on the GPU, pinned per-sample batches, DistributedDataParallel
over NCCL, and no host-device wait inside a training step. Marked ``cuda``: skipped without
a GPU (the root conftest.py); ``benchmarks/gpu.py`` runs them on one."""

from __future__ import annotations

import math
import os
import socket
from typing import Any

import pytest
import torch
from torch import nn

from cvkit.builtins.flip import HorizontalFlip
from cvkit.builtins.normalize import Normalize
from cvkit.builtins.random_crop import RandomCrop
from cvkit.builtins.resizing import RandomResizedCrop
from cvkit.builtins.simple_cnn import SimpleCNN
from cvkit.builtins.synthetic import SyntheticImages
from cvkit.builtins.torchvision_transforms import TorchvisionTransform
from cvkit.data.batches import BatchLoader
from cvkit.engine.callback import Callback
from cvkit.engine.trainer import TrainingLoop
from cvkit.recipe.schema import TrainerSettings

pytestmark = pytest.mark.cuda

GPU = torch.device("cuda")
STEPS = 12


def _images(count: int, size: int = 16) -> Any:
    return SyntheticImages(num_classes=4, image_size=size, train_size=count, test_size=0).load(
        "train"
    )


def _batch_augmentations() -> list[nn.Module]:
    return [
        RandomResizedCrop(size=16, scale=[0.5, 1.0]),
        RandomCrop(padding=2),
        HorizontalFlip(),
        Normalize(mean=[0.5] * 3, std=[0.25] * 3),
    ]


class NoWaitInsideSteps(Callback):
    """``torch.cuda.set_sync_debug_mode("error")`` from the end of the first batch (after
    one-off work: kernel selection, optimizer state) to the end of the last, where the
    loop's own read of the epoch's sums comes: any wait in between raises."""

    def on_batch_end(self, trainer: Any) -> None:
        if trainer.batch == 1:
            torch.cuda.set_sync_debug_mode("error")
        if trainer.batch == len(trainer.train_loader):
            torch.cuda.set_sync_debug_mode(0)

    def on_exception(self, trainer: Any, error: BaseException) -> None:
        torch.cuda.set_sync_debug_mode(0)


def _loop(
    precision: str = "fp32", callbacks: tuple[Callback, ...] = (), **settings: Any
) -> TrainingLoop:
    torch.manual_seed(0)
    model = SimpleCNN(4, 3, widths=[16, 32], dropout=0.1)
    loop = TrainingLoop(
        model,
        torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True),
        nn.CrossEntropyLoss(label_smoothing=0.1),
        BatchLoader(
            _images(STEPS * 32),
            batch_size=32,
            device=GPU,
            augmentations=_batch_augmentations(),
            shuffle=True,
            drop_last=True,
            channels_last=settings.get("channels_last", False),
        ),
        epochs=2,
        device=GPU,
        precision=precision,
        settings=TrainerSettings(**settings),
        callbacks=callbacks,
    )
    loop.check_every = 10_000  # the epoch's end is the only check
    return loop


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_an_epoch_on_the_gpu_never_waits_inside_a_step(precision: str) -> None:
    loop = _loop(
        precision,
        (NoWaitInsideSteps(),),
        ema_decay=0.9,
        clip_grad_norm=1.0,
        channels_last=True,
    )
    loop.fit()
    assert math.isfinite(loop.metrics["train/loss"])
    assert loop.step == 2 * STEPS


def test_fp16_trains_with_gradient_scaling() -> None:
    """fp16's GradScaler reads its overflow flag at every step (torch's design): it trains,
    but is not held to the no-wait rule (docs/running.md)."""
    loop = _loop("fp16")
    loop.fit()
    assert loop.scaler is not None and math.isfinite(loop.metrics["train/loss"])


def test_channels_last_reaches_the_model_and_its_batches() -> None:
    loop = _loop(channels_last=True)
    weight = next(p for p in loop.model.parameters() if p.ndim == 4)
    assert weight.is_contiguous(memory_format=torch.channels_last)
    images, _ = next(iter(loop.train_loader))
    assert images.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("mode", ["default", "reduce-overhead"])
def test_compiled_training_matches_eager_on_the_gpu(mode: str) -> None:
    """torch.compile, CUDA graphs included ('reduce-overhead': each step marked, its
    predictions counted before the next replay), trains as the eager model does."""
    eager = _loop("bf16")
    eager.fit()
    compiled = _loop("bf16", compile=True, compile_mode=mode)
    compiled.fit()
    assert compiled.metrics["train/loss"] == pytest.approx(eager.metrics["train/loss"], rel=0.05)
    assert 0.0 <= compiled.metrics["train/acc"] <= 1.0


def test_in_memory_data_stays_on_the_gpu() -> None:
    """The split lives on the GPU: an epoch copies nothing from the host but its order."""
    loader = BatchLoader(
        _images(STEPS * 32), batch_size=32, device=GPU, augmentations=_batch_augmentations()
    )
    assert loader.images.device.type == "cuda"
    list(loader)  # warm-up
    activities = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=activities) as profile:
        batches = list(loader)
        torch.cuda.synchronize()
    assert all(images.device.type == "cuda" for images, _ in batches)
    copies = [e for e in profile.events() if "Memcpy HtoD" in e.name]
    assert len(copies) <= 1, [e.name for e in copies]


def test_per_sample_batches_come_pinned_without_waiting() -> None:
    """Per-sample augmentations run in workers on the CPU; their batches are pinned and
    copied without blocking, and their indices too."""
    loader = BatchLoader(
        _images(STEPS * 32),
        batch_size=32,
        device=GPU,
        augmentations=[
            TorchvisionTransform(transform="RandomHorizontalFlip"),
            Normalize(mean=[0.5] * 3, std=[0.25] * 3),
        ],
        shuffle=True,
        workers=2,
    )
    batches = loader.epoch()
    next(batches)
    torch.cuda.set_sync_debug_mode("error")
    try:
        rest = list(batches)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert all(images.device.type == "cuda" for images, _ in rest)


def _ddp_on_one_gpu(rank: int, port: int, result: Any) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("nccl", rank=0, world_size=1)
    try:
        torch.cuda.set_device(0)
        loop = _loop("bf16")
        loop.processes = 2  # wrap in DistributedDataParallel although the group has one process
        loop.fit()
        result["wrapped"] = type(loop.forward).__name__
        result["loss"] = loop.metrics["train/loss"]
    finally:
        torch.distributed.destroy_process_group()


def test_distributed_data_parallel_over_nccl_trains_as_one_process() -> None:
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = mp.Manager().dict()
    mp.spawn(_ddp_on_one_gpu, args=(port, result), nprocs=1, join=True)
    alone = _loop("bf16")
    alone.fit()
    assert result["wrapped"] == "DistributedDataParallel"
    assert result["loss"] == pytest.approx(alone.metrics["train/loss"], rel=1e-3)
