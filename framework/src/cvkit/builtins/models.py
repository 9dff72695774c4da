"""Built-in models: a small CNN for quick starts, demos and tests; torchvision's classification
models by name, optionally with pretrained weights."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor, nn

from cvkit.components import AttentionFactory
from cvkit.pretrained import adapt_input_channels, replace_classifier, torchvision_model


class SimpleCNN(nn.Module):
    """A small VGG-style CNN: stages of conv3x3-BN-ReLU (+attention) and 2x2 max-pool.

    Input (N, in_channels, H, W) float, any H, W >= 1; output logits (N, num_classes).
    After the stages, global average pooling, dropout and a linear classifier.

    Args:
        widths: output channels of each stage; each stage halves the spatial size.
        dropout: dropout probability before the classifier.
        attention: attention block applied after each stage's activation, or none.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        widths: list[int] = [32, 64, 128],  # noqa: B006 - never mutated; shown as the default
        dropout: float = 0.0,
        attention: AttentionFactory | None = None,
    ) -> None:
        super().__init__()
        if not widths or min(widths) < 1:
            raise ValueError(f"widths={widths} must be a non-empty list of positive channel counts")
        layers: list[nn.Module] = []
        channels = in_channels
        for width in widths:
            layers += [
                nn.Conv2d(channels, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            ]
            if attention is not None:
                layers.append(attention(width))
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
            channels = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """(N, C, H, W) -> (N, num_classes) logits."""
        x = self.pool(self.features(x)).flatten(1)
        return self.classifier(self.dropout(x))


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
