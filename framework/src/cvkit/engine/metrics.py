"""Classification metrics from logits: top-k accuracy, loss, confusion matrix, per-class and
macro precision, recall and F1 (a classification report)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cvkit import distributed
from cvkit.engine.device import autocast
from cvkit.progress import Meter


class Accumulator:
    """Sums over batches of an evaluation, kept on the device until :meth:`result`.

    Collects the confusion matrix (rows: true class, columns: predicted class), top-5 hits
    and the summed cross-entropy (nats), so nothing synchronises with the device per batch.
    """

    def __init__(self, num_classes: int, device: torch.device) -> None:
        self.num_classes = num_classes
        self.confusion = torch.zeros(num_classes * num_classes, dtype=torch.int64, device=device)
        self.top5 = torch.zeros((), dtype=torch.int64, device=device)
        self.loss = torch.zeros((), dtype=torch.float64, device=device)
        self.count = 0

    @torch.no_grad()
    def update(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """Add a batch: ``logits`` (N, K) float, ``labels`` (N,) int64."""
        logits = logits.float()
        predicted = logits.argmax(1)
        cells = labels * self.num_classes + predicted  # not bincount: on a GPU it waits for its max
        self.confusion.scatter_add_(0, cells, torch.ones_like(cells))
        k = min(5, self.num_classes)
        self.top5 += (logits.topk(k, dim=1).indices == labels[:, None]).any(1).sum()
        self.loss += F.cross_entropy(logits, labels, reduction="sum").double()
        self.count += labels.shape[0]

    def result(self, classes: Sequence[str]) -> dict[str, Any]:
        """The metrics (see :func:`classification_metrics`)."""
        confusion = self.confusion.view(self.num_classes, self.num_classes).cpu()
        return classification_metrics(
            confusion, classes, loss_sum=float(self.loss), top5_hits=int(self.top5)
        )


def classification_metrics(
    confusion: torch.Tensor, classes: Sequence[str], *, loss_sum: float, top5_hits: int
) -> dict[str, Any]:
    """Metrics from a (K, K) confusion matrix (rows true, columns predicted).

    Accuracies, precision, recall and F1 are fractions in [0, 1]; ``loss`` is the mean
    cross-entropy in nats. ``per_class`` maps each class name to its precision, recall (the
    class's accuracy), F1 and support (its images in the split), as scikit-learn's
    classification report; macro averages weigh every class equally. A class that is never
    predicted has precision 0 (likewise recall for a class absent from the split).
    ``top5`` is top-min(5, K) accuracy.
    """
    confusion = confusion.to(torch.float64)
    count = float(confusion.sum())
    hits = confusion.diag()
    support, predicted = confusion.sum(1), confusion.sum(0)
    recall = torch.where(support > 0, hits / support.clamp(min=1), 0.0)
    precision = torch.where(predicted > 0, hits / predicted.clamp(min=1), 0.0)
    denominator = precision + recall
    f1 = torch.where(denominator > 0, 2 * precision * recall / denominator.clamp(min=1e-12), 0.0)
    return {
        "samples": int(count),
        "top1": float(hits.sum()) / count if count else 0.0,
        "top5": top5_hits / count if count else 0.0,
        "loss": loss_sum / count if count else 0.0,
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(n)}
            for name, p, r, f, n in zip(classes, precision, recall, f1, support, strict=True)
        },
        "classes": list(classes),
        "confusion_matrix": confusion.to(torch.int64).tolist(),
    }


@torch.no_grad()
def collect_logits(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device,
    autocast_dtype: torch.dtype | None = None,
    *,
    combine_processes: bool = False,
    progress: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (N, K) float32 and labels (N,) int64 of ``model`` (in eval mode) over
    ``batches``, on the CPU, in the batches' order. ``combine_processes``: each process of
    a multi-process run went through its contiguous part of the split; every process gets
    the whole split's, in order. ``progress``: show the progress under this description
    (:class:`cvkit.progress.Meter`)."""
    was_training = model.training
    model.eval()
    logits, labels = [], []
    with Meter(progress, _count(batches)) if progress else contextlib.nullcontext() as meter:
        for images, targets in batches:
            with autocast(device, autocast_dtype):
                logits.append(model(images).float())
            labels.append(targets)
            if meter is not None:
                meter.update(targets.shape[0])
    model.train(was_training)
    result = torch.cat(logits).cpu(), torch.cat(labels).cpu()
    if combine_processes:
        return distributed.gather_rows(result[0]), distributed.gather_rows(result[1])
    return result


def _count(batches: Iterable[Any]) -> int | None:
    """Images in ``batches`` when it says (a BatchLoader's ``count``), else None."""
    count = getattr(batches, "count", None)
    return count if isinstance(count, int) else None


def metrics_from_logits(
    logits: torch.Tensor,
    labels: torch.Tensor,
    classes: Sequence[str],
    seconds: float | None = None,
) -> dict[str, Any]:
    """The metrics (see :meth:`Accumulator.result`) of logits (N, K) and labels (N,); with
    ``seconds``, the wall time that produced the logits, also ``seconds`` and
    ``images_per_second`` (the evaluation time a study reports as its test time)."""
    accumulator = Accumulator(len(classes), logits.device)
    accumulator.update(logits, labels)
    result = accumulator.result(classes)
    if seconds is not None:
        result["seconds"] = seconds
        result["images_per_second"] = len(labels) / seconds if seconds > 0 else None
    return result
