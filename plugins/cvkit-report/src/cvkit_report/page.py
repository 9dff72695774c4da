"""``cvkit report``: the figures of one or several runs written as PNG and SVG files, and an
HTML page that shows them (self-contained: plain HTML and CSS, images beside it, nothing
fetched from the network)."""

from __future__ import annotations

import html
import logging
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
from matplotlib.figure import Figure

from cvkit import (
    CheckpointError,
    Registry,
    evaluation_batches,
    expected_calibration_error,
    forward_flops,
    model_summary,
    restore,
    write_text_atomic,
)
from cvkit_report import figures, study_panels
from cvkit_report.model_panels import (
    architecture_summary,
    collect_outputs,
    gradcam_layer,
    gradcam_overlays,
    weight_tensors,
)
from cvkit_report.runs import RunRecord
from cvkit_report.table import cell, compact, run_row, runs_table

log = logging.getLogger("cvkit")


@attrs.define
class Section:
    """One part of the page: a heading, figures (file stem, caption), tables (HTML) and notes."""

    title: str
    figures: list[tuple[str, str]] = attrs.field(factory=list)
    html: list[str] = attrs.field(factory=list)
    notes: list[str] = attrs.field(factory=list)


@attrs.frozen
class ReportSettings:
    """How the report is made: ``dpi`` of the PNG files; ``tsne_sample`` validation images
    in the t-SNE plot; ``gradcam_images`` images in the Grad-CAM grid (half correct, half
    wrong where there are enough); ``model_panels``: rebuild the models for the panels
    that need them."""

    dpi: int = 100
    tsne_sample: int = 1000
    gradcam_images: int = 16
    model_panels: bool = True
    seed: int = 0


class _Writer:
    """Saves figures as <out>/<stem>.png and .svg and remembers them for the page."""

    def __init__(self, out: Path, dpi: int) -> None:
        self.out, self.dpi = out, dpi
        self.written: list[Path] = []

    def save(self, figure: Figure, stem: str) -> str:
        for suffix, dpi in ((".png", self.dpi), (".svg", None)):
            path = self.out / f"{stem}{suffix}"
            figure.savefig(path, dpi=dpi)
            self.written.append(path)
        figure.clear()
        return stem


def slug(text: str) -> str:
    """``text`` as a file-name part: letters, digits, dots and dashes."""
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-")


def build_report(
    runs: Sequence[RunRecord],
    out: Path,
    settings: ReportSettings,
    registry: Registry,
    studies: Sequence[Path] = (),
) -> Path:
    """Write the figures of ``runs`` (after those of the ``cvkit study`` directories
    ``studies``) and index.html to ``out`` (created); returns the page."""
    out.mkdir(parents=True, exist_ok=True)
    writer = _Writer(out, settings.dpi)
    sections: list[Section] = [_study_section(folder, writer) for folder in studies]
    several = len(runs) > 1
    if several:
        sections.append(_comparison(runs, writer, registry if settings.model_panels else None))
    for run in runs:
        prefix = f"{slug(run.name)}-" if several else ""
        sections.extend(_run_sections(run, prefix, writer, settings, registry))
    page = out / "index.html"
    names = [f"study {folder.name}" for folder in studies] + [run.name for run in runs]
    title = "cvkit report: " + ", ".join(names)
    write_text_atomic(page, _page(title, sections))
    return page


