"""The report's figures, each a matplotlib Figure built from data (no pyplot, so no GUI
backend is involved): curves, confusion matrices, per-class scores, ROC and
precision-recall curves, reliability diagrams, t-SNE, Grad-CAM grids, parameter
distributions and cross-run scatter plots."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from cvkit_report.runs import RunRecord

ANNOTATE_UP_TO = 20
"""Confusion matrices of at most this many classes get their numbers written in the cells."""


def _mark_stages(ax: Any, run: RunRecord, per_step: bool = False) -> None:
    """Dashed vertical lines where each stage of a multi-stage run ended."""
    for name, end_epoch, end_step in run.stage_ends:
        x = end_step if per_step else end_epoch + 0.5
        ax.axvline(x, color="grey", linestyle="--", linewidth=1)
        ax.annotate(
            f"end of {name}",
            (x, 1),
            xycoords=("data", "axes fraction"),
            fontsize=7,
            rotation=90,
            va="top",
            ha="right",
            color="grey",
        )


def _step_or_epoch_curve(ax: Any, run: RunRecord, tag: str, key: str) -> str:
    """Plot the per-step TensorBoard scalar ``tag`` where the run logged it, else the
    per-epoch metric ``key`` (its value at the end of each epoch), stage ends dashed;
    returns which ("per step" or "at the end of each epoch")."""
    if run.steps.get(tag):
        steps, values = zip(*run.steps[tag], strict=True)
        ax.plot(steps, values, linewidth=1)
        ax.set_xlabel("optimizer step")
        _mark_stages(ax, run, per_step=True)
        return "per step"
    ax.plot(
        [e["global_epoch"] for e in run.epochs],
        [e.get(key) for e in run.epochs],
        marker="o",
        markersize=3,
    )
    ax.set_xlabel("epoch")
    _mark_stages(ax, run)
    return "at the end of each epoch"


def training_curves(run: RunRecord) -> Figure:
    """Four panels over the run's epochs (all stages, boundaries dashed): training and
    validation loss, training and validation accuracy, the learning rate (per step where
    TensorBoard logged it, else per epoch) and the training throughput (images/s)."""
    figure = Figure(figsize=(11, 7), layout="constrained")
    (loss, acc), (lr, speed) = figure.subplots(2, 2)
    x = [e["global_epoch"] for e in run.epochs]
    for ax, metric, label in ((loss, "loss", "loss (nats)"), (acc, "acc", "accuracy")):
        for split in ("train", "val"):
            points = [e.get(f"{split}/{metric}") for e in run.epochs]
            if any(v is not None for v in points):
                ax.plot(x, points, marker="o", markersize=3, label=split)
        ax.set(xlabel="epoch", ylabel=label, title=f"{label.split()[0]} per epoch")
        ax.legend()
        _mark_stages(ax, run)
    per = _step_or_epoch_curve(lr, run, "step/lr", "lr")
    lr.set(ylabel="learning rate", title=f"learning rate {per}")
    per = _step_or_epoch_curve(speed, run, "step/images_per_second", "images_per_second")
    speed.set(ylabel="images / s", title=f"training throughput {per}")
    figure.suptitle(run.name)
    return figure


def overlay_curves(runs: Sequence[RunRecord]) -> Figure:
    """Validation accuracy, validation loss and training loss per epoch, one line per run."""
    figure = Figure(figsize=(13, 4), layout="constrained")
    axes = figure.subplots(1, 3)
    for ax, key, title in zip(
        axes,
        ("val/acc", "val/loss", "train/loss"),
        ("validation accuracy", "validation loss", "training loss"),
        strict=True,
    ):
        for run in runs:
            ax.plot(
                [e["global_epoch"] for e in run.epochs],
                [e.get(key) for e in run.epochs],
                label=run.name,
            )
        ax.set(xlabel="epoch", title=title)
    axes[0].legend(fontsize=7)
    return figure


def confusion_matrices(
    matrix: Sequence[Sequence[int]], classes: Sequence[str], split: str
) -> Figure:
    """The confusion matrix (rows: true class, columns: predicted) as counts and
    row-normalised (each row sums to 1: the recall of its class on the diagonal)."""
    counts = np.asarray(matrix, dtype=np.int64)
    totals = counts.sum(1, keepdims=True)
    normalised = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    size = max(5.0, 0.45 * len(classes) + 2)
    figure = Figure(figsize=(2 * size + 1, size), layout="constrained")
    for ax, data, title, fmt in zip(
        figure.subplots(1, 2),
        (counts, normalised),
        ("counts", "row-normalised (recall on the diagonal)"),
        ("d", ".2f"),
        strict=True,
    ):
        image = ax.imshow(data, cmap="Blues")
        figure.colorbar(image, ax=ax, shrink=0.8)
        ticks = range(len(classes))
        ax.set_xticks(ticks, classes, rotation=90, fontsize=8)
        ax.set_yticks(ticks, classes, fontsize=8)
        ax.set(xlabel="predicted class", ylabel="true class", title=f"{split}: {title}")
        if len(classes) <= ANNOTATE_UP_TO:
            threshold = data.max() / 2
            for i in ticks:
                for j in ticks:
                    ax.text(
                        j,
                        i,
                        format(data[i, j], fmt),
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if data[i, j] > threshold else "black",
                    )
    return figure


def per_class_scores(per_class: dict[str, dict[str, float]], split: str) -> Figure:
    """Precision, recall and F1 of each class as grouped bars."""
    classes = list(per_class)
    figure = Figure(figsize=(max(6.0, 0.6 * len(classes) + 2), 4), layout="constrained")
    ax = figure.subplots()
    positions = np.arange(len(classes))
    for offset, metric in zip((-0.27, 0, 0.27), ("precision", "recall", "f1"), strict=True):
        ax.bar(
            positions + offset, [per_class[c][metric] for c in classes], width=0.27, label=metric
        )
    ax.set_xticks(positions, classes, rotation=45, ha="right", fontsize=8)
    ax.set(ylim=(0, 1.05), ylabel="score", title=f"{split}: per-class precision, recall and F1")
    ax.legend(ncols=3, loc="lower right")
    return figure


def roc_and_pr_curves(
    probs: np.ndarray, labels: np.ndarray, classes: Sequence[str], split: str
) -> tuple[Figure, dict[str, dict[str, float]]]:
    """One-vs-rest ROC and precision-recall curves of every class from ``probs`` (N, K) and
    ``labels`` (N,); returns the figure and each class's ROC AUC and average precision."""
    from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

    figure = Figure(figsize=(12, 5), layout="constrained")
    roc_ax, pr_ax = figure.subplots(1, 2)
    scores: dict[str, dict[str, float]] = {}
    for k, name in enumerate(classes):
        truth = labels == k
        if truth.all() or not truth.any():
            continue  # a curve needs both positives and negatives
        fpr, tpr, _ = roc_curve(truth, probs[:, k])
        precision, recall, _ = precision_recall_curve(truth, probs[:, k])
        scores[name] = {
            "roc_auc": float(auc(fpr, tpr)),
            "average_precision": float(average_precision_score(truth, probs[:, k])),
        }
        roc_ax.plot(fpr, tpr, linewidth=1, label=f"{name} (AUC {scores[name]['roc_auc']:.3f})")
        pr_ax.plot(
            recall,
            precision,
            linewidth=1,
            label=f"{name} (AP {scores[name]['average_precision']:.3f})",
        )
    roc_ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    roc_ax.set(
        xlabel="false positive rate", ylabel="true positive rate", title=f"{split}: one-vs-rest ROC"
    )
    pr_ax.set(xlabel="recall", ylabel="precision", title=f"{split}: one-vs-rest precision-recall")
    for ax in (roc_ax, pr_ax):
        ax.legend(fontsize=7, loc="lower right" if ax is roc_ax else "lower left")
    return figure, scores


