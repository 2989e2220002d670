"""The ``fesr-sim`` command: the verbs a fund manager types.

Every verb turns an :class:`~simulator.errors.InputError` into one line per
mistake on standard error and exit code 2, without a traceback and without
writing anything.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path

import click
from rich.console import Console

from . import __version__
from .errors import InputError

err_console = Console(stderr=True, highlight=False, soft_wrap=True)
console = Console(highlight=False)

EXIT_INPUT = 2


def _input_errors_exit(func: Callable) -> Callable:
    @wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except InputError as exc:
            for problem in exc.problems:
                err_console.print(f"[red]error[/red] {problem}", markup=True)
            sys.exit(EXIT_INPUT)
    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fesr-sim")
def main() -> None:
    """Simulate a FESR mixed financial instrument (soft loan + grant) fund."""


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE",
              help="Override a value, e.g. --set lines.A.instrument.grant_share=0.1")
def validate(files: tuple[Path, ...], overrides: tuple[str, ...]) -> None:
    """Check scenario files: print OK or every mistake (exit 0 or 2). Writes nothing."""
    from .scenario import load_scenario

    failed = False
    for path in files:
        try:
            scenario = load_scenario(path, list(overrides))
        except InputError as exc:
            failed = True
            for problem in exc.problems:
                err_console.print(f"[red]error[/red] {problem}", markup=True)
            continue
        console.print(f"OK {path}  [dim]({scenario.name}, hash {scenario.hash()[:12]})[/dim]")
    sys.exit(EXIT_INPUT if failed else 0)
