"""Built-in plugin: ``model/torchvision``, any torchvision classification model by name,
optionally with pretrained weights."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from cvkit.hookspecs import Register, hookimpl
from cvkit.models.pretrained import adapt_input_channels, replace_classifier, torchvision_model


def torchvision_classifier(
    num_classes: int,
    in_channels: int,
    arch: str,
    pretrained: str | None = None,
    weights_path: Path | None = None,
    load_weights: bool = True,
) -> nn.Module:
    """Any torchvision classification model by name, random or with pretrained weights.

    The model's last Linear layer (``fc`` in ResNets, ``classifier.N`` in VGG and
    MobileNet, ``heads.head`` in ViT) becomes a new one for ``num_classes``; for
    ``in_channels`` other than 3 its first convolution is adapted (RGB kernels summed or
    tiled). Input (N, in_channels, H, W) float at a size the architecture accepts (ImageNet
    models: 224 x 224, ImageNet normalization); output logits (N, num_classes). Freeze parts
    with the model's ``freeze``/``trainable`` patterns, e.g. freeze = ["*"], trainable = ["fc"].

    Args:
        arch: torchvision model name, e.g. 'resnet50', 'mobilenet_v3_small', 'vit_b_16'.
        pretrained: 'imagenet' for the architecture's default ImageNet weights, or a weights
            name such as 'IMAGENET1K_V1'; none for random initialisation. Downloaded once into
            torch.hub's cache ($TORCH_HOME/hub/checkpoints).
        weights_path: a local state dict for the architecture instead of a download.
    """
    model = torchvision_model(
        arch, pretrained=pretrained, weights_path=weights_path, load_weights=load_weights
    )
    replace_classifier(model, num_classes)
    adapt_input_channels(model, in_channels)
    return model


@hookimpl
def register_models(register: Register) -> None:
    register("torchvision", torchvision_classifier, examples=[{"arch": "resnet18"}])
