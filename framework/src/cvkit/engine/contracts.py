"""One-input contract checks of models and attention blocks, shared by ``cvkit check`` (on the
recipe's own components) and :mod:`cvkit.testing` (which draws many inputs with hypothesis).

Each check raises AssertionError naming the broken promise; an exception the component
itself raises (building it, or running it) comes out as :class:`ComponentRaised`, so that it
is never mistaken for a broken promise (timm's blocks assert on their inputs, with no
message).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from cvkit.errors import CvkitError


class ComponentRaised(Exception):
    """The component raised ``error`` while ``doing`` (building it, its forward pass on an
    input of some shape); the message says which, with the exception's type and text."""

    def __init__(self, doing: str, error: BaseException) -> None:
        self.doing, self.error = doing, error
        super().__init__(f"{doing}: {type(error).__name__}: {str(error) or '(no message)'}")


def _calling(doing: str, function: Callable[[], Any]) -> Any:
    """``function()``, its exceptions as :class:`ComponentRaised` (``doing`` says what it
    was)."""
    try:
        return function()
    except AssertionError as error:
        raise ComponentRaised(doing, error) from error
    except CvkitError:  # already one line
        raise
    except Exception as error:
        raise ComponentRaised(doing, error) from error


def close(a: Tensor, b: Tensor) -> bool:
    """Equal within float32 (1e-4) or float64 (1e-9) tolerance."""
    tolerance = 1e-4 if a.dtype == torch.float32 else 1e-9
    return torch.allclose(a, b, rtol=tolerance, atol=tolerance)


def check_gradients(
    module: nn.Module, inputs: Tensor | None, what: str, *, parameters_move: bool = True
) -> None:
    """After a backward pass: a gradient reaches ``inputs`` (when given) and every trainable
    parameter of ``module``; all are finite; the input's is non-zero somewhere, and with
    ``parameters_move`` so are the parameters' (together: one parameter alone may get none
    from a zero-initialised residual branch or a dead ReLU; on degenerate inputs, such as
    one channel of 1 x 1, all of a block's may)."""
    if inputs is not None:
        assert inputs.grad is not None and torch.isfinite(inputs.grad).all(), (
            f"{what}: no finite gradient reaches the input"
        )
        assert inputs.grad.any(), f"{what}: the gradient reaching the input is zero everywhere"
    trainable = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    for name, parameter in trainable:
        assert parameter.grad is not None, f"{what}: no gradient reaches parameter {name!r}"
        assert torch.isfinite(parameter.grad).all(), f"{what}: non-finite gradient in {name!r}"
    if trainable and parameters_move:
        assert any(bool(p.grad.any()) for _, p in trainable if p.grad is not None), (
            f"{what}: the gradients of all {len(trainable)} trainable parameters are zero everywhere"
        )


def check_eval_consistency(module: nn.Module, x: Tensor, what: str) -> None:
    """In eval mode: the same output twice, and each sample's output independent of the batch."""
    module.eval()
    with torch.no_grad():
        first, second = module(x), module(x)
        assert torch.equal(first, second), f"{what}: eval mode is not deterministic"
        alone = module(x[-1:])
        assert close(alone, first[-1:]), f"{what}: eval output of a sample depends on the batch"


ATTENTION_PROBE = (4, 64, 7, 6)
"""Shape (N, C, H, W) of an input on which every trainable parameter of an attention block
should get a gradient that is non-zero somewhere (see :func:`check_gradients`)."""


def attention_case(
    factory: Callable[..., nn.Module], x: Tensor, *, parameters_move: bool = True
) -> None:
    """The attention contract on one input ``x`` (N >= 2, C, H, W), float32 or float64:
    ``factory(C)`` keeps the shape and dtype; in train mode finite gradients reach the input
    and every trainable parameter, non-zero somewhere (the parameters' only with
    ``parameters_move``, for inputs like :data:`ATTENTION_PROBE`); in eval mode the block is
    deterministic, a sample's output does not depend on the batch, and a batch of one works."""
    torch.manual_seed(0)
    channels = x.shape[1]
    block = _calling(f"building it for {channels} channels", lambda: factory(channels)).to(x.dtype)
    what = f"attention block on input {tuple(x.shape)} {x.dtype}"
    block.train()
    x = x.clone().requires_grad_(True)
    y = _calling(f"its forward pass on an input {tuple(x.shape)}", lambda: block(x))
    assert y.shape == x.shape, f"{what}: output shape {tuple(y.shape)} != input shape"
    assert y.dtype == x.dtype, f"{what}: output dtype {y.dtype} != input dtype"
    assert torch.isfinite(y).all(), f"{what}: its output has NaN or infinite values"
    y.square().sum().backward()
    check_gradients(block, x, what, parameters_move=parameters_move)
    check_eval_consistency(block, x.detach(), what)
    assert block(x.detach()[:1]).shape == (1, *x.shape[1:]), f"{what}: batch of one fails"


def model_case(factory: Callable[..., nn.Module], num_classes: int, x: Tensor) -> None:
    """The model contract on one input ``x`` (N >= 2, C, H, W): ``factory(num_classes, C)``
    gives finite float logits (N, num_classes); in train mode gradients reach every trainable
    parameter; in eval mode the model is deterministic and batch-independent."""
    batch, in_channels = x.shape[:2]
    model = factory(num_classes=num_classes, in_channels=in_channels)
    what = f"model({num_classes=}, {in_channels=}) on {'x'.join(map(str, x.shape))}"
    model.train()
    logits = model(x)
    assert logits.shape == (batch, num_classes), f"{what}: output shape {tuple(logits.shape)}"
    assert logits.is_floating_point() and torch.isfinite(logits).all(), f"{what}: non-finite logits"
    logits.square().mean().backward()
    check_gradients(model, None, what)
    check_eval_consistency(model, x, what)
