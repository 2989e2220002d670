"""Fees by the rule, phased payments into the fund, funding sources (to the cent)."""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.ledger import split_by_shares
from simulator.runner import run_replication

ONE_ROW = "date,line,eligible_cost,admitted\n2020-03-10,A,100000,true\n"
PIPELINE = {"lines": {"A": {"applications": {"mode": "pipeline", "pipeline": "pipeline.csv"}}}}


def _with(*changes: dict) -> dict:
    from conftest import deep_update

    out: dict = {}
    for change in changes:
        out = deep_update(out, change)
    return out


def _cents(x: Decimal) -> int:
    return int(x.quantize(Decimal(1), ROUND_HALF_UP))


def test_fees_follow_the_rule_month_by_month_and_stop_at_the_caps(make_scenario):
    fees = {"base_rate": 0.012, "performance_rate": 0.03, "cap": 0.02,
            "grant_rate": 0.05, "grant_cap": 0.03, "paid_from_fund": True}
    scenario = make_scenario(_with(PIPELINE, {
        "fund": {"fees": fees},
        "lines": {"A": {"instrument": {"coverage": 0.8, "grant_share": 0.2},
                        "disbursement": {"grant_paid_at": "signing"}}}}), pipeline=ONE_ROW)
    s = run_replication(scenario, 0, check=True).series["A"]
    # Hand computation: contributions 1,000,000 EUR; fund loan 64,000 EUR (80 % of the
    # 80,000 EUR financed) and grant
    # 20,000 EUR paid in March 2020 (month 2).
    resources, loan, grant = Decimal(100_000_000), Decimal(6_400_000), Decimal(2_000_000)
    loan_cap, charged, grant_charged = _cents(resources * Decimal("0.02")), 0, 0
    expected_total, expected_grant = [], []
    for month in range(60):
        loans_to_date = loan if month >= 2 else Decimal(0)
        grants_to_date = grant if month >= 2 else Decimal(0)
        due = _cents(Decimal(0.012 / 12.0) * resources + Decimal(0.03 / 12.0) * loans_to_date)
        charged += max(0, min(due, loan_cap - charged))
        grant_due = _cents(Decimal(0.05 / 12.0) * grants_to_date)
        grant_charged += max(0, min(grant_due, _cents(Decimal("0.03") * grants_to_date)
                                    - grant_charged))
        expected_total.append(charged + grant_charged)
        expected_grant.append(grant_charged)
    assert list(s["fees_charged"]) == expected_total
    assert list(s["fees_grant_charged"]) == expected_grant
    assert s["fees_charged"][-1] - s["fees_grant_charged"][-1] == loan_cap   # loan cap binds
    assert s["fees_grant_charged"][-1] == 60_000                          # 3 % of 20,000 EUR
    assert s["fees_paid"][-1] == s["fees_charged"][-1]


def test_phased_payments_release_tranches_at_the_thresholds(make_scenario):
    rows = "".join(f"2020-0{m}-10,A,100000\n" for m in range(1, 10))
    scenario = make_scenario(_with(PIPELINE, {
        "fund": {"payments": {"phased": True, "first_share": 0.25, "next_share": 0.25,
                              "second_threshold": 0.6, "later_threshold": 0.85}},
        "lines": {"A": {"when_dry": "waiting_list", "max_wait_months": 48}}}),
        pipeline="date,line,eligible_cost\n" + rows)
    tables = run_replication(scenario, 0, check=True)   # commitments never exceed cash
    s = tables.series["A"]
    paid_in = s["contribution_paid_in"]
    assert paid_in[0] == 25_000_000                  # 25 % of 1,000,000 EUR at the start
    tranches = np.flatnonzero(np.diff(paid_in, prepend=0))
    spent = s["loans_disbursed"] + s["grants_paid"] + s["fees_paid"]
    for k in tranches[1:]:
        before = paid_in[k - 1]
        threshold = 0.6 if before == 25_000_000 else 0.85
        assert spent[k] >= threshold * before          # released only once spent enough
        assert spent[k - 1] < threshold * before       # ... and at the first such month
    assert paid_in[-1] <= 100_000_000
    # Nothing is committed beyond what was paid in (plus what came back).
    assert np.all(s["committed_undisbursed"] <= s["cash"])
    assert tables.kpis["contribution_paid_in_eur"] * 100 == paid_in[-1]


