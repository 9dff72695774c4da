"""Hook specifications: the extension points of cvkit, one registration hook per kind.

A plugin is a module (found through the ``cvkit`` entry-point group) with functions named
after these hooks and marked with :data:`cvkit.hookimpl`. Each hook receives a ``register``
callback; the plugin calls it once per component::

    from cvkit import hookimpl

    @hookimpl
    def register_attention(register):
        register("se", SqueezeExcitation)

``register(name, factory, *, examples=None, runtime=None, constraints=None)``:

- ``name``: lower-case identifier, unique within its kind (``[a-z0-9][a-z0-9_.-]*``).
- ``factory``: a function or class. Its keyword parameters (names, type hints, defaults)
  are the component's recipe parameters; for an attrs class, its fields. The first line of
  its docstring is the summary shown by ``cvkit list``; an ``Args:`` section documents
  the parameters for ``cvkit info``. The arguments the engine supplies at build time (the
  *runtime* arguments named below for each kind) are not recipe parameters. A parameter
  annotated with one of the factory types of :mod:`cvkit` (``AttentionFactory``,
  ``OptimizerFactory``, ...) takes a nested component table from the recipe and receives a
  callable that builds that component.
- ``examples``: parameter tables the contract tests in :mod:`cvkit.testing` build the
  component with (default: one example, all defaults). Pass ``[]`` for a component that
  cannot be built without outside resources (a dataset that needs files).
- ``runtime``: the factory's names for the runtime arguments where they differ, e.g.
  ``{"channels": "dim"}`` for a library block taking ``dim``, so a class registers as it
  is, without a wrapper.
- ``constraints`` (attention blocks): the inputs the block takes, as data, see
  :mod:`cvkit.registry.constraints` (``{"channels_multiple_of": "num_heads"}``).
- ``doc``: the component's docstring (a summary line, then Google-style ``Args:``) where
  the factory's own is missing or documents its parameters otherwise (a library's class);
  its ``Args:`` add to the factory's. A factory's ``device`` and ``dtype`` parameters that
  default to None (torch's factory arguments) are not recipe parameters.

A factory of any kind that declares a ``registry`` parameter receives the registry building
it (to build other components, or a trained model with :func:`cvkit.load_trained_model`).
The core attaches the providing distribution and its version to every component.

Objects a factory returns may declare *capabilities*: class attributes the engine reads,
each listed once in :data:`CAPABILITIES` with its kind and default.

:func:`register_commands` is the one hook that is not a kind of component: it adds
subcommands to the ``cvkit`` command line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import attrs
import pluggy

if TYPE_CHECKING:
    import click

PROJECT_NAME = "cvkit"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""Marker for a plugin's hook implementations: ``@hookimpl def register_models(register): ...``."""