def _study_section(folder: Path, writer: _Writer) -> Section:
    """A study's statistics (see :mod:`cvkit_report.study_panels`)."""
    study = study_panels.read_study(folder)
    name = study["name"]
    section = Section(f"Study {name}")
    columns, rows = study_panels.variant_rows(study)
    section.html.append(
        f"<p>{len(study['seeds'])} seeds x {len(study['variants'])} variants, baseline "
        f"{html.escape(study['baseline'])}: mean ± sample sd [95% confidence interval, "
        "Student's t]; accuracies and ECE in percent, losses in nats.</p>"
    )
    section.html.append(_table(columns, rows))
    section.notes += [f"warning: {line}" for line in study_panels.warnings(folder)]
    section.notes += study_panels.power_lines(study)
    if any(entry.get("vs_baseline") for entry in study["statistics"].values()):
        stem = writer.save(study_panels.forest_plot(study), f"{slug(name)}-differences")
        section.figures.append(
            (
                stem,
                f"Paired differences from {study['baseline']} by seed: mean, 95% t interval "
                "(thick), bootstrap interval (thin), Holm-adjusted p over the study's comparisons",
            )
        )
    for metric in study_panels.shown_metrics(study)[:2]:
        stem = writer.save(study_panels.seed_dots(study, metric), f"{slug(name)}-{metric}-seeds")
        section.figures.append((stem, f"{metric} of every run; a line joins one seed's runs"))
    return section


def _comparison(runs: Sequence[RunRecord], writer: _Writer, registry: Registry | None) -> Section:
    columns, rows = runs_table(runs)
    section = Section("Runs side by side")
    if registry is not None:
        for run, row in zip(runs, rows, strict=True):
            if row["params"] is None and run.evaluation is not None:
                row.update(_model_costs(run, registry))
                section.notes.append(
                    f"{run.name}: parameters and FLOPs counted from its checkpoint "
                    "(its eval.json predates recording them)"
                )
    shown, compacted = compact(columns, rows)  # many differing keys: one changes column
    section.html.append(_table(shown, [[cell(c, row[c]) for c in shown] for row in compacted]))
    section.figures.append(
        (
            writer.save(figures.overlay_curves(runs), "overlay-curves"),
            "Validation accuracy, validation loss and training loss per epoch, every run",
        )
    )
    for key, label in (("params", "trainable parameters"), ("flops", "forward FLOPs per image")):
        if any(row[key] for row in rows):
            stem = writer.save(figures.accuracy_scatter(rows, key, label), f"accuracy-vs-{key}")
            section.figures.append((stem, f"Best validation accuracy against {label}"))
        else:
            section.notes.append(f"accuracy vs {label}: no run recorded {label} in its eval.json")
    return section


def _model_costs(run: RunRecord, registry: Registry) -> dict[str, Any]:
    """Trainable parameters and forward FLOPs per image of the run's trained model."""
    try:
        trained = restore(run.path, registry)
    except CheckpointError:
        return {}
    summary = model_summary(trained.model, trained.checkpoint, trained.recipe, torch.device("cpu"))
    return {"params": summary["trainable_parameters"], "flops": summary["flops_per_image"]}


def _run_sections(
    run: RunRecord, prefix: str, writer: _Writer, settings: ReportSettings, registry: Registry
) -> list[Section]:
    summary = Section(f"{run.name}: training")
    values = run_row(run)
    if values["params"] is None and run.evaluation is not None and settings.model_panels:
        values.update(_model_costs(run, registry))  # an eval.json from before they were recorded
    row = {c: cell(c, v) for c, v in values.items()}
    summary.html.append(_table(list(row), [list(row.values())]))
    if run.epochs:
        stem = writer.save(figures.training_curves(run), f"{prefix}training-curves")
        stages = " (dashed lines: ends of stages)" if run.stage_ends else ""
        summary.figures.append((stem, f"Loss, accuracy, learning rate and throughput{stages}"))
    else:
        summary.notes.append("no metrics.jsonl yet: no curves")
    sections = [summary]
    evaluation = run.evaluation
    if evaluation is None:
        summary.notes.append("the run has no eval.json (unfinished): no evaluation panels")
        return sections
    results = Section(f"{run.name}: evaluation")
    for split in ("val", "test"):
        metrics = evaluation.get(split)
        if not metrics:
            continue
        stem = writer.save(
            figures.confusion_matrices(metrics["confusion_matrix"], metrics["classes"], split),
            f"{prefix}confusion-matrix-{split}",
        )
        results.figures.append(
            (stem, f"Confusion matrix of the {split} split ({metrics['samples']} images)")
        )
        stem = writer.save(
            figures.per_class_scores(metrics["per_class"], split),
            f"{prefix}per-class-scores-{split}",
        )
        results.figures.append((stem, f"Per-class precision, recall and F1 on the {split} split"))
    sections.append(results)
    if settings.model_panels:
        sections.append(_model_sections(run, prefix, writer, settings, registry))
    return sections


