"""Hook specifications: the extension points of cvkit, one registration hook per kind.

A plugin is a module (found through the ``cvkit`` entry-point group) with functions named
after these hooks and marked with :data:`cvkit.hookimpl`. Each hook receives a ``register``
callback; the plugin calls it once per component::

    from cvkit import hookimpl

    @hookimpl
    def register_attention(register):
        register("se", SqueezeExcitation)

``register(name, factory, *, examples=None)``:

- ``name``: lower-case identifier, unique within its kind (``[a-z0-9][a-z0-9_.-]*``).
- ``factory``: a function or class. Its keyword parameters (names, type hints, defaults)
  are the component's recipe parameters; for an attrs class, its fields. The first line of
  its docstring is the summary shown by ``cvkit list``; an ``Args:`` section documents
  the parameters for ``cvkit info``. The arguments the engine supplies at build time (the
  *runtime* arguments named below for each kind) are not recipe parameters. A parameter
  annotated with one of the :mod:`cvkit.components` factory types (``AttentionFactory``,
  ``OptimizerFactory``, ...) takes a nested component table from the recipe and receives a
  callable that builds that component.
- ``examples``: parameter tables the contract tests in :mod:`cvkit.testing` build the
  component with (default: one example, all defaults). Pass ``[]`` for a component that
  cannot be built without outside resources (a dataset that needs files).

The core attaches the providing distribution and its version to every component.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import pluggy

from cvkit import PROJECT_NAME

hookspec = pluggy.HookspecMarker(PROJECT_NAME)


class Register(Protocol):
    """The callback each registration hook receives."""

    def __call__(
        self,
        name: str,
        factory: Callable[..., Any],
        *,
        examples: Sequence[Mapping[str, Any]] | None = None,
    ) -> None: ...


@hookspec
def register_models(register: Register) -> None:
    """Contribute image-classification models.

    ``factory(num_classes: int, in_channels: int, **params) -> torch.nn.Module``.
    The module maps a float batch (N, in_channels, H, W) to logits (N, num_classes),
    unnormalised (no softmax). A model that only works at some input sizes says so in its
    docstring. Models with an attention slot take a parameter annotated
    ``AttentionFactory | None`` and call it as ``attention(channels)``. Every model table
    in a recipe also accepts ``max_params`` (a trainable-parameter budget that ``cvkit
    check`` and ``cvkit run`` enforce) and ``freeze``/``trainable`` patterns; the factory
    never receives them. A model with pretrained weights declares ``load_weights: bool =
    True``: cvkit passes False when only the architecture is needed (``cvkit check``, or
    weights about to come from a cvkit checkpoint), so nothing is downloaded or read then.
    """


@hookspec
def register_attention(register: Register) -> None:
    """Contribute attention blocks (channel, spatial or both).

    ``factory(channels: int, **params) -> torch.nn.Module``. The module maps
    (N, channels, H, W) to a tensor of the same shape and dtype, for any N >= 1 and any
    H, W >= 1; in eval mode its output for a sample does not depend on the rest of the batch.
    """


@hookspec
def register_augmentations(register: Register) -> None:
    """Contribute batch augmentations, applied on the training device.

    ``factory(**params) -> torch.nn.Module`` whose ``forward(images, targets)`` returns
    ``(images, targets)``; a factory that declares ``num_classes`` receives the dataset's
    (label-mixing augmentations need it to turn hard labels into soft ones). ``images``:
    float (N, C, H, W), values in [0, 1] before a ``normalize`` step and standardised after
    it; the dtype is kept. ``targets``: hard labels (N,) int64 or soft targets
    (N, num_classes) float whose rows sum to 1; an augmentation that mixes labels returns
    soft targets, sets the class attribute ``soft_targets = True`` and is refused in
    ``augment.eval``. Spatial size is kept unless the class sets ``changes_size = True``.
    Randomness comes from torch's global generator on the images'
    device, so seeding and resuming reproduce it. See :class:`cvkit.augment.BatchAugmentation`.
    """


@hookspec
def register_optimizers(register: Register) -> None:
    """Contribute optimizers.

    ``factory(params, **kw) -> torch.optim.Optimizer``, where ``params`` is an iterable of
    tensors or of parameter-group dicts, as for any torch optimizer. ``step`` accepts a
    closure that zeroes the gradients and re-evaluates loss and gradients. An optimizer that
    sets ``requires_closure = True`` (SAM) gets no precomputed gradient: the trainer only
    calls ``step(closure)``, and the optimizer calls the closure as often as it needs.
    Wrappers (Lookahead, SAM) take a parameter annotated ``OptimizerFactory`` holding the
    inner optimizer's table (see :class:`cvkit.optim.OptimizerWrapper`). ``state_dict`` and
    ``load_state_dict`` round-trip all state, inner optimizers included.
    """


@hookspec
def register_schedulers(register: Register) -> None:
    """Contribute learning-rate schedulers.

    ``factory(optimizer, *, epochs: int, steps_per_epoch: int, **params) ->
    torch.optim.lr_scheduler.LRScheduler``; ``epochs`` and ``steps_per_epoch`` are passed
    when the factory declares them. The trainer calls ``step()`` after every optimizer step,
    or once per epoch if the scheduler has ``interval = "epoch"``. Parameters given in
    epochs (milestones, warm-up) may be fractional and are converted to steps by the factory.
    """


@hookspec
def register_losses(register: Register) -> None:
    """Contribute training losses.

    ``factory(**params) -> torch.nn.Module`` whose ``forward(logits, targets)`` returns a
    scalar tensor: ``logits`` float (N, num_classes); ``targets`` either class indices (N,)
    int64 or class probabilities (N, num_classes) float (from label-mixing augmentations),
    and one-hot probabilities give the same loss as the equivalent indices. A loss whose class
    sets ``uses_inputs = True`` (distillation) is called as ``forward(logits, targets,
    images)`` with the training batch the logits came from, (N, C, H, W) after augmentation.
    """


@hookspec
def register_datasets(register: Register) -> None:
    """Contribute datasets.

    ``factory(**params) -> ImageDataset`` (see :class:`cvkit.data.ImageDataset`): an object
    with ``num_classes``, ``in_channels``, ``splits`` (names, ``"train"`` always, ``"test"``
    when there is one) and ``load(split) -> ImageTensors`` returning the whole split as
    uint8 images (N, C, H, W) and int64 labels (N,). Building the object is cheap and checks
    what can be checked without reading the data; ``load`` reads (and downloads if asked),
    raising :class:`cvkit.errors.DatasetError` with the expected location and
    files when the data are missing.
    """


@hookspec
def register_callbacks(register: Register) -> None:
    """Contribute training callbacks.

    ``factory(**params) -> cvkit.callbacks.Callback``: an object whose event methods
    (``on_fit_start``, ``on_epoch_start``, ``on_batch_end``, ``on_validation_end``,
    ``on_epoch_end``, ``on_fit_end``, ``on_exception``; see :mod:`cvkit.callbacks`) the
    trainer calls in ascending ``priority``, and whose ``state_dict``/``load_state_dict``
    are saved in and restored from checkpoints.
    """


@hookspec
def register_procedures(register: Register) -> None:
    """Contribute training procedures: how one stage of a recipe trains.

    ``factory(**params) -> Procedure``: an object with ``run(stage: cvkit.stages.StageRun) ->
    dict`` that trains the stage and returns its final evaluation (written to the stage's
    eval.json). ``stage`` holds the stage's complete recipe (its ``[[stages]]`` table over
    the top-level one), its directory, the registry, the device, the checkpoints its
    ``init`` names and, when resuming, its last checkpoint. A procedure that only changes
    part of training builds on :func:`cvkit.stages.train_stage`, the built-in ``standard``
    procedure (one model, one loss, the explicit loop in :mod:`cvkit.trainer`).
    """
