"""Errors a user can act on: each names the file, the field and what is wrong.

A scenario or pipeline file may have many mistakes; the loader collects all
of them into one :class:`InputError`, so that a user fixes a file in one
pass instead of one error per run.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One mistake: ``file: field: message``."""

    file: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.message}" if self.field else \
            f"{self.file}: {self.message}"


class InputError(Exception):
    """One or more problems in the user's input; nothing has been written."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    def __reduce__(self):
        # Raised in a worker process, it travels back pickled: with its problems,
        # not with the joined message as its only argument.
        return type(self), (self.problems,)