def _model_sections(
    run: RunRecord, prefix: str, writer: _Writer, settings: ReportSettings, registry: Registry
) -> Section:
    section = Section(f"{run.name}: the trained model")
    try:
        trained = restore(run.path, registry)
    except CheckpointError as error:
        section.notes.append(f"model panels skipped: {error}")
        return section
    model = trained.model.eval()
    section.notes.append(f"model panels use {trained.path}")
    batches = evaluation_batches(trained, "val", registry=registry)
    if batches is None:
        section.notes.append("model panels skipped: the recipe holds out no validation split")
        return section
    started = time.perf_counter()
    outputs = collect_outputs(model, batches)
    log.info("report: %s validation outputs in %.1f s", run.name, time.perf_counter() - started)
    classes = trained.classes
    first_images = select_images(batches, np.array([0]))
    probs = torch.from_numpy(outputs.logits).softmax(1).numpy()
    _roc(section, probs, outputs.labels, classes, prefix, writer)
    _reliability(section, run, outputs.logits, outputs.labels, prefix, writer)
    _tsne(section, outputs, classes, prefix, writer, settings)
    _gradcam(section, model, batches, outputs, classes, prefix, writer, settings)
    named = weight_tensors(model)
    if named:
        stem = writer.save(
            figures.parameter_distributions(named), f"{prefix}parameter-distributions"
        )
        section.figures.append(
            (stem, "Distribution of the weights of every convolution and linear layer")
        )
    rows = architecture_summary(model, first_images[:1])
    flops = forward_flops(model, first_images[:1])
    section.html.append(
        "<details><summary>Architecture summary: "
        f"{sum(r['parameters'] for r in rows):,} parameters in leaf layers, "
        f"{flops / 1e6:,.1f} MFLOPs per image, input {list(first_images.shape[1:])}</summary>"
        + _table(
            ["layer", "type", "output shape", "parameters"],
            [[r["layer"], r["type"], str(r["output_shape"]), f"{r['parameters']:,}"] for r in rows],
        )
        + "</details>"
    )
    return section


def _roc(
    section: Section,
    probs: np.ndarray,
    labels: np.ndarray,
    classes: list[str],
    prefix: str,
    writer: _Writer,
) -> None:
    figure, scores = figures.roc_and_pr_curves(probs, labels, classes, "val")
    section.figures.append(
        (
            writer.save(figure, f"{prefix}roc-pr-curves-val"),
            "One-vs-rest ROC and precision-recall curves on the validation split",
        )
    )
    section.html.append(
        _table(
            ["class", "ROC AUC", "average precision"],
            [
                [name, f"{s['roc_auc']:.4f}", f"{s['average_precision']:.4f}"]
                for name, s in scores.items()
            ],
        )
    )


def _reliability(
    section: Section,
    run: RunRecord,
    logits: np.ndarray,
    labels: np.ndarray,
    prefix: str,
    writer: _Writer,
) -> None:
    calibration = (run.evaluation or {}).get("calibration")
    if not calibration:
        section.notes.append("reliability diagram skipped: eval.json has no calibration")
        return
    temperature = float(calibration["temperature"])
    tensor, truth = torch.from_numpy(logits), torch.from_numpy(labels)
    before, after = tensor.softmax(1), (tensor / temperature).softmax(1)
    eces = (expected_calibration_error(before, truth), expected_calibration_error(after, truth))
    figure = figures.reliability_diagram(
        before.numpy(), after.numpy(), labels, eces, temperature, "val"
    )
    section.figures.append(
        (
            writer.save(figure, f"{prefix}reliability-diagram-val"),
            "Reliability on the validation split, before and after temperature "
            "scaling (the temperature fitted on it, from eval.json)",
        )
    )


