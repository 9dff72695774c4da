"""What the report computes from a trained model: logits and penultimate-layer features
over the validation images, Grad-CAM maps, and an architecture summary."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs
import numpy as np
import torch
from torch import Tensor, nn

from cvkit import capability


@attrs.frozen(eq=False)
class ModelOutputs:
    """The model's outputs over a split, in the split's order.

    Attributes:
        logits: (N, K) float32.
        labels: (N,) int64.
        features: (N, D) float32, the input of the output layer (the last module to run).
        output_layer: that module's name.
    """

    logits: np.ndarray
    labels: np.ndarray
    features: np.ndarray
    output_layer: str


def _leaves(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, m) for name, m in model.named_modules() if not any(m.children())]


def execution_order(
    model: nn.Module, images: Tensor, *, leaves_only: bool = True
) -> list[tuple[str, nn.Module, Any]]:
    """The leaf modules (or all modules but ``model``) in the order a forward pass over
    ``images`` ends their calls, each call with its output; a module called twice appears
    twice."""
    calls: list[tuple[str, nn.Module, Any]] = []
    modules = _leaves(model) if leaves_only else [(n, m) for n, m in model.named_modules() if n]
    handles = [
        module.register_forward_hook(
            lambda m, args, output, name=name: calls.append((name, m, output))
        )
        for name, module in modules
    ]
    try:
        with torch.no_grad():
            model.eval()(images)
    finally:
        for handle in handles:
            handle.remove()
    return calls


@torch.no_grad()
def collect_outputs(model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]]) -> ModelOutputs:
    """Logits, labels and the output layer's input features of ``model`` (eval mode) over
    ``batches``."""
    model.eval()
    logits, labels, features = [], [], []
    hook: Any = None
    name = ""
    for images, targets in batches:
        if hook is None:
            calls = execution_order(model, images[:1])
            name, head, _ = calls[-1]
            hook = head.register_forward_hook(
                lambda m, args, output: features.append(args[0].flatten(1).float().cpu())
            )
        logits.append(model(images).float().cpu())
        labels.append(targets.cpu())
    if hook is not None:
        hook.remove()
    return ModelOutputs(
        torch.cat(logits).numpy(), torch.cat(labels).numpy(), torch.cat(features).numpy(), name
    )


def gradcam_layer(model: nn.Module, image: Tensor) -> tuple[str, nn.Module] | None:
    """Grad-CAM's target: the module the model names in its ``gradcam_layer`` attribute (a
    name from ``named_modules``), else the backbone's last spatial feature map, the module
    whose forward pass ends last with an (N, C, H, W) output of H x W > 1 (a ResNet's
    ``layer4``, a ``features`` stack), for ``image`` (1, C, H, W). Not the last convolution
    run: in an attention model that is the block's 1 x 1 excitation, with no spatial heat.
    None for a model without spatial feature maps."""
    named = capability(model, "gradcam_layer")
    if isinstance(named, str):
        return named, model.get_submodule(named)
    spatial = [
        (name, module)
        for name, module, output in execution_order(model, image, leaves_only=False)
        if isinstance(output, Tensor) and output.dim() == 4 and output.shape[-2:].numel() > 1
    ]
    return spatial[-1] if spatial else None


def for_display(images: Tensor) -> np.ndarray:
    """(N, C, H, W) model inputs as (N, H, W, 3) RGB in [0, 1], each image rescaled to its
    own range (normalisation undone only up to scale); one channel is repeated."""
    images = images.detach().float().cpu()
    if images.shape[1] == 1:
        images = images.repeat(1, 3, 1, 1)
    images = images[:, :3]
    low = images.amin(dim=(1, 2, 3), keepdim=True)
    high = images.amax(dim=(1, 2, 3), keepdim=True)
    return ((images - low) / (high - low).clamp(min=1e-12)).permute(0, 2, 3, 1).numpy()


def gradcam_overlays(
    model: nn.Module, layer: nn.Module, images: Tensor, classes: Iterable[int]
) -> np.ndarray:
    """Grad-CAM (pytorch-grad-cam) of each image's class in ``classes`` at ``layer``, laid
    over the image: (N, H, W, 3) in [0, 1]."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.image import show_cam_on_image
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model.eval()
    targets = [ClassifierOutputTarget(int(k)) for k in classes]
    # the input asks for gradients, so they reach the layer even where the recipe froze it
    with GradCAM(model=model, target_layers=[layer]) as cam:
        maps = cam(input_tensor=images.detach().clone().requires_grad_(True), targets=targets)
    pictures = for_display(images)
    return np.stack(
        [
            show_cam_on_image(p, m, use_rgb=True, image_weight=0.5) / 255.0
            for p, m in zip(pictures, maps, strict=True)
        ]
    )


def architecture_summary(model: nn.Module, image: Tensor) -> list[dict[str, Any]]:
    """One row per leaf-module call of a forward pass over ``image`` (1, C, H, W): its name,
    type, output shape and own parameters; parameters held by containers are not listed."""
    rows = []
    for name, module, output in execution_order(model, image):
        shape = list(output.shape) if isinstance(output, Tensor) else type(output).__name__
        rows.append(
            {
                "layer": name,
                "type": type(module).__name__,
                "output_shape": shape,
                "parameters": sum(p.numel() for p in module.parameters(recurse=False)),
            }
        )
    return rows


def weight_tensors(model: nn.Module) -> list[tuple[str, np.ndarray]]:
    """The values of each weight tensor with at least two dimensions (convolution and
    linear weights), by parameter name, in model order."""
    return [
        (name.removesuffix(".weight"), p.detach().float().cpu().numpy().ravel())
        for name, p in model.named_parameters()
        if p.ndim >= 2
    ]