class Register(Protocol):
    """The callback each registration hook receives."""

    def __call__(
        self,
        name: str,
        factory: Callable[..., Any],
        *,
        examples: Sequence[Mapping[str, Any]] | None = None,
        runtime: Mapping[str, str] | None = None,
        constraints: Any = None,
        doc: str | None = None,
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
    Data-dependent initialisation: a model with a method ``init_from_data(images)`` receives,
    before the first step of a fresh run (not on resume, when the checkpoint has the
    weights), ``data_init_images`` (its attribute, default 5000) training images chosen with
    the run's seed, through the evaluation augmentations: float (N, C, H, W) on the device.
    Callbacks reach the same images through ``trainer.training_images(count)``.
    """


@hookspec
def register_attention(register: Register) -> None:
    """Contribute attention blocks (channel, spatial or both).

    ``factory(channels: int, **params) -> torch.nn.Module``. The module maps
    (N, channels, H, W) to a tensor of the same shape and dtype, for any N >= 1 and any
    H, W >= 1, unless its registration declares ``constraints`` (channels a multiple of k,
    sizes a multiple of k or at least k, a fixed size); in eval mode its output for a sample
    does not depend on the rest of the batch.
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
    device, so seeding and resuming reproduce it. Base classes: :class:`cvkit.BatchAugmentation`
    and, for operations that only exist per image, :class:`cvkit.PerSampleAugmentation`
    (``forward(image)`` on one uint8 (C, H, W) image in DataLoader workers, before the batch
    augmentations; ``per_sample = True``).
    """


@hookspec
def register_optimizers(register: Register) -> None:
    """Contribute optimizers.

    ``factory(params, **kw) -> torch.optim.Optimizer``, where ``params`` is an iterable of
    tensors or of parameter-group dicts, as for any torch optimizer (a recipe's
    ``optimizer.groups`` arrive as dicts with a ``name`` and the group's settings; the
    factory never receives ``groups`` itself, see :mod:`cvkit.engine.param_groups`). ``step`` accepts a
    closure that zeroes the gradients and re-evaluates loss and gradients. An optimizer that
    sets ``requires_closure = True`` (SAM) gets no precomputed gradient: the trainer only
    calls ``step(closure)``, and the optimizer calls the closure as often as it needs.
    Wrappers (Lookahead, SAM) take a parameter annotated ``OptimizerFactory`` holding the
    inner optimizer's table (see :class:`cvkit.OptimizerWrapper`). ``state_dict`` and
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

    ``factory(**params) -> ImageDataset`` (see :class:`cvkit.ImageDataset`): an object
    with ``num_classes``, ``in_channels``, ``splits`` (names, ``"train"`` always, ``"test"``
    when there is one) and ``load(split) -> ImageTensors`` returning the whole split as
    uint8 images (N, C, H, W) and int64 labels (N,). Building the object is cheap and checks
    what can be checked without reading the data; ``load`` reads (and downloads if asked),
    raising :class:`cvkit.DatasetError` with the expected location and files when the data
    are missing. Optional: ``image_size`` ([height, width] of the stored images, when known
    without reading them; ``cvkit check`` runs its forward pass at it), ``cacheable = False``
    (the split is made in memory, a cache file would only add I/O) and ``fingerprint() ->
    str`` (whatever besides the parameters determines the content, for the tensor cache).
    """


@hookspec
def register_callbacks(register: Register) -> None:
    """Contribute training callbacks.

    ``factory(**params) -> cvkit.Callback``: an object whose event methods (``on_fit_start``,
    ``on_epoch_start``, ``on_batch_end``, ``on_validation_end``, ``on_epoch_end``,
    ``on_fit_end``, ``on_evaluation_end``, ``on_exception``) receive the trainer (what they may read and set is
    :class:`cvkit.TrainerView`), run in ascending ``priority`` (:class:`cvkit.Priority`),
    and whose ``state_dict``/``load_state_dict`` are saved in and restored from checkpoints.
    """


@hookspec
def register_procedures(register: Register) -> None:
    """Contribute training procedures: how one stage of a recipe trains.

    ``factory(**params) -> Procedure``: an object with ``run(stage: cvkit.StageContext) ->
    dict`` that trains the stage and returns its final evaluation (written to the stage's
    eval.json). ``stage`` holds the stage's complete recipe (its ``[[stages]]`` table over
    the top-level one), its directory, the registry, the device, the checkpoints its
    ``init`` names and, when resuming, its last checkpoint. A procedure that only changes
    part of training builds on :func:`cvkit.train_stage`, the built-in ``standard``
    procedure (one model, one loss, the explicit loop in :mod:`cvkit.engine.trainer`).
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add subcommands to the ``cvkit`` command line (``cvkit tune`` comes from a plugin).

    ``cli`` is the ``click.Group`` of ``cvkit``; add commands with ``@cli.command()``. A
    command that needs the components gets the registry of the invocation from
    :func:`cvkit.cli_registry` (``--strict-plugins`` applies to it), and reports bad input by
    raising :class:`cvkit.CvkitError`, which the CLI prints as one line with exit status 2.
    """


@attrs.frozen
class Capability:
    """A class attribute through which a component tells the engine what it needs or does."""

    kind: str
    name: str
    default: Any
    doc: str


CAPABILITIES: dict[str, Capability] = {
    capability.name: capability
    for capability in (
        Capability(
            "augmentation",
            "soft_targets",
            False,
            "mixes labels: returns soft targets (N, K) even for hard ones; refused in augment.eval",
        ),
        Capability(
            "augmentation",
            "changes_size",
            False,
            "the output's height and width may differ from the input's",
        ),
        Capability(
            "augmentation",
            "per_sample",
            False,
            "works on one uint8 (C, H, W) image in DataLoader workers, before batching",
        ),
        Capability(
            "augmentation",
            "crops_at_decode",
            False,
            "per-sample, first in its list: an image kept encoded is cropped as it is decoded "
            "(box(height, width) -> (top, left, height, width); size [height, width])",
        ),
        Capability("augmentation", "min_size", 1, "smallest height and width it accepts"),
        Capability(
            "augmentation",
            "random",
            True,
            "draws from torch's generators; False: deterministic, so its batches need no seeding",
        ),
        Capability(
            "augmentation",
            "uses_sample_keys",
            False,
            "called as forward(images, targets, keys, epoch): a fixed random key per image",
        ),
        Capability(
            "optimizer",
            "requires_closure",
            False,
            "steps only through step(closure), calling it as often as it needs (SAM)",
        ),
        Capability(
            "optimizer",
            "matrices_only",
            False,
            "updates parameters of 2+ dimensions only (Muon): biases need another group",
        ),
        Capability(
            "scheduler",
            "interval",
            "step",
            "'step': stepped after every optimizer step; 'epoch': once per epoch",
        ),
        Capability(
            "loss",
            "uses_inputs",
            False,
            "called as forward(logits, targets, images) with the batch the logits came from",
        ),
        Capability(
            "model",
            "gradcam_layer",
            None,
            "name (from named_modules) of the module Grad-CAM looks at in reports; "
            "default: the last one whose output is a feature map larger than 1 x 1",
        ),
        Capability(
            "callback",
            "priority",
            50,
            "order at each event: ascending, ties in the recipe's order (cvkit.Priority)",
        ),
        Capability(
            "callback",
            "main_process_only",
            False,
            "only writes (files, the console): in a run of several processes only rank 0 runs it",
        ),
        Capability(
            "dataset",
            "cacheable",
            True,
            "False: splits are made in memory, so the on-disk tensor cache is skipped",
        ),
        Capability(
            "dataset",
            "image_size",
            None,
            "[height, width] of the stored images when known without reading them",
        ),
    )
}
"""Every capability flag, with the kind of component that sets it and its default."""


def capability(component: object, name: str) -> Any:
    """The capability ``name`` of a built component: its attribute, else the declared default.

    A name missing from :data:`CAPABILITIES` is a KeyError, so a misspelt flag fails loudly.
    """
    return getattr(component, name, CAPABILITIES[name].default)