def reliability_bins(probs: np.ndarray, labels: np.ndarray, bins: int) -> dict[str, np.ndarray]:
    """Per equal-width confidence bin of (0, 1]: mean confidence, accuracy and count."""
    confidence = probs.max(1)
    correct = probs.argmax(1) == labels
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    safe = np.maximum(count, 1)
    return {
        "confidence": np.bincount(which, confidence, minlength=bins) / safe,
        "accuracy": np.bincount(which, correct.astype(float), minlength=bins) / safe,
        "count": count,
    }


def reliability_diagram(
    before: np.ndarray,
    after: np.ndarray,
    labels: np.ndarray,
    eces: tuple[float, float],
    temperature: float,
    split: str,
    bins: int = 15,
) -> Figure:
    """Accuracy against confidence per bin, before and after temperature scaling, with
    each one's expected calibration error (``eces``: before, after)."""
    figure = Figure(figsize=(11, 4.5), layout="constrained")
    for ax, probs, title, ece in zip(
        figure.subplots(1, 2),
        (before, after),
        ("before", f"after temperature scaling (T = {temperature:.3f})"),
        eces,
        strict=True,
    ):
        found = reliability_bins(probs, labels, bins)
        centres = (np.arange(bins) + 0.5) / bins
        used = found["count"] > 0
        ax.bar(
            centres[used],
            found["accuracy"][used],
            width=1 / bins,
            edgecolor="black",
            alpha=0.8,
            label="accuracy",
        )
        ax.plot(
            found["confidence"][used],
            found["accuracy"][used],
            "o",
            color="C1",
            markersize=4,
            label="(mean confidence, accuracy)",
        )
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect calibration")
        ax.set(
            xlim=(0, 1),
            ylim=(0, 1),
            xlabel="confidence",
            ylabel="accuracy",
            title=f"{split}, {title}: ECE {100 * ece:.2f}%",
        )
        ax.legend(fontsize=8, loc="upper left")
    return figure


