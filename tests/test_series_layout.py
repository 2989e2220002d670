"""A timeseries read as a cube of replications, lines and months, whatever its row order."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.charts_data import quantile_over_replications
from simulator.series_layout import SeriesLayout

LINES = ("B", "A", "total")   # a scenario's order need not be alphabetical


def _table(replications: list[int], months: int, seed: int = 0) -> pd.DataFrame:
    """Rows as a run writes them: replication by replication, line by line, month by month."""
    dates = [dt.date(2019, 1, 31) + dt.timedelta(days=31 * m) for m in range(months)]
    rows = [(r, line, d) for r in replications for line in LINES for d in dates]
    table = pd.DataFrame(rows, columns=["replication", "line", "date"])
    table["cash"] = np.random.default_rng(seed).integers(-10**9, 10**9, len(table))
    return table


def _pivoted(table: pd.DataFrame, line: str) -> np.ndarray:
    """Replications x months of ``cash`` of ``line``, the slow way."""
    block = table[table["line"] == line]
    return block.pivot(index="replication", columns="date", values="cash").to_numpy()


def test_a_table_as_a_run_writes_it_is_read_without_moving_a_row():
    table = _table([3, 7, 8, 20], months=5)
    layout = SeriesLayout.of(table)
    assert layout.order is None
    assert layout.lines == LINES
    assert list(layout.replications) == [3, 7, 8, 20]
    assert list(layout.dates) == sorted(set(table["date"]))
    for line in LINES:
        assert np.array_equal(layout.line(table["cash"], line), _pivoted(table, line))


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=1, max_value=6), st.integers(min_value=1, max_value=8),
       st.randoms(use_true_random=False))
def test_rows_in_any_order_give_the_same_cube(replications, months, random):
    table = _table(list(range(10, 10 + replications)), months)
    shuffled = table.sample(frac=1.0, random_state=random.randrange(2**32))
    layout = SeriesLayout.of(shuffled)
    for line in LINES:
        assert np.array_equal(layout.line(shuffled["cash"], line), _pivoted(table, line))
    assert list(layout.dates) == sorted(set(table["date"]))


def test_replications_out_of_order_are_not_taken_as_written():
    table = _table([1, 2, 3], months=4)
    swapped = pd.concat([table[table["replication"] == 2], table[table["replication"] == 1],
                         table[table["replication"] == 3]], ignore_index=True)
    layout = SeriesLayout.of(swapped)
    assert list(layout.replications) == [1, 2, 3]
    assert np.array_equal(layout.line(swapped["cash"], "A"), _pivoted(table, "A"))


@pytest.mark.parametrize("broken", ["missing row", "repeated row"])
def test_a_table_that_is_not_one_row_per_replication_line_and_month_has_no_cube(broken):
    table = _table([1, 2], months=3)
    table = table.drop(index=4) if broken == "missing row" else \
        pd.concat([table, table.iloc[[4]]], ignore_index=True)
    with pytest.raises(ValueError, match="one row per replication, line and month"):
        SeriesLayout.of(table)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=-10**7, max_value=10**7), min_size=1, max_size=60),
       st.sampled_from([0.05, 0.25, 0.5, 0.95, 0.999]))
def test_quantiles_over_replications_are_pandas_grouped_quantiles_to_the_bit(cents, q):
    values = np.array(cents) / 100.0
    frame = pd.DataFrame({"group": 0, "v": values})
    expected = frame.groupby("group")["v"].quantile(q).iloc[0]
    assert quantile_over_replications(values[:, None], q)[0] == expected


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=-10**7, max_value=10**7), min_size=1, max_size=60))
def test_medians_over_replications_are_pandas_grouped_medians_to_the_bit(cents):
    # The fees chart takes numpy's median where it took pandas' grouped one.
    values = np.array(cents) / 100.0
    expected = pd.DataFrame({"group": 0, "v": values}).groupby("group")["v"].median().iloc[0]
    assert np.median(values[:, None], axis=0)[0] == expected
