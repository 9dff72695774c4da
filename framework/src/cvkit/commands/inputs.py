"""Checks of a command's input files that need neither torch nor the plugins, made before
the heavy imports, so that a mistyped path or a TOML error is answered at once (about
0.1 s) rather than after seconds of loading."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cvkit.errors import CheckpointError, CvkitError, DatasetError
from cvkit.recipe.loading import read_with_changes


def readable_recipe(path: Path, overrides: Sequence[str], unset: Sequence[str]) -> None:
    """RecipeError if the recipe at ``path`` is missing, is not valid TOML (with its
    ``extends`` chain), or a ``--set``/``--unset`` does not apply; what it names is
    checked later, against the registry."""
    read_with_changes(path, overrides, unset)


def run_directory(path: Path) -> None:
    """CvkitError unless ``path`` (given to ``--resume``) holds a run's recipe.toml."""
    if not (path / "recipe.toml").is_file():
        raise CvkitError(f"--resume {path}: not a run directory (no recipe.toml)")


def existing_checkpoints(sources: Sequence[Path]) -> None:
    """CheckpointError naming the first of ``sources`` (checkpoints, run directories or
    folders of checkpoints) that does not exist."""
    for source in sources:
        if not source.exists():
            raise CheckpointError(f"checkpoint not found: {source}")


def existing_input(path: Path) -> None:
    """DatasetError unless ``path`` (images to predict) exists."""
    if not path.exists():
        raise DatasetError(f"input not found: {path}")
