"""Built-in plugin: ``model/linear``, a linear classifier over (pooled) pixels."""

from __future__ import annotations

from torch import Tensor, nn

from cvkit.hookspecs import Register, hookimpl


class LinearClassifier(nn.Module):
    """A linear classifier (multinomial logistic regression) over the image's pixels,
    average-pooled to ``pool`` x ``pool`` first so that any input size works.

    Input (N, in_channels, H, W) float, any H, W >= 1; output logits (N, num_classes).
    A baseline for a dataset, and a near-zero-compute model for measuring what the training
    loop itself costs per step (benchmarks/run.py, benchmark (e)). With ``pool`` equal to
    the image size the pooling is the identity: Flatten + Linear(C x H x W, num_classes).

    Args:
        pool: the height and width the image is average-pooled to before the linear layer.
    """

    def __init__(self, num_classes: int, in_channels: int, pool: int = 8) -> None:
        super().__init__()
        if pool < 1:
            raise ValueError(f"pool={pool} must be >= 1")
        self.pool = nn.AdaptiveAvgPool2d(pool)
        self.classifier = nn.Linear(in_channels * pool * pool, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """(N, C, H, W) -> (N, num_classes) logits."""
        return self.classifier(self.pool(x).flatten(1))


@hookimpl
def register_models(register: Register) -> None:
    register("linear", LinearClassifier, examples=[{}, {"pool": 2}])
