"""Settings for every test of this repository (tests/ and plugins/*/tests/)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _installed_plugins_only(clean_plugin_env: None) -> None:
    """Tests start from the installed plugins only, whatever the caller's environment says
    (clean_plugin_env comes from cvkit's pytest plugin, cvkit.testing.fixtures)."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``cuda`` run only where torch sees a GPU (benchmarks/gpu.py runs them)."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
