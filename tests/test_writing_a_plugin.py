"""docs/writing-a-plugin.md, followed to the letter: its files are built, installed and used."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT

DOC = ROOT / "docs" / "writing-a-plugin.md"
FILE_BLOCK = re.compile(r"^```\w+ file=(\S+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def doc_files() -> dict[str, str]:
    return {path: body for path, body in FILE_BLOCK.findall(DOC.read_text())}


def doc_commands() -> list[list[str]]:
    import shlex

    return [
        shlex.split(line[2:])
        for line in DOC.read_text().splitlines()
        if line.startswith("$ cvkit ")
    ]


@pytest.mark.slow
def test_the_tutorial_plugin_installs_passes_its_tests_and_works_from_recipes(
    tmp_path: Path,
) -> None:
    files = doc_files()
    assert set(files) == {
        "cvkit-eca/pyproject.toml",
        "cvkit-eca/src/cvkit_eca/eca.py",
        "cvkit-eca/src/cvkit_eca/__init__.py",
        "cvkit-eca/tests/test_eca.py",
    }
    for path, body in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(body)
    site = tmp_path / "site"
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(tmp_path / "cvkit-eca"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr
    env = {**os.environ, "PYTHONPATH": str(site)}

    tests = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(tmp_path / "cvkit-eca" / "tests"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert re.search(r"\b[4-9] passed|\b\d{2,} passed", tests.stdout), tests.stdout  # 3+ cases ran

    commands = doc_commands()
    assert len(commands) == 4
    outputs = []
    for command in commands:
        result = subprocess.run(
            [sys.executable, "-m", *command],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=300,
        )
        assert result.returncode == 0, (command, result.stderr)
        outputs.append(result.stdout)
    assert "eca" in outputs[0] and "cvkit-eca 0.1.0" in outputs[0]
    assert "kernel_size" in outputs[1] and "gamma" in outputs[1]
    assert '[model.attention]\nname = "eca"' in outputs[2]
    assert '"kernel_size": 5' in outputs[3]
