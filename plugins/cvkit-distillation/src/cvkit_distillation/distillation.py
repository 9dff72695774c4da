"""Knowledge distillation (Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural
Network", 2015) as a training loss with a frozen teacher."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import cvkit


def distillation_loss(
    student: Tensor,
    teacher: Tensor,
    targets: Tensor,
    temperature: float,
    weight: float,
    label_smoothing: float = 0.0,
) -> Tensor:
    """``weight * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - weight) *
    CE(student, targets)``, the KL term averaged over the batch.

    ``student``, ``teacher``: logits (N, K); ``targets``: indices (N,) or probabilities
    (N, K). The T^2 factor keeps the soft term's gradients on the scale of the hard term's
    as T changes (Hinton et al., section 2)."""
    soft = F.kl_div(
        F.log_softmax(student.float() / temperature, 1),
        F.log_softmax(teacher.float() / temperature, 1),
        reduction="batchmean",
        log_target=True,
    )
    hard = F.cross_entropy(student.float(), targets, label_smoothing=label_smoothing)
    return weight * temperature**2 * soft + (1 - weight) * hard


class KnowledgeDistillation(nn.Module):
    """Knowledge distillation (Hinton et al., 2015): match a frozen teacher's softened outputs.

    loss = weight * T^2 * KL(softmax(teacher / T) || softmax(student / T))
    + (1 - weight) * cross-entropy(student, targets). The teacher is rebuilt from its cvkit
    checkpoint (its recipe and weights; EMA weights when it kept an EMA), frozen and kept in
    eval mode; it sees the same training batch as the student (after augmentation, so both
    should share the normalisation). Called as ``forward(logits (N, K), targets (N,) or
    (N, K), images (N, C, H, W))``; the teacher must have the dataset's K classes.

    Args:
        teacher: a run directory (its best checkpoint, else its last) or a checkpoint file.
        temperature: softmax temperature T of both distributions (Hinton et al.: 1 to 20).
        weight: weight of the distillation term; 1 - weight goes to the hard targets.
        label_smoothing: label smoothing of the hard-target term.
        registry: supplied by cvkit: the registry that builds the teacher's model (default:
            the installed plugins').
    """

    uses_inputs = True

    def __init__(
        self,
        teacher: Path,
        temperature: float = 4.0,
        weight: float = 0.9,
        label_smoothing: float = 0.0,
        registry: cvkit.Registry | None = None,
    ) -> None:
        super().__init__()
        if temperature <= 0 or not 0.0 <= weight <= 1.0 or not 0.0 <= label_smoothing < 1.0:
            raise ValueError(
                f"temperature={temperature} must be > 0, weight={weight} in [0, 1], "
                f"label_smoothing={label_smoothing} in [0, 1)"
            )
        self.teacher = load_teacher(Path(teacher), registry)
        self.temperature, self.weight, self.label_smoothing = temperature, weight, label_smoothing

    def train(self, mode: bool = True) -> KnowledgeDistillation:
        super().train(mode)
        self.teacher.eval()  # the teacher's dropout and batch norm stay in inference mode
        return self

    def forward(self, logits: Tensor, targets: Tensor, images: Tensor) -> Tensor:
        with torch.no_grad():
            teacher = self.teacher(images)
        if teacher.shape != logits.shape:
            raise ValueError(
                f"the teacher gives logits {tuple(teacher.shape)}, the student {tuple(logits.shape)}"
            )
        return distillation_loss(
            logits, teacher, targets, self.temperature, self.weight, self.label_smoothing
        )


def load_teacher(source: Path, registry: cvkit.Registry | None = None) -> nn.Module:
    """The model of the cvkit checkpoint (or run directory) ``source``, built by ``registry``
    (default: the installed plugins'), frozen, in eval mode."""
    if not source.exists():
        raise ValueError(f"teacher {source} not found: expected a run directory or checkpoint file")
    # cvkit.load_trained_model loads the engine on first use, not when cvkit lists plugins
    return cvkit.load_trained_model(source, registry).requires_grad_(False).eval()
