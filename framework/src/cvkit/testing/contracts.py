"""Contract checks for every kind of component, for cvkit's tests and plugin authors.

Each ``check_<kind>(factory)`` takes something that builds the component from its runtime
arguments (the class itself, a ``functools.partial``, or a registry-bound component) and
fails with an AssertionError naming the broken promise. Shapes, dtypes and seeds come from
hypothesis strategies, so each check tries many inputs::

    from cvkit.testing import check_attention
    from my_plugin import MyBlock

    def test_my_block_keeps_the_contract():
        check_attention(MyBlock)

:func:`contract_cases` lists one case per registered component and example, so a test
parametrised over it checks every installed plugin (needs ``pip install cvkit[testing]``).
"""

from __future__ import annotations

import copy
import functools
import io
import math
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import torch
from hypothesis import HealthCheck, given, settings, strategies as st
from torch import Tensor, nn

from cvkit.data.augmentation import augment
from cvkit.data.batches import BatchLoader
from cvkit.data.encoded import EncodedImages
from cvkit.data.tensors import ImageTensors
from cvkit.engine.callback import EVENTS
from cvkit.engine.contracts import ATTENTION_PROBE, attention_case, close, model_case
from cvkit.engine.stage import StageContext
from cvkit.hookspecs import capability
from cvkit.recipe.loading import validate_recipe
from cvkit.recipe.reading import parse_recipe_text
from cvkit.registry.constraints import AttentionConstraints
from cvkit.registry.loading import default_registry
from cvkit.registry.parameters import accepted_names
from cvkit.registry.registry import Component, ComponentBuilder, Registry

FLOAT_DTYPES = (torch.float32, torch.float64)


