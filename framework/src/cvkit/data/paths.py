"""Where cvkit keeps downloaded datasets and caches."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

ENV_HOME = "CVKIT_HOME"


def cvkit_home() -> Path:
    """``$CVKIT_HOME``, else the user's cache directory for cvkit (``~/.cache/cvkit`` on Linux)."""
    return Path(os.environ.get(ENV_HOME) or platformdirs.user_cache_dir("cvkit"))


def dataset_dir(name: str) -> Path:
    """Default download/search directory of dataset ``name``."""
    return cvkit_home() / "datasets" / name
