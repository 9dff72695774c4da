"""Errors that mean bad input or a stopped run: the CLI prints them one problem per line and
exits with their ``exit_code`` (2 for bad input, 3 for a NaN loss, 130 for Ctrl-C).

Anything else that escapes is a bug and exits with 1 and a traceback.
"""

from __future__ import annotations

from collections.abc import Sequence


class CvkitError(Exception):
    """Bad input from the user (recipe, command line, installed plugins).

    The CLI exits with ``exit_code`` (2 unless a subclass says otherwise).
    """

    exit_code = 2

    def lines(self) -> list[str]:
        """The problems, one line each, as printed by the CLI."""
        return [str(self)]


class UnknownComponentError(CvkitError, LookupError):
    """A kind or kind/name that is not registered."""


class ComponentConflictError(CvkitError):
    """The same kind/name registered by two distributions."""


class ComponentBuildError(CvkitError):
    """A component's factory rejected its parameters (it raised ValueError)."""


class DatasetError(CvkitError):
    """A dataset's files are missing, unreadable or inconsistent; the message says what to do."""


class ProblemsError(CvkitError):
    """One or more problems, one line each."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))

    def lines(self) -> list[str]:
        return list(self.problems)


class RecipeError(ProblemsError):
    """A recipe with problems, each located (file, line, dotted key) where known."""


class PluginError(ProblemsError):
    """Plugins that failed to load or conflict (raised only in strict mode)."""


class CheckpointError(CvkitError):
    """A checkpoint that cannot be read or does not fit the model."""


class NonFiniteLossError(CvkitError):
    """The training loss became NaN or infinite; the last good checkpoint is kept."""

    exit_code = 3


class RunInterrupted(CvkitError):
    """Ctrl-C: last.pt was saved; the message says how to resume."""

    exit_code = 130
