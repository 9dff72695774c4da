"""cvkit report: every panel is written, and each figure shows the run's own numbers."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from torch import nn

from cvkit import evaluation_batches, restore
from cvkit_report import figures
from cvkit_report.model_panels import collect_outputs, weight_tensors
from cvkit_report.page import ReportSettings, Section, _gradcam, build_report
from cvkit_report.runs import read_run

PANELS = (
    "training-curves",
    "confusion-matrix-val",
    "confusion-matrix-test",
    "per-class-scores-val",
    "per-class-scores-test",
    "roc-pr-curves-val",
    "reliability-diagram-val",
    "tsne-features-val",
    "gradcam-val",
    "parameter-distributions",
)


@pytest.fixture(scope="module")
def report(tiny_runs, registry, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    page = build_report(
        [read_run(tiny_runs["base"])], out, ReportSettings(tsne_sample=12), registry
    )
    return page


def test_the_page_shows_every_panel_as_png_and_svg(report) -> None:
    text = report.read_text()
    for stem in PANELS:
        assert (report.parent / f"{stem}.png").stat().st_size > 1000, stem
        assert (report.parent / f"{stem}.svg").read_text().lstrip().startswith("<?xml"), stem
        assert f'<img src="{stem}.png"' in text, stem
    assert "Architecture summary" in text and "features.0" in text
    assert "http://" not in text and "https://" not in text  # nothing fetched: opens offline


def test_the_roc_table_holds_the_models_own_aucs(report, tiny_runs, registry) -> None:
    from sklearn.metrics import roc_auc_score

    trained = restore(tiny_runs["base"], registry)
    outputs = collect_outputs(trained.model, evaluation_batches(trained, "val", registry=registry))
    probs = torch.from_numpy(outputs.logits).softmax(1).numpy()
    text = report.read_text()
    for k, name in enumerate(trained.classes):
        truth = outputs.labels == k
        if truth.any() and not truth.all():
            expected = roc_auc_score(truth, probs[:, k])
            assert re.search(rf"<td>{name}</td><td>{expected:.4f}</td>", text), name


def test_the_confusion_matrix_and_class_scores_are_eval_jsons(tiny_runs) -> None:
    evaluation = json.loads((tiny_runs["base"] / "eval.json").read_text())
    test = evaluation["test"]
    figure = figures.confusion_matrices(test["confusion_matrix"], test["classes"], "test")
    counts, normalised = (ax.images[0].get_array() for ax in figure.axes[:2])
    matrix = np.array(test["confusion_matrix"])
    assert np.array_equal(counts, matrix)
    assert np.allclose(normalised, matrix / matrix.sum(1, keepdims=True))
    bars = figures.per_class_scores(test["per_class"], "test").axes[0].containers
    for container, metric in zip(bars, ("precision", "recall", "f1"), strict=True):
        heights = [patch.get_height() for patch in container]
        assert heights == [test["per_class"][c][metric] for c in test["classes"]]


def test_the_curves_are_metrics_jsonl(tiny_runs) -> None:
    run = read_run(tiny_runs["base"])
    lines = [json.loads(t) for t in (tiny_runs["base"] / "metrics.jsonl").read_text().splitlines()]
    loss_ax = figures.training_curves(run).axes[0]
    train_line, val_line = loss_ax.get_lines()[:2]
    assert list(train_line.get_ydata()) == [line["train/loss"] for line in lines]
    assert list(val_line.get_ydata()) == [line["val/loss"] for line in lines]


def test_a_multi_stage_run_marks_where_each_stage_ended(tiny_runs) -> None:
    run = read_run(tiny_runs["staged"])
    assert [e["stage"] for e in run.epochs] == ["first", "first", "second"]
    assert run.stage_ends == [("first", 2, 2 * 5)]
    acc_ax = figures.training_curves(run).axes[1]
    dashed = [line for line in acc_ax.get_lines() if line.get_linestyle() == "--"]
    assert [line.get_xdata()[0] for line in dashed] == [2.5]


def test_the_reliability_diagram_shows_eval_jsons_calibration(tiny_runs, registry) -> None:
    evaluation = json.loads((tiny_runs["base"] / "eval.json").read_text())
    calibration = evaluation["calibration"]
    trained = restore(tiny_runs["base"], registry)
    outputs = collect_outputs(trained.model, evaluation_batches(trained, "val", registry=registry))
    logits = torch.from_numpy(outputs.logits)
    before, after = logits.softmax(1), (logits / calibration["temperature"]).softmax(1)
    eces = (calibration["val"]["ece_before"], calibration["val"]["ece_after"])
    figure = figures.reliability_diagram(
        before.numpy(), after.numpy(), outputs.labels, eces, calibration["temperature"], "val"
    )
    bins = figures.reliability_bins(before.numpy(), outputs.labels, 15)
    assert bins["count"].sum() == len(outputs.labels) == 16
    bars = [p.get_height() for p in figure.axes[0].containers[0]]
    assert bars == list(bins["accuracy"][bins["count"] > 0])
    assert f"ECE {100 * eces[0]:.2f}%" in figure.axes[0].get_title()


def test_tsne_and_weights_show_every_sampled_image_and_layer(tiny_runs, registry) -> None:
    trained = restore(tiny_runs["base"], registry)
    named = weight_tensors(trained.model)
    assert [name for name, _ in named] == ["features.0", "features.4", "classifier"]
    assert [len(values) for _, values in named] == [8 * 3 * 9, 16 * 8 * 9, 4 * 16]
    figure = figures.parameter_distributions(named)
    assert len(figure.axes[0].get_yticklabels()) == len(named)
    embedded = np.random.default_rng(0).normal(size=(12, 2))
    labels = np.arange(12) % 4
    scatter = figures.tsne_scatter(embedded, labels, trained.classes).axes[0]
    assert sum(len(c.get_offsets()) for c in scatter.collections) == 12


def test_a_model_without_spatial_feature_maps_skips_gradcam_with_a_note() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
    images, labels = torch.rand(6, 3, 4, 4), torch.tensor([0, 1, 0, 1, 0, 1])
    outputs = collect_outputs(model, [(images, labels)])
    assert outputs.features.shape == (6, 48)  # the input of the output layer
    section = Section("x")
    _gradcam(section, model, [(images, labels)], outputs, ["a", "b"], "", None, ReportSettings())  # type: ignore[arg-type]
    assert section.notes == ["Grad-CAM skipped: the model has no spatial feature map"]
    assert section.figures == []


def test_several_runs_get_the_comparison(tiny_runs, registry, tmp_path) -> None:
    runs = [read_run(tiny_runs[name]) for name in ("base", "fast")]
    page = build_report(runs, tmp_path, ReportSettings(model_panels=False), registry)
    text = page.read_text()
    for stem in (
        "overlay-curves",
        "accuracy-vs-params",
        "accuracy-vs-flops",
        "tiny-base-training-curves",
        "tiny-fast-confusion-matrix-val",
    ):
        assert (tmp_path / f"{stem}.png").is_file() and f"{stem}.png" in text, stem
    assert "<th>optimizer.lr</th>" in text and "<th>experiment.seed</th>" in text


def test_cvkit_report_writes_into_the_run_and_refuses_a_file(tiny_runs, run_cli, tmp_path) -> None:
    result = run_cli("report", str(tiny_runs["fast"]), "--no-model", "--dpi", "60")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"report: {tiny_runs['fast'] / 'report' / 'index.html'}"
    taken = tmp_path / "file"
    taken.write_text("keep")
    result = run_cli("report", str(tiny_runs["fast"]), "--out", str(taken))
    assert result.exit_code == 2 and "is a file" in result.stderr
    assert taken.read_text() == "keep"
    result = run_cli("report", str(tmp_path / "nothing"))
    assert result.exit_code == 2 and "no such run directory" in result.stderr
