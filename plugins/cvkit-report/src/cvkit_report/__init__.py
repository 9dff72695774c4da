"""cvkit plugin: looking at results. ``cvkit report`` (an HTML page of figures for one or
several runs), ``cvkit compare`` (the runs side by side, with what changed between their
recipes) and ``cvkit profile`` (parameters, FLOPs, size, latency, throughput, memory)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from cvkit import CvkitError, cli_registry, hookimpl

__all__ = ["compare_command", "profile_command", "register_commands", "report_command"]


@click.command("report")
@click.argument("runs", nargs=-1, required=True)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder for index.html and the figures (default: RUN/report for one run, "
    "./report for several).",
)
@click.option(
    "--dpi",
    type=click.IntRange(50, 600),
    default=100,
    show_default=True,
    help="Resolution of the PNG files (300 for print).",
)
@click.option(
    "--tsne-sample",
    type=click.IntRange(5),
    default=1000,
    show_default=True,
    help="Validation images in the t-SNE plot.",
)
@click.option(
    "--gradcam-images",
    type=click.IntRange(1, 64),
    default=16,
    show_default=True,
    help="Validation images in the Grad-CAM grid (half of them misclassified).",
)
@click.option(
    "--no-model",
    is_flag=True,
    help="Skip the panels that rebuild the model (ROC, reliability, t-SNE, Grad-CAM, weights).",
)
def report_command(
    runs: tuple[str, ...],
    out: Path | None,
    dpi: int,
    tsne_sample: int,
    gradcam_images: int,
    no_model: bool,
) -> None:
    """Write an HTML report of RUNS (run directories or glob patterns): curves, confusion
    matrices, per-class scores, ROC and precision-recall curves, reliability before and
    after temperature scaling, t-SNE of features, Grad-CAM, weight distributions and an
    architecture summary; for several runs also a table and accuracy-vs-cost plots.
    A `cvkit study` directory adds, first, its statistics: the per-variant table with
    intervals, a forest plot of the paired differences with their Holm-adjusted p, every
    seed as a dot, and the power of each accuracy comparison.
    Every figure is also written as PNG and SVG. Opens offline from disk."""
    from cvkit_report.page import ReportSettings, build_report
    from cvkit_report.runs import find_runs, study_dirs

    studies = study_dirs(runs)
    try:
        found = find_runs(runs)
    except CvkitError:
        if not studies:
            raise
        found = []  # a study summarised from its study.json, its run directories elsewhere
    if out is not None:
        folder = out
    elif len(studies) == 1 and len(runs) == 1:  # one study directory: its report beside it
        folder = studies[0] / "report"
    elif len(found) == 1 and not studies:
        folder = found[0].path / "report"
    else:
        folder = Path("report")
    settings = ReportSettings(
        dpi=dpi, tsne_sample=tsne_sample, gradcam_images=gradcam_images, model_panels=not no_model
    )
    page = build_report(found, folder, settings, cli_registry(), studies)
    click.echo(f"report: {page}")


@click.command("compare")
@click.argument("runs", nargs=-1, required=True)
@click.option(
    "--sort", "sort", metavar="COLUMN", help="Sort by this column (e.g. best_val, test, params)."
)
@click.option("--descending", is_flag=True, help="Sort from the largest value.")
@click.option("--json", "as_format", flag_value="json", help="Print JSON rows.")
@click.option("--csv", "as_format", flag_value="csv", help="Print CSV.")
@click.option("--markdown", "as_format", flag_value="markdown", help="Print a markdown table.")
@click.option(
    "--test",
    type=click.Choice(["mcnemar", "bootstrap"]),
    help="With two runs: test them on the same images from their per-image predictions "
    "(McNemar's exact test, or a paired bootstrap interval of the accuracy difference).",
)
@click.option(
    "--split",
    type=click.Choice(["val", "test"]),
    help="The split --test uses (default: test when both runs have it, else val).",
)
def compare_command(
    runs: tuple[str, ...],
    sort: str | None,
    descending: bool,
    as_format: str | None,
    test: str | None,
    split: str | None,
) -> None:
    """Put RUNS (run directories, folders of runs, or glob patterns) side by side: status,
    seed, parameters, FLOPs, best and last validation accuracy, test accuracy, wall time
    and training images/s, then one column per recipe key whose value differs between
    the runs. A `cvkit study` directory gives its runs (named variant/seed-k) and, below the
    table, its statistics (study.md). With --test and two runs: a paired test of the two
    on the same images (their predictions.npz; the split hashes must agree)."""
    from cvkit_report.runs import find_runs, study_dirs
    from cvkit_report.table import as_csv, as_markdown, as_rich_table, runs_table

    found = find_runs(runs)
    if test is not None:
        from cvkit_report.paired_test import describe, paired_test

        result = paired_test(found, test, split)
        click.echo(json.dumps(result, indent=2) if as_format == "json" else describe(result))
        return
    columns, rows = runs_table(found, sort, descending)
    if as_format == "json":
        click.echo(json.dumps(rows, indent=2))
    elif as_format == "csv":
        click.echo(as_csv(columns, rows), nl=False)
    elif as_format == "markdown":
        click.echo(as_markdown(columns, rows), nl=False)
    else:
        import sys

        from rich.console import Console

        # piped or redirected: as wide as the table needs, not 80 columns
        width = None if sys.stdout.isatty() else 400
        Console(width=width).print(as_rich_table(columns, rows))
    if as_format in (None, "markdown"):
        for folder in study_dirs(runs):
            if (folder / "study.md").is_file():
                click.echo("\n" + (folder / "study.md").read_text(encoding="utf-8"), nl=False)


@click.command("profile")
@click.argument("source", type=click.Path(path_type=Path))
@click.option(
    "--batch",
    "batch_size",
    type=click.IntRange(2),
    default=64,
    show_default=True,
    help="Batch size of the throughput and memory measurements.",
)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1, auto, ...")
@click.option(
    "--repeats",
    type=click.IntRange(1),
    default=100,
    show_default=True,
    help="Timed batch-1 forward passes (throughput: a tenth of it, at least 3).",
)
@click.option(
    "--threads", type=click.IntRange(1), help="torch CPU threads while timing (default: as set)."
)
@click.option(
    "--image-size",
    type=(int, int),
    metavar="H W",
    help="The model's input size (default: what the evaluation augmentations make of the "
    "dataset's images; needed when the recipe's dataset does not know their size before "
    "reading its files).",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a recipe value (repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def profile_command(
    source: Path,
    batch_size: int,
    device: str,
    repeats: int,
    threads: int | None,
    image_size: tuple[int, int] | None,
    overrides: tuple[str, ...],
    as_json: bool,
) -> None:
    """What the model of SOURCE costs: a recipe (its model, untrained) or a run directory or
    checkpoint (the trained model). Parameters, FLOPs per image (forward; forward and
    backward of a training step; torch.utils.flop_counter, a multiply-add = 2 FLOPs),
    weight size in MB, batch-1 latency (median, p10, p90), batch-N inference and training
    images/s, and peak memory, on --device."""
    from cvkit import profile_model

    result = profile_model(
        source,
        overrides=overrides,
        batch_size=batch_size,
        device=device,
        repeats=repeats,
        threads=threads,
        image_size=image_size,
        registry=cli_registry(),
    )
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    params, flops, size = result["parameters"], result["flops_per_image"], result["size_mb"]
    latency, speed, memory = (
        result["latency_ms"],
        result["images_per_second"],
        result["peak_memory_mb"],
    )
    click.echo(
        f"{result['model']} on {result['device']} ({result['threads']} threads), input {result['input_shape']}"
    )
    click.echo(f"parameters: {params['trainable']:,} trainable / {params['total']:,} total")
    click.echo(
        f"FLOPs per image: {flops['forward'] / 1e6:,.1f}M forward, "
        f"{flops['training_step'] / 1e6:,.1f}M training step (forward + backward)"
    )
    saved = (
        f", checkpoint file {result['checkpoint_mb']:.2f} MB" if "checkpoint_mb" in result else ""
    )
    click.echo(
        f"size: {size['fp32']:.2f} MB fp32 weights, {size['saved']:.2f} MB saved state dict{saved}"
    )
    click.echo(
        f"latency, batch 1: median {latency['median']:.2f} ms, p10 {latency['p10']:.2f} ms, "
        f"p90 {latency['p90']:.2f} ms ({latency['repeats']} runs)"
    )
    click.echo(
        f"throughput, batch {result['batch_size']}: {speed['inference']:,.0f} images/s "
        f"inference, {speed['training']:,.0f} images/s training"
    )
    click.echo(
        f"peak memory, batch {result['batch_size']}: {memory['inference']:,.1f} MB inference, "
        f"{memory['training']:,.1f} MB training ({memory['what']})"
    )


@hookimpl
def register_commands(cli: click.Group) -> None:
    for command in (report_command, compare_command, profile_command):
        cli.add_command(command)
