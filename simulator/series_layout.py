"""A run's timeseries read as a cube: replications x lines x months.

The timeseries table has one row per replication, line and month end, and a
run writes it replication by replication (ascending), each replication's
lines in the scenario's order (then ``total``), each line's months in order
(``runner.frames``). Charts and the workbook reduce a column over the
replications, month by month and line by line: read as a cube, a reshape of
the column, that costs one pass over it instead of a sort, a pivot or a
comparison of text per row (on a 2,000-replication run, seconds per report).

:meth:`SeriesLayout.of` checks that a table is laid out as a run writes it;
a table in any other order (filtered, concatenated, sorted otherwise) is
read through a permutation that puts it in that order, so the cube is right
either way. A table that is not one row per replication, line and month
has no cube (ValueError).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class SeriesLayout:
    """Where each replication, line and month of a timeseries table is."""

    replications: np.ndarray   # ids, in the cube's order
    lines: tuple[str, ...]     # in the cube's order: the table's order of first appearance
    dates: np.ndarray          # month ends, ascending (the table's ``date`` values)
    order: np.ndarray | None   # the table's rows in cube order; None: as they are

    @classmethod
    def of(cls, timeseries: pd.DataFrame) -> SeriesLayout:
        return cls.of_columns(timeseries["replication"].to_numpy(),
                              timeseries["line"].to_numpy(), timeseries["date"].to_numpy())

    @classmethod
    def of_columns(cls, replication: np.ndarray, line: np.ndarray,
                   date: np.ndarray) -> SeriesLayout:
        """The layout of a table given by its ``replication``, ``line`` and ``date`` columns
        (read alone from a run folder's file: ``Results.layout``)."""
        return _as_written(replication, line, date) or _sorted(replication, line, date)

    @property
    def shape(self) -> tuple[int, int, int]:
        return len(self.replications), len(self.lines), len(self.dates)

    def cube(self, values) -> np.ndarray:
        """``values`` (a column of the table, or an array aligned with its rows) as a cube."""
        values = np.asarray(values)
        if self.order is not None:
            values = values[self.order]
        return values.reshape(self.shape)

    def line(self, values, name: str) -> np.ndarray:
        """Replications x months of ``values`` (a column of the table) for line ``name``."""
        return self.of_line(self.cube(values), name)

    def of_line(self, cube: np.ndarray, name: str) -> np.ndarray:
        """Replications x months (and what further axes ``cube`` has) of line ``name``."""
        return cube[:, self.lines.index(name)]


def _as_written(replication: np.ndarray, line: np.ndarray,
                date: np.ndarray) -> SeriesLayout | None:
    """The layout of a table in the order a run writes it, or None if it is not in it."""
    rows = len(date)
    if rows == 0:
        return None
    # The first month that is not after the one before, the first row of another
    # replication (argmax: the first True, without listing every one).
    going_back = date[1:] <= date[:-1]
    months = int(np.argmax(going_back)) + 1 if going_back.any() else rows
    other = replication != replication[0]
    per_replication = int(np.argmax(other)) if other.any() else rows
    if per_replication % months or rows % per_replication:
        return None
    line_first = line[:per_replication:months]
    lines = tuple(line_first)
    replications = replication[::per_replication]
    # Compared through reshaped views: no copy of a column the size of the table.
    as_written = (len(set(lines)) == len(lines)
                  and bool(np.all(replications[1:] > replications[:-1]))
                  and bool((replication.reshape(-1, per_replication)
                            == replications[:, None]).all())
                  and bool((date.reshape(-1, months) == date[:months]).all())
                  and bool((line.reshape(-1, len(lines), months)
                            == line_first[None, :, None]).all()))
    return SeriesLayout(replications, lines, date[:months], None) if as_written else None


def _sorted(replication: np.ndarray, line: np.ndarray, date: np.ndarray) -> SeriesLayout:
    """The layout of a table in another order: replications and dates sorted, lines as
    they first appear."""
    replication_codes, replications = pd.factorize(replication, sort=True)
    line_codes, lines = pd.factorize(line)
    date_codes, dates = pd.factorize(date, sort=True)
    shape = (len(replications), len(lines), len(dates))
    keys = (replication_codes * shape[1] + line_codes) * shape[2] + date_codes
    order = np.argsort(keys, kind="stable")
    if len(keys) != np.prod(shape) or not np.array_equal(keys[order], np.arange(len(keys))):
        raise ValueError("the timeseries is not one row per replication, line and month")
    return SeriesLayout(np.asarray(replications), tuple(lines), np.asarray(dates), order)
