"""Progress of long tasks (training epochs, evaluation, decoding a dataset): a live tqdm bar
on a terminal, and a log line now and then elsewhere.

On a terminal (stderr is a TTY) :class:`Meter` draws tqdm's bar: percentage, count, elapsed
time, time remaining (hours count past 24: ``27:46:40``) and rate. Elsewhere (nohup, SLURM,
CI) it logs the same fields as one line every ``every_seconds``, so a task shorter than that
says nothing and a long one shows it is alive. In a process other than rank 0 of a
multi-process run it shows nothing. tqdm does the formatting: rates, intervals, widths.
"""

from __future__ import annotations

import logging
import sys
import time
from types import TracebackType
from typing import Any, Literal

from tqdm import tqdm

from cvkit import distributed

log = logging.getLogger("cvkit")

LOG_EVERY_SECONDS = 30.0
"""Seconds between the log lines of a task when stderr is not a terminal (the default)."""

Live = Literal["auto", "always", "never"]
"""A bar 'always', 'never' (log lines instead), or on a terminal only ('auto')."""

_settings: dict[str, Any] = {"live": "auto", "every_seconds": LOG_EVERY_SECONDS}


def configure(live: Live, every_seconds: float) -> None:
    """How meters that are not told otherwise show progress from now on in this process:
    ``live`` (see :data:`Live`), and without a bar a log line every ``every_seconds`` (0:
    none). The progress callback sets its own settings here, so validation and the final
    evaluation follow them."""
    _settings.update(live=live, every_seconds=every_seconds)


_LINE = (
    "{desc}: {percentage:3.0f}% {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"
)
_LINE_WITHOUT_TOTAL = "{desc}: {n_fmt} [{elapsed}, {rate_fmt}{postfix}]"


class Meter:
    """Progress of one task of ``total`` units (None: unknown), counted with :meth:`update`.

    ``live``: whether to draw a bar (:data:`Live`); ``every_seconds``: else, the interval
    of the log lines (0: none); both default (None) to :func:`configure`'s. ``initial``:
    units already done (a resumed epoch).
    Use it as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        description: str,
        total: int | None,
        unit: str = "img",
        *,
        live: Live | None = None,
        every_seconds: float | None = None,
        initial: int = 0,
    ) -> None:
        self.description, self.total, self.unit = description, total, unit
        self.count = initial
        self.postfix = ""
        self.started = self._last_line = time.perf_counter()
        shown = distributed.is_main()
        mode = live or _settings["live"]
        drawn = mode == "always" or (mode == "auto" and sys.stderr.isatty())
        every_seconds = _settings["every_seconds"] if every_seconds is None else every_seconds
        self.bar = (
            tqdm(
                total=total,
                initial=initial,
                desc=description,
                unit=unit,
                file=sys.stderr,
                dynamic_ncols=True,
                mininterval=0.25,
                leave=False,
            )
            if shown and drawn
            else None
        )
        self.every = every_seconds if shown and not drawn and every_seconds > 0 else None
        self._initial = initial

    def shows_soon(self) -> bool:
        """Whether the next update is displayed (a bar, or a log line that is due): the time
        to compute a costly postfix, such as a running loss that waits for the device."""
        if self.bar is not None:
            return True
        return self.every is not None and time.perf_counter() - self._last_line >= self.every

    def update(self, count: int = 1, postfix: str | None = None) -> None:
        """``count`` more units done; ``postfix`` (e.g. the running loss) replaces the last."""
        self.count += count
        if postfix is not None:
            self.postfix = postfix
        if self.bar is not None:
            if postfix is not None:
                self.bar.set_postfix_str(postfix, refresh=False)
            self.bar.update(count)
        elif self.every is not None:
            now = time.perf_counter()
            if now - self._last_line >= self.every:
                self._last_line = now
                log.info("%s", self.line(now))

    def line(self, now: float | None = None) -> str:
        """The progress as one line of text (the log line's)."""
        elapsed = (now if now is not None else time.perf_counter()) - self.started
        done = self.count - self._initial
        return tqdm.format_meter(
            self.count,
            self.total,
            elapsed,
            prefix=self.description,
            unit=self.unit,
            rate=done / elapsed if elapsed > 0 else None,
            postfix=self.postfix or None,
            bar_format=_LINE if self.total else _LINE_WITHOUT_TOTAL,
            initial=self._initial,
        )

    def close(self) -> None:
        """Remove the bar (a finished task's result is reported by its caller)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> Meter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
