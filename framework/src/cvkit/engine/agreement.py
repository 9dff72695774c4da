"""Whether a recipe's components agree with its data, found before the first step.

Two images shaped as the dataset delivers them (uint8 (N, C, H, W): the split's own first
images in ``cvkit run``, random ones of the dataset's size in ``cvkit check``) go through the
whole path a batch takes: ``data.image_size``, every augmentation of ``augment.train`` (per
sample, then on the batch), the model, and the loss on the targets the augmentations made
(class indices, or soft targets after MixUp/CutMix); then ``augment.eval``, the model and
the loss on class indices, as validation and test batches go. The first component that
fails, or a model whose logits are not (N, num_classes), is one line naming its recipe key
and ``data.dataset`` with what the data are (exit 2): channels that an augmentation or the
model does not take, a class count the model's head or the loss's weights do not have,
an image size that a model or block with a fixed size refuses, targets a loss cannot read.

Nothing changes: the generators are forked, the model runs in eval mode without gradients
and gets every module's mode back, the augmentations' and the loss's own state is as
before (they keep none).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any

import attrs
import torch
from torch import Tensor, nn

from cvkit.data.augmentation import augment
from cvkit.data.images import resize
from cvkit.data.memory import check_fits
from cvkit.errors import CvkitError, short_reason
from cvkit.hookspecs import capability
from cvkit.recipe.schema import Recipe
from cvkit.registry.registry import BuiltAttention, built_attention

ACTIVATION_FACTOR = 64
"""A rough bound of a CNN's activations per input value, to refuse absurd input sizes."""


def describe_data(recipe: Recipe, images: Tensor, num_classes: int) -> str:
    """``data.dataset (dataset/NAME: C-channel HxW images, K classes)``."""
    channels, height, width = images.shape[1:]
    return (
        f"data.dataset ({recipe.data.dataset.key}: {channels}-channel {height}x{width} "
        f"images, {num_classes} classes)"
    )


@attrs.frozen
class AttentionInput:
    """An attention block of the model as a forward pass met it: its module path, what the
    registry built it as, and the shape (N, C, H, W) of its input."""

    path: str
    built: BuiltAttention
    shape: tuple[int, ...]


@attrs.frozen
class Agreement:
    """What :func:`check_agreement` saw: the shape of the evaluation batches (the last
    path's model input) and the attention blocks' inputs on that path."""

    input_shape: tuple[int, ...]
    attention: tuple[AttentionInput, ...] = ()


def check_agreement(
    recipe: Recipe,
    model: nn.Module,
    loss: nn.Module,
    augmentations: dict[str, Sequence[nn.Module]],
    images: Tensor,
    num_classes: int,
) -> Agreement:
    """Run ``images`` (uint8 (N, C, H, W), N >= 2, on the CPU) through each path of
    ``augmentations`` (``{"augment.train": [...], "augment.eval": [...]}``, built from the
    recipe's lists of those keys), ``model`` and ``loss``; CvkitError naming the first
    component that does not agree with the data (see the module docstring), an attention
    block by its module path, its input and the constraint it declares that the input
    breaks. Returns the :class:`Agreement`."""
    data = describe_data(recipe, images, num_classes)
    size = recipe.data.input_size or list(images.shape[-2:])
    shape = (images.shape[0], images.shape[1], *size)
    where = f"{recipe.model.where}: " if recipe.model.where else ""
    # the input in float32, and its activations: a few dozen times more in a CNN
    check_fits(
        ACTIVATION_FACTOR * 4 * math.prod(shape),
        f"{where}a forward pass of {'x'.join(map(str, shape))} images",
    )
    labels = torch.arange(images.shape[0]) % num_classes
    seen: tuple[AttentionInput, ...] = ()
    with torch.random.fork_rng(devices=[]), torch.no_grad(), _evaluation_mode(model):
        for key, chain in augmentations.items():
            batch, targets, made_targets = _augmented(recipe, key, chain, images, labels, data)
            shape = tuple(batch.shape)
            logits, seen = _logits(recipe, model, batch, key, data)
            if tuple(logits.shape) != (batch.shape[0], num_classes):
                raise CvkitError(
                    f"model ({recipe.model.key}) gives logits of shape {tuple(logits.shape)} on "
                    f"the images {key} makes from {data}; expected ({batch.shape[0]}, "
                    f"{num_classes})"
                )
            _check_loss(recipe, loss, logits.cpu(), targets, batch.cpu(), made_targets, data)
    return Agreement(shape, seen)


