"""Built-in plugin: ``model/simple_cnn``, a small CNN for quick starts, demos and tests."""

from __future__ import annotations

from torch import Tensor, nn

from cvkit.hookspecs import Register, hookimpl
from cvkit.registry.specs import AttentionFactory


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


@hookimpl
def register_models(register: Register) -> None:
    register("simple_cnn", SimpleCNN, examples=[{}, {"widths": [8, 16], "dropout": 0.1}])
