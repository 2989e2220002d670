"""Progress of a command's replications: a bar on a terminal, a short line now and then in logs.

Every verb that runs replications (``run``, ``compare``, ``sweep``,
``solve``) reports them the same way, through :func:`replication_progress`:

* on an interactive terminal, a rich bar that disappears when done: what
  runs (``replicazioni``, ``punto 3/8``...), replications done of the total,
  the rate since the count started (not rich's estimate over the last
  updates: chunks arrive together), time elapsed and time left at that rate;
* when standard error is not a terminal (a log file, CI), one line at most
  every ``every_s`` seconds with the same figures, and none at all for
  what ends sooner: a log holds what a reader needs to follow a long run,
  not one line per chunk.

The runners call the tracker with the replications done so far
(``progress=``). A comparison's scenarios and a goal search's evaluations
each start a count of their own (:meth:`Tracker.start`); a sweep is one
count whose points are its parts (:meth:`Tracker.part`), the points found
done left out (:meth:`Tracker.skip`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import time
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from .money import format_number, format_pct

__all__ = ["Tracker", "replication_progress"]

# Seconds between two lines in a log.
LOG_EVERY_S = 15.0


def _rate(task: Task) -> float | None:
    """Replications per second since the count started.

    Not rich's estimate over the last updates: replications arrive a chunk
    at a time, and a sweep's next point may get two chunks finished a few
    microseconds apart (started while the previous point ended), which that
    estimate reads as millions a second.
    """
    # Once done, the time it took (the bar stays up a moment while files are written).
    elapsed = task.finished_time if task.finished_time is not None else task.elapsed
    if not task.completed or not elapsed:
        return None
    return task.completed / elapsed


def rate_text(rate: float) -> str:
    """Replications per second in Italian number format: ``1.234 repl./s``, ``2,5 repl./s``,
    ``0,25 repl./s`` (a large fund's replication takes seconds: never ``0 repl./s``)."""
    digits = 0 if rate >= 10 else 1 if rate >= 1 else 2
    return f"{format_number(rate, 'it', digits)} repl./s"


def _clock_time(seconds: float) -> str:
    """``0:22:34``, as the bar shows times."""
    return str(dt.timedelta(seconds=math.ceil(seconds)))


class RateColumn(ProgressColumn):
    """Replications per second (:func:`rate_text`)."""

    def render(self, task: Task) -> Text:
        rate = _rate(task)
        return Text("" if rate is None else rate_text(rate), style="progress.data.speed")


class TimeLeftColumn(ProgressColumn):
    """Time left at the rate so far (``-:--:--`` before the first replications are done)."""

    def render(self, task: Task) -> Text:
        rate = _rate(task)
        if task.finished:
            left = "0:00:00"
        elif rate is None or task.total is None:
            left = "-:--:--"
        else:
            left = _clock_time((task.total - task.completed) / rate)
        return Text(left, style="progress.remaining")


def bar_columns() -> tuple[ProgressColumn, ...]:
    return (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
            TimeElapsedColumn(), TimeLeftColumn())


class Tracker:
    """Takes the replications done so far (``tracker(done)``) and shows them.

    ``start(description, total)`` begins a new count (the bar of the previous
    one is removed); a count may run in parts (:meth:`part`, :meth:`skip`).
    """

    def __init__(self, console: Console, bar: Progress | None, every_s: float,
                 clock: Callable[[], float]):
        self.bar = bar   # None: log lines
        self._console, self._every_s, self._clock = console, every_s, clock
        self._task = None
        self._description, self._total = "", 0
        self._offset = self._done = 0   # replications of the parts before; done in all
        self._started = self._last = 0.0

    def start(self, description: str, total: int) -> None:
        """Begin a new count of ``total`` replications."""
        self._description, self._total = description, total
        self._offset = self._done = 0
        self._started = self._last = self._clock()
        if self.bar is not None:
            if self._task is not None:
                self.bar.remove_task(self._task)
            self._task = self.bar.add_task(description, total=total)

    def part(self, description: str) -> None:
        """A new part of the count begins (a sweep's next point): what is reported next
        counts from zero again, on top of what the parts before did."""
        self._offset = self._done
        self._description = description
        if self.bar is not None and self._task is not None:
            self.bar.update(self._task, description=description)

    def skip(self, replications: int) -> None:
        """Replications of the count that need not run (a sweep's point found done)."""
        self._total -= replications
        if self.bar is not None and self._task is not None:
            self.bar.update(self._task, total=self._total)

    def __call__(self, done: int) -> None:
        self._done = self._offset + done
        if self.bar is not None:
            if self._task is not None:
                self.bar.update(self._task, completed=self._done)
            return
        now = self._clock()
        if self._done >= self._total or now - self._last < self._every_s:
            return
        self._last = now
        self._console.print(self.line(self._done, now - self._started), highlight=False)

    def line(self, done: int, elapsed_s: float) -> str:
        """The log line for ``done`` replications after ``elapsed_s`` seconds."""
        rate = done / elapsed_s if elapsed_s > 0 else 0.0
        left = f"ancora ~{_clock_time((self._total - done) / rate)}" if rate \
            else "tempo restante non ancora stimato"
        return (f"{self._description}: {done}/{self._total} "
                f"({format_pct(done / self._total, 'it', 0)}), {rate_text(rate)}, {left}")


def interactive(console: Console) -> bool:
    """Whether ``console`` is a terminal someone watches.

    rich takes ``FORCE_COLOR`` (which some CI services set, for colours in
    their logs) to mean a terminal; a bar redrawn ten times a second is
    noise in a log file, so then it must really be one.
    """
    if not console.is_terminal:
        return False
    if "FORCE_COLOR" not in os.environ:
        return True
    isatty = getattr(console.file, "isatty", None)
    return bool(isatty and isatty())


@contextlib.contextmanager
def replication_progress(console: Console, every_s: float = LOG_EVERY_S,
                         clock: Callable[[], float] = time.monotonic) -> Iterator[Tracker]:
    """A :class:`Tracker` that writes to ``console``: a bar if it is a terminal, else
    log lines (see the module's docstring). ``clock``: seconds, for both."""
    if not interactive(console):
        yield Tracker(console, None, every_s, clock)
        return
    with Progress(*bar_columns(), console=console, transient=True, get_time=clock) as bar:
        yield Tracker(console, bar, every_s, clock)