def evaluation_input_shape(
    recipe: Recipe, chain: Sequence[nn.Module], channels: int, size: Sequence[int]
) -> tuple[int, int, int]:
    """(C, H, W) of the batches the evaluation augmentations ``chain`` (the recipe's
    ``augment.eval``, built) make of ``channels``-channel images of ``size`` (H, W): what the
    model is evaluated on (a ``resize`` or crop changes it)."""
    images = torch.zeros(2, channels, *size, dtype=torch.uint8)
    data = (
        f"data.dataset ({recipe.data.dataset.key}: {channels}-channel {size[0]}x{size[1]} images)"
    )
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        batch, _, _ = _augmented(
            recipe, "augment.eval", chain, images, torch.zeros(2, dtype=torch.int64), data
        )
    _, c, h, w = batch.shape
    return c, h, w


def _augmented(
    recipe: Recipe,
    key: str,
    chain: Sequence[nn.Module],
    images: Tensor,
    labels: Tensor,
    data: str,
) -> tuple[Tensor, Tensor, str]:
    """``images`` and ``labels`` through ``chain`` as a batch goes; also which component
    made the targets (for the loss's message)."""
    specs = getattr(recipe.augment, key.split(".")[1])
    per_sample = [a for a in chain if capability(a, "per_sample")]
    items = list(images)
    made_targets = f"class indices ({labels.shape[0]},) from {recipe.data.dataset.key}"
    culprit = ""  # what is running, for the message

    def component(position: int) -> str:
        return f"{key}[{position}] ({specs[position].key})"

    try:
        for position, augmentation in enumerate(per_sample):
            culprit = component(position)
            items = [augmentation(item) for item in items]
        culprit = f"{key} (batching the images its per-sample augmentations make, data.image_size)"
        batch = resize(torch.stack(items).float().div_(255), recipe.data.input_size)
        targets, keys = labels, torch.arange(batch.shape[0])
        for position, augmentation in enumerate(chain[len(per_sample) :], len(per_sample)):
            culprit = component(position)
            batch, targets = augment(augmentation, batch, targets, keys, 0)
            if targets.ndim == 2 and not made_targets.startswith("soft"):
                made_targets = f"soft targets {tuple(targets.shape)} from {culprit}"
    except Exception as error:
        raise CvkitError(f"{culprit} does not agree with {data}: {short_reason(error)}") from None
    return batch, targets, made_targets


