"""Calibration after training: temperature scaling (Guo, Pleiss, Sun & Weinberger, "On
Calibration of Modern Neural Networks", ICML 2017), expected calibration error, and
class-specific decision thresholds, each fitted on the validation split."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor


def expected_calibration_error(probs: Tensor, labels: Tensor, bins: int = 15) -> float:
    """ECE: the confidence-weighted gap between accuracy and confidence (Guo et al., eq. 3).

    ``probs`` (N, K) rows summing to 1, ``labels`` (N,) int64. Samples are binned by their
    top probability into ``bins`` equal-width bins of (0, 1]; ECE = sum over bins of
    |accuracy - mean confidence| x (bin size / N), a fraction in [0, 1]."""
    confidence, predicted = probs.max(1)
    correct = (predicted == labels).double()
    edges = torch.linspace(0, 1, bins + 1, dtype=probs.dtype)
    which = torch.bucketize(confidence, edges[1:-1], right=False)
    error = torch.zeros((), dtype=torch.float64)
    for b in range(bins):
        inside = which == b
        if inside.any():
            gap = correct[inside].mean() - confidence[inside].double().mean()
            error += gap.abs() * inside.double().mean()
    return float(error)


def fit_temperature(logits: Tensor, labels: Tensor) -> float:
    """The temperature T > 0 minimising the negative log-likelihood of softmax(logits / T)
    on (``logits`` (N, K), ``labels`` (N,)); LBFGS over log T, starting at T = 1."""
    logits = logits.double()
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp())


def fit_class_thresholds(probs: Tensor, labels: Tensor, sweeps: int = 3) -> Tensor:
    """Per-class thresholds t (K,) for the decision argmax_k p_k / t_k, fitted to maximise
    macro-F1 on (``probs`` (N, K), ``labels`` (N,)).

    Coordinate ascent from t = 1 (the plain argmax): ``sweeps`` times, each class's
    threshold in turn takes the best of 25 values from 0.25 to 4 times its current one
    (kept when nothing is better), so the fitted macro-F1 is never below the argmax's.
    Cost: sweeps x K x 25 decisions over the N samples."""
    num_classes = probs.shape[1]
    thresholds = torch.ones(num_classes, dtype=torch.float64)
    probs = probs.double()
    factors = torch.logspace(-2, 2, 25, base=2, dtype=torch.float64)
    best = macro_f1(threshold_predictions(probs, thresholds), labels, num_classes)
    for _ in range(sweeps):
        for k in range(num_classes):
            base = chosen = thresholds[k].clone()
            for factor in factors:
                thresholds[k] = base * factor
                score = macro_f1(threshold_predictions(probs, thresholds), labels, num_classes)
                if score > best + 1e-12:
                    best, chosen = score, thresholds[k].clone()
            thresholds[k] = chosen
    return thresholds


def threshold_predictions(probs: Tensor, thresholds: Tensor) -> Tensor:
    """Class decisions (N,) with per-class thresholds: argmax over k of p_k / t_k, so a class
    with a low threshold wins more often; equal thresholds give the plain argmax."""
    return (probs / thresholds).argmax(1)


def macro_f1(predicted: Tensor, labels: Tensor, num_classes: int) -> float:
    """Mean over the classes of the one-vs-rest F1 of ``predicted`` (N,) against ``labels``
    (N,); a class neither present nor predicted counts 0."""
    confusion = torch.bincount(labels * num_classes + predicted, minlength=num_classes**2)
    confusion = confusion.view(num_classes, num_classes).double()
    hits = confusion.diag()
    denominator = confusion.sum(0) + confusion.sum(1)
    return float(torch.where(denominator > 0, 2 * hits / denominator.clamp(min=1), 0.0).mean())


def _nll(probs: Tensor, labels: Tensor) -> float:
    return float(F.nll_loss(probs.clamp(min=1e-12).log(), labels))


def calibration_report(
    val: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor] | None = None
) -> dict[str, Any]:
    """Temperature and class thresholds fitted on ``val`` = (logits (N, K), labels (N,)), and
    their effect on val (where they were fitted, so optimistic) and on ``test`` when given.

    Returns ``{"temperature": T, "val": {...}, "test": {...} or None, "thresholds": [t_k]}``;
    each split has ECE and mean negative log-likelihood (nats) before and after scaling, and
    accuracy and macro-F1 with the plain argmax and with the thresholds. Scaling by T keeps
    every argmax, so it changes calibration, not accuracy."""
    temperature = fit_temperature(*val)
    thresholds = fit_class_thresholds((val[0].double() / temperature).softmax(1), val[1])

    def effect(logits: Tensor, labels: Tensor) -> dict[str, float]:
        before = logits.double().softmax(1)
        after = (logits.double() / temperature).softmax(1)
        decided = threshold_predictions(after, thresholds.double())
        return {
            "ece_before": expected_calibration_error(before, labels),
            "ece_after": expected_calibration_error(after, labels),
            "nll_before": _nll(before, labels),
            "nll_after": _nll(after, labels),
            "top1": float((before.argmax(1) == labels).double().mean()),
            "top1_thresholds": float((decided == labels).double().mean()),
            "macro_f1": macro_f1(before.argmax(1), labels, logits.shape[1]),
            "macro_f1_thresholds": macro_f1(decided, labels, logits.shape[1]),
        }

    return {
        "temperature": temperature,
        "thresholds": [float(t) for t in thresholds],
        "val": effect(*val),
        "test": effect(*test) if test is not None else None,
    }
