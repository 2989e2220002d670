"""Statistical checks of the model; tolerances follow from the sample size.

Each tolerance is Z standard errors of the estimator under the model's own
assumptions, with Z = 4.5 (a false alarm about once in 150,000 runs).
"""

from __future__ import annotations

import math
from unittest.mock import patch

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.ledger import LineLedger
from simulator.runner import run_replication

Z = 4.5


def test_number_of_applications_matches_the_poisson_rate(make_scenario):
    per_month, months, reps = 2.5, 12, 200
    scenario = make_scenario({"lines": {"A": {
        "desk_opens": "2020-01-01", "desk_closes": "2021-01-01",
        "applications": {"per_month": per_month}}}})
    counts = [run_replication(scenario, i).series["A"]["applications"][-1] for i in range(reps)]
    expected = per_month * months * reps
    # The total over replications is Poisson(expected): its sd is sqrt(expected).
    assert abs(sum(counts) - expected) <= Z * math.sqrt(expected)
    # And the per-replication variance equals the mean (Poisson), within its own error.
    mean = np.mean(counts)
    assert abs(np.var(counts, ddof=1) - mean) <= Z * mean * math.sqrt(2 / (reps - 1)) + Z


def _bullet_fund(make_scenario, default_rate: float, recovery_rate: float):
    # Many identical-risk bullet loans: the whole principal is outstanding from
    # completion to the last instalment L = 36 months later, so P(default) =
    # 1 - (1 - d)^(L/12) exactly, and a default loses principal x (1 - recovery).
    return make_scenario({
        "fund": {"endowment": 500_000_000},
        "lines": {"A": {
            "allocation": 500_000_000, "desk_opens": "2020-01-01",
            "desk_closes": "2021-01-01",
            "applications": {"per_month": 10.0,
                             "cost": {"dist": "uniform", "low": 20_000, "high": 400_000}},
            "instrument": {"term_months": 36, "grace_months": 0, "method": "bullet"},
            "disbursement": {"implementation_months": 0},
            "risk": {"default_rate": default_rate, "recovery_rate": recovery_rate,
                     "recovery_lag_months": 0},
        }}})


def test_default_frequency_matches_the_annual_rate(make_scenario):
    default_rate = 0.1
    scenario = _bullet_fund(make_scenario, default_rate, 0.0)
    statuses = np.concatenate([run_replication(scenario, i).loans["status"] for i in range(40)])
    n = len(statuses)
    p = 1 - (1 - default_rate) ** 3
    observed = np.count_nonzero(statuses == "defaulted") / n
    assert set(statuses) <= {"defaulted", "repaid"}
    assert abs(observed - p) <= Z * math.sqrt(p * (1 - p) / n)


def test_expected_losses_equal_exposure_times_pd_times_lgd(make_scenario):
    default_rate, recovery = 0.08, 0.3
    scenario = _bullet_fund(make_scenario, default_rate, recovery)
    principals, losses = [], 0
    for i in range(40):
        tables = run_replication(scenario, i)
        principals.append(tables.loans["public_loan"])
        losses += tables.kpis["losses_eur"] * 100
    principals = np.concatenate(principals).astype(float)
    p = 1 - (1 - default_rate) ** 3
    lgd = 1 - recovery
    expected = principals.sum() * p * lgd
    sd = math.sqrt((principals ** 2).sum() * lgd ** 2 * p * (1 - p))
    # Rounding of recoveries to the cent adds at most half a cent per loan.
    assert abs(losses - expected) <= Z * sd + 0.5 * len(principals)


money_share = st.floats(0.0, 1.0)


