"""The ``fesr-sim`` command's entry point.

Ctrl-C ends the command quietly (exit code 130) at any moment, including
while it is still importing its libraries or reading the scenario: a user
who changes their mind sees one line, not a traceback nor click's
"Aborted!" with exit code 1. Commands that write files say themselves what
they left on disk. A termination request (SIGTERM: ``kill``, a batch
system's time limit) or a closed terminal (SIGHUP) stops the command the
same way, cleaning up as for Ctrl-C, with exit code 128 + the signal's
number (143, 129), as shells report them.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import NoReturn

_pressed = False
_stopped_by = signal.SIGINT


def ctrl_c_pressed() -> bool:
    """Whether Ctrl-C was pressed, even if the KeyboardInterrupt it raised got lost.

    A library that catches everything while it is imported or called can
    swallow the KeyboardInterrupt (seen once in 40 runs interrupted in their
    first second): long loops look here too.
    """
    return _pressed


def cores() -> int:
    """The cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def note_more_workers_than_cores(ctx, param, value: int | None) -> int | None:
    """A ``--workers`` option's callback: say once that more processes than cores are
    not faster (each holds its own memory: 64 on 2 cores took 11 GiB for a large fund)."""
    if value is not None and value > cores():
        sys.stderr.write(f"note --workers {value}: this machine has {cores()} cores; more "
                         "processes than cores are not faster, and each holds its own "
                         "memory\n")
    return value


def exit_code() -> int:
    """The exit code of a command stopped by a signal: 128 + its number (130 for Ctrl-C)."""
    return 128 + int(_stopped_by)


def stopped(message: str) -> NoReturn:
    """Say why the command stops and exit with :func:`exit_code`.

    Written even if standard error is gone: when a closed terminal stopped
    the command, writing to it fails, and the exit code must still be 129.
    """
    try:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):   # a terminal that hung up, a closed stream
        pass
    sys.exit(exit_code())


def _on_ctrl_c(signum, frame) -> None:
    global _pressed, _stopped_by
    if _pressed:
        # Already stopping: a second Ctrl-C, or the SIGHUP a closing terminal sends
        # twice, must not cut short the clean-up of the first (it left a hidden
        # half-written folder). A KeyboardInterrupt a library swallowed is caught
        # up with where long loops look at ctrl_c_pressed().
        return
    _pressed = True
    _stopped_by = signum
    raise KeyboardInterrupt


_fork_hook = False   # registered once per process (it cannot be taken back)
_STOPS = (signal.SIGTERM, *((signal.SIGHUP,) if hasattr(signal, "SIGHUP") else ()))


def _stops_end_child_processes() -> None:
    """In a forked child (a helper), a termination request ends it at once, as before the
    command's handlers: the parent cleans up."""
    for stop in _STOPS:
        if signal.getsignal(stop) is _on_ctrl_c:
            signal.signal(stop, signal.SIG_DFL)


def main() -> None:
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:   # not ignored
        signal.signal(signal.SIGINT, _on_ctrl_c)
    for stop in _STOPS:
        # Not where the command was started to ignore them (nohup ignores SIGHUP).
        if signal.getsignal(stop) is signal.SIG_DFL:
            signal.signal(stop, _on_ctrl_c)
    global _fork_hook
    if not _fork_hook and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_stops_end_child_processes)
        _fork_hook = True
    try:
        import click

        from .cli import main as command

        try:
            # Not standalone: click hands Ctrl-C (as Abort) and its own errors back here.
            code = command.main(standalone_mode=False)
        except click.exceptions.Abort:
            raise KeyboardInterrupt from None
        except click.ClickException as error:
            error.show()
            sys.exit(error.exit_code)
        sys.exit(code if isinstance(code, int) else 0)
    except KeyboardInterrupt:
        stopped("interrupted")
