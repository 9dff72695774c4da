"""The GPU acceptance command, benchmarks/gpu.py, in its smoke mode on the CPU (issue 23):
every part runs with tiny sizes and writes its JSON and table, so the command cannot rot
between the sessions that have a GPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT


@pytest.mark.slow
def test_the_gpu_acceptance_command_runs_in_smoke_mode(tmp_path: Path) -> None:
    out, table = tmp_path / "gpu.json", tmp_path / "gpu.md"
    done = subprocess.run(
        [
            sys.executable,
            "benchmarks/gpu.py",
            "--smoke",
            "--out",
            str(out),
            "--table",
            str(table),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    parts = results["parts"]
    assert set(parts) == {
        "cuda_tests",
        "overhead",
        "host_overhead",
        "speedrun",
        "resnet18",
        "lightweight",
    }
    assert "skipped" in parts["cuda_tests"]["summary"] or "passed" in parts["cuda_tests"]["summary"]
    waits = parts["host_overhead"]["host_waits_per_step"]
    assert waits["training_loop"] == {"reads": 0.0, "from_python": 0.0, "data_dependent": 0.0}
    assert parts["speedrun"]["cvkit"][0]["train_seconds"] > 0
    assert all(parts[k]["images_per_second"] > 0 for k in ("resnet18", "lightweight"))
    rows = table.read_text().splitlines()
    assert rows[0] == "| check | result |" and len(rows) == 2 + 1 + 2 + 1 + 1 + 2


def test_airbench_as_published_keeps_its_gpu_settings() -> None:
    """--as-published leaves out exactly the CPU edits: fp16, compile, warm-up, CUDA timer."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from airbench_reference import CPU_EDITS, EDITS, adapt

    source = "".join(old for _, old, _ in EDITS)
    cpu, published = adapt(source), adapt(source, published=True)
    assert "model.compile" not in cpu and "mod.half()" not in cpu
    for why, old, new in EDITS:
        if why in CPU_EDITS:
            assert old in published, why
        else:
            assert new in published, why