def tsne_scatter(embedded: np.ndarray, labels: np.ndarray, classes: Sequence[str]) -> Figure:
    """Two-dimensional t-SNE points (N, 2) coloured by their true class."""
    figure = Figure(figsize=(7.5, 6.5), layout="constrained")
    ax = figure.subplots()
    colours = [f"C{i % 10}" for i in range(len(classes))]
    markers = "o^s"
    for k, name in enumerate(classes):
        inside = labels == k
        ax.scatter(
            embedded[inside, 0],
            embedded[inside, 1],
            s=8,
            c=colours[k],
            marker=markers[(k // 10) % 3],
            label=name,
        )
    ax.set(
        xticks=[], yticks=[], title=f"t-SNE of penultimate-layer features ({len(labels)} images)"
    )
    ax.legend(fontsize=7, markerscale=2, loc="best", ncols=1 + len(classes) // 20)
    return figure


def gradcam_grid(
    overlays: np.ndarray,
    labels: Sequence[int],
    predictions: Sequence[int],
    classes: Sequence[str],
    layer: str,
) -> Figure:
    """Grad-CAM overlays (N, H, W, 3) in [0, 1], titled true -> predicted; green titles
    for correct, red for wrong predictions."""
    columns = min(8, len(overlays))
    rows = -(-len(overlays) // columns)
    figure = Figure(figsize=(1.7 * columns, 1.9 * rows + 0.4), layout="constrained")
    axes = np.atleast_1d(figure.subplots(rows, columns)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, overlay, truth, predicted in zip(axes, overlays, labels, predictions, strict=False):
        ax.imshow(overlay)
        ax.set_title(
            f"{classes[truth]}\n-> {classes[predicted]}",
            fontsize=7,
            color="green" if truth == predicted else "red",
        )
    figure.suptitle(f"Grad-CAM of the predicted class at {layer}", fontsize=9)
    return figure


def parameter_distributions(named: Sequence[tuple[str, np.ndarray]]) -> Figure:
    """A box plot (whiskers at the 1st and 99th percentiles) of each weight tensor's values,
    one row per layer in model order."""
    figure = Figure(figsize=(9, max(3.0, 0.22 * len(named) + 1.2)), layout="constrained")
    ax = figure.subplots()
    ax.boxplot(
        [values for _, values in named],
        orientation="horizontal",
        whis=(1, 99),
        showfliers=False,
        widths=0.6,
    )
    ax.set_yticks(range(1, len(named) + 1), [name for name, _ in named], fontsize=6)
    ax.invert_yaxis()
    ax.axvline(0, color="grey", linewidth=0.5)
    ax.set(
        xlabel="weight value",
        title="weight distribution per layer (box: quartiles; whiskers: 1st-99th percentile)",
    )
    return figure


def accuracy_scatter(rows: Sequence[dict[str, Any]], x: str, label: str) -> Figure:
    """Best validation accuracy of each run against its ``x`` column (log scale), one
    marker per run, named in the legend below."""
    figure = Figure(figsize=(7, 5.5), layout="constrained")
    ax = figure.subplots()
    for index, row in enumerate(rows):
        if row.get(x) and row.get("best_val") is not None:
            ax.scatter(
                row[x],
                100 * row["best_val"],
                s=40,
                color=f"C{index % 10}",
                marker="os^Dv"[(index // 10) % 5],
                label=row["run"],
            )
    ax.set_xscale("log")
    ax.set(xlabel=label, ylabel="best validation accuracy (%)", title=f"accuracy vs {label}")
    figure.legend(loc="outside lower center", fontsize=7, ncols=2)
    return figure