def _settings(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@st.composite
def feature_maps(
    draw: st.DrawFn,
    *,
    min_batch: int = 1,
    max_batch: int = 4,
    max_channels: int = 32,
    max_size: int = 12,
    dtypes: tuple[torch.dtype, ...] = FLOAT_DTYPES,
    constraints: AttentionConstraints | None = None,
) -> Tensor:
    """Random float feature maps (N, C, H, W), standard normal, of any small shape within
    ``constraints``: channels multiples of ``channels_multiple_of`` from ``min_channels`` up
    to ``max_channels`` (or the first that is allowed); sizes multiples of
    ``size_multiple_of`` from ``min_size`` up to ``max_size`` (or the first that is allowed);
    the ``fixed_size`` if there is one."""
    limits = constraints or AttentionConstraints()
    step = limits.channels_multiple_of
    first_channels = -(-limits.min_channels // step)
    channels = step * draw(st.integers(first_channels, max(first_channels, max_channels // step)))
    if limits.fixed_size is not None:
        height, width = limits.fixed_size
    else:
        multiple = limits.size_multiple_of
        first = -(-limits.min_size // multiple)  # the smallest allowed size, in multiples
        sizes = st.integers(first, max(first, max_size // multiple)).map(lambda k: k * multiple)
        height, width = draw(sizes), draw(sizes)
    shape = (draw(st.integers(min_batch, max_batch)), channels, height, width)
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    return torch.randn(shape, generator=generator).to(draw(st.sampled_from(dtypes)))


@st.composite
def image_batches(
    draw: st.DrawFn,
    *,
    channels: int = 3,
    min_batch: int = 1,
    max_batch: int = 5,
    sizes: tuple[int, ...] = (1, 5, 8, 16, 32),
    dtypes: tuple[torch.dtype, ...] = FLOAT_DTYPES,
) -> Tensor:
    """Random images (N, channels, H, W), values in [0, 1], H and W from ``sizes``."""
    shape = (
        draw(st.integers(min_batch, max_batch)),
        channels,
        draw(st.sampled_from(sizes)),
        draw(st.sampled_from(sizes)),
    )
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    return torch.rand(shape, generator=generator).to(draw(st.sampled_from(dtypes)))


@st.composite
def targets(draw: st.DrawFn, batch: int, num_classes: int) -> Tensor:
    """Hard labels (batch,) int64, or soft targets (batch, num_classes) whose rows sum to 1."""
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    if draw(st.booleans()):
        return torch.randint(0, num_classes, (batch,), generator=generator)
    return torch.rand(batch, num_classes, generator=generator).softmax(dim=1)


def check_attention(
    factory: Callable[..., nn.Module],
    *,
    max_examples: int = 15,
    constraints: AttentionConstraints | None = None,
) -> None:
    """Attention block contract: ``factory(channels)`` maps (N, C, H, W) to the same shape.

    Output dtype equals input dtype (float32 and float64) and its values are finite; in
    train mode (N >= 2) finite gradients reach the input (non-zero somewhere) and every
    trainable parameter (non-zero somewhere, together, on an input of shape ATTENTION_PROBE
    moved within the constraints); in eval mode the block is deterministic and a sample's
    output does not depend on the rest of the batch. Any N, C, H, W >= 1 within
    ``constraints`` (default: those the registry resolved for ``factory``, a builder of a
    registered block; none for a plain callable). An exception the block raises is reported
    as :class:`cvkit.engine.contracts.ComponentRaised` with its type and text.
    """
    limits = constraints or getattr(factory, "constraints", None) or AttentionConstraints()

    @_settings(max_examples)
    @given(x=feature_maps(min_batch=2, constraints=limits))
    def run(x: Tensor) -> None:
        attention_case(factory, x, parameters_move=False)  # tiny inputs may kill every ReLU

    run()
    probe = torch.randn(limits.probe(ATTENTION_PROBE), generator=torch.Generator().manual_seed(0))
    attention_case(factory, probe)


def check_model(
    factory: Callable[..., nn.Module],
    *,
    image_sizes: tuple[int, ...] = (32,),
    max_examples: int = 6,
) -> None:
    """Model contract: ``factory(num_classes, in_channels)`` maps (N, C, H, W) to (N, num_classes).

    Logits are finite floats; in train mode (N >= 2) finite gradients reach every trainable
    parameter, non-zero somewhere (together); in eval mode the model is deterministic and
    batch-independent (N >= 1).
    ``image_sizes`` are the square input sizes to try.
    """

    @_settings(max_examples)
    @given(
        num_classes=st.integers(2, 12),
        in_channels=st.sampled_from((1, 3)),
        batch=st.integers(2, 4),
        size=st.sampled_from(image_sizes),
        seed=st.integers(0, 2**16),
    )
    def run(num_classes: int, in_channels: int, batch: int, size: int, seed: int) -> None:
        torch.manual_seed(seed)
        model_case(factory, num_classes, torch.rand(batch, in_channels, size, size))

    run()


def _toy_regression(seed: int = 0, bias: bool = True) -> tuple[nn.Module, Tensor, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 8, generator=generator)
    y = x @ torch.randn(8, 1, generator=generator) + 0.5
    torch.manual_seed(seed)
    return nn.Linear(8, 1, bias=bias), x, y


def train_least_squares(
    model: nn.Module, optimizer: torch.optim.Optimizer, x: Tensor, y: Tensor, steps: int
) -> float:
    """``steps`` optimizer steps on the mean squared error of ``model(x)`` against ``y``, each
    through ``step(closure)``; returns the final loss."""

    def closure() -> Any:  # the loss tensor (torch's stubs say float)
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss

    for _ in range(steps):
        optimizer.step(closure)
    with torch.no_grad():
        return nn.functional.mse_loss(model(x), y).item()


def check_optimizer(factory: Callable[..., torch.optim.Optimizer], *, steps: int = 50) -> None:
    """Optimizer contract: ``factory(params)`` lowers the loss of a least-squares problem.

    ``step`` is called with a closure. ``state_dict`` round-trips: an optimizer loaded from
    another's state continues exactly as the original does. An optimizer class that declares
    ``matrices_only`` gets a model without a bias.
    """
    target = factory.component.factory if isinstance(factory, ComponentBuilder) else factory
    model, x, y = _toy_regression(bias=not capability(target, "matrices_only"))
    optimizer = factory(model.parameters())
    assert isinstance(optimizer, torch.optim.Optimizer), (
        f"factory returned {type(optimizer).__name__}"
    )
    with torch.no_grad():
        initial = nn.functional.mse_loss(model(x), y).item()
    final = train_least_squares(model, optimizer, x, y, steps)
    assert math.isfinite(final) and final < initial, (
        f"loss did not decrease: {initial:.4g} -> {final:.4g}"
    )

    twin = copy.deepcopy(model)
    restored = factory(twin.parameters())
    restored.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    train_least_squares(model, optimizer, x, y, 5)
    train_least_squares(twin, restored, x, y, 5)
    for (name, a), b in zip(model.named_parameters(), twin.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), (
            f"after load_state_dict, parameter {name!r} diverges"
        )


def check_scheduler(
    factory: Callable[..., Any], *, epochs: int = 3, steps_per_epoch: int = 5
) -> None:
    """Scheduler contract: learning rates stay finite and >= 0 over the run, state round-trips.

    ``factory(optimizer, epochs=..., steps_per_epoch=...)`` is stepped once per optimizer
    step (or per epoch with ``interval = "epoch"``); a scheduler restored from another's
    state_dict, over an optimizer restored likewise, continues with the same rates.
    """

    def make() -> tuple[torch.optim.Optimizer, Any]:
        parameter = nn.Parameter(torch.zeros(2))
        optimizer = torch.optim.SGD([parameter], lr=0.1, momentum=0.9)
        return optimizer, factory(optimizer, epochs=epochs, steps_per_epoch=steps_per_epoch)

    optimizer, scheduler = make()
    interval = capability(scheduler, "interval")
    assert interval in ("step", "epoch"), f"interval must be 'step' or 'epoch', got {interval!r}"
    total = epochs * (steps_per_epoch if interval == "step" else 1)
    rates = []
    for i in range(total):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
        if i == total // 2:
            saved = copy.deepcopy((optimizer.state_dict(), scheduler.state_dict()))
            resumed_at = i + 1
    assert all(math.isfinite(r) and r >= 0 for r in rates), f"learning rates out of range: {rates}"

    optimizer, scheduler = make()
    optimizer.load_state_dict(saved[0])
    scheduler.load_state_dict(saved[1])
    for i in range(resumed_at, total):
        lr = optimizer.param_groups[0]["lr"]
        assert math.isclose(lr, rates[i], rel_tol=1e-9, abs_tol=1e-12), (
            f"after load_state_dict the rate at step {i} is {lr}, expected {rates[i]}"
        )
        optimizer.step()
        scheduler.step()


def check_loss(factory: Callable[..., nn.Module], *, max_examples: int = 15) -> None:
    """Loss contract: a finite scalar for hard (N,) and soft (N, K) targets, with gradients.

    One-hot soft targets give the same loss as the equivalent class indices.
    """

    @_settings(max_examples)
    @given(batch=st.integers(1, 8), num_classes=st.integers(2, 12), seed=st.integers(0, 2**16))
    def run(batch: int, num_classes: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        loss_fn = factory()
        logits = torch.randn(batch, num_classes, generator=generator).requires_grad_(True)
        labels = torch.randint(0, num_classes, (batch,), generator=generator)
        loss = loss_fn(logits, labels)
        assert loss.ndim == 0 and torch.isfinite(loss), f"loss on hard targets is {loss}"
        loss.backward()
        assert logits.grad is not None and torch.isfinite(logits.grad).all(), "no finite gradient"
        one_hot = nn.functional.one_hot(labels, num_classes).float()
        assert close(loss_fn(logits, one_hot), loss), (
            "one-hot soft targets differ from hard targets"
        )
        soft = torch.rand(batch, num_classes, generator=generator).softmax(dim=1)
        assert torch.isfinite(loss_fn(logits, soft)), "loss on soft targets is not finite"

    run()


def check_augmentation(
    factory: Callable[..., nn.Module], *, channels: int = 3, max_examples: int = 20
) -> None:
    """Augmentation contract on (images, targets) batches (or on single images if ``per_sample``).

    Images of any size from ``min_size`` up (default 1). Batch size and channels kept,
    spatial size kept unless ``changes_size``; image dtype
    kept; targets stay valid: hard labels in range, or soft rows that are non-negative and
    sum to 1 (label mass preserved); hard labels become soft only if ``soft_targets``. The
    same seed gives the same output (randomness comes from torch's global generator), and
    one declaring ``random = False`` gives it under any seed.
    A factory that takes ``num_classes`` gets 10, the classes of the drawn targets.
    """
    num_classes = 10
    # a bound component drops num_classes when its factory does not declare it
    if isinstance(factory, ComponentBuilder) or "num_classes" in accepted_names(factory)[0]:
        factory = functools.partial(factory, num_classes=num_classes)

    if capability(factory(), "per_sample"):
        _check_per_sample_augmentation(factory, channels=channels, max_examples=max_examples)
        return

    @_settings(max_examples)
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        augmentation = factory()
        smallest = capability(augmentation, "min_size")
        sizes = tuple(s for s in (1, 5, 8, 16, 32) if s >= smallest) or (smallest,)
        images = data.draw(image_batches(channels=channels, sizes=sizes))
        labels = data.draw(targets(images.shape[0], num_classes))
        what = (
            f"augmentation on {tuple(images.shape)} {images.dtype}, targets {tuple(labels.shape)}"
        )
        keys = torch.arange(images.shape[0]) * 7919  # fixed per image, for uses_sample_keys
        torch.manual_seed(1)
        out, out_labels = augment(augmentation, images.clone(), labels.clone(), keys, 1)
        n, c, h, w = images.shape
        assert out.shape[:2] == (n, c), f"{what}: output shape {tuple(out.shape)}"
        if not capability(augmentation, "changes_size"):
            assert out.shape[2:] == (h, w), (
                f"{what}: spatial size changed to {tuple(out.shape[2:])}"
            )
        assert out.dtype == images.dtype, f"{what}: image dtype changed to {out.dtype}"
        if out_labels.is_floating_point():
            assert labels.is_floating_point() or capability(augmentation, "soft_targets"), (
                f"{what}: produced soft targets without declaring soft_targets = True"
            )
            assert out_labels.shape == (n, num_classes), (
                f"{what}: soft targets {tuple(out_labels.shape)}"
            )
            assert (out_labels >= 0).all(), f"{what}: negative target mass"
            assert torch.allclose(
                out_labels.sum(1), torch.ones(n, dtype=out_labels.dtype), atol=1e-5
            ), f"{what}: target rows do not sum to 1"
        else:
            assert not labels.is_floating_point(), f"{what}: soft targets became hard"
            assert out_labels.shape == (n,) and out_labels.dtype == torch.int64, (
                f"{what}: labels changed form"
            )
            assert ((out_labels >= 0) & (out_labels < num_classes)).all(), (
                f"{what}: label out of range"
            )
        torch.manual_seed(1)
        again, again_labels = augment(augmentation, images.clone(), labels.clone(), keys, 1)
        assert torch.equal(again, out) and torch.equal(again_labels, out_labels), (
            f"{what}: not reproducible from the same seed"
        )
        if not capability(augmentation, "random"):  # its batches are not seeded: it must not care
            torch.manual_seed(2)
            other, other_labels = augment(augmentation, images.clone(), labels.clone(), keys, 1)
            assert torch.equal(other, out) and torch.equal(other_labels, out_labels), (
                f"{what}: declares random = False but another seed changes its output"
            )

    run()


def _check_per_sample_augmentation(
    factory: Callable[..., nn.Module], *, channels: int, max_examples: int
) -> None:
    """Per-sample contract: one uint8 (C, H, W) image in, one uint8 image with C channels out,
    reproducible from the same seed."""

    @_settings(max_examples)
    @given(size=st.sampled_from((8, 16, 32)), seed=st.integers(0, 2**16))
    def run(size: int, seed: int) -> None:
        augmentation = factory()
        image = torch.randint(
            0,
            256,
            (channels, size, size),
            dtype=torch.uint8,
            generator=torch.Generator().manual_seed(seed),
        )
        torch.manual_seed(seed)
        out = augmentation(image.clone())
        what = f"per-sample augmentation on {tuple(image.shape)}"
        assert out.dtype == torch.uint8 and out.ndim == 3 and out.shape[0] == channels, (
            f"{what}: returned {out.dtype} {tuple(out.shape)}"
        )
        if not capability(augmentation, "changes_size"):
            assert out.shape == image.shape, f"{what}: size changed to {tuple(out.shape)}"
        torch.manual_seed(seed)
        assert torch.equal(augmentation(image.clone()), out), (
            f"{what}: not reproducible from the same seed"
        )
        if capability(augmentation, "crops_at_decode"):
            encoded = EncodedImages(PngImages([image]), channels, (size, size))
            torch.manual_seed(seed)
            at_decode = encoded.cropped(0, augmentation)
            assert torch.equal(at_decode, out), (
                f"{what}: cropping a PNG as it is decoded gives another image than forward"
            )

    run()


class PngImages:
    """uint8 (C, H, W) images as PNG bytes: an :class:`~cvkit.EncodedImages` source in memory."""

    def __init__(self, images: list[Tensor]) -> None:
        from PIL import Image

        self.files = []
        for image in images:
            buffer = io.BytesIO()
            pixels = image.permute(1, 2, 0).squeeze(2).numpy()
            Image.fromarray(pixels).save(buffer, format="PNG")
            self.files.append(buffer.getvalue())

    def __len__(self) -> int:
        return len(self.files)

    def encoded(self, index: int) -> bytes:
        return self.files[index]

    def describe(self, index: int) -> str:
        return f"PNG {index} in memory"


def check_dataset(factory: Callable[..., Any]) -> None:
    """Dataset contract: ``num_classes``, ``in_channels``, ``splits`` with "train", and each
    split loads as uint8 (N, in_channels, H, W) images with labels in range, the same every time.
    """
    dataset = factory()
    assert dataset.num_classes >= 1 and dataset.in_channels >= 1, (
        "num_classes and in_channels must be >= 1"
    )
    assert "train" in dataset.splits, f"splits {dataset.splits} lack 'train'"
    for split in dataset.splits:
        data = dataset.load(split)
        assert isinstance(data, ImageTensors), f"load({split!r}) returned {type(data).__name__}"
        assert len(data) > 0, f"split {split!r} is empty"
        assert data.images.shape[1] == dataset.in_channels, (
            f"{split}: channels {data.images.shape[1]}"
        )
        assert len(data.classes) == dataset.num_classes, f"{split}: {len(data.classes)} class names"
        assert int(data.labels.min()) >= 0 and int(data.labels.max()) < dataset.num_classes, (
            f"{split}: labels out of range"
        )
        again = dataset.load(split)
        shown = len(data) if isinstance(data.images, torch.Tensor) else min(len(data), 8)
        assert torch.equal(again.first(shown), data.first(shown)), (
            f"{split}: loading twice gives different data (images)"
        )
        assert torch.equal(again.labels, data.labels), (
            f"{split}: loading twice gives different data (labels)"
        )


def check_callback(factory: Callable[..., Any]) -> None:
    """Callback contract: every event method is callable, no misspelt ``on_*`` method exists,
    and ``state_dict`` round-trips into a fresh instance."""
    callback = factory()
    for event in EVENTS:
        assert callable(getattr(callback, event, None)), f"callback lacks event method {event}"
    unknown = [n for n in dir(callback) if n.startswith("on_") and n not in EVENTS]
    assert not unknown, f"unknown event methods {unknown}; events: {EVENTS}"
    state = copy.deepcopy(callback.state_dict())
    fresh = factory()
    fresh.load_state_dict(copy.deepcopy(state))
    assert fresh.state_dict() == state, "state_dict does not round-trip"


PROCEDURE_CHECK_RECIPE = """
[experiment]
name = "procedure-contract"
epochs = 2
device = "cpu"

[data]
dataset = { name = "synthetic", train_size = 48, test_size = 0, image_size = 8, num_classes = 3 }
batch_size = 16
val_split = 16
workers = 0
cache = false

[model]
name = "simple_cnn"
widths = [4]

[optimizer]
name = "sgd"
lr = 0.05

[loss]
name = "cross_entropy"

[[callbacks]]
name = "checkpoint"
"""


def check_procedure(factory: Callable[..., Any]) -> None:
    """Procedure contract: ``run`` trains a tiny one-stage recipe (simple_cnn on 32 synthetic
    images, 2 epochs) in a temporary directory and returns its evaluation, a dict with
    validation metrics; the stage's checkpoint is written there."""
    registry = default_registry()
    recipe = validate_recipe(parse_recipe_text(PROCEDURE_CHECK_RECIPE, "contract"), registry)
    procedure = factory()
    assert callable(getattr(procedure, "run", None)), "a procedure needs run(stage) -> dict"
    with tempfile.TemporaryDirectory() as folder:
        stage = StageContext("", recipe, Path(folder), registry, torch.device("cpu"))
        evaluation = procedure.run(stage)
        assert isinstance(evaluation, dict), f"run returned {type(evaluation).__name__}, not a dict"
        assert 0.0 <= evaluation["val"]["top1"] <= 1.0, "the evaluation lacks val top-1 accuracy"
        assert (Path(folder) / "checkpoints" / "last.pt").is_file(), "no checkpoint was written"


CHECKS: dict[str, Callable[[Callable[..., Any]], None]] = {
    "model": check_model,
    "attention": check_attention,
    "augmentation": check_augmentation,
    "optimizer": check_optimizer,
    "scheduler": check_scheduler,
    "loss": check_loss,
    "dataset": check_dataset,
    "callback": check_callback,
    "procedure": check_procedure,
}
"""The contract check of each kind."""


@attrs.frozen
class ContractCase:
    """One registered component with one of its example parameter tables."""

    component: Component
    example: Mapping[str, Any]
    index: int

    def __str__(self) -> str:
        return f"{self.component.key}[{self.index}]"

    def run(self, registry: Registry | None = None) -> None:
        """Build the component with its example through ``registry`` (default: the installed
        plugins') and check its contract."""
        registry = registry or default_registry()
        spec = registry.spec(self.component.kind, {"name": self.component.name, **self.example})
        CHECKS[self.component.kind](registry.bind(spec))


def contract_cases(
    registry: Registry | None = None,
    kinds: tuple[str, ...] | None = None,
    plugin: str | None = None,
) -> list[ContractCase]:
    """A case per registered component and example (components with ``examples=[]`` have
    none) of ``registry`` (default: the installed plugins'), of the given ``kinds``
    (default: all) and distribution ``plugin`` (default: all; a plugin's own tests pass their
    distribution's name, e.g. "cvkit-eca", to check only their components)."""
    registry = registry or default_registry()
    return [
        ContractCase(component, example, i)
        for component in registry.components()
        if (kinds is None or component.kind in kinds)
        and (plugin is None or component.plugin == plugin)
        for i, example in enumerate(component.examples)
    ]


def per_sample_outputs(
    augmentation: nn.Module, images: Tensor, *, workers: int, seed: int = 0
) -> Tensor:
    """``images`` (N, C, H, W) uint8 through cvkit's per-image pipeline, as a run applies a
    per-sample augmentation: each image seeded from ``seed`` and its index, in ``workers``
    DataLoader worker processes (0: in this process). Returns the batch as float (N, C, H',
    W') in [0, 1]."""
    data = ImageTensors(images, torch.zeros(len(images), dtype=torch.int64), ("image",))
    loader = BatchLoader(
        data,
        batch_size=len(images),
        device=torch.device("cpu"),
        augmentations=[augmentation],
        workers=workers,
        seed=seed,
    )
    batch, _ = next(iter(loader))
    return batch


def check_per_sample_reproducible(
    factory: Callable[..., nn.Module], *, workers: int = 2, random: bool = True
) -> None:
    """A per-sample augmentation gives the same images whatever the number of DataLoader
    workers (0 and ``workers``) and, if ``random``, other images under another seed: its
    randomness comes only from the generators cvkit seeds per image."""
    images = torch.randint(
        0, 256, (6, 3, 24, 24), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    here = per_sample_outputs(factory(), images, workers=0)
    assert torch.equal(here, per_sample_outputs(factory(), images, workers=0)), (
        "not reproducible from the same seed"
    )
    assert torch.equal(here, per_sample_outputs(factory(), images, workers=workers)), (
        f"{workers} workers give other images than the main process"
    )
    if random:
        other = per_sample_outputs(factory(), images, workers=0, seed=1)
        assert not torch.equal(here, other), "another seed gives the same images"
