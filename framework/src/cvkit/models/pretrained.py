"""torchvision's classification models by name, with their pretrained weights.

Weights come through torchvision's weights API (``get_model_weights(arch)``), which
downloads into torch.hub's cache (``$TORCH_HOME/hub/checkpoints``), or from a local file.
Offline, the error names the file and where to put it. Errors are ValueErrors, which the
registry reports with the recipe key of the model.
"""

from __future__ import annotations

import copy
import os
import urllib.error
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import torch
from torch import nn

from cvkit.files import load_tensors
from cvkit.registry.kinds import did_you_mean

if TYPE_CHECKING:
    from torchvision.models import WeightsEnum


def classification_models() -> list[str]:
    """Names of torchvision's image-classification architectures (resnet50, vit_b_16, ...)."""
    import torchvision.models  # torchvision loads when used: listing components stays fast

    return list(torchvision.models.list_models(module=torchvision.models))


def weights_file(weights: WeightsEnum) -> Path:
    """Where torch.hub keeps the file of ``weights`` once downloaded."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)


def _weights(arch: str, pretrained: str) -> WeightsEnum:
    from torchvision.models import get_model_weights

    available = get_model_weights(arch)
    if pretrained == "imagenet":
        return available.DEFAULT
    names = [w.name for w in available]
    if pretrained not in names:
        raise ValueError(
            f"pretrained={pretrained!r}: {arch} has weights 'imagenet' (the default, "
            f"{available.DEFAULT.name}) and {', '.join(names)}"
        )
    return available[pretrained]


def torchvision_model(
    arch: str,
    *,
    pretrained: str | None = None,
    weights_path: Path | None = None,
    load_weights: bool = True,
) -> nn.Module:
    """torchvision's ``arch`` with its original head, random or with pretrained weights.

    Args:
        arch: a name from :func:`classification_models`, e.g. 'resnet50'.
        pretrained: 'imagenet' (the architecture's default ImageNet weights) or the name of
            one of its weights (e.g. 'IMAGENET1K_V1'); None for random initialisation.
        weights_path: a local state dict for the architecture (as torchvision downloads
            it, or saved from a model with another head size).
        load_weights: False: the architecture only (pretrained and weights_path are checked
            but not read).

    Auxiliary classifiers (inception_v3, googlenet) are removed: the model returns logits.
    """
    models = classification_models()
    if arch not in models:
        raise ValueError(
            f"torchvision has no classification model {arch!r}{did_you_mean(arch, models)}"
        )
    if pretrained is not None and weights_path is not None:
        raise ValueError("give pretrained or weights_path, not both")
    from torchvision.models import get_model

    weights = _weights(arch, pretrained) if pretrained is not None else None
    if weights is None or not load_weights:
        model = get_model(arch, weights=None)
    else:
        try:
            model = get_model(arch, weights=weights)
        except (urllib.error.URLError, OSError) as error:
            raise ValueError(
                f"cannot download {arch}'s {weights.name} weights from "
                f"{weights.url} ({error}); put that file at {weights_file(weights)} "
                "(torch.hub's cache, moved by TORCH_HOME) or set weights_path to a local copy"
            ) from None
    if weights_path is not None and load_weights:
        load_state_dict_file(model, Path(weights_path), arch)
    if getattr(model, "aux_logits", False):
        model.aux_logits = False
        for auxiliary in ("AuxLogits", "aux1", "aux2"):
            if hasattr(model, auxiliary):
                setattr(model, auxiliary, None)
    return model


def load_state_dict_file(model: nn.Module, path: Path, what: str) -> None:
    """Load the state dict saved at ``path`` into ``model``; a differently sized classifier
    in the file replaces the model's first, so that the file's head loads too."""
    state = load_tensors(path, f"weights_path file for {what}", ValueError)
    if not isinstance(state, dict):
        raise ValueError(f"weights_path {path}: expected a state dict, got {type(state).__name__}")
    name, head = classifier(model)
    saved = state.get(f"{name}.weight")
    if isinstance(saved, torch.Tensor) and saved.ndim == 2 and saved.shape[0] != head.out_features:
        model.set_submodule(name, nn.Linear(head.in_features, saved.shape[0]))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"weights_path {path} does not fit {what}: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )


def classifier(model: nn.Module) -> tuple[str, nn.Linear]:
    """The name and module of the model's last ``nn.Linear``: its classification head."""
    found = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not found:
        raise ValueError(f"{type(model).__name__} has no Linear classifier to replace")
    return found[-1]


def replace_classifier(model: nn.Module, num_classes: int) -> str:
    """Give ``model`` a new (randomly initialised) head for ``num_classes``, unless it has
    one already; returns the head's module name (``fc`` for ResNets)."""
    name, head = classifier(model)
    if head.out_features != num_classes:
        model.set_submodule(name, nn.Linear(head.in_features, num_classes))
    return name


def adapt_input_channels(model: nn.Module, in_channels: int) -> None:
    """Make the model's first convolution take ``in_channels``. Its RGB kernels are summed
    for one channel, or tiled and scaled by 3 / in_channels for more, so pretrained filters
    keep their response to grey input (as timm's ``adapt_input_conv``)."""
    found = next(((n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)
    if found is None or found[1].in_channels == in_channels:
        return
    name, conv = found
    weight = conv.weight.detach()
    if in_channels == 1:
        adapted = weight.sum(1, keepdim=True)
    else:
        repeats = -(-in_channels // weight.shape[1])
        adapted = weight.repeat(1, repeats, 1, 1)[:, :in_channels] * (weight.shape[1] / in_channels)
    new = copy.deepcopy(conv)  # the same kernel, stride, padding, ... for in_channels inputs
    new.in_channels = in_channels
    new.weight = nn.Parameter(adapted.clone())
    model.set_submodule(name, new)
