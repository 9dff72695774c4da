"""cvkit: plugin-based image-classification experiments in PyTorch.

This module is the plugin API: every name in ``__all__`` is what a plugin may import from
cvkit (docs/writing-a-plugin.md, "What a plugin may import"); everything else is private and
free to move. Plugins implement the registration hooks of :mod:`cvkit.hookspecs`, marked with
:data:`hookimpl`, and are found through the ``cvkit`` entry-point group.

Names are imported on first use, so ``import cvkit`` (and listing components) does not load
the training engine.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from cvkit.hookspecs import PROJECT_NAME, Register, capability, hookimpl
from cvkit.version import __version__

if TYPE_CHECKING:
    from cvkit.cli import cli_registry as cli_registry
    from cvkit.commands.profile import profile_model as profile_model
    from cvkit.commands.run import RunResult as RunResult, resume as resume, train as train
    from cvkit.commands.rundir import (
        new_run_dir as new_run_dir,
        run_status as run_status,
        write_status as write_status,
    )
    from cvkit.data.augmentation import (
        BatchAugmentation as BatchAugmentation,
        PerSampleAugmentation as PerSampleAugmentation,
        refuse_code_parameters as refuse_code_parameters,
        soft_targets as soft_targets,
    )
    from cvkit.data.encoded import EncodedImages as EncodedImages, ImageBytes as ImageBytes
    from cvkit.data.tensors import ImageDataset as ImageDataset, ImageTensors as ImageTensors
    from cvkit.engine.calibration import expected_calibration_error as expected_calibration_error
    from cvkit.engine.callback import (
        Callback as Callback,
        Priority as Priority,
        TrainerView as TrainerView,
    )
    from cvkit.engine.checkpoint import save_checkpoint as save_checkpoint
    from cvkit.engine.optimizer_wrapper import OptimizerWrapper as OptimizerWrapper
    from cvkit.engine.predictions import read_predictions as read_predictions
    from cvkit.engine.profiling import (
        forward_flops as forward_flops,
        parameter_counts as parameter_counts,
    )
    from cvkit.engine.stage import (
        StageContext as StageContext,
        model_summary as model_summary,
        train_stage as train_stage,
    )
    from cvkit.engine.trained_model import (
        TrainedModel as TrainedModel,
        evaluation_batches as evaluation_batches,
        load_trained_model as load_trained_model,
        restore as restore,
    )
    from cvkit.errors import (
        CheckpointError as CheckpointError,
        ComponentBuildError as ComponentBuildError,
        CvkitError as CvkitError,
        DatasetError as DatasetError,
        NonFiniteLossError as NonFiniteLossError,
        RecipeError as RecipeError,
        RunInterrupted as RunInterrupted,
        StorageError as StorageError,
        UnknownComponentError as UnknownComponentError,
    )
    from cvkit.files import (
        save_atomic as save_atomic,
        write_json as write_json,
        write_text_atomic as write_text_atomic,
    )
    from cvkit.models.pretrained import (
        adapt_input_channels as adapt_input_channels,
        torchvision_model as torchvision_model,
    )
    from cvkit.recipe.loading import (
        load_recipe as load_recipe,
        load_recipe_noting as load_recipe_noting,
    )
    from cvkit.recipe.writing import dump_recipe as dump_recipe, flat_settings as flat_settings
    from cvkit.registry.registry import Registry as Registry
    from cvkit.registry.specs import (
        AttentionFactory as AttentionFactory,
        AugmentationFactory as AugmentationFactory,
        CallbackFactory as CallbackFactory,
        DatasetFactory as DatasetFactory,
        LossFactory as LossFactory,
        ModelFactory as ModelFactory,
        OptimizerFactory as OptimizerFactory,
        ProcedureFactory as ProcedureFactory,
        RunFile as RunFile,
        SchedulerFactory as SchedulerFactory,
    )

_EXPORTS: dict[str, str] = {
    # factory annotations: a parameter that takes a nested component table
    "AttentionFactory": "cvkit.registry.specs",
    "AugmentationFactory": "cvkit.registry.specs",
    "CallbackFactory": "cvkit.registry.specs",
    "DatasetFactory": "cvkit.registry.specs",
    "LossFactory": "cvkit.registry.specs",
    "ModelFactory": "cvkit.registry.specs",
    "OptimizerFactory": "cvkit.registry.specs",
    "ProcedureFactory": "cvkit.registry.specs",
    "SchedulerFactory": "cvkit.registry.specs",
    "RunFile": "cvkit.registry.specs",
    "Registry": "cvkit.registry.registry",
    # base classes of components
    "BatchAugmentation": "cvkit.data.augmentation",
    "PerSampleAugmentation": "cvkit.data.augmentation",
    "soft_targets": "cvkit.data.augmentation",
    "refuse_code_parameters": "cvkit.data.augmentation",
    "OptimizerWrapper": "cvkit.engine.optimizer_wrapper",
    "Callback": "cvkit.engine.callback",
    "Priority": "cvkit.engine.callback",
    "TrainerView": "cvkit.engine.callback",
    # datasets
    "ImageTensors": "cvkit.data.tensors",
    "ImageDataset": "cvkit.data.tensors",
    "EncodedImages": "cvkit.data.encoded",
    "ImageBytes": "cvkit.data.encoded",
    # errors
    "CvkitError": "cvkit.errors",
    "CheckpointError": "cvkit.errors",
    "ComponentBuildError": "cvkit.errors",
    "DatasetError": "cvkit.errors",
    "NonFiniteLossError": "cvkit.errors",
    "RecipeError": "cvkit.errors",
    "RunInterrupted": "cvkit.errors",
    "StorageError": "cvkit.errors",
    "UnknownComponentError": "cvkit.errors",
    # files written so that a crash never leaves half a file
    "save_atomic": "cvkit.files",
    "save_checkpoint": "cvkit.engine.checkpoint",
    "write_text_atomic": "cvkit.files",
    # models
    "load_trained_model": "cvkit.engine.trained_model",
    "restore": "cvkit.engine.trained_model",
    "TrainedModel": "cvkit.engine.trained_model",
    "evaluation_batches": "cvkit.engine.trained_model",
    "parameter_counts": "cvkit.engine.profiling",
    "forward_flops": "cvkit.engine.profiling",
    "model_summary": "cvkit.engine.stage",
    "profile_model": "cvkit.commands.profile",
    "expected_calibration_error": "cvkit.engine.calibration",
    "read_predictions": "cvkit.engine.predictions",
    "torchvision_model": "cvkit.models.pretrained",
    "adapt_input_channels": "cvkit.models.pretrained",
    # training procedures
    "StageContext": "cvkit.engine.stage",
    "train_stage": "cvkit.engine.stage",
    # commands (register_commands)
    "cli_registry": "cvkit.cli",
    "load_recipe": "cvkit.recipe.loading",
    "load_recipe_noting": "cvkit.recipe.loading",
    "dump_recipe": "cvkit.recipe.writing",
    "flat_settings": "cvkit.recipe.writing",
    "train": "cvkit.commands.run",
    "resume": "cvkit.commands.run",
    "RunResult": "cvkit.commands.run",
    "new_run_dir": "cvkit.commands.rundir",
    "run_status": "cvkit.commands.rundir",
    "write_status": "cvkit.commands.rundir",
    "write_json": "cvkit.files",
}
"""Each public name and the module it lives in (imported on first use)."""

__all__ = ["PROJECT_NAME", "Register", "__version__", "capability", "hookimpl", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cvkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
