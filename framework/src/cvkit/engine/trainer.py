"""The training loop: one explicit loop, callbacks at documented events, exact resume.

Per batch the loop does what a hand-written one does (forward under autocast, loss,
backward, optional clipping, optimizer and scheduler step, optional EMA update) and keeps
the batch's loss and logits on the device; nothing in a step waits for the device. The
running accuracy is counted on the device over many batches at once, and the losses and
counts are read in one transfer at a sync point: the finite-loss check every
``check_every`` batches, a progress redraw, a checkpoint, or the end of the epoch.

With ``trainer.accumulate_steps = K`` the optimizer steps once per K batches, on the mean
of their gradients, weighted by images: each batch's mean loss is scaled by its share of
the group's images, so the step is that of one batch holding the whole group (also when
the epoch's last group is shorter, or ends with a smaller batch). In a run of several
processes (see :mod:`cvkit.distributed`) the model is wrapped in
DistributedDataParallel, which averages the gradients of the processes' parts of each batch;
the processes agree on when to stop on a signal one optimizer step after it arrives (a
vote that runs while they train: :class:`cvkit.distributed.AnyRankVote`) and on
non-finite losses at the checks,
epoch metrics are over the whole batch, validation over the whole split, and only rank 0
runs the callbacks that write (``main_process_only``).

What callbacks may read and set on the loop is :class:`cvkit.engine.callback.TrainerView`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from cvkit import distributed
from cvkit.data.batches import BatchLoader
from cvkit.engine.callback import Callback
from cvkit.engine.checkpoint import FORMAT, load_model_weights
from cvkit.engine.device import AUTOCAST_DTYPES, autocast
from cvkit.engine.ema import ExponentialMovingAverage
from cvkit.engine.metrics import collect_logits, metrics_from_logits
from cvkit.engine.rng import rng_state, seed_everything, set_rng_state
from cvkit.engine.sync_batchnorm import convert_sync_batchnorm
from cvkit.errors import CvkitError, NonFiniteLossError, Terminated
from cvkit.hookspecs import capability
from cvkit.recipe.schema import Recipe, TrainerSettings
from cvkit.version import __version__

log = logging.getLogger("cvkit")


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""Signals that stop training after the current batch (the second one at once)."""

ECHO_SECONDS = 2.0
"""In a process started by torchrun: a second stop signal this soon after the first is the
same stop, passed on by torchrun (seconds)."""


@contextlib.contextmanager
def _deferred_interrupt() -> Iterator[Callable[[], BaseException | None]]:
    """Turn the first SIGINT or SIGTERM into a pending stop (the returned callable gives the
    exception to raise: KeyboardInterrupt or Terminated); a second one raises at once. In a
    process torchrun started, a second signal within :data:`ECHO_SECONDS` of the first
    counts as the same one: Ctrl-C reaches the process from the terminal and from torchrun."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return
    pending: list[BaseException] = []
    first_at: list[float] = []

    def handler(signum: int, frame: Any) -> None:
        stop = Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
        if pending:
            if distributed.launched() and time.monotonic() - first_at[0] < ECHO_SECONDS:
                return
            raise stop
        pending.append(stop)
        first_at.append(time.monotonic())
        name = "SIGTERM" if signum == signal.SIGTERM else "interrupted"
        log.warning("%s: stopping after this batch (a second one stops at once)", name)

    previous = {number: signal.signal(number, handler) for number in STOP_SIGNALS}
    try:
        yield lambda: pending[0] if pending else None
    finally:
        for number, old in previous.items():
            signal.signal(number, old)


@contextlib.contextmanager
def frozen_running_stats(model: nn.Module) -> Iterator[None]:
    """Inside the block, batch-norm layers normalise with batch statistics as usual but leave
    their running statistics (and batch counters) as they were: for extra forward passes
    over the same batch, such as SAM's second one."""
    norms = [
        (m, m.num_batches_tracked)
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.num_batches_tracked is not None
    ]
    saved = [(m.momentum, count.clone()) for m, count in norms]
    for m, _ in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for (m, count), (momentum, before) in zip(norms, saved, strict=True):
            m.momentum = momentum
            count.copy_(before)


