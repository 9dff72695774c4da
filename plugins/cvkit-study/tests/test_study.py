"""cvkit study: the study file and command line, a 2-variant x 3-seed study of a tiny recipe
in parallel, its statistics against closed forms of Student's t (3 seeds), resuming after a kill,
submitit's local executor, failed runs."""

from __future__ import annotations

import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cvkit import CvkitError
from cvkit.testing import TINY_RECIPE, cvkit_with_faults, fault_callbacks, stopped_and_continued
from cvkit_study.spec import parse_seeds, read_study_file, split_values


def cvkit(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cvkit", *args], capture_output=True, text=True, cwd=cwd, timeout=600
    )


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_RECIPE.format(runs=(tmp_path / "runs").as_posix()))
    return path


def test_seeds_and_values_parse_as_written() -> None:
    assert parse_seeds("0-2,5") == (0, 1, 2, 5)
    assert parse_seeds([3, 1]) == (3, 1)
    with pytest.raises(CvkitError, match="repeat"):
        parse_seeds("0-2,1")
    with pytest.raises(CvkitError, match="counts down"):
        parse_seeds("4-0")
    assert split_values('none,{ name = "se", reduction = 4 },"a,b"') == [
        "none",
        '{ name = "se", reduction = 4 }',
        '"a,b"',
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[study]\nseeds = '0-1'\n", "study.recipe: expected the path"),
        ('[study]\nrecipe = "tiny.toml"\n', r"expected \[\[variants\]\]"),
        (
            '[study]\nrecipe = "tiny.toml"\nbaseline = "c"\n[[variants]]\nname = "a"\n',
            "study.baseline: 'c' is not a variant",
        ),
        (
            '[study]\nrecipe = "tiny.toml"\nrepeats = 3\n[[variants]]\nname = "a"\n',
            "unknown keys repeats",
        ),
        ('[study]\nrecipe = "tiny.toml"\n[[variants]]\nname = "a/b"\n', "expected a folder name"),
    ],
)
def test_a_bad_study_file_names_the_file_and_key(tmp_path, text, message) -> None:
    path = tmp_path / "study.toml"
    path.write_text(text)
    with pytest.raises(CvkitError, match=message):
        read_study_file(path)


# Student's t with 2 degrees of freedom (3 seeds) has a closed form, so the study's scipy
# calls are checked against arithmetic that shares nothing with them:
# CDF F(t) = 1/2 + t / (2 sqrt(2 + t^2)), hence quantile t(p) = u sqrt(2 / (1 - u^2)) with
# u = 2p - 1, and the two-sided p-value of t is 1 - |t| / sqrt(2 + t^2).
T_975_DF2 = 0.95 * math.sqrt(2 / (1 - 0.95**2))  # 4.3026527297, as tables give


def summary_df2(values: list[float]) -> tuple[float, float, tuple[float, float]]:
    """Mean, sample sd and 95% t interval of 3 values, by hand."""
    assert len(values) == 3
    mean, sd = statistics.fmean(values), statistics.stdev(values)
    half = T_975_DF2 * sd / math.sqrt(3)
    return mean, sd, (mean - half, mean + half)


def paired_df2(a: list[float], b: list[float]) -> tuple[float, tuple[float, float]]:
    """Two-sided p-value and 95% interval of the paired t-test of 3 pairs, by hand."""
    differences = [x - y for x, y in zip(a, b, strict=True)]
    mean, (low, high) = statistics.fmean(differences), summary_df2(differences)[2]
    t = mean / (statistics.stdev(differences) / math.sqrt(3))
    return 1 - abs(t) / math.sqrt(2 + t * t), (low, high)


def test_the_closed_forms_are_student_s_t_with_two_degrees_of_freedom() -> None:
    """The reference itself, at known points: t(0.975; 2) = 4.3027, and a t of 4.3027
    has p = 0.05; t = 1 has p = 1 - 1/sqrt(3) = 0.4226."""
    assert math.sqrt(1.805 / 0.0975) == pytest.approx(
        T_975_DF2, rel=1e-12
    )  # t^2 = 0.9025 (2 + t^2)
    assert pytest.approx(4.3026527297, rel=1e-10) == T_975_DF2  # tables
    assert 1 - T_975_DF2 / math.sqrt(2 + T_975_DF2**2) == pytest.approx(0.05)
    assert 1 - 1 / math.sqrt(3) == pytest.approx(0.42264973, rel=1e-7)


