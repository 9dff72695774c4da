"""Settings for every test of this repository (tests/ and plugins/*/tests/)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _installed_plugins_only(clean_plugin_env: None) -> None:
    """Tests start from the installed plugins only, whatever the caller's environment says
    (clean_plugin_env comes from cvkit's pytest plugin, cvkit.testing.fixtures)."""