def _logits(
    recipe: Recipe, model: nn.Module, batch: Tensor, key: str, data: str
) -> tuple[Tensor, tuple[AttentionInput, ...]]:
    """The model's logits on ``batch``, and the inputs its attention blocks met."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    images = f"the {'x'.join(map(str, batch.shape))} images {key} makes"
    with _watching_attention(model) as watch:
        try:
            logits = model(batch.to(device))
        except _ShapeChanged as changed:
            raise CvkitError(
                f"{describe_block(recipe, changed.block)} breaks the attention contract on its "
                f"input from {images} from {data}: output shape "
                f"{'x'.join(map(str, changed.shape))} != input shape"
            ) from None
        except Exception as error:
            if watch.running:  # inside an attention block: name it
                block = watch.running[-1]
                raise CvkitError(
                    f"{describe_block(recipe, block)} failed on its input from {images} from "
                    f"{data}: {type(error).__name__}: {str(error) or '(no message)'}"
                    + _broken(block)
                ) from None
            raise CvkitError(
                f"model ({recipe.model.key}) does not agree with {data}: a forward pass of "
                f"{images} failed: {short_reason(error)}"
            ) from None
    for block in watch.seen:
        if block.built.constraints.violations(block.shape):
            raise CvkitError(
                f"{describe_block(recipe, block)} does not take its input from {images} from "
                f"{data}" + _broken(block)
            )
    if not isinstance(logits, Tensor):
        raise CvkitError(
            f"model ({recipe.model.key}) returned {type(logits).__name__}, not a logits tensor"
        )
    return logits, tuple(watch.seen)


def describe_block(recipe: Recipe, block: AttentionInput) -> str:
    """``<recipe>:<line>: model: attention/se at model.layers.2.attention (input 2x64x8x8)``."""
    prefix = f"{recipe.model.where}: " if recipe.model.where else ""
    shape = "x".join(map(str, block.shape))
    return f"{prefix}{block.built.key} at model.{block.path} (input {shape})"


def _broken(block: AttentionInput) -> str:
    """``; it declares ..., and this input breaks it: ...`` when it does."""
    broken = block.built.constraints.violations(block.shape)
    if not broken:
        return ""
    return f"; it declares {block.built.constraints}, and this input breaks it: {'; '.join(broken)}"


class _ShapeChanged(Exception):
    """An attention block returned another shape than its input's."""

    def __init__(self, block: AttentionInput, shape: tuple[int, ...]) -> None:
        super().__init__(block.path)
        self.block, self.shape = block, shape


@attrs.define
class _Watch:
    """The attention blocks a forward pass is in (``running``, innermost last) and those it
    met (``seen``), by their module paths."""

    running: list[AttentionInput] = attrs.field(factory=list)
    seen: list[AttentionInput] = attrs.field(factory=list)


@contextlib.contextmanager
def _watching_attention(model: nn.Module) -> Iterator[_Watch]:
    """Hooks on the model's attention blocks (those the registry built) for the block."""
    watch = _Watch()
    handles = []
    for path, module in model.named_modules():
        built = built_attention(module)
        if built is None:
            continue

        def enter(
            _: nn.Module, inputs: tuple[Any, ...], path: str = path, built: Any = built
        ) -> None:
            x = inputs[0] if inputs else None
            shape = tuple(x.shape) if isinstance(x, Tensor) else ()
            block = AttentionInput(path, built, shape)
            watch.running.append(block)
            if len(shape) == 4 and all(b.path != path for b in watch.seen):
                watch.seen.append(block)

        def leave(_: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            block = watch.running.pop()
            if isinstance(output, Tensor) and tuple(output.shape) != block.shape:
                raise _ShapeChanged(block, tuple(output.shape))

        handles.append(module.register_forward_pre_hook(enter))
        handles.append(module.register_forward_hook(leave))
    try:
        yield watch
    finally:
        for handle in handles:
            handle.remove()


def _check_loss(
    recipe: Recipe,
    loss: nn.Module,
    logits: Tensor,
    targets: Tensor,
    images: Tensor,
    made_targets: str,
    data: str,
) -> None:
    try:
        if capability(loss, "uses_inputs"):
            value = loss(logits.float(), targets, images)
        else:
            value = loss(logits.float(), targets)
    except Exception as error:
        raise CvkitError(
            f"loss ({recipe.loss.key}) does not agree with {data}: on its logits "
            f"{tuple(logits.shape)} and {made_targets}: {short_reason(error)}"
        ) from None
    if not isinstance(value, Tensor) or value.numel() != 1:
        raise CvkitError(f"loss ({recipe.loss.key}) did not return one value (a batch mean)")


@contextlib.contextmanager
def _evaluation_mode(model: nn.Module) -> Iterator[None]:
    """``model`` in eval mode inside the block, each module's own mode back after it."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training