def test_funding_sources_split_every_euro_and_switch_at_the_date(make_scenario):
    scenario = make_scenario(_with(PIPELINE, {"fund": {"funding": {
        "shares": {"EU": 0.5, "State": 0.35, "Region": 0.15},
        "switches": [{"date": "2020-06-01", "shares": {"FSC": 1.0}}]}}}),
        pipeline="date,line,eligible_cost\n2020-03-10,A,100000.03\n2020-07-10,A,100000\n")
    tables = run_replication(scenario, 0, check=True)
    s = tables.series["A"]
    paid = s["loans_disbursed"] + s["grants_paid"]
    parts = s["disbursed_eu"] + s["disbursed_state"] + s["disbursed_region"] + \
        s["disbursed_fsc"]
    assert np.array_equal(parts, paid)                 # to the cent, every month
    first = 8_000_002                                  # 80 % of 100,000.03 EUR
    assert s["disbursed_eu"][-1] == 4_000_001
    assert s["disbursed_state"][-1] + s["disbursed_region"][-1] == first - 4_000_001
    assert s["disbursed_fsc"][-1] == 8_000_000         # after the switch: all FSC
    kpis = tables.kpis
    assert kpis["disbursed_fsc_eur"] == 80_000.0
    # Only the programme's sources count for closure.
    assert kpis["absorption_eligible_at_eligibility_end"] == pytest.approx(first / 100_000_000)


@pytest.mark.parametrize("amount", [0, 1, 2, 7, 99, 10_001, 123_456_789])
def test_split_by_shares_is_exact(amount):
    shares = np.array([[0.5], [0.35], [0.15]])
    parts = split_by_shares(np.array([amount]), shares)[:, 0]
    assert parts.sum() == amount
    assert np.all(np.abs(parts - amount * shares[:, 0]) < 1)


def _largest_remainder(amount: int, shares: list[float]) -> list[int]:
    """Month by month, as written in the rule: whole cents, then one more cent to each
    of the largest fractional parts (ties to the first source)."""
    raw = [share * amount for share in shares]
    parts = [math.floor(r) for r in raw]
    ranked = sorted(range(len(shares)), key=lambda i: -(raw[i] - parts[i]))
    for i in ranked[:amount - sum(parts)]:
        parts[i] += 1
    return parts


@settings(max_examples=150, deadline=None)
@given(st.data(), st.integers(1, 4), st.integers(1, 3), st.integers(1, 12))
def test_split_by_shares_follows_the_rule_month_by_month(data, sources, units, months):
    # Shares from small weights: they tie (thirds, quarters), and they switch from one
    # month to the next.
    weights = np.array(data.draw(st.lists(st.lists(st.integers(0, 6), min_size=sources,
                                                   max_size=sources).filter(any),
                                          min_size=months, max_size=months)), dtype=float).T
    shares = weights / weights.sum(axis=0)
    amounts = np.array(data.draw(st.lists(st.lists(
        st.one_of(st.just(0), st.integers(0, 10**9)), min_size=months, max_size=months),
        min_size=units, max_size=units)), dtype=np.int64)
    parts = split_by_shares(amounts, shares)
    assert parts.shape == (units, sources, months) and parts.dtype == np.int64
    for u in range(units):
        for m in range(months):
            expected = _largest_remainder(int(amounts[u, m]), list(shares[:, m]))
            assert parts[u, :, m].tolist() == expected


def test_fees_by_year_chart_adds_up_to_the_fees_kpi():
    from simulator import load_scenario
    from simulator import run as run_scenario
    from simulator.charts import fees_chart

    results = run_scenario(load_scenario("scenarios/grant_heavy.toml"), replications=1,
                           workers=1)
    chart = fees_chart(results, lang="en")
    data = chart.data
    kpis = results.kpis.iloc[0]
    assert (data["loan_part_p50"] + data["grant_part_p50"]).sum() == \
        pytest.approx(kpis["fees_eur"], abs=0.01)
    assert data["grant_part_p50"].sum() == pytest.approx(kpis["fees_grant_part_eur"], abs=0.01)
    assert data["year"].tolist() == list(range(2018, 2036))
    texts = [t.get_text() for t in chart.figure.findobj(lambda a: hasattr(a, "get_text"))]
    assert "Management fees by year" in texts
