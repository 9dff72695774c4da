"""The built-in plugin: cvkit's own components, registered through the same hooks as any plugin."""

from __future__ import annotations

from cvkit import hookimpl
from cvkit.builtins import (
    augmentations,
    callbacks,
    datasets,
    losses,
    models,
    optimizers,
    schedulers,
)
from cvkit.hookspecs import Register
from cvkit.stages import StandardProcedure


@hookimpl
def register_models(register: Register) -> None:
    register("simple_cnn", models.SimpleCNN, examples=[{}, {"widths": [8, 16], "dropout": 0.1}])
    register(
        "torchvision",
        models.torchvision_classifier,
        examples=[{"arch": "resnet18"}],
    )


@hookimpl
def register_optimizers(register: Register) -> None:
    register("sgd", optimizers.sgd, examples=[{"lr": 0.05, "momentum": 0.9, "nesterov": True}])
    register("adam", optimizers.adam)
    register("adamw", optimizers.adamw)


@hookimpl
def register_schedulers(register: Register) -> None:
    warmup = {"warmup_epochs": 1.5}
    register("constant", schedulers.constant, examples=[{}, warmup])
    register("cosine", schedulers.cosine, examples=[{}, {"min_lr": 1e-4, **warmup}])
    register("step", schedulers.step, examples=[{"step_epochs": 1}, {"step_epochs": 1, **warmup}])
    register(
        "multistep",
        schedulers.multistep,
        examples=[{"milestones": [1, 2]}, {"milestones": [2], **warmup}],
    )
    register(
        "onecycle", schedulers.onecycle, examples=[{}, {"anneal_strategy": "linear", **warmup}]
    )
    register(
        "cyclic",
        schedulers.cyclic,
        examples=[{}, {"mode": "triangular2", "step_size_up_epochs": 0.5, "cycle_momentum": True}],
    )


@hookimpl
def register_losses(register: Register) -> None:
    register("cross_entropy", losses.cross_entropy, examples=[{}, {"label_smoothing": 0.1}])


@hookimpl
def register_datasets(register: Register) -> None:
    # CIFAR and image folders need files: tests/test_builtin_datasets.py covers them.
    register("cifar10", datasets.cifar10, examples=[])
    register("cifar100", datasets.cifar100, examples=[])
    register("imagefolder", datasets.ImageFolder, examples=[])
    register(
        "synthetic",
        datasets.SyntheticImages,
        examples=[{"train_size": 40, "test_size": 12, "image_size": 8}],
    )


@hookimpl
def register_augmentations(register: Register) -> None:
    register(
        "random_crop",
        augmentations.RandomCrop,
        examples=[{}, {"padding": 2, "padding_mode": "reflect"}],
    )
    register("hflip", augmentations.HorizontalFlip, examples=[{}, {"p": 1.0}])
    register(
        "normalize",
        augmentations.Normalize,
        examples=[{"preset": "cifar10"}, {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}],
    )
    register(
        "resize",
        augmentations.Resize,
        examples=[{"size": 12}, {"size": [7, 5], "antialias": False}],
    )
    register(
        "random_resized_crop",
        augmentations.RandomResizedCrop,
        examples=[{"size": 12}, {"size": [9, 6], "scale": [0.8, 1.0], "ratio": [1.0, 1.0]}],
    )
    register(
        "torchvision",
        augmentations.TorchvisionTransform,
        examples=[
            {"transform": "RandAugment", "kwargs": {"num_ops": 2, "magnitude": 9}},
            {"transform": "RandomResizedCrop", "kwargs": {"size": [6, 6], "scale": [0.5, 1.0]}},
        ],
    )


@hookimpl
def register_callbacks(register: Register) -> None:
    register("progress", callbacks.Progress)
    register("metrics_jsonl", callbacks.MetricsJSONL)
    register("tensorboard", callbacks.TensorBoard)
    register(
        "checkpoint", callbacks.Checkpoint, examples=[{}, {"monitor": "val/loss", "mode": "min"}]
    )
    register(
        "early_stopping", callbacks.EarlyStopping, examples=[{}, {"patience": 3, "min_delta": 0.01}]
    )
    register("unfreeze", callbacks.Unfreeze, examples=[{}, {"schedule": {"2": ["*"]}}])
    register(
        "dropout_schedule",
        callbacks.DropoutSchedule,
        examples=[{}, {"start": 0.3, "end": 0.1, "epochs": 5}],
    )
    register(
        "progressive_resizing",
        callbacks.ProgressiveResizing,
        examples=[{}, {"schedule": {"1": 16, "3": 32}}],
    )


@hookimpl
def register_procedures(register: Register) -> None:
    register("standard", StandardProcedure)
