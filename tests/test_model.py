"""The fund model on cases with a closed-form answer, to the cent."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pytest

from simulator.instruments import loan_schedule
from simulator.runner import run_replication
from simulator.scenario import date_to_months

ONE_ROW = "date,line,eligible_cost,admitted\n2020-03-10,A,100000,true\n"


def _line(tables, line="A"):
    return tables.series[line]


def _pipeline(changes: dict | None = None) -> dict:
    base = {"lines": {"A": {"applications": {"mode": "pipeline", "pipeline": "pipeline.csv"}}}}
    if changes:
        from conftest import deep_update
        base = deep_update(base, changes)
    return base


def test_one_project_follows_its_schedule_to_the_cent(make_scenario):
    scenario = make_scenario(_pipeline({"lines": {"A": {"instrument": {"public_rate": 0.04}}}}),
                             pipeline=ONE_ROW)
    tables = run_replication(scenario, 0, check=True)
    s = _line(tables)
    # Committed on 10 March 2020 (month 2), paid at signing the same month.
    m0 = 2
    schedule = loan_schedule(8_000_000, 0.04, 24, 6, "quarterly", "french")
    principal = np.zeros(60, dtype=np.int64)
    interest = np.zeros(60, dtype=np.int64)
    principal[schedule.months + m0] = schedule.principal
    interest[schedule.months + m0] = schedule.interest
    expected_disbursed = np.where(np.arange(60) >= m0, 8_000_000, 0)
    assert np.array_equal(s["loans_disbursed"], expected_disbursed)
    assert np.array_equal(s["principal_repaid"], np.cumsum(principal))
    assert np.array_equal(s["interest_received"], np.cumsum(interest))
    expected_cash = 100_000_000 - expected_disbursed + np.cumsum(principal + interest)
    assert np.array_equal(s["cash"], expected_cash)
    assert s["loans_outstanding"][-1] == 0
    assert s["principal_repaid"][-1] == 8_000_000
    loans = tables.loans
    assert list(loans["status"]) == ["repaid"]
    assert loans["interest_paid"][0] == int(schedule.interest.sum())
    assert loans["bank_loan"][0] == 2_000_000


def test_failure_before_completion_calls_the_loan_and_never_pays_the_grant(make_scenario):
    changes = _pipeline({"lines": {"A": {
        "instrument": {"grant_share": 0.1, "coverage": 0.9},
        "disbursement": {"tranches": [{"share": 0.5, "at": "signing"},
                                      {"share": 0.5, "at": "completion"}],
                         "implementation_months": 12, "grant_paid_at": "completion"},
        "risk": {"failure_rate": 1.0, "recovery_rate": 0.5, "recovery_lag_months": 6},
    }}})
    scenario = make_scenario(changes, pipeline=ONE_ROW)
    tables = run_replication(scenario, 0, check=True)
    s = _line(tables)
    public_loan = round(100_000 * 0.9 * 0.8 * 100)  # 72,000 EUR in cents
    first_tranche = public_loan // 2
    assert s["grants_paid"][-1] == 0
    assert s["loans_disbursed"][-1] == first_tranche
    assert s["principal_written_off"][-1] == first_tranche
    assert s["recoveries"][-1] == first_tranche // 2
    assert s["committed_undisbursed"][-1] == 0  # second tranche and grant released
    assert s["cash"][-1] == 100_000_000 - first_tranche + first_tranche // 2
    assert list(tables.loans["status"]) == ["failed"]
    # The recovery comes recovery_lag_months after the write-off.
    written = int(np.flatnonzero(np.diff(s["principal_written_off"], prepend=0))[0])
    recovered = int(np.flatnonzero(np.diff(s["recoveries"], prepend=0))[0])
    assert recovered - written == 6


def test_fund_without_applications_only_earns_treasury_interest(make_scenario):
    scenario = make_scenario({"fund": {"treasury_rate": 0.02}})
    tables = run_replication(scenario, 0, check=True)
    cash = _line(tables)["cash"]
    expected = []
    balance = Decimal(100_000_000)
    for _ in range(60):
        balance += (balance * Decimal("0.02") / 12).quantize(Decimal(1), ROUND_HALF_UP)
        expected.append(int(balance))
    assert list(cash) == expected
    assert _line(tables)["applications"][-1] == 0


def test_negative_treasury_rate_shrinks_idle_cash(make_scenario):
    scenario = make_scenario({"fund": {"treasury_rate": -0.005}})
    cash = _line(run_replication(scenario, 0, check=True))["cash"]
    assert np.all(np.diff(cash) < 0)


FOUR_ROWS = ("date,line,eligible_cost\n2020-01-10,A,100000\n2020-01-20,A,100000\n"
             "2020-02-10,A,100000\n2020-02-20,A,100000\n")


def test_exhausted_line_rejects_later_applications(make_scenario):
    changes = _pipeline({"fund": {"endowment": 250_000},
                         "lines": {"A": {"allocation": 250_000, "when_dry": "reject"}}})
    tables = run_replication(make_scenario(changes, pipeline=FOUR_ROWS), 0, check=True)
    s = _line(tables)
    assert tables.kpis["projects_financed_A"] == 3
    assert s["rejected_no_funds"][-1] == 1
    assert tables.kpis["rejected_no_funds"] == 1
    # The fourth application (20 Feb 2020, month 1) found the line dry.
    assert tables.kpis["desk_exhausted_month"] == pytest.approx(
        date_to_months(dt.date(2020, 1, 1), dt.date(2020, 2, 20)))


def test_waiting_list_is_served_when_repayments_free_enough_cash(make_scenario):
    changes = _pipeline({"fund": {"endowment": 250_000},
                         "lines": {"A": {"allocation": 250_000, "when_dry": "waiting_list",
                                         "max_wait_months": 48}}})
    tables = run_replication(make_scenario(changes, pipeline=FOUR_ROWS), 0, check=True)
    s = _line(tables)
    assert tables.kpis["projects_financed_A"] == 4
    assert s["rejected_no_funds"][-1] == 0
    # Free cash is 10,000 EUR after three commitments; the fourth (80,000 EUR) is
    # committed at the first month end when repayments have brought it to 80,000.
    free_after = 1_000_000 + s["principal_repaid"]
    first_month = int(np.flatnonzero(free_after >= 8_000_000)[0])
    commit = sorted(tables.loans["commitment_date"])[-1]
    assert (commit.year - 2020) * 12 + commit.month - 1 == first_month + 1
    assert s["waiting"][first_month] == 1
    assert s["waiting"][first_month + 1] == 0


def test_waiting_list_entries_expire(make_scenario):
    changes = _pipeline({"fund": {"endowment": 250_000},
                         "lines": {"A": {"allocation": 250_000, "when_dry": "waiting_list",
                                         "max_wait_months": 2}}})
    tables = run_replication(make_scenario(changes, pipeline=FOUR_ROWS), 0, check=True)
    assert tables.kpis["projects_financed_A"] == 3
    assert tables.kpis["rejected_no_funds"] == 1


def test_returns_after_revolving_cutoff_go_to_legacy(make_scenario):
    changes = _pipeline({"fund": {"revolving_until": "2021-06-30"}})
    tables = run_replication(make_scenario(changes, pipeline=ONE_ROW), 0, check=True)
    s = _line(tables)
    cutoff = 17  # June 2021 is month 17 from January 2020
    repaid = np.diff(s["principal_repaid"], prepend=0)
    assert s["legacy"][-1] == int(repaid[cutoff + 1:].sum()) > 0
    assert s["legacy"][cutoff] == 0
    assert np.all(s["cash"][cutoff:] == s["cash"][cutoff])
    assert tables.kpis["legacy_eur"] * 100 == s["legacy"][-1]


def test_reallocation_moves_uncommitted_resources(make_scenario):
    from conftest import deep_update
    line_b = deep_update(BASE_LINE(), {"allocation": 400_000})
    changes = {"lines": {"A": {"allocation": 600_000}, "B": line_b},
               "fund": {"reallocations": [{"date": "2021-01-15", "from": "A", "to": "B",
                                           "amount": "all_uncommitted"}]}}
    tables = run_replication(make_scenario(changes), 0, check=True)
    a, b = tables.series["A"], tables.series["B"]
    assert a["reallocated_out"][-1] == 60_000_000
    assert b["reallocated_in"][-1] == 60_000_000
    assert a["cash"][-1] == 0
    assert b["cash"][-1] == 100_000_000


def BASE_LINE() -> dict:
    from conftest import BASE_TABLES
    return BASE_TABLES["lines"]["A"]


def test_grant_and_bank_share_are_split_as_the_instrument_says(make_scenario):
    changes = _pipeline({"lines": {"A": {"instrument": {
        "coverage": 0.8, "public_loan_share": 0.75, "grant_share": 0.2,
        "grant_base": "eligible_cost", "max_grant": 15_000}}}})
    tables = run_replication(make_scenario(changes, pipeline=ONE_ROW), 0, check=True)
    loans = tables.loans
    assert loans["public_loan"][0] == 6_000_000      # 100,000 x 0.8 x 0.75
    assert loans["bank_loan"][0] == 2_000_000
    assert loans["grant"][0] == 1_500_000            # 20,000 capped at 15,000
    assert tables.series["A"]["grants_paid"][-1] == 1_500_000


def test_graduatoria_funds_the_best_scores_first(make_scenario):
    rows = ("date,line,eligible_cost,score\n2020-01-05,A,100000,10\n2020-01-06,A,100000,90\n"
            "2020-01-07,A,100000,50\n2020-01-08,A,100000,70\n")
    changes = _pipeline({"fund": {"endowment": 250_000},
                         "lines": {"A": {"allocation": 250_000, "procedure": "graduatoria",
                                         "calls": [{"opens": "2020-01-01",
                                                    "closes": "2020-02-01"}]}}})
    tables = run_replication(make_scenario(changes, pipeline=rows), 0, check=True)
    # Three projects of 80,000 EUR fit in 250,000 EUR: scores 90, 70 and 50, not 10.
    assert sorted(tables.loans["project_id"]) == ["A-3", "A-4", "A-5"]
    assert tables.kpis["rejected_no_funds"] == 1
    # Ranked at the call's close (1 Feb 2020), all on the same day.
    assert set(tables.loans["commitment_date"]) == {dt.date(2020, 2, 1)}
