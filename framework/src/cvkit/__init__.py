"""cvkit: plugin-based image-classification experiments in PyTorch.

Plugins implement the registration hooks in :mod:`cvkit.hookspecs`, marked with
:data:`hookimpl`, and are found through the ``cvkit`` entry-point group.
"""

from importlib.metadata import PackageNotFoundError, version

import pluggy

try:
    __version__ = version("cvkit")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

PROJECT_NAME = "cvkit"
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""Marker for a plugin's hook implementations: ``@hookimpl def register_models(register): ...``."""

__all__ = ["PROJECT_NAME", "__version__", "hookimpl"]
