"""``cvkit export``: a trained model with its evaluation-time preprocessing folded in, as
TorchScript, a torch.export ExportedProgram or ONNX, checked against the checkpoint.

The exported module takes float32 images (N, C, H, W) with values in [0, 1] at any height
and width (N and the size are dynamic), resizes them to the model's input size (bilinear with
antialiasing, as ``cvkit predict`` does), applies the recipe's ``augment.eval`` (normalisation) and
returns the logits (N, K) in the order of the checkpoint's classes (softmax them for
probabilities). A sidecar ``<out>.json`` names the classes, the input and how it was made.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cvkit.engine.build import build_augmentations
from cvkit.engine.stage import model_input_shape
from cvkit.engine.trained_model import restore
from cvkit.errors import CvkitError
from cvkit.files import check_writable, write_bytes_atomic, write_json
from cvkit.registry.loading import default_registry
from cvkit.registry.registry import Registry

log = logging.getLogger("cvkit")

ExportFormat = Literal["torchscript", "exported-program", "onnx"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("torchscript", "exported-program", "onnx")

TOLERANCE = 1e-5
"""Largest difference between the exported model's logits and the checkpoint's allowed."""


class Preprocessed(nn.Module):
    """``model`` behind the evaluation preprocessing: (N, C, H, W) float in [0, 1] ->
    resize to ``size`` [height, width] -> ``augmentations`` (``augment.eval``) -> logits (N, K)."""

    def __init__(
        self, model: nn.Module, augmentations: Sequence[nn.Module], size: Sequence[int]
    ) -> None:
        super().__init__()
        self.model = model
        self.augmentations = nn.ModuleList(augmentations)
        self.size = [int(s) for s in size]

    def forward(self, images: Tensor) -> Tensor:
        images = F.interpolate(
            images, size=self.size, mode="bilinear", align_corners=False, antialias=True
        )
        targets = torch.zeros_like(images[:, 0, 0, 0], dtype=torch.long)
        for augmentation in self.augmentations:
            images, targets = augmentation(images, targets)
        return self.model(images)


def export_model(
    source: Path,
    out: Path,
    *,
    export_format: ExportFormat,
    overwrite: bool = False,
    registry: Registry | None = None,
    check_batch: int = 4,
    seed: int = 0,
) -> dict[str, Any]:
    """Export the trained model of ``source`` (a run directory or checkpoint) to ``out`` in
    ``export_format``, with its preprocessing (:class:`Preprocessed`); check that the
    exported file, loaded back, gives the checkpoint model's logits on ``check_batch``
    random images (at the input size and at twice it) within :data:`TOLERANCE`. Returns
    the sidecar's content (also written to ``<out>.json``)."""
    if export_format not in EXPORT_FORMATS:
        raise CvkitError(f"--format {export_format}: expected one of {', '.join(EXPORT_FORMATS)}")
    check_writable(out, "--out", overwrite=overwrite)
    registry = registry or default_registry()
    trained = restore(source, registry)
    channels, height, width = model_input_shape(trained.checkpoint, trained.recipe)
    augment = build_augmentations(trained.recipe.augment.eval, registry, len(trained.classes))
    wrapped = Preprocessed(trained.model, augment, [height, width]).eval()
    generator = torch.Generator().manual_seed(seed)
    example = torch.rand(check_batch, channels, height, width, generator=generator)
    larger = torch.rand(check_batch + 1, channels, 2 * height, 2 * width, generator=generator)
    with torch.no_grad():
        expected = [wrapped(example), wrapped(larger)]
        exported = _EXPORTERS[export_format](wrapped, example, out)
        difference = max(
            float((exported(x) - want).abs().max())
            for x, want in zip((example, larger), expected, strict=True)
        )
    if not difference <= TOLERANCE:
        out.unlink(missing_ok=True)
        raise CvkitError(
            f"{out}: the exported model's logits differ from the checkpoint's by {difference:.3g} "
            f"(more than {TOLERANCE}); nothing was kept"
        )
    sidecar = {
        "source": str(trained.path),
        "format": export_format,
        "classes": trained.classes,
        "input": {
            "dtype": "float32",
            "shape": ["N", channels, "H", "W"],
            "range": [0.0, 1.0],
            "resized_to": [height, width],
        },
        "output": "logits (N, K) in the order of classes; softmax for probabilities",
        "preprocessing": [spec.name for spec in trained.recipe.augment.eval],
        "max_abs_difference": difference,
    }
    write_json(out.with_name(out.name + ".json"), sidecar)
    log.info(
        "exported %s to %s (%s); logits within %.3g of the checkpoint's",
        source,
        out,
        export_format,
        difference,
    )
    return sidecar


def _torchscript(model: nn.Module, example: Tensor, out: Path) -> Any:
    with warnings.catch_warnings():  # torch deprecates TorchScript; it is asked for by name
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape checks, constant here
        scripted = torch.jit.trace(model, example, check_trace=False)
        write_bytes_atomic(out, lambda stream: torch.jit.save(scripted, stream))
        return torch.jit.load(str(out))


def _exported_program(model: nn.Module, example: Tensor, out: Path) -> Any:
    program = torch.export.export(model, (example,), dynamic_shapes=_dynamic_shapes())
    write_bytes_atomic(out, lambda stream: torch.export.save(program, stream))
    return torch.export.load(str(out)).module()


def _onnx(model: nn.Module, example: Tensor, out: Path) -> Any:
    try:
        import onnxruntime
        import onnxscript  # noqa: F401  # torch.onnx's exporter needs it
    except ImportError:
        raise CvkitError(
            "--format onnx needs the onnx extra: pip install 'cvkit[onnx]' (onnx, onnxscript, "
            "onnxruntime, which checks the exported file)"
        ) from None
    program = torch.onnx.export(
        model, (example,), dynamic_shapes=_dynamic_shapes(), dynamo=True, verbose=False
    )
    if program is None:
        raise CvkitError(f"{out}: torch.onnx.export returned no program")
    write_bytes_atomic(out, lambda stream: stream.write(program.model_proto.SerializeToString()))
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(images: Tensor) -> Tensor:
        return torch.from_numpy(session.run(None, {name: images.numpy()})[0])

    return run


def _dynamic_shapes() -> Any:
    """Batch size, height and width free in torch.export and ONNX."""
    dim = torch.export.Dim
    return ({0: dim("batch"), 2: dim("height"), 3: dim("width")},)


_EXPORTERS = {"torchscript": _torchscript, "exported-program": _exported_program, "onnx": _onnx}
