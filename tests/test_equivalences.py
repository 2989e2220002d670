"""Shortcuts taken for speed give exactly the numbers of the straightforward way."""

from __future__ import annotations

import datetime as dt
from unittest.mock import patch

import numpy as np
from hypothesis import HealthCheck, given, settings
from test_model_stats import small_scenarios

from simulator.model import FundModel, free_cash_at_most
from simulator.runner import run_replication


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(small_scenarios())
def test_skipping_the_close_of_months_that_cannot_pay_for_a_project_changes_nothing(
        make_scenario, case):
    changes, replication = case
    scenario = make_scenario(changes)

    def bound_then_close(ledger, month):
        bound = free_cash_at_most(ledger, month)
        ledger.close_until(month)  # what the model did before every decision
        assert ledger.free <= bound, (ledger.line_id, month)
        return bound

    with patch("simulator.model.free_cash_at_most", bound_then_close):
        eager = run_replication(scenario, replication, check=True)
    lazy = run_replication(scenario, replication, check=True)
    for line, series in lazy.series.items():
        for name, values in series.items():
            assert np.array_equal(values, eager.series[line][name]), (line, name)
    for name, values in lazy.loans.items():
        assert np.array_equal(values, eager.loans[name], equal_nan=values.dtype.kind in "fM"), \
            name


def test_dates_of_many_times_match_date_of_one_at_a_time(make_scenario):
    model = FundModel(make_scenario({"scenario": {"start": "2020-01-17"}}), 0, 1)
    month_starts = np.arange(60) - model.offset  # the exact times where a month begins
    times = np.concatenate([np.random.default_rng(3).uniform(0, 59.99, 5000), month_starts,
                            month_starts + 1e-10, month_starts - 1e-10, np.arange(0, 59, 1 / 30)])
    times = times[(times >= 0) & (times < 60 - model.offset)]
    assert list(model.dates_of(times)) == [model.date_of(t) for t in times.tolist()]
    assert model.month_end_dates([-1, 0, 59, 60]).astype(object).tolist() == [
        None, dt.date(2020, 1, 31), dt.date(2024, 12, 31), None]