@st.composite
def small_scenarios(draw):
    frequency = draw(st.sampled_from(["monthly", "quarterly", "semiannual", "annual"]))
    period = {"monthly": 1, "quarterly": 3, "semiannual": 6, "annual": 12}[frequency]
    coverage = draw(st.floats(0.3, 1.0))
    grant = draw(st.floats(0.0, 1.0 - coverage))
    signing_share = draw(st.sampled_from([1.0, 0.5, 0.3, 0.0]))
    tranches = [{"share": signing_share, "at": "signing"}] if signing_share else []
    if signing_share < 1.0:
        tranches.append({"share": round(1.0 - signing_share, 10), "at": "completion"})
    allocation_a = draw(st.integers(100_000, 900_000))
    line = lambda allocation, when_dry: {  # noqa: E731
        "allocation": allocation, "when_dry": when_dry,
        "max_wait_months": draw(st.integers(1, 24)),
        "applications": {"per_month": draw(st.floats(0.0, 3.0)),
                         "cost": {"dist": "lognormal", "median": 150_000, "sigma": 0.8},
                         "admission_rate": draw(money_share),
                         "evaluation_months": draw(st.floats(0.0, 3.0))},
        "instrument": {"coverage": coverage, "public_loan_share": draw(money_share),
                       "public_rate": draw(st.sampled_from([0.0, 0.01, 0.05])),
                       "grant_share": grant, "frequency": frequency,
                       "term_months": period * draw(st.integers(1, 12)),
                       "grace_months": period * draw(st.integers(0, 3)),
                       "method": draw(st.sampled_from(["french", "italian", "bullet"]))},
        "disbursement": {"tranches": tranches, "signing_months": draw(st.floats(0, 3)),
                         "implementation_months": draw(st.floats(0, 18)),
                         "grant_paid_at": draw(st.sampled_from(["signing", "completion"]))},
        "risk": {"failure_rate": draw(st.floats(0, 0.5)),
                 "default_rate": draw(st.floats(0, 0.5)),
                 "recovery_rate": draw(money_share),
                 "recovery_lag_months": draw(st.integers(0, 24)),
                 "prepayment_rate": draw(st.floats(0, 0.3))},
    }
    changes = {
        "scenario": {"horizon_months": draw(st.integers(12, 72))},
        "fund": {"treasury_rate": draw(st.sampled_from([0.0, 0.02, -0.01])),
                 "payments": {"phased": draw(st.booleans()),
                              "first_share": draw(st.floats(0.05, 1.0)),
                              "next_share": draw(st.floats(0.05, 0.5))},
                 "funding": {"shares": {"EU": 0.5, "State": 0.35, "Region": 0.15},
                             "switches": [{"date": "2020-11-27", "shares": {"FSC": 1.0}}]},
                 "revolving_until": draw(st.sampled_from(["2021-06-30", "2030-01-01"])),
                 "fees": {"paid_from_fund": draw(st.booleans()),
                          "base_rate": draw(st.floats(0, 0.02)),
                          "performance_rate": draw(st.floats(0, 0.02)),
                          "grant_rate": draw(st.floats(0, 0.02)),
                          "grant_cap": draw(st.floats(0, 0.1)),
                          "cap": draw(st.floats(0, 0.1))},
                 "reallocations": [{"date": "2020-09-01", "from": "A", "to": "B",
                                    "amount": draw(st.sampled_from(["all_uncommitted",
                                                                    50_000]))}]},
        "lines": {"A": line(allocation_a, draw(st.sampled_from(["reject", "waiting_list"]))),
                  "B": {**line(1_000_000 - allocation_a, "waiting_list"),
                        "min_cost": 10_000, "max_cost": 500_000}},
    }
    return changes, draw(st.integers(0, 10_000))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(small_scenarios())
def test_random_scenarios_never_break_an_invariant(make_scenario, case):
    changes, replication = case
    scenario = make_scenario(changes)
    tables = run_replication(scenario, replication, check=True)  # raises on any violation
    # The vectorised month closing gives exactly the month-by-month loop's numbers.
    with patch.object(LineLedger, "_try_vectorised", lambda self, month: False):
        looped = run_replication(scenario, replication, check=True)
    for line, series in tables.series.items():
        for name, values in series.items():
            assert np.array_equal(values, looped.series[line][name]), (line, name)
    total = tables.series["total"]
    # Money is neither created nor lost: the total identity holds on the last month too.
    assert total["contribution_paid_in"][-1] <= 100_000_000
    assert total["cash"][-1] + total["legacy"][-1] == (
        total["contribution_paid_in"][-1] - total["loans_disbursed"][-1] - total["grants_paid"][-1]
        - total["fees_paid"][-1] + total["grants_recovered"][-1]
        + total["principal_repaid"][-1] + total["interest_received"][-1]
        + total["recoveries"][-1] + total["treasury_interest"][-1])


@pytest.mark.slow
def test_batch_engine_arrivals_are_poisson_over_200000_replications(make_scenario):
    """The batch engine's applications, to a fraction of a per cent: with money for all
    of them and every one admitted, the projects financed by a replication are its
    arrivals in the desk's 12 months, Poisson(per_month x 12)."""
    from simulator.batch import unsupported
    from simulator.decide import run_kpis

    per_month, months, reps = 0.25, 12, 200_000   # 3 a replication: 5 % have none
    scenario = make_scenario({"fund": {"endowment": 500_000_000}, "lines": {"A": {
        "allocation": 500_000_000, "desk_opens": "2020-01-01", "desk_closes": "2021-01-01",
        "applications": {"per_month": per_month}}}})
    assert unsupported(scenario) is None   # the batch engine runs it
    counts = run_kpis(scenario, list(range(reps)), 7)["projects_financed_A"].to_numpy()
    expected = per_month * months
    # The total is Poisson(expected x reps): sd sqrt(expected x reps).
    assert abs(counts.sum() - expected * reps) <= Z * math.sqrt(expected * reps)
    # Poisson: the variance equals the mean, within the sample variance's own error.
    assert abs(np.var(counts, ddof=1) - counts.mean()) <= \
        Z * counts.mean() * math.sqrt(2 / (reps - 1)) + Z
    # And the share of replications with no project is exp(-expected), within its error.
    none = np.exp(-expected)
    assert abs(np.mean(counts == 0) - none) <= Z * math.sqrt(none * (1 - none) / reps) + 1 / reps
