"""The ``fesr-sim`` command's entry point.

Ctrl-C ends the command quietly (exit code 130) at any moment, including
while it is still importing its libraries or reading the scenario: a user
who changes their mind sees one line, not a traceback nor click's
"Aborted!" with exit code 1. Commands that write files say themselves what
they left on disk.
"""

from __future__ import annotations

import signal
import sys

INTERRUPTED = 130   # 128 + SIGINT, what shells report for a program stopped by Ctrl-C
_pressed = False


def ctrl_c_pressed() -> bool:
    """Whether Ctrl-C was pressed, even if the KeyboardInterrupt it raised got lost.

    A library that catches everything while it is imported or called can
    swallow the KeyboardInterrupt (seen once in 40 runs interrupted in their
    first second): long loops look here too.
    """
    return _pressed


def _on_ctrl_c(signum, frame) -> None:
    global _pressed
    _pressed = True
    raise KeyboardInterrupt


def main() -> None:
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:   # not ignored
        signal.signal(signal.SIGINT, _on_ctrl_c)
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
        sys.stderr.write("interrupted\n")
        sys.exit(INTERRUPTED)
