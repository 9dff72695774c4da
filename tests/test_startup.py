"""A quick command line (issue 24): `--help`, `--version`, `list`, `info` and errors about
missing files or bad TOML answer without importing torch or any plugin (the catalog,
cvkit.commands.catalog, holds what they show), and the catalog follows every change of
the installed plugins. How long each takes is benchmark (f), benchmarks/startup.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import make_distribution, run_cvkit

PROBE = """
import sys
from cvkit.cli import main
sys.argv = ["cvkit", *sys.argv[1:]]
try:
    main()
except SystemExit as stop:
    code = stop.code
heavy = sorted(m for m in sys.modules if m == "torch" or m.startswith("cvkit_"))
print(json.dumps({"code": code, "heavy": heavy}), file=sys.stderr)
"""


def probe(*args: str, env: dict[str, str], cwd: Path) -> dict:
    """Exit code of ``cvkit ARGS`` in a fresh interpreter and the heavy modules it imported."""
    result = subprocess.run(
        [sys.executable, "-c", "import json\n" + PROBE, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=cwd,
        timeout=300,
    )
    return json.loads(result.stderr.strip().splitlines()[-1])


@pytest.mark.slow
def test_with_a_warm_catalog_nothing_heavy_is_imported(tmp_path) -> None:
    env = {"CVKIT_HOME": str(tmp_path / "home")}
    (tmp_path / "bad.toml").write_text("[experiment\nname = 1\n")
    assert run_cvkit("list", env=env).returncode == 0  # builds the catalog
    expected = {
        ("--version",): 0,
        ("--help",): 0,
        ("run", "--help"): 0,
        ("report", "--help"): 0,
        ("list",): 0,
        ("list", "model", "res"): 0,
        ("info", "attention/se"): 0,
        ("run", "missing.toml"): 2,
        ("run", "bad.toml"): 2,
        ("check", "bad.toml"): 2,
        ("run", "--resume", "missing-run"): 2,
        ("eval", "missing-run"): 2,
        ("predict", "missing-run", "images", "--out", "p.csv"): 2,
        ("export", "missing-run", "--format", "onnx", "--out", "m.onnx"): 2,
    }
    found = {args: probe(*args, env=env, cwd=tmp_path) for args in expected}
    assert {args: r["code"] for args, r in found.items()} == expected
    assert {args: r["heavy"] for args, r in found.items() if r["heavy"]} == {}


def registering(*names: str) -> str:
    return (
        "from torch import nn\nfrom cvkit import hookimpl\n\n\n"
        "class Gate(nn.Module):\n    def __init__(self, channels: int) -> None:\n"
        "        super().__init__()\n\n    def forward(self, x):\n        return x\n\n\n"
        "@hookimpl\ndef register_attention(register):\n"
        + "".join(f'    register("{name}", Gate)\n' for name in names)
    )


def attention_names(env: dict[str, str]) -> list[str]:
    result = run_cvkit("list", "attention", "--json", env=env)
    assert result.returncode == 0, result.stderr
    return [c["name"] for c in json.loads(result.stdout)]


@pytest.mark.slow
def test_the_catalog_follows_installs_edits_and_removals_and_survives_damage(tmp_path) -> None:
    site = tmp_path / "site"
    env = {"CVKIT_HOME": str(tmp_path / "home"), "PYTHONPATH": str(site)}
    site.mkdir()
    assert "gate" not in attention_names(env)
    make_distribution(
        site, "cvkit-gate", "1.0", {"gate": "cvkit_gate"}, {"cvkit_gate.py": registering("gate")}
    )
    assert "gate" in attention_names(env)  # installed
    module = site / "cvkit_gate.py"
    module.write_text(registering("gate", "gate2"))  # edited in place (an editable install)
    stat = module.stat()
    os.utime(module, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert {"gate", "gate2"} <= set(attention_names(env))
    for catalog in (tmp_path / "home" / "catalog").glob("*.json"):
        catalog.write_text("{ damaged")
    assert {"gate", "gate2"} <= set(attention_names(env))  # rebuilt, not an error
    for info in site.glob("*.dist-info"):  # uninstalled
        for file in info.iterdir():
            file.unlink()
        info.rmdir()
    module.unlink()
    assert not {"gate", "gate2"} & set(attention_names(env))
