"""The ``fesr-sim`` command's entry point.

Ctrl-C ends the command quietly (exit code 130) at any moment, including
while it is still importing its libraries, which takes the first second
or so: a user who changes their mind sees one line, not a traceback.
Commands that write files say themselves what they left on disk.
"""

from __future__ import annotations

import sys

INTERRUPTED = 130   # 128 + SIGINT, what shells report for a program stopped by Ctrl-C


def main() -> None:
    try:
        from .cli import main as command

        command()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(INTERRUPTED)