@attrs.frozen(eq=False)
class Validation:
    """The last validation of this process: after ``epochs`` epochs, the evaluation model's
    ``logits`` (N, K) float32 and ``labels`` (N,) on the CPU, over the whole split, and its
    wall ``seconds``; the final evaluation reuses it when its weights are these."""

    epochs: int
    logits: Tensor
    labels: Tensor
    seconds: float


def to_channels_last(model: nn.Module) -> None:
    """Store ``model``'s 4-D parameters and buffers (convolution filters) channels-last, in
    place; others keep their layout (``model.to(memory_format=torch.channels_last)`` fails
    on the 5-D weight of a block's Conv3d, as timm's lambda layer has)."""
    with torch.no_grad():
        for tensor in (*model.parameters(), *model.buffers()):
            if tensor.dim() == 4:
                tensor.data = tensor.data.contiguous(memory_format=torch.channels_last)


class TrainingLoop:
    """Trains ``model`` on ``train_loader`` for ``epochs``, validating on ``val_loader``.

    ``settings``: the recipe's ``[trainer]`` section (gradient clipping, EMA, channels-last,
    compile; the default: none of them). ``precision``: 'fp32', 'bf16' or 'fp16' (autocast;
    fp16 adds gradient scaling). ``metadata`` is stored in every checkpoint (recipe text,
    classes, input shape). Callbacks see it as a :class:`~cvkit.engine.callback.TrainerView`.
    """

    check_every = 100
    """Batches between checks that the running loss is finite (each one waits for the device)."""

    pack_every = 32
    """Batches whose losses and logits are held before they are packed on the device (their
    losses stacked, their correct predictions counted), without waiting for it: a few
    operations per ``pack_every`` batches instead of several per batch, and few tensors held."""

    pack_logits = 2**22
    """Logit values (images x classes) that also pack them (16 MiB in float32)."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        loss: nn.Module,
        train_loader: BatchLoader,
        *,
        epochs: int,
        device: torch.device,
        settings: TrainerSettings | None = None,
        precision: str = "fp32",
        val_loader: BatchLoader | None = None,
        scheduler: Any = None,
        callbacks: Sequence[Callback] = (),
        run_dir: Path | None = None,
        recipe: Recipe | None = None,
        metadata: dict[str, Any] | None = None,
        training_images: Callable[[int], Tensor] | None = None,
    ) -> None:
        self.settings = settings = settings or TrainerSettings()
        self.device = device
        self.processes, self._main = distributed.world_size(), distributed.is_main()
        if settings.sync_batchnorm and self.processes > 1:
            model = convert_sync_batchnorm(model, device)
        self.model = model.to(device)
        if settings.channels_last:
            to_channels_last(self.model)
        # the model as this process runs it; forward: the same, wrapped for several processes
        self.local: nn.Module = (
            torch.compile(self.model, mode=settings.compile_mode)  # type: ignore[assignment]
            if settings.compile
            else self.model
        )
        # CUDA graphs (compile_mode 'reduce-overhead') reuse their outputs' memory at the next
        # step: each step is marked, and its logits are counted before the next one
        self._cudagraphs = settings.compile and settings.compile_mode in (
            "reduce-overhead",
            "max-autotune",
        )
        self.forward: nn.Module = self.local
        self._wrapped_for: tuple[bool, ...] | None = None  # which parameters DDP syncs
        self.optimizer, self.scheduler, self.loss = optimizer, scheduler, loss.to(device)
        self.train_loader, self.val_loader = train_loader, val_loader
        self.accumulate = settings.accumulate_steps
        self.epochs = epochs
        self.steps_per_epoch = -(-len(train_loader) // self.accumulate)
        self.autocast_dtype = AUTOCAST_DTYPES[precision]
        self._autocast = autocast(device, self.autocast_dtype)  # reusable, entered per batch
        self.scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
        self.requires_closure = bool(capability(optimizer, "requires_closure"))
        if self.requires_closure and self.scaler is not None:
            raise CvkitError(
                f"{type(optimizer).__name__} steps with a closure, which fp16 gradient scaling cannot"
            )
        if self.requires_closure and self.accumulate > 1:
            raise CvkitError(
                f"trainer.accumulate_steps = {self.accumulate}: {type(optimizer).__name__} steps "
                "with a closure on one batch and cannot accumulate gradients over several"
            )
        self.loss_uses_inputs = bool(capability(loss, "uses_inputs"))
        self.interval = capability(scheduler, "interval") if scheduler is not None else None
        self.ema = self._averaged_model(settings.ema_decay)
        self.callbacks = sorted(callbacks, key=lambda c: capability(c, "priority"))
        self._process_rng: list[dict[str, Any]] | None = None  # every process's, for checkpoints
        self.run_dir, self.recipe = run_dir, recipe
        self.metadata = dict(metadata or {})
        self._training_images = training_images
        self.epoch = self.batch = self.step = 0
        self._epoch_lr = self.lr
        self.wall_seconds = 0.0  # training and validation, over every epoch, saved on resume
        self.metrics: dict[str, float] = {}
        self.history: list[dict[str, float]] = []
        self.batch_images: Tensor | None = None
        self.batch_loss: Tensor | None = None
        self.grad_norm: Tensor | None = None
        self.evaluation: dict[str, Any] | None = None
        self.last_validation: Validation | None = None  # none yet in this process
        self.should_stop = False
        self.resumed = False
        self._loader_state = train_loader.state_dict()
        self._interrupted: Callable[[], BaseException | None] = lambda: None
        self._stop_vote = distributed.AnyRankVote()
        self._epoch_batches = len(train_loader)
        self._consistent = True  # between steps: a checkpoint now resumes exactly
        # the epoch's running sums (float64 loss x images, hits, images), see _settle
        self._loss_sum: float = 0.0
        self._correct: int = 0
        self._seen: int = 0
        self._reset_running()

    def _averaged_model(self, decay: float | None) -> ExponentialMovingAverage | None:
        """An exponential moving average of the weights (and buffers) with ``decay``, or None."""
        return ExponentialMovingAverage(self.model, decay) if decay else None

    # -- the loop --------------------------------------------------------------------------

    def fit(self) -> None:
        """Train until ``epochs`` are done or a callback sets ``should_stop``.

        A first Ctrl-C (or SIGTERM) finishes the current batch and then raises
        KeyboardInterrupt (Terminated), so a checkpoint taken then resumes exactly; a second
        one interrupts at once, and :meth:`checkpointable` then says why not to save.
        """
        try:
            with _deferred_interrupt() as interrupted:
                self._interrupted = interrupted
                if not self.resumed:
                    self._init_from_data()
                self._emit("on_fit_start")
                while self.epoch < self.epochs and not self.should_stop:
                    started = time.perf_counter()
                    self._train_epoch()
                    if self._validates_now():
                        self._validate()
                    self._check_weights()
                    self.epoch += 1
                    self.batch = 0
                    self._loader_state = self.train_loader.state_dict()
                    self.history.append({"epoch": self.epoch, "step": self.step, **self.metrics})
                    self._reset_running()
                    if self.processes > 1:
                        self._process_rng = distributed.gather_objects(rng_state())
                    self._consistent = True
                    self.wall_seconds += time.perf_counter() - started
                    self._emit("on_epoch_end")
        except BaseException as error:
            self._emit_exception(error)
            raise
        self._emit("on_fit_end")

    def training_images(self, count: int) -> Tensor:
        """``count`` training images (all of them if fewer) chosen at random with the run's
        seed, through the evaluation augmentations: float (count, C, H, W) on the device, as
        the model sees a validation batch. For data-dependent initialisation."""
        if self._training_images is None:
            raise CvkitError("this training loop was given no training images to initialise from")
        return self._training_images(count)

    def _init_from_data(self) -> None:
        """Before the first step of a fresh run: a model with ``init_from_data(images)`` gets
        ``model.data_init_images`` training images (:meth:`training_images`)."""
        init = getattr(self.model, "init_from_data", None)
        if init is None:
            return
        count = int(getattr(self.model, "data_init_images", 5000))
        with torch.no_grad():
            init(self.training_images(count))
        log.info("initialised %s from %d training images", type(self.model).__name__, count)

    def _train_epoch(self) -> None:
        self.model.train()
        if self.batch == 0:
            self._emit("on_epoch_start")
        self._wrap_for_processes()
        if self.batch == 0:  # a resumed epoch keeps the rate its first step trained with
            self._epoch_lr = self.lr
        self._epoch_started = time.perf_counter()
        self._settle()
        self._seen_at_start = self._seen
        self._epoch_batches = len(self.train_loader)
        batch_end = self._handlers("on_batch_end")
        for images, targets in self.train_loader.epoch(start=self.batch):
            self._consistent = False
            stepped = self._train_step(images, targets)
            self.batch += 1
            if stepped:
                self.step += 1
                if self.interval == "step":
                    self.scheduler.step()
                self._consistent = True
            if self.batch % self.check_every == 0:
                self.check_finite()
            for callback, handler in batch_end:
                self._call(callback, handler, "on_batch_end")
            if stepped and self._stop_vote.poll(self._interrupted() is not None):
                self._stop()
        if self._stop_vote.drain():  # a stop asked for at the epoch's last steps
            self._stop()
        self._consistent = False  # until the epoch's bookkeeping is done
        if self.interval == "epoch":
            self.scheduler.step()
        self.check_finite()
        self.metrics = self._epoch_metrics()

    def _wrap_for_processes(self) -> None:
        """In a run of several processes, wrap the model in DistributedDataParallel, again
        whenever a callback has frozen or unfrozen parameters since (DDP syncs the
        gradients of the parameters that were trainable when it was made)."""
        if self.processes == 1:
            return
        trainable = tuple(p.requires_grad for p in self.model.parameters())
        if trainable == self._wrapped_for:
            return
        self._wrapped_for = trainable
        if not any(trainable):
            self.forward = self.local
            return
        ids = [self.device.index] if self.device.type == "cuda" else None
        self.forward = DistributedDataParallel(self.local, device_ids=ids)

    def _stop(self) -> None:
        """Stop after the step just done, on a signal to any process: a checkpoint taken now
        resumes exactly."""
        self._share_for_checkpoint()
        raise self._interrupted() or KeyboardInterrupt()

    def _share_for_checkpoint(self) -> None:
        """Before a checkpoint in a run of several processes: rank 0 gets every process's
        random generator states and the whole batch's running sums (the others keep none,
        so that summing over the processes after a resume counts each image once)."""
        if self.processes == 1:
            return
        self._process_rng = distributed.gather_objects(rng_state())
        self._settle()
        loss_sum, correct, seen = distributed.all_sum([self._loss_sum, self._correct, self._seen])
        if distributed.is_main():
            self._loss_sum, self._correct, self._seen = loss_sum, int(correct), int(seen)
        else:
            self._loss_sum, self._correct, self._seen = 0.0, 0, 0

    def _train_step(self, images: Tensor, targets: Tensor) -> bool:
        """Forward and backward of one batch; the optimizer steps after the last batch of
        each group of ``accumulate_steps``, on the gradient of the group's mean loss over its
        images. Returns whether it stepped."""
        if self._cudagraphs:
            torch.compiler.cudagraph_mark_step_begin()
        if self.requires_closure:
            logits, loss = self._closure_step(images, targets)
            stepped = True
        else:
            first = self.batch - self.batch % self.accumulate
            size = min(self.accumulate, self._epoch_batches - first)
            stepped = self.batch == first + size - 1
            if self.batch == first:
                self.optimizer.zero_grad(set_to_none=True)
            weight = self.train_loader.shard_weight * self._group_weight(first, size)
            if not stepped and self.forward is not self.local:  # DDP: sync at the group's end
                with self.forward.no_sync():  # type: ignore[operator]
                    logits, loss = self._backward(images, targets, weight)
            else:
                logits, loss = self._backward(images, targets, weight)
            if stepped:
                self._clip(unscale=self.scaler is not None)
                if self.scaler is not None:
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
                else:
                    self.optimizer.step()
        if stepped and self.ema is not None:
            self.ema.update_parameters(self.model)
        loss = loss.detach()
        self.batch_images, self.batch_loss = images, loss
        self._unpacked.append((loss, logits.detach(), targets))
        self._counts.append(targets.shape[0])
        self._unpacked_size += logits.numel()
        if (
            len(self._unpacked) >= self.pack_every
            or self._unpacked_size >= self.pack_logits
            or self._cudagraphs
        ):
            self._pack()
        return stepped

    def _group_weight(self, first: int, size: int) -> float:
        """The share of this batch's images in the group of ``size`` batches from batch
        ``first``: 1.0 without accumulation."""
        if size == 1:
            return 1.0
        group = self.train_loader.images_in(range(first, first + size))
        return self.train_loader.images_in(range(self.batch, self.batch + 1)) / group

    def _backward(self, images: Tensor, targets: Tensor, weight: float) -> tuple[Tensor, Tensor]:
        """Forward (under autocast) and backward of one batch, the loss scaled by ``weight``;
        returns the logits and the unscaled loss."""
        with self._autocast:
            logits = self.forward(images)
            loss = self._loss(logits, targets, images)
        scaled = loss * weight if weight != 1.0 else loss
        if self.scaler is not None:
            self.scaler.scale(scaled).backward()
        else:
            scaled.backward()
        return logits, loss

    def _closure_step(self, images: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """One step of an optimizer that evaluates the loss itself, possibly several times
        (SAM: at the weights, then at the perturbed weights). Each call of the closure
        computes the loss and (clipped) gradients at the current weights; batch-norm running
        statistics are updated by the first call only. Returns the first call's logits and loss."""
        first: list[tuple[Tensor, Tensor]] = []

        def closure() -> Any:  # the loss tensor (torch's stubs say float)
            self.optimizer.zero_grad(set_to_none=True)
            again = frozen_running_stats(self.model) if first else contextlib.nullcontext()
            with self._autocast, again:
                logits = self.forward(images)
                loss = self._loss(logits, targets, images)
            weight = self.train_loader.shard_weight
            (loss * weight if weight != 1.0 else loss).backward()
            self._clip(unscale=False)
            if not first:
                first.append((logits.detach(), loss.detach()))
            return loss

        self.optimizer.step(closure)
        if not first:
            raise CvkitError(f"{type(self.optimizer).__name__}.step did not call its closure")
        return first[0]

    def _loss(self, logits: Tensor, targets: Tensor, images: Tensor) -> Tensor:
        if self.loss_uses_inputs:  # distillation: the teacher sees the same batch
            return self.loss(logits, targets, images)
        return self.loss(logits, targets)

    def _clip(self, *, unscale: bool) -> None:
        norm, value = self.settings.clip_grad_norm, self.settings.clip_grad_value
        if norm is None and value is None:
            return
        if unscale and self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        parameters = [
            p
            for group in self.optimizer.param_groups
            for p in group["params"]
            if p.grad is not None
        ]
        if norm is not None:
            self.grad_norm = nn.utils.clip_grad_norm_(parameters, norm)
        if value is not None:
            nn.utils.clip_grad_value_(parameters, value)

    def _validates_now(self) -> bool:
        """Whether this epoch ends with a validation: every ``trainer.val_every`` epochs, and
        the last (also one cut short by a callback's ``should_stop``)."""
        last = self.epoch + 1 >= self.epochs or self.should_stop
        return last or (self.epoch + 1) % self.settings.val_every == 0

    def _validate(self) -> None:
        if self.val_loader is None:
            return
        self.share_buffers()
        start = time.perf_counter()
        logits, labels = collect_logits(
            self.evaluation_model(),
            self.val_loader,
            self.device,
            self.autocast_dtype,
            combine_processes=self.val_loader.part_of_split,
            progress="validation",
        )
        seconds = time.perf_counter() - start  # the logits are on the CPU: synchronised
        self.last_validation = Validation(self.epoch + 1, logits, labels, seconds)
        result = metrics_from_logits(logits, labels, self.val_loader.classes)
        self.metrics |= {
            "val/loss": result["loss"],
            "val/acc": result["top1"],
            "val/top5": result["top5"],
        }
        self._emit("on_validation_end")

    # -- evaluation ------------------------------------------------------------------------

    def evaluation_model(self) -> nn.Module:
        """The model evaluation uses: the EMA of the weights when there is one (never the
        DistributedDataParallel wrapper: each process evaluates its part of a split alone)."""
        return self.ema.module if self.ema is not None else self.local

    def share_buffers(self) -> None:
        """In a run of several processes, give every process rank 0's buffers (batch-norm
        running statistics, which each process updated with its own part of the batches)
        before they evaluate, so that every part is evaluated with the weights rank 0 saves."""
        distributed.broadcast_buffers(self.model)
        # the EMA's module only: its update count is a CPU tensor, the same in every process
        if self.ema is not None:
            distributed.broadcast_buffers(self.ema.module)

    def evaluated(self, evaluation: dict[str, Any]) -> None:
        """Record the final evaluation (eval.json's content) and tell the callbacks."""
        self.evaluation = evaluation
        self._emit("on_evaluation_end")

    # -- running metrics -------------------------------------------------------------------

    def _reset_running(self) -> None:
        self._loss_sum, self._correct, self._seen = 0.0, 0, 0
        self._counts: list[int] = []  # each batch's image count, in order
        self._unpacked: list[tuple[Tensor, Tensor, Tensor]] = []  # loss, logits, targets
        self._unpacked_size = 0
        self._losses: list[Tensor] = []  # packed losses (K,), in batch order, see _pack
        self._hits: list[Tensor] = []  # device counts of correct predictions, see _pack

    def _pack(self) -> None:
        """Pack the batches held since the last pack, on the device and without waiting for
        it: their losses stacked in order, their correct predictions counted by one argmax
        and compare over all of them. (With CUDA graphs, every batch: a graph's next replay
        reuses its logits' memory.)"""
        if not self._unpacked:
            return
        self._losses.append(torch.stack([loss for loss, _, _ in self._unpacked]))
        logits = torch.cat([logits for _, logits, _ in self._unpacked])
        hard = torch.cat([t.argmax(1) if t.ndim == 2 else t for _, _, t in self._unpacked])
        self._hits.append((logits.argmax(1) == hard).sum())
        self._unpacked.clear()
        self._unpacked_size = 0

    def _settle(self) -> None:
        """Fold the batches' device values into the epoch sums: one transfer, then float64
        sums in batch order, so a resumed epoch adds up exactly as an uninterrupted one."""
        if not self._counts:
            return
        self._pack()
        losses = torch.cat(self._losses).double()
        hits = torch.stack(self._hits).double()  # not with the losses: they may be bf16
        values = torch.cat([losses, hits]).tolist()
        count = len(self._counts)
        for loss, images in zip(values[:count], self._counts, strict=True):
            self._loss_sum += loss * images
            self._seen += images
        self._correct += int(sum(values[count:]))
        self._counts.clear()
        self._losses.clear()
        self._hits.clear()

    def running_metrics(self) -> dict[str, float]:
        """Mean loss and accuracy of the current epoch so far (synchronises with the device);
        in a run of several processes, over this process's part of the batches."""
        self._settle()
        seen = max(self._seen, 1)
        return {"train/loss": self._loss_sum / seen, "train/acc": self._correct / seen}

    def _epoch_metrics(self) -> dict[str, float]:
        """The finished epoch's mean loss and accuracy over every process's images, the
        learning rate of its first step, the epoch's seconds and its throughput (images per second, all
        processes together)."""
        seconds = time.perf_counter() - self._epoch_started
        self._settle()
        loss_sum, correct, seen, images = distributed.all_sum(
            [self._loss_sum, self._correct, self._seen, self._seen - self._seen_at_start]
        )
        if self.processes > 1:
            seconds = max(distributed.gather_objects(seconds))
        return {
            "train/loss": loss_sum / max(seen, 1),
            "train/acc": int(correct) / max(seen, 1),
            "lr": self._epoch_lr,
            "epoch_seconds": seconds,
            "images_per_second": images / seconds if seconds else 0.0,
        }

    def metric_names(self) -> list[str]:
        """The keys ``metrics`` will have after an epoch."""
        names = ["train/loss", "train/acc", "lr", "epoch_seconds", "images_per_second"]
        return names + (["val/loss", "val/acc", "val/top5"] if self.val_loader is not None else [])

    @property
    def lr(self) -> float:
        """The first parameter group's current learning rate."""
        return float(self.optimizer.param_groups[0]["lr"])

    def check_finite(self) -> None:
        """Raise NonFiniteLossError if the running loss is NaN or infinite (in any process:
        every process must call it at the same batch)."""
        self._settle()
        value = self._loss_sum
        if distributed.any_rank(not math.isfinite(value)):
            where = "" if not math.isfinite(value) else " in another process"
            fp32 = "" if self.autocast_dtype is None else " or train in fp32"
            raise NonFiniteLossError(
                f"training loss became {value if not where else 'non-finite'}{where} in epoch "
                f"{self.epoch + 1} (by step {self.step}); stopped, {self._kept()}. Lower the "
                f"learning rate, clip gradients ([trainer] clip_grad_norm){fp32}"
            )

    def _kept(self) -> str:
        """What a stop on a non-finite value leaves behind, truthfully."""
        last = self.run_dir / "checkpoints" / "last.pt" if self.run_dir is not None else None
        if last is not None and last.is_file():
            return f"{last} (the last good checkpoint) is kept"
        return "no checkpoint had been written yet"

    # -- callbacks -------------------------------------------------------------------------

    def _runs_here(self, callback: Callback) -> bool:
        """Whether ``callback`` runs in this process (rank 0 runs every one)."""
        return self._main or not capability(callback, "main_process_only")

    def _handlers(self, event: str) -> list[tuple[Callback, Callable[[Any], None]]]:
        """The callbacks that run in this process and handle ``event`` (those that inherit
        the base class's no-op are left out), with their bound methods, in order."""
        return [
            (callback, getattr(callback, event))
            for callback in filter(self._runs_here, self.callbacks)
            if getattr(type(callback), event, None) is not getattr(Callback, event)
        ]

    def _call(self, callback: Callback, handler: Callable[[Any], None], event: str) -> None:
        try:
            handler(self)
        except Exception as error:
            error.add_note(f"in callback {type(callback).__name__}.{event}")
            raise

    def _emit(self, event: str) -> None:
        for callback, handler in self._handlers(event):
            self._call(callback, handler, event)

    def _emit_exception(self, error: BaseException) -> None:
        for callback in filter(self._runs_here, self.callbacks):
            try:
                callback.on_exception(self, error)
            except Exception as inner:  # one failing handler must not hide the original error
                log.error(
                    "callback %s.on_exception failed: %s: %s",
                    type(callback).__name__,
                    type(inner).__name__,
                    inner,
                )

    # -- checkpoints -----------------------------------------------------------------------

    def running_loss_is_finite(self) -> bool:
        """Whether the weights are still trustworthy (no NaN/inf loss so far this epoch)."""
        self._settle()
        return math.isfinite(self._loss_sum)

    def _non_finite_tensor(self) -> str | None:
        """The name of the first parameter or buffer holding NaN or inf, else None (one
        synchronisation with the device for all of them)."""
        tensors = [
            (name, t)
            for name, t in [*self.model.named_parameters(), *self.model.named_buffers()]
            if t.is_floating_point()
        ]
        if not tensors:
            return None
        finite = torch.stack([torch.isfinite(t).all() for _, t in tensors]).tolist()
        return next((name for (name, _), ok in zip(tensors, finite, strict=True) if not ok), None)

    def _check_weights(self) -> None:
        """After an epoch's validation, before anything saves it: NonFiniteLossError if a
        weight or the validation loss is NaN or infinite (the last step can break the
        weights after the last finite training loss)."""
        broken = self._non_finite_tensor()
        val_loss = self.metrics.get("val/loss")
        fine = broken is None and (val_loss is None or math.isfinite(val_loss))
        if not distributed.any_rank(not fine):
            return
        what = (
            f"weight {broken}"
            if broken
            else f"validation loss ({val_loss})"
            if not fine
            else "weights of another process"
        )
        raise NonFiniteLossError(
            f"the {what} became non-finite in epoch {self.epoch + 1} (by step {self.step}); "
            f"stopped before saving this epoch, {self._kept()}. Lower the learning rate or "
            "clip gradients ([trainer] clip_grad_norm)"
        )

    def checkpointable(self) -> str | None:
        """Why the current state must not be saved (None: it may): a step cut in the middle,
        or a non-finite loss or weight."""
        if not self._consistent:
            return "the run was stopped inside a training step or the epoch's validation"
        if not self.running_loss_is_finite():
            return "the training loss is not finite"
        broken = self._non_finite_tensor()
        return f"weight {broken} is not finite" if broken else None

    def model_checkpoint(self) -> dict[str, Any]:
        """A checkpoint of the model alone: ``metadata`` (recipe, classes, input shape), the
        weights and their EMA, the epoch; enough for ``cvkit eval`` and ``predict``."""
        return {
            "format": FORMAT,
            "cvkit_version": __version__,
            **self.metadata,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "epoch": self.epoch,
        }

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly: :meth:`model_checkpoint` and the training state
        (a checkpoint's content)."""
        self._settle()
        return self.model_checkpoint() | {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "loader": self._loader_state,
            "callbacks": [
                {"name": type(c).__name__, "state": c.state_dict()} for c in self.callbacks
            ],
            "rng": rng_state(),
            "process_rng": self._process_rng,
            "epoch_lr": self._epoch_lr,
            "batch": self.batch,
            "step": self.step,
            "wall_seconds": self.wall_seconds,
            "running": {
                "loss_sum": self._loss_sum,
                "correct": self._correct,
                "seen": self._seen,
            },
            "metrics": dict(self.metrics),
            "history": [dict(h) for h in self.history],
            "stopped": self.should_stop,
        }

    def load_state_dict(
        self, state: dict[str, Any], source: Path | str = "checkpoint", *, extend: bool = False
    ) -> None:
        """Restore a :meth:`state_dict`, so that :meth:`fit` continues where it stopped.

        ``extend``: the run goes on past the epochs it was scheduled for (``epochs`` is
        larger than the checkpoint's recipe said): everything is restored but the schedule,
        which is this loop's own (over ``epochs``) advanced to the checkpoint's step."""
        load_model_weights(self.model, state["model"], source)
        fresh = [group["lr"] for group in self.optimizer.param_groups]  # the schedule's first
        self.optimizer.load_state_dict(state["optimizer"])
        if extend:  # the schedule replays from its first step (recursive ones read group lr)
            for group, lr in zip(self.optimizer.param_groups, fresh, strict=True):
                group["lr"] = lr
        for name, part in (
            ("scheduler", self.scheduler),
            ("scaler", self.scaler),
            ("ema", self.ema),
        ):
            if name == "scheduler" and extend:
                continue  # advanced below instead
            if (part is None) != (state[name] is None):
                raise CvkitError(
                    f"{source}: the checkpoint {'has' if state[name] is not None else 'lacks'} "
                    f"{name} state but this run {'does not use' if part is None else 'uses'} one"
                )
            if part is not None:
                part.load_state_dict(state[name])
        saved = state["callbacks"]
        if [c["name"] for c in saved] != [type(c).__name__ for c in self.callbacks]:
            raise CvkitError(
                f"{source}: the checkpoint's callbacks {[c['name'] for c in saved]} differ from "
                f"this run's {[type(c).__name__ for c in self.callbacks]}"
            )
        for callback, entry in zip(self.callbacks, saved, strict=True):
            callback.load_state_dict(entry["state"])
        self._loader_state = state["loader"]
        self.train_loader.load_state_dict(self._loader_state)
        self.epoch, self.batch, self.step = state["epoch"], state["batch"], state["step"]
        self._epoch_lr = float(state.get("epoch_lr") or self.lr)  # absent from older checkpoints
        self.wall_seconds = float(state.get("wall_seconds", 0.0))  # absent from older checkpoints
        running = state["running"]
        self._reset_running()
        self._loss_sum, self._correct, self._seen = (
            running["loss_sum"],
            running["correct"],
            running["seen"],
        )
        self.metrics, self.history = dict(state["metrics"]), [dict(h) for h in state["history"]]
        self.should_stop = bool(state.get("stopped", False)) and not extend
        self._restore_rng(state, source)
        self.resumed = True
        if extend and self.scheduler is not None:
            self._advance_schedule()

    def _advance_schedule(self) -> None:
        """Step the (fresh) scheduler as often as the restored run stepped it, without
        training: the learning rate becomes its schedule's at this step."""
        with warnings.catch_warnings():  # "scheduler.step() before optimizer.step()"
            warnings.simplefilter("ignore", UserWarning)
            for _ in range(self.step if self.interval == "step" else self.epoch):
                self.scheduler.step()

    def _restore_rng(self, state: dict[str, Any], source: Path | str) -> None:
        """Each process's random generators as the checkpoint saved them; in a run of
        several processes, rank 0 keeps the whole batch's running sums (see
        :meth:`_share_for_checkpoint`). A process the checkpoint has no state for (it was
        written by fewer processes) starts from ``experiment.seed`` + its rank."""
        rank = distributed.rank()
        saved = state.get("process_rng") or [state["rng"]]
        if rank == 0:
            set_rng_state(state["rng"])
        elif rank < len(saved):
            set_rng_state(saved[rank])
        else:
            seed = (self.recipe.experiment.seed if self.recipe is not None else 0) + rank
            seed_everything(seed)
            log.warning(
                "%s was saved by %d process(es): process %d seeds its generators with %d "
                "(its dropout masks differ from an uninterrupted run's)",
                source,
                len(saved),
                rank,
                seed,
            )
        if rank > 0:
            self._loss_sum, self._correct, self._seen = 0.0, 0, 0