def _tsne(
    section: Section,
    outputs: Any,
    classes: list[str],
    prefix: str,
    writer: _Writer,
    settings: ReportSettings,
) -> None:
    from sklearn.manifold import TSNE

    count = len(outputs.labels)
    if count < 5:
        section.notes.append(f"t-SNE skipped: {count} validation images")
        return
    chosen = np.random.default_rng(settings.seed).permutation(count)[: settings.tsne_sample]
    chosen.sort()
    perplexity = min(30.0, (len(chosen) - 1) / 3)
    embedded = TSNE(
        n_components=2, perplexity=perplexity, init="pca", random_state=settings.seed
    ).fit_transform(outputs.features[chosen])
    figure = figures.tsne_scatter(embedded, outputs.labels[chosen], classes)
    section.figures.append(
        (
            writer.save(figure, f"{prefix}tsne-features-val"),
            f"t-SNE of the input of {outputs.output_layer or 'the output layer'} "
            f"for {len(chosen)} validation images, coloured by true class",
        )
    )


def _gradcam(
    section: Section,
    model: torch.nn.Module,
    batches: Any,
    outputs: Any,
    classes: list[str],
    prefix: str,
    writer: _Writer,
    settings: ReportSettings,
) -> None:
    predicted = outputs.logits.argmax(1)
    rng = np.random.default_rng(settings.seed)

    def sample(indices: np.ndarray, count: int) -> np.ndarray:
        return np.sort(rng.permutation(indices)[:count])

    wrong = sample(np.flatnonzero(predicted != outputs.labels), settings.gradcam_images // 2)
    correct = sample(
        np.flatnonzero(predicted == outputs.labels), settings.gradcam_images - len(wrong)
    )
    chosen = np.concatenate([correct, wrong])
    images = select_images(batches, chosen)
    found = gradcam_layer(model, images[:1])
    if found is None:
        section.notes.append("Grad-CAM skipped: the model has no spatial feature map")
        return
    layer_name, layer = found
    overlays = gradcam_overlays(model, layer, images, predicted[chosen])
    figure = figures.gradcam_grid(
        overlays, outputs.labels[chosen].tolist(), predicted[chosen].tolist(), classes, layer_name
    )
    section.figures.append(
        (
            writer.save(figure, f"{prefix}gradcam-val"),
            f"Grad-CAM of {len(correct)} correctly and {len(wrong)} wrongly "
            "classified validation images, drawn at random (seeded)",
        )
    )


def select_images(batches: Any, indices: np.ndarray) -> torch.Tensor:
    """The images at ``indices`` of the split ``batches`` go over, in that order."""
    wanted = {int(i): n for n, i in enumerate(indices)}
    found: dict[int, torch.Tensor] = {}
    offset = 0
    for images, _ in batches:
        for i in range(images.shape[0]):
            if offset + i in wanted:
                found[wanted[offset + i]] = images[i]
        offset += images.shape[0]
        if len(found) == len(wanted):
            break
    return torch.stack([found[n] for n in range(len(indices))])


def _table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: .9em; color: #555; } figcaption a { margin-left: .5em; }
table { border-collapse: collapse; font-size: .85em; margin: 1em 0; display: block; overflow-x: auto; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
.note { color: #7a4b00; font-size: .9em; } details { margin: 1em 0; }
"""


def _page(title: str, sections: Sequence[Section]) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>Made by <code>cvkit report</code> on {time.strftime('%Y-%m-%d %H:%M')}. Every "
        "figure is also a PNG and an SVG file beside this page.</p>",
    ]
    for section in sections:
        parts.append(f"<section><h2>{html.escape(section.title)}</h2>")
        parts.extend(section.html)
        for note in section.notes:
            parts.append(f'<p class="note">{html.escape(note)}</p>')
        for stem, caption in section.figures:
            parts.append(
                f'<figure><img src="{stem}.png" alt="{html.escape(caption)}">'
                f"<figcaption>{html.escape(caption)}"
                f'<a href="{stem}.png">PNG</a><a href="{stem}.svg">SVG</a></figcaption></figure>'
            )
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