def test_a_parallel_study_runs_every_variant_and_seed_and_its_statistics_agree_by_hand(
    tmp_path, tiny
) -> None:
    out = tmp_path / "study"
    done = cvkit(
        "study", str(tiny), "--vary", "optimizer.lr=0.05,0.2", "--seeds", "0-2",
        "--set", "experiment.epochs=2", "--set", "experiment.device=mps",
        "--workers", "2", "--threads", "1", "--devices", "cpu,cpu", "--output", str(out),
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    study = json.loads((out / "study.json").read_text())
    assert [v["name"] for v in study["variants"]] == ["0.05", "0.2"]
    accuracy: dict[str, dict[int, float]] = {}
    pids = set()
    for variant in ("0.05", "0.2"):
        for seed in range(3):
            run = out / variant / f"seed-{seed}"
            evaluation = json.loads((run / "eval.json").read_text())
            assert evaluation["seed"] == seed
            accuracy.setdefault(variant, {})[seed] = evaluation["val"]["top1"]
            pids.add((run / ".lock").read_text().split()[2])
            assert json.loads((run / "env.json").read_text())["device"] == "cpu"  # --devices
    assert len(pids) == 2 and str(os.getpid()) not in pids  # two worker processes ran them
    for variant, by_seed in accuracy.items():
        metrics = study["statistics"][variant]["metrics"]["val_acc"]
        mean, std, (low, high) = summary_df2(list(by_seed.values()))
        assert metrics["n"] == 3
        assert metrics["mean"] == pytest.approx(mean) and metrics["std"] == pytest.approx(std)
        if std > 0:
            assert metrics["ci95"] == pytest.approx([low, high])
    paired = study["statistics"]["0.2"]["vs_baseline"]["val_acc"]
    a = [accuracy["0.2"][s] for s in range(3)]
    b = [accuracy["0.05"][s] for s in range(3)]
    if np.allclose(np.subtract(a, b), a[0] - b[0]):
        assert paired["p_value"] is None and paired["mean_difference"] == pytest.approx(a[0] - b[0])
    else:
        p_value, (low, high) = paired_df2(a, b)
        assert paired["p_value"] == pytest.approx(p_value)
        assert paired["ci95"] == pytest.approx([low, high])
        assert paired["significant"] == (low > 0 or high < 0)
    assert paired["mean_difference"] == pytest.approx(np.mean(np.subtract(a, b)))
    table = (out / "study.md").read_text()
    assert "| 0.2 | val_acc | 3 |" in table and table in done.stdout
    again = cvkit("study", str(tiny), "--vary", "optimizer.lr=0.05,0.2", "--seeds", "0-2",
                  "--set", "experiment.epochs=2", "--set", "experiment.device=mps",
                  "--output", str(out), cwd=tmp_path)  # fmt: skip
    assert again.returncode == 0 and again.stdout.count("skipped") == 6


def test_cvkit_compare_reads_a_study_directory(tmp_path, tiny) -> None:
    pytest.importorskip("cvkit_report", reason="cvkit compare comes from the cvkit-report plugin")
    out = tmp_path / "study"
    done = cvkit("study", str(tiny), "--vary", "optimizer.lr=0.05,0.2", "--seeds", "0-1",
                 "--set", "experiment.epochs=1", "--output", str(out), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    compared = cvkit("compare", str(out), "--markdown", cwd=tmp_path)
    assert compared.returncode == 0, compared.stderr
    rows = [line.split("|")[1].strip() for line in compared.stdout.splitlines()[2:6]]
    name = json.loads((out / "study.json").read_text())["name"]  # rows keep their study's name
    assert rows == [f"{name}/{lr}/seed-{s}" for lr in ("0.05", "0.2") for s in (0, 1)]
    assert (out / "study.md").read_text() in compared.stdout


def test_a_killed_study_continues_where_it_stopped(tmp_path, tiny) -> None:
    out = tmp_path / "study"
    args = (
        "study", str(tiny), "--vary", "optimizer.lr=0.05,0.1", "--seeds", "0-1",
        "--set", "experiment.epochs=60", "--set", "data.dataset.train_size=192",
        "--workers", "2", "--threads", "1", "--output", str(out),
    )  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "cvkit", *args],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    runs = [out / v / f"seed-{s}" for v in ("0.05", "0.1") for s in (0, 1)]
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:  # kill it while a run is part-way through
            if any(
                (r / "checkpoints" / "last.pt").is_file() and not (r / "eval.json").exists()
                for r in runs
            ):
                break
            time.sleep(0.05)
        else:
            pytest.fail("no run reached its first checkpoint")
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    interrupted = [
        r for r in runs if (r / "recipe.toml").is_file() and not (r / "eval.json").exists()
    ]
    part_way = [r for r in interrupted if (r / "checkpoints" / "last.pt").is_file()]
    finished = {r: (r / "eval.json").read_bytes() for r in runs if (r / "eval.json").exists()}
    assert interrupted
    done = cvkit(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert all((r / "eval.json").is_file() for r in runs)
    for run, content in finished.items():
        assert (run / "eval.json").read_bytes() == content  # not run again
    assert part_way
    for run in part_way:  # continued from its checkpoint, not started again
        assert "resuming" in (run / "run.log").read_text()
    study = json.loads((out / "study.json").read_text())
    assert all(r["status"] == "finished" for r in study["runs"])
    assert {r["action"] for r in study["runs"]} >= {"resumed"}


def test_submitits_local_executor_runs_the_study(tmp_path, tiny) -> None:
    spec = tmp_path / "lr.toml"
    spec.write_text(
        "[study]\n"
        'recipe = "tiny.toml"\n'
        'seeds = "0-1"\n'
        'set = ["experiment.epochs=1"]\n'
        '[[variants]]\nname = "slow"\nset = ["optimizer.lr=0.01"]\n'
        '[[variants]]\nname = "fast"\nset = ["optimizer.lr=0.1"]\n'
    )
    out = tmp_path / "study"
    done = cvkit(
        "study",
        str(spec),
        "--executor",
        "local",
        "--workers",
        "2",
        "--output",
        str(out),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    study = json.loads((out / "study.json").read_text())
    assert [(r["variant"], r["seed"], r["status"]) for r in study["runs"]] == [
        ("slow", 0, "finished"), ("slow", 1, "finished"), ("fast", 0, "finished"), ("fast", 1, "finished"),
    ]  # fmt: skip
    assert list((out / ".submitit").iterdir())  # submitit's job files
    assert study["statistics"]["fast"]["vs_baseline"]["val_acc"]["seeds"] == [0, 1]


def test_a_failed_run_is_reported_the_others_summarised(tmp_path, tiny) -> None:
    out = tmp_path / "study"
    done = cvkit(
        "study", str(tiny), "--vary", "optimizer.lr=0.05,1e6", "--seeds", "0-1",
        "--set", "experiment.epochs=2", "--output", str(out), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1
    assert "2 of 4 runs failed" in done.stderr
    study = json.loads((out / "study.json").read_text())
    failed = [r for r in study["runs"] if r["status"] == "failed"]
    assert {r["variant"] for r in failed} == {"1e6"}
    assert "NonFiniteLossError" in failed[0]["error"]
    assert study["statistics"]["0.05"]["metrics"]["val_acc"]["n"] == 2
    assert "Runs without a result" in (out / "study.md").read_text()


def test_a_folder_holds_one_study_with_any_seeds(tmp_path, tiny) -> None:
    out = tmp_path / "study"

    def study(seeds: str, epochs: int) -> subprocess.CompletedProcess:
        sets = ("--set", f"experiment.epochs={epochs}")
        return cvkit(
            "study", str(tiny), "--seeds", seeds, *sets, "--output", str(out), cwd=tmp_path
        )

    first = study("0", 1)
    assert first.returncode == 0, first.stderr
    more = study("0-1", 1)  # more seeds of the same study
    assert more.returncode == 0, more.stderr
    assert "[1/2] recipe seed 0 skipped" in more.stdout
    other = study("0", 2)
    assert other.returncode == 2 and "holds a different study" in other.stderr


def test_ctrl_c_stops_a_study_at_once_and_the_same_command_continues_it(tmp_path, tiny) -> None:
    """SIGINT in the first run (seed 0 of 0.05, epoch 1, batch 2): exit 130 with one line,
    no run marked failed and no further run started; the same command then resumes that run
    from its last.pt, runs the others and ends with the numbers of an uninterrupted study."""
    marker = tmp_path / "fired"
    interrupt = fault_callbacks("interrupt", epoch=1, batch=2, marker=marker)

    def study(out: Path) -> subprocess.CompletedProcess:
        return cvkit_with_faults(
            "study", str(tiny), "--vary", "optimizer.lr=0.05,0.2", "--seeds", "0-1",
            "--set", "experiment.epochs=2", "--set", interrupt, "--output", str(out), cwd=tmp_path,
        )  # fmt: skip

    whole, cut, again = stopped_and_continued(study, marker, tmp_path)
    assert whole.returncode == 0, whole.stderr
    assert cut.returncode == 130, cut.stderr
    errors = [line for line in cut.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "the same command continues it" in errors[0], cut.stderr
    assert "failed" not in cut.stdout + cut.stderr and "[1/4]" not in cut.stdout
    assert again.returncode == 0, again.stderr
    assert "[1/4] 0.05 seed 0 resumed" in again.stdout and "failed" not in again.stdout

    def numbers(folder: str) -> dict:  # every statistic but the wall times
        statistics = json.loads((tmp_path / folder / "study.json").read_text())["statistics"]
        return {
            (variant, part, metric): value
            for variant, entry in statistics.items()
            for part in ("metrics", "vs_baseline")
            for metric, value in (entry.get(part) or {}).items()
            if not metric.endswith("_seconds")
        }

    cut_numbers = numbers("cut")
    assert ("0.2", "vs_baseline", "val_acc") in cut_numbers and cut_numbers == numbers("whole")


def test_zero_spread_is_undetermined_and_thin_studies_are_flagged() -> None:
    """Accuracies move in steps of 1/N, so every seed may differ by the same amount: no
    interval and never a star (it was a zero-width interval starred significant), the exact
    sign test's p. Fewer than 3 seeds, a missing seed, a variant with no common seeds and
    val metrics of best-val weights get warnings."""
    from cvkit_study.statistics import summarise
    from cvkit_study.summary import markdown, warnings

    def runs(accuracies: dict[int, float]) -> dict[int, dict]:
        return {
            s: {"metrics": {"val_acc": a}, "samples": {"val": 100}} for s, a in accuracies.items()
        }

    results = {
        "base": runs({0: 0.50, 1: 0.60, 2: 0.40}),
        "shift": runs({0: 0.52, 1: 0.62, 2: 0.42}),
        "thin": runs({0: 0.55, 1: 0.58}),
        "alone": runs({2: 0.45}),
    }
    study = {
        "name": "s", "seeds": [0, 1, 2], "baseline": "base", "variants": [],
        "runs": [{"variant": "base", "seed": 0, "status": "finished", "weights": "best (epoch 3)",
                  "samples": {"val": 100}}],
        "statistics": summarise(results, "base"),
    }  # fmt: skip
    shift = study["statistics"]["shift"]["vs_baseline"]["val_acc"]
    assert shift["mean_difference"] == pytest.approx(0.02) and shift["ci95"] is None
    assert shift["p_value"] == pytest.approx(0.25) and shift["significant"] is None
    assert warnings(study) == [
        "thin has 2 seeds: with fewer than 3 its interval is very wide and its test has little power",
        "thin lacks seed 2 (no result)",
        "alone has 1 seed: with fewer than 3 its interval is very wide and its test has little power",
        "alone lacks seed 0, 1 (no result)",
        "alone is not compared with base: fewer than 2 seeds in common",
        'base evaluated the best validation epoch\'s weights (trainer.eval_weights = "best"): '
        "their val metrics are selected on the split they report and so are optimistic; test "
        "metrics, where there are any, are not",
    ]
    table = markdown(study)
    assert (
        "| shift | val_acc | 3 | +2.00 (undetermined: the differences have no spread) | - | - "
        "| 0.250 | 0.250 (0.250) |" in table
    )
    assert "one run's val_acc is measured on 100 images" in table
    assert (
        "| alone | val_acc |" not in table
        and "*" not in table.split("Paired by seed")[1].split("\n", 1)[1]
    )


def test_vary_switches_the_quickstart_s_attention_keeping_what_se_takes(tmp_path) -> None:
    """The example in --help: none drops the recipe's SE reduction 4 (study.md says so), se
    keeps it; nothing else of the recipe changes."""
    quickstart = Path(__file__).resolve().parents[3] / "recipes" / "quickstart.toml"
    out = tmp_path / "study"
    done = cvkit(
        "study", str(quickstart), "--vary", "model.attention.name=none,se", "--seeds", "0",
        "--set", "experiment.epochs=1", "--output", str(out), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    import tomllib

    recorded = {
        v: tomllib.loads((out / v / "seed-0" / "recipe.toml").read_text()) for v in ("none", "se")
    }
    assert recorded["none"]["model"]["attention"] == {"name": "none"}
    assert recorded["se"]["model"]["attention"]["reduction"] == 4  # the recipe's SE, not 16
    study = json.loads((out / "study.json").read_text())
    assert list(study["dropped"]) == ["none"]
    assert (
        "model.attention.reduction (with --set model.attention.name=none): dropped"
        in (out / "study.md").read_text()
    )


def test_several_vary_keys_give_their_cross_product_and_values_may_be_tables() -> None:
    from cvkit_study.spec import from_command_line

    spec = from_command_line(
        Path("r.toml"),
        name="s",
        seeds="0-1",
        vary=['model.attention=none,{ name = "se", reduction = 4 }', "optimizer.lr=0.1,0.2"],
        sets=[],
        baseline=None,
    )
    assert [(v.name, v.sets) for v in spec.variants] == [
        ("none+0.1", ("model.attention=none", "optimizer.lr=0.1")),
        ("none+0.2", ("model.attention=none", "optimizer.lr=0.2")),
        ("name=se_reduction=4+0.1", ('model.attention={ name = "se", reduction = 4 }', "optimizer.lr=0.1")),
        ("name=se_reduction=4+0.2", ('model.attention={ name = "se", reduction = 4 }', "optimizer.lr=0.2")),
    ]  # fmt: skip
    assert spec.baseline == "none+0.1"


def test_a_study_directory_is_summarised_again_and_reported(tmp_path) -> None:
    """The attention study's study.json (its run directories are gone) summarised again with
    --effect 0.94 (the SE-ResNet study's gain): SE's lower ECE, p = 0.007 alone, is 0.022
    after Holm over the study's 6 comparisons of quality metrics (0.052 when the 4 of wall
    times were in the family), starred; SE had 27% power to see +0.94 points, 15 seeds give
    80%. cvkit report draws the table, differences and seeds."""
    import shutil

    source = Path(__file__).resolve().parents[3] / "benchmarks" / "results-cpu-attention-study.json"
    folder = tmp_path / "attention"
    folder.mkdir()
    shutil.copy(source, folder / "study.json")
    done = cvkit("study", str(folder), "--effect", "0.94", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    table = (folder / "study.md").read_text()
    assert "Holm: p adjusted over the study's 6 comparisons of accuracy, loss" in table
    assert "(the 4 of times among themselves)" in table
    row = next(line for line in table.splitlines() if line.startswith("| se | val_ece |"))
    cells = [c.strip() for c in row.split("|")]
    assert cells[4] == "-0.88 [-1.36, -0.39] *" and cells[7] == "0.007" and cells[9] == "0.022"
    accuracy = next(line for line in table.splitlines() if line.startswith("| se | val_acc |"))
    assert "| 27% (0.94) | 15 |" in accuracy
    pytest.importorskip("cvkit_report", reason="cvkit report comes from the cvkit-report plugin")
    report = cvkit("report", str(folder), "--out", str(tmp_path / "report"), cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    page = (tmp_path / "report" / "index.html").read_text()
    assert "<h2>Study attention_speedrun</h2>" in page and "<td>cbam</td>" in page
    assert "se vs none, val_acc: 27% power to detect a difference of 0.94 points" in page
    for stem in ("attention-speedrun-differences", "attention-speedrun-val_acc-seeds"):
        assert (tmp_path / "report" / f"{stem}.png").is_file()
