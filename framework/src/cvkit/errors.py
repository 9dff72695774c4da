"""Errors that mean bad input or a stopped run: the CLI prints them one problem per line and
exits with their ``exit_code`` (2 for bad input, 3 for a NaN loss, 130 for Ctrl-C, 143 for
SIGTERM).

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
    """The training loss or a weight became NaN or infinite; training stopped (exit 3)
    without saving the broken state."""

    exit_code = 3


class RunInterrupted(CvkitError):
    """Ctrl-C (exit 130) or SIGTERM (exit 143) stopped a run; the message says whether
    last.pt was saved and how to resume."""

    def __init__(self, message: str, exit_code: int = 130) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def __reduce__(self) -> tuple[type, tuple[str, int]]:  # from a worker process, intact
        return type(self), (str(self), self.exit_code)


class StorageError(CvkitError):
    """A file cvkit writes could not be written (full disk, permissions); the previous
    version of the file, if any, is kept."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (sent by SLURM, Kubernetes, ``timeout`` before SIGKILL), raised and handled
    like Ctrl-C: a run saves its last consistent state and exits with 143."""

    exit_code = 143


def short_reason(error: BaseException, limit: int = 160) -> str:
    """``Type: message`` of ``error``: its first line, at most ``limit`` characters, for
    one-line messages about files that other libraries failed to read."""
    lines = str(error).strip().splitlines()
    text = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
    return text if len(text) <= limit else f"{text[: limit - 3]}..."
