"""The suite collects the same tests however pytest is invoked (issue 24): shared helpers live
in an importable module (tests/helpers.py), not in a conftest.py that another directory's
conftest.py would shadow."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from helpers import ROOT


def collected(*paths: str) -> str:
    """The last line of ``pytest --collect-only -q PATHS`` run from the repository root."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *paths],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result.stdout.strip().splitlines()[-1]


@pytest.mark.slow
def test_every_invocation_collects_the_same_tests_without_errors() -> None:
    summaries = {args: collected(*args) for args in [(), (".",), ("plugins", "tests")]}
    counts = {args: re.match(r"(\d+) tests collected", line) for args, line in summaries.items()}
    assert all(counts.values()), summaries  # "N tests collected in ...", no "errors"
    assert len({match.group(1) for match in counts.values()}) == 1, summaries
