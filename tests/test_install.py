"""Installing into an existing environment: the distributions build as wheels with their
metadata, typing marker and licence, and the core does not pull scikit-learn or SciPy."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from helpers import ROOT


def _wheel(source: Path, folder: Path, dist: str) -> Path:
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(folder),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    [wheel] = folder.glob(f"{dist}-*.whl")
    return wheel


def _metadata(wheel: Path) -> tuple[set[str], dict[str, list[str]]]:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        [metadata] = [n for n in names if n.endswith(".dist-info/METADATA")]
        message = Parser().parsestr(archive.read(metadata).decode())
    fields: dict[str, list[str]] = {}
    for key, value in message.items():
        fields.setdefault(key, []).append(value)
    return names, fields


@pytest.mark.slow
def test_the_core_and_the_quickstart_plugin_install_as_wheels(tmp_path: Path) -> None:
    core, core_fields = _metadata(_wheel(ROOT / "framework", tmp_path, "cvkit"))
    assert "cvkit/py.typed" in core and any(n.endswith("licenses/LICENSE") for n in core)
    requires = " ".join(core_fields.get("Requires-Dist", []))
    assert "torch" in requires and "tqdm" in requires
    assert "scikit-learn" not in requires and "scipy" not in requires  # only plugins need them
    assert any("onnxruntime" in r and 'extra == "onnx"' in r for r in core_fields["Requires-Dist"])
    digits, fields = _metadata(_wheel(ROOT / "plugins" / "cvkit-digits", tmp_path, "cvkit_digits"))
    assert "cvkit_digits/py.typed" in digits
    [entry_points] = [n for n in digits if n.endswith("entry_points.txt")]
    with zipfile.ZipFile(next(tmp_path.glob("cvkit_digits-*.whl"))) as archive:  # one wheel
        assert archive.read(entry_points).decode().split() == [
            "[cvkit]",
            "digits",
            "=",
            "cvkit_digits",
        ]
    assert any(r.startswith("scikit-learn") for r in fields["Requires-Dist"])
