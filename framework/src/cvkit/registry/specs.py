"""Component specifications (validated recipe tables) and the factory types that make a
parameter take a component.

A factory parameter annotated with one of the ``*Factory`` types below takes a component
table in a recipe (``attention = {name = "se", reduction = 8}``, or just ``attention = "se"``)
and receives, at build time, a callable that builds that component from its runtime
arguments: a model calls ``attention(channels)``, Lookahead calls ``optimizer(params)``.
Outside cvkit any callable of the same shape works (``functools.partial(SEBlock, reduction=8)``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any

import attrs


@attrs.frozen
class ComponentOf:
    """Annotation marker: the parameter holds a component of ``kind``."""

    kind: str


@attrs.frozen
class ComponentSpec:
    """A validated component table: ``kind``/``name`` and its complete parameters.

    ``params`` holds every parameter, defaults included; nested components are
    ComponentSpecs too. ``where`` locates the table in its recipe for error messages.
    """

    kind: str
    name: str
    params: Mapping[str, Any] = attrs.field(factory=dict)
    where: str = attrs.field(default="", eq=False, repr=False)

    @property
    def key(self) -> str:
        """``kind/name``."""
        return f"{self.kind}/{self.name}"


ModelFactory = Annotated[Callable[..., Any], ComponentOf("model")]
"""``(num_classes, in_channels) -> nn.Module``."""
AttentionFactory = Annotated[Callable[..., Any], ComponentOf("attention")]
"""``(channels) -> nn.Module`` keeping the input's shape."""
AugmentationFactory = Annotated[Callable[..., Any], ComponentOf("augmentation")]
"""``() -> nn.Module`` with ``forward(images, targets)``."""
OptimizerFactory = Annotated[Callable[..., Any], ComponentOf("optimizer")]
"""``(params) -> torch.optim.Optimizer``."""
SchedulerFactory = Annotated[Callable[..., Any], ComponentOf("scheduler")]
"""``(optimizer, *, epochs, steps_per_epoch) -> LRScheduler``."""
LossFactory = Annotated[Callable[..., Any], ComponentOf("loss")]
"""``() -> nn.Module`` with ``forward(logits, targets)``."""
DatasetFactory = Annotated[Callable[..., Any], ComponentOf("dataset")]
"""``() -> ImageDataset``."""
CallbackFactory = Annotated[Callable[..., Any], ComponentOf("callback")]
"""``() -> Callback``."""
ProcedureFactory = Annotated[Callable[..., Any], ComponentOf("procedure")]
"""``() -> Procedure`` with ``run(stage) -> dict``."""


@attrs.frozen
class InsideRun:
    """Annotation marker: the string is a path relative to the run directory, which it must
    not leave (no absolute path, no ``..``); validation refuses the rest."""


RunFile = Annotated[str, InsideRun()]
"""A file a component writes inside the run directory, e.g. ``filename: RunFile =
"metrics.jsonl"``: a recipe cannot point it at a file outside the run."""
