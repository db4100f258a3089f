"""Progress reporting for long survey jobs (reading and checking big scans).

The contract the readers and the check call is one callable::

    progress(stage: str, done: int, total: int | None) -> None

``stage`` is a short label ("read scan.las", "classify"), ``done`` and
``total`` count points (``total`` is None when unknown), or what the
stage names in brackets at its end ("boundary (cells)": see :func:`stage_unit`). Call it as often as
convenient: the implementations here throttle their own output. Passing
``progress=None`` to a reader or the check means "stay silent".

:func:`open_progress` picks the presentation: a rich progress bar when the
stream is a terminal, otherwise a plain line at most every few seconds (so
CI logs and redirected output stay readable).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Protocol, TextIO

if TYPE_CHECKING:
    from rich.progress import TaskID


class ProgressCallback(Protocol):
    def __call__(self, stage: str, done: int, total: int | None) -> None: ...


def null_progress(stage: str, done: int, total: int | None) -> None:
    """Progress that shows nothing."""


UNITS = ("cells", "profiles", "rows")


def stage_unit(stage: str) -> tuple[str, str]:
    """(label, unit) of a stage: ``"check DSM (cells)"`` counts cells
    (any of UNITS in brackets at the end), any other stage points."""
    for unit in UNITS:
        if stage.endswith(f" ({unit})"):
            return stage[: -len(unit) - 3], unit
    return stage, "points"


class LineProgress:
    """Writes ``stage: done / total points (pct%)`` lines, at most one per
    ``interval_s`` per stage, plus one when a stage reaches its total."""

    def __init__(
        self,
        stream: TextIO,
        *,
        interval_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._interval = interval_s
        self._clock = clock
        self._last: dict[str, float] = {}
        self._finished: set[str] = set()

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        now = self._clock()
        complete = total is not None and done >= total
        if stage in self._finished:
            return
        last = self._last.get(stage)
        if not complete and last is not None and now - last < self._interval:
            return
        if last is None and not complete:
            # first call of a stage: remember the time, print only when it lasts
            self._last[stage] = now
            return
        self._last[stage] = now
        if complete:
            self._finished.add(stage)
        label, unit = stage_unit(stage)
        if total:
            pct = 100.0 * done / total
            msg = f"{label}: {done:,} / {total:,} {unit} ({pct:.0f}%)"
        else:
            msg = f"{label}: {done:,} {unit}"
        print(msg, file=self._stream, flush=True)


class RichProgress:
    """A rich progress bar per stage (for terminals)."""

    def __init__(self, stream: TextIO) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(file=stream),
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        task = self._tasks.get(stage)
        if task is None:
            task = self._progress.add_task(stage, total=total)
            self._tasks[stage] = task
        self._progress.update(task, completed=done, total=total)


@contextmanager
def open_progress(
    stream: TextIO | None = None, *, enabled: bool = True
) -> Iterator[ProgressCallback]:
    """Yield the progress callback suited to ``stream`` (default stderr)."""
    out = stream if stream is not None else sys.stderr
    if not enabled:
        yield null_progress
        return
    if out.isatty():
        with RichProgress(out) as bar:
            yield bar
    else:
        yield LineProgress(out)
