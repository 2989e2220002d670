"""The batch engine gives the SimPy model's tables, bit for bit, and knows what it covers."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from conftest import BASE_TABLES, deep_update
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from test_model_stats import small_scenarios

from simulator import load_scenario
from simulator.batch import (
    ChunkBatch,
    expected_applications,
    simulate_chunk,
    stepped_months,
    unsupported,
)
from simulator.batch_flows import Payouts, early_flows
from simulator.batch_flows import project_flows as flows_over_arrays
from simulator.executors import (
    BATCH_CHUNK_SIZE,
    CHUNK_SIZE,
    LONG_DESK_APPLICATIONS_PER_CHUNK,
    LONG_DESK_CHUNK_SIZE,
    LONG_DESK_MONTHS,
    chunk_size,
)
from simulator.loanbook import (
    FLOW_KINDS,
    Fate,
    Terms,
    hazard_months,
    monthly_hazard_month,
    project_flows,
)
from simulator.model import FundModel
from simulator.parquet_join import encode
from simulator.results import loans_schema
from simulator.runner import run_replication, to_frames

ROOT = Path(__file__).resolve().parent.parent


def simpy_frames(scenario, ids, seed):
    """The tables of the SimPy model, replication by replication."""
    return to_frames([run_replication(scenario, i, seed, check=True) for i in ids], scenario)


def assert_same_tables(scenario, ids, seed=None):
    seed = scenario.scenario.seed if seed is None else seed
    expected = simpy_frames(scenario, ids, seed)
    _assert_tables_equal(simulate_chunk(scenario, ids, seed, check=True), expected)


def _assert_tables_equal(got, expected) -> None:
    for name, want in zip(("timeseries", "loans", "kpis"), expected, strict=True):
        pd.testing.assert_frame_equal(_frame(getattr(got, name)), _frame(want),
                                      check_exact=True, obj=name)
    # Text coded into the same values whichever engine made it: the same file bytes.
    assert encode(got.loans, loans_schema()) == encode(expected[1], loans_schema())


def assert_the_batch_engine_alone_gives_the_simpy_models_tables(scenario, ids, monkeypatch):
    """Assert that the batch engine gives the SimPy model's tables without calling the
    SimPy model (no replication run again); return its tables."""
    expected = simpy_frames(scenario, ids, scenario.scenario.seed)

    def no_simpy(*args, **kwargs):
        raise AssertionError("the SimPy model ran")

    import simulator.runner
    monkeypatch.setattr(simulator.runner, "run_replication", no_simpy)
    got = simulate_chunk(scenario, ids, scenario.scenario.seed, check=True)
    _assert_tables_equal(got, expected)
    return got


def _frame(table) -> pd.DataFrame:
    return table if isinstance(table, pd.DataFrame) else table.to_pandas()


@st.composite
def batch_scenarios(draw):
    """Random two-line scenarios within what the batch engine covers."""
    changes, _ = draw(small_scenarios())
    fund = changes["fund"]
    # Reallocations on a month's first instant (with its tick), inside a month, on the
    # instant a call of line A is ranked (2020-06-01, 2020-06-17); sometimes back again.
    dates = ["2020-09-01", "2020-09-17", "2020-06-01", "2020-06-17", "2021-02-28"]
    fund["reallocations"] = [
        {"date": draw(st.sampled_from(dates)), "from": source, "to": target,
         "amount": draw(st.sampled_from(["all_uncommitted", 50_000, 3_000_000]))}
        for source, target in draw(st.sampled_from([[], [("A", "B")], [("B", "A")],
                                                    [("A", "B"), ("B", "A")]]))]
    changes["scenario"]["start"] = draw(st.sampled_from(
        ["2020-01-01", "2019-03-15", "2018-10-15", "2019-11-30"]))
    if draw(st.booleans()):
        changes["lines"]["A"].update(
            procedure="graduatoria",
            # A call closing on the 1st is ranked on the first instant of a month.
            calls=[{"opens": "2020-02-01", "closes": draw(st.sampled_from(
                       ["2020-06-01", "2020-06-17"]))},
                   {"opens": "2021-01-10", "closes": "2021-04-01"}])
        changes["lines"]["A"]["applications"]["score"] = {
            "dist": "uniform", "low": 0, "high": draw(st.sampled_from([0, 10, 100]))}
    changes["lines"]["B"]["state_aid"] = {
        "regime": draw(st.sampled_from(["auto", "de_minimis_2013", "gber", "none"])),
        "prior_aid": draw(st.sampled_from([0, 150_000, {"dist": "uniform", "low": 0,
                                                          "high": 250_000}]))}
    # The engine steps every line together and prices their first stage together:
    # line B gets its own instalment period and tranches.
    period = draw(st.sampled_from([1, 3, 6, 12]))
    changes["lines"]["B"]["instrument"].update(
        frequency={1: "monthly", 3: "quarterly", 6: "semiannual", 12: "annual"}[period],
        term_months=period * draw(st.integers(1, 12)),
        grace_months=period * draw(st.integers(0, 3)))
    changes["lines"]["B"]["disbursement"]["tranches"] = draw(st.sampled_from([
        [{"share": 1.0, "at": "completion"}],
        [{"share": 0.3, "at": "signing"}, {"share": 0.7, "at": "completion"}],
        [{"share": 0.2, "at": "signing"}, {"share": 0.3, "at": "completion"},
         {"share": 0.5, "at": "completion"}]]))
    return changes, draw(st.integers(0, 10_000))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(batch_scenarios())
def test_the_batch_engine_gives_the_simpy_models_tables_on_random_scenarios(make_scenario,
                                                                            case):
    changes, first = case
    scenario = make_scenario(changes)
    assert unsupported(scenario) is None
    assert_same_tables(scenario, [first, first + 1, first + 7])


PIPELINE_HEADER = ("date,line,eligible_cost,id,admitted,evaluation_months,"
                   "implementation_months,score,beneficiary")


@st.composite
def pipeline_scenarios(draw, across_lines: bool = False):
    """Random batch scenarios whose two lines replay one pipeline file, every optional
    column used or left empty; beneficiaries with several projects, each on one line
    (``across_lines``: on both)."""
    changes, first = draw(batch_scenarios())
    start = dt.date.fromisoformat(changes["scenario"]["start"])
    last_day = 28 * changes["scenario"]["horizon_months"] - 1   # inside the horizon
    rows = [PIPELINE_HEADER]
    for number in range(draw(st.integers(1, 30))):
        line = draw(st.sampled_from("AB"))
        day = start + dt.timedelta(days=draw(st.integers(0, last_day)))
        if draw(st.integers(0, 9)) == 0:   # a month's first day (with a whole-month
            day = max(day.replace(day=1), start)   # evaluation: a month's first instant)
        cells = [day.isoformat(), line, f"{draw(st.integers(1_000_000, 50_000_000)) / 100:.2f}",
                 draw(st.sampled_from(["", f"row{number}"])),
                 draw(st.sampled_from(["", "true", "false"])),
                 draw(st.sampled_from(["", "0", "1.5", "4"])),
                 draw(st.sampled_from(["", "0", "6", "12.5"])),
                 draw(st.sampled_from(["", "1", "5"])),
                 draw(st.sampled_from(["", "coop1", "coop2"] if across_lines else
                                      ["", f"{line}-coop1", f"{line}-coop2"]))]
        rows.append(",".join(cells))
    for line in ("A", "B"):
        changes["lines"][line]["applications"].update(mode="pipeline", pipeline="pipeline.csv")
    return changes, "\n".join(rows) + "\n", first


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(pipeline_scenarios())
def test_pipelines_on_the_batch_engine_give_the_simpy_models_tables(make_scenario, case):
    changes, rows, first = case
    scenario = make_scenario(changes, pipeline=rows)
    reason = unsupported(scenario)
    if reason is not None:
        # Decisions on the very instant of a tick or a reallocation: the SimPy model's.
        assert "decides on the instant of" in reason
        assert chunk_size(scenario) == CHUNK_SIZE
        return
    assert chunk_size(scenario) >= BATCH_CHUNK_SIZE
    assert_same_tables(scenario, [first, first + 1, first + 7])


def _on_the_first(make_scenario, rows: list[str], changes: dict):
    return make_scenario(deep_update({"scenario": {"start": "2020-01-01"}}, changes),
                         pipeline="\n".join([PIPELINE_HEADER, *rows]) + "\n")


def test_a_pipeline_decision_on_the_instant_of_a_reallocation_runs_on_the_simpy_model(
        make_scenario):
    # The SimPy model decides on 1 March 2021 before the money arrives (its desk
    # scheduled that decision when the run started); the batch engine would not.
    line_b = deep_update(BASE_TABLES["lines"]["A"], {"allocation": 500_000})
    scenario = _on_the_first(make_scenario, ["2020-01-01,A,400000,p0,,,,,",
                                             "2021-03-01,A,400000,p1,,,,,"], {
        "fund": {"reallocations": [{"date": "2021-03-01", "from": "B", "to": "A",
                                    "amount": "all_uncommitted"}]},
        "lines": {"A": {"allocation": 500_000,
                        "applications": {"mode": "pipeline", "pipeline": "pipeline.csv"}},
                  "B": line_b}})
    assert unsupported(scenario) == "line A decides on the instant of the reallocation of " \
        "2021-03-01"
    loans = run_replication(scenario, 0, 7).loans
    assert list(loans["project_id"]) == ["p0"]


def test_a_pipeline_decision_on_the_instant_of_its_waiting_lists_tick_runs_on_the_simpy_model(
        make_scenario):
    waiting = {"lines": {"A": {"when_dry": "waiting_list", "applications": {
        "mode": "pipeline", "pipeline": "pipeline.csv", "evaluation_months": 1}}}}
    on_the_first = _on_the_first(make_scenario, ["2021-05-01,A,400000,p1,,,,,"], waiting)
    assert unsupported(on_the_first) == "line A decides on the instant of its waiting " \
        "list's monthly tick"
    # The 15th, or a drawn evaluation time, or no waiting list: never on the instant.
    assert unsupported(_on_the_first(make_scenario, ["2021-05-15,A,400000,p1,,,,,"],
                                     waiting)) is None
    drawn = deep_update(waiting, {"lines": {"A": {"applications": {"evaluation_months": {
        "dist": "uniform", "low": 0, "high": 2}}}}})
    assert unsupported(_on_the_first(make_scenario, ["2021-05-01,A,400000,p1,,,,,"],
                                     drawn)) is None
    rejecting = deep_update(waiting, {"lines": {"A": {"when_dry": "reject"}}})
    assert unsupported(_on_the_first(make_scenario, ["2021-05-01,A,400000,p1,,,,,"],
                                     rejecting)) is None


def test_a_pipeline_gives_its_projects_ids_and_adds_up_each_beneficiarys_aid(make_scenario):
    rows = "\n".join([PIPELINE_HEADER, *(
        f"2020-0{month}-10,A,100000,own-{month},,,,,{name}"
        for month, name in [(1, "coop"), (2, ""), (3, "coop"), (4, "coop")])]) + "\n"
    scenario = make_scenario({"lines": {"A": {
        "applications": {"mode": "pipeline", "pipeline": "pipeline.csv"},
        "instrument": {"coverage": 0.0, "public_loan_share": 0.0, "grant_share": 1.0},
        "disbursement": {"grant_paid_at": "signing"},
        "state_aid": {"prior_aid": {"dist": "uniform", "low": 0, "high": 50_000}}}}},
        pipeline=rows)
    assert unsupported(scenario) is None
    assert_same_tables(scenario, [0, 3])
    loans = simulate_chunk(scenario, [0], 0).loans.to_pandas().set_index("project_id")
    assert list(loans.index) == ["own-1", "own-2", "own-3", "own-4"]
    # A grant paid at signing is its own aid: 100,000 EUR each. The beneficiary's
    # first project's declared aid counts for all of its projects.
    declared = loans.at["own-1", "prior_aid"]
    assert loans.at["own-3", "prior_aid"] == declared + 10_000_000
    assert loans.at["own-4", "prior_aid"] == declared + 20_000_000
    assert loans.at["own-2", "prior_aid"] != declared


def _two_line_pipeline(make_scenario, rows: list[str], changes: dict | None = None):
    line_b = deep_update(BASE_TABLES["lines"]["A"], {
        "allocation": 500_000,
        "applications": {"mode": "pipeline", "pipeline": "pipeline.csv"}})
    return make_scenario(deep_update({"fund": {"endowment": 1_500_000}, "lines": {
        "A": {"applications": {"mode": "pipeline", "pipeline": "pipeline.csv"}},
        "B": line_b}}, changes or {}), pipeline="\n".join([PIPELINE_HEADER, *rows]) + "\n")


def test_a_beneficiary_on_two_lines_adds_up_its_aid_over_both(make_scenario, monkeypatch):
    # Grants of 100,000 EUR paid at signing: each project's aid is its grant.
    grants = {"instrument": {"coverage": 0.0, "public_loan_share": 0.0, "grant_share": 1.0},
              "disbursement": {"grant_paid_at": "signing"},
              "state_aid": {"prior_aid": {"dist": "uniform", "low": 0, "high": 50_000}}}
    scenario = _two_line_pipeline(
        make_scenario, ["2020-03-10,A,100000,a,,,,,coop", "2020-04-10,B,100000,b,,,,,coop",
                        "2020-05-10,A,100000,c,,,,,coop"], {"lines": {"A": grants, "B": grants}})
    assert unsupported(scenario) is None
    assert_same_tables(scenario, [0, 3])
    redone = _record_redone(monkeypatch)
    loans = simulate_chunk(scenario, [0], 0).loans.to_pandas().set_index("project_id")
    assert redone == []
    declared = loans.at["a", "prior_aid"]
    assert loans.at["b", "prior_aid"] == declared + 10_000_000
    assert loans.at["c", "prior_aid"] == declared + 20_000_000


def test_a_beneficiary_committed_on_two_lines_at_one_instant_is_the_simpy_models(
        make_scenario, monkeypatch):
    """The SimPy model takes the two commitments in the order it scheduled the lines'
    events: those replications are run on it."""
    scenario = _two_line_pipeline(make_scenario, ["2020-03-10,A,100000,a,,,,,coop",
                                                  "2020-03-10,B,100000,b,,,,,coop",
                                                  "2020-06-10,B,100000,c,,,,,other"])
    assert unsupported(scenario) is None
    assert chunk_size(scenario) >= BATCH_CHUNK_SIZE
    assert_same_tables(scenario, [0, 1])
    redone = _record_redone(monkeypatch)
    simulate_chunk(scenario, [0, 1], 0)
    assert redone == [0, 1]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(pipeline_scenarios(across_lines=True),
       st.sampled_from([None, "reject", "reduce"]), st.sampled_from([0.0, 0.5]))
def test_beneficiaries_on_both_lines_give_the_simpy_models_tables(make_scenario, case, rule,
                                                                  near_the_ceiling):
    changes, rows, first = case
    if rule is not None:
        changes = deep_update(changes, {"state_aid": {"strict": True}})
        for line in "AB":
            tables = changes["lines"][line] = deep_update(
                BASE_TABLES["lines"]["A"], changes["lines"][line])
            tables.setdefault("state_aid", {})["over_ceiling"] = rule
            tables["state_aid"]["prior_aid"] = _prior_aid_near_the_ceiling(near_the_ceiling)
    scenario = make_scenario(changes, pipeline=rows)
    if _on_the_batch_engine(scenario):
        assert_same_tables(scenario, [first, first + 1, first + 7])


def _prior_aid_near_the_ceiling(share: float) -> dict:
    """Declared earlier aid: none, or (``share`` of the projects) close to the ceiling."""
    return {"dist": "empirical", "values": [0, 150_000, 199_990],
            "weights": [1 - share, *[share / 2] * 2]}


def _on_the_batch_engine(scenario) -> bool:
    """Whether the batch engine runs a random pipeline scenario: all but those deciding
    on the instant of a waiting list's tick or a reallocation."""
    reason = unsupported(scenario)
    if reason is not None:
        assert "decides on the instant of" in reason
    return reason is None


def test_lines_with_different_waits_keep_their_own_expiries(make_scenario):
    # Stacked in one search, a line whose entries expire after the horizon must not
    # hide the expiries of the next line's waiting lists.
    def line(allocation, wait, per_month):
        return deep_update(BASE_TABLES["lines"]["A"], {
            "allocation": allocation, "when_dry": "waiting_list", "max_wait_months": wait,
            "applications": {"per_month": per_month}})

    scenario = make_scenario({"scenario": {"horizon_months": 24},
                              "fund": {"endowment": 600_000},
                              "lines": {"A": line(300_000, 20, 6.0),
                                        "B": line(300_000, 2, 1.0)}})
    assert_same_tables(scenario, [0, 1, 2])


@pytest.mark.parametrize("name", ["wecare_fesr_2018", "revolving"])
@pytest.mark.parametrize("overrides", [
    ["fund.payments.phased=true"],
    ["fund.payments.phased=true", "fund.payments.first_share=0.1",
     "fund.payments.next_share=0.1", "fund.treasury_rate=0.01"]])
def test_contributions_paid_in_tranches_as_in_the_simpy_model(name, overrides):
    scenario = load_scenario(ROOT / "scenarios" / f"{name}.toml", overrides)
    assert unsupported(scenario) is None
    assert_same_tables(scenario, [0, 1, 2, 41])


def test_a_reallocation_in_the_last_month_leaves_the_waiting_list_it_served(make_scenario):
    # No tick follows the horizon's last month: the waiting list recorded for it is the
    # one left at the end, after the reallocation served it (regression: the SimPy model
    # kept the length before).
    line_b = deep_update(BASE_TABLES["lines"]["A"], {
        "allocation": 900_000, "when_dry": "waiting_list", "max_wait_months": 1,
        "applications": {"per_month": 1.0, "cost": {"dist": "lognormal", "median": 150_000,
                                                    "sigma": 0.8}},
        "disbursement": {"tranches": [{"share": 1.0, "at": "completion"}],
                         "implementation_months": 3.0}})
    scenario = make_scenario({
        "scenario": {"horizon_months": 16, "start": "2019-03-15"},
        "fund": {"reallocations": [{"date": "2020-06-17", "from": "A", "to": "B",
                                    "amount": "all_uncommitted"}]},
        "lines": {"A": {"allocation": 100_000}, "B": line_b}})
    assert_same_tables(scenario, [0, 1, 7])


def test_a_reallocation_on_a_tick_then_the_tick_empties_the_list(make_scenario):
    # On 1 September the reallocation serves line A's list, then the month's tick drops
    # its expired entry: September ends with an empty list (both engines).
    def line(allocation, per_month, admission, evaluation, public_share, tranche_at):
        return deep_update(BASE_TABLES["lines"]["A"], {
            "allocation": allocation, "when_dry": "waiting_list", "max_wait_months": 1,
            "applications": {"per_month": per_month, "admission_rate": admission,
                             "evaluation_months": evaluation,
                             "cost": {"dist": "lognormal", "median": 150_000, "sigma": 0.8}},
            "instrument": {"coverage": 0.5, "public_loan_share": public_share,
                           "grant_share": 0.5, "frequency": "monthly", "term_months": 1,
                           "grace_months": 0},
            "disbursement": {"tranches": [{"share": 1.0, "at": tranche_at}],
                             "implementation_months": 0.0, "grant_paid_at": "signing"}})

    scenario = make_scenario({
        "scenario": {"horizon_months": 12},
        "fund": {"treasury_rate": 0.02, "fees": {"paid_from_fund": False, "cap": 0.0},
                 "reallocations": [
                     {"date": "2020-06-01", "from": "A", "to": "B", "amount": "all_uncommitted"},
                     {"date": "2020-09-01", "from": "B", "to": "A",
                      "amount": "all_uncommitted"}]},
        "lines": {"A": line(427_260, 1.0, 1.0, 2.0, 1.0, "signing"),
                  "B": line(572_740, 2.0, 0.5, 0.0, 0.0, "completion")}})
    assert_same_tables(scenario, [0, 1, 2])


@pytest.mark.parametrize("date, amount", [("2019-06-01", '"all_uncommitted"'),
                                          ("2019-09-13", "500000")])
def test_the_reference_with_a_reallocation_as_in_the_simpy_model(tmp_path, date, amount):
    reference = (ROOT / "scenarios" / "wecare_fesr_2018.toml").read_text(encoding="utf-8")
    path = tmp_path / "reallocated.toml"
    path.write_text(reference + f'\n[[fund.reallocations]]\ndate = {date}\nfrom = "B"\n'
                    f'to = "A"\namount = {amount}\n', encoding="utf-8")
    scenario = load_scenario(path)
    assert unsupported(scenario) is None
    assert_same_tables(scenario, [0, 1, 2, 41])


@pytest.mark.parametrize("name", ["wecare_fesr_2018", "revolving", "loan_only", "grant_heavy"])
def test_the_batch_engine_gives_the_simpy_models_tables_on_shipped_scenarios(name):
    scenario = load_scenario(ROOT / "scenarios" / f"{name}.toml")
    assert unsupported(scenario) is None
    assert_same_tables(scenario, [0, 1, 2, 3, 41])


def test_a_replication_does_not_depend_on_its_chunk():
    scenario = load_scenario(ROOT / "scenarios" / "wecare_fesr_2018.toml")
    seed = scenario.scenario.seed
    together = simulate_chunk(scenario, [3, 4, 5], seed)
    alone = simulate_chunk(scenario, [4], seed)
    pd.testing.assert_frame_equal(
        together.kpis[together.kpis["replication"] == 4].reset_index(drop=True), alone.kpis)
    loans = together.loans.to_pandas()
    pd.testing.assert_frame_equal(loans[loans["replication"] == 4].reset_index(drop=True),
                                  alone.loans.to_pandas())


TWO_LINES = {"lines": {
    "A": {"allocation": 500_000, "applications": {"per_month": 0.5}},
    "B": deep_update(BASE_TABLES["lines"]["A"], {
        "allocation": 500_000, "when_dry": "waiting_list", "max_wait_months": 6,
        "applications": {"per_month": 3.0, "cost": {"dist": "lognormal", "median": 100_000,
                                                     "sigma": 0.5}}})}}


@pytest.mark.parametrize("reallocations", [
    [{"date": "2020-06-01", "from": "A", "to": "B", "amount": "all_uncommitted"}],
    [{"date": "2020-06-12", "from": "A", "to": "B", "amount": 120_000},
     {"date": "2020-06-12", "from": "B", "to": "A", "amount": "all_uncommitted"},
     {"date": "2021-01-20", "from": "A", "to": "B", "amount": "all_uncommitted"}],
])
def test_reallocations_as_in_the_simpy_model(make_scenario, reallocations):
    # Line B queues: what a reallocation brings it serves its waiting list at once.
    scenario = make_scenario({**TWO_LINES, "fund": {"reallocations": reallocations}})
    assert unsupported(scenario) is None
    assert_same_tables(scenario, list(range(8)))
    series = simulate_chunk(scenario, [0, 1], scenario.scenario.seed).timeseries.to_pandas()
    # Money moved, and line B had a waiting list to serve with it: the test tests something.
    assert series["reallocated_in"].max() > 0
    assert series.loc[series["line"] == "B", "waiting"].max() > 0


# Strict, rejecting aid over the ceiling on both lines of TWO_LINES (line B queues);
# a few beneficiaries come with aid right under the ceiling already, so that some
# replications reject projects and others do not.
STRICT_REJECT = deep_update(TWO_LINES, {"state_aid": {"strict": True}, "lines": {
    line: {"state_aid": {"over_ceiling": "reject", "prior_aid": {
        "dist": "empirical", "values": [0, 199_990], "weights": [0.97, 0.03]}}}
    for line in "AB"}})


# A reducing line prices every decision it offers, a rejecting one only those it
# commits: fewer beneficiaries near the ceiling for the first, so that again some
# replications only are run on the SimPy model.
@pytest.mark.parametrize("rule, kpi, near_the_ceiling", [
    ("reject", "rejected_state_aid", 0.03), ("reduce", "reduced_state_aid", 0.003)])
def test_a_strict_run_gives_the_simpy_models_tables(make_scenario, monkeypatch, rule, kpi,
                                                    near_the_ceiling):
    scenario = make_scenario(deep_update(STRICT_REJECT, {"lines": {
        line: {"state_aid": {"over_ceiling": rule, "prior_aid": {
            "dist": "empirical", "values": [0, 199_990],
            "weights": [1 - near_the_ceiling, near_the_ceiling]}}} for line in "AB"}}))
    assert unsupported(scenario) is None
    assert chunk_size(scenario) >= BATCH_CHUNK_SIZE
    ids = list(range(12))
    assert_same_tables(scenario, ids)
    import simulator.batch
    redone = []
    run_again = simulator.batch.redo_on_the_simpy_model

    def recorded(*args):
        redone.extend(args[4])
        return run_again(*args)

    monkeypatch.setattr(simulator.batch, "redo_on_the_simpy_model", recorded)
    applied = simulate_chunk(scenario, ids, scenario.scenario.seed).kpis[kpi]
    # The rule applied in some replications, which the SimPy model ran; others
    # kept the batch engine's tables.
    assert set(np.flatnonzero(applied > 0)) <= set(redone)
    assert (applied > 0).sum() > 0 and len(redone) < len(ids)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(batch_scenarios(), st.sampled_from(["reject", "reduce"]),
       st.sampled_from(["A", "B", "AB"]), st.sampled_from([0.0, 0.05, 0.5]))
def test_strict_runs_give_the_simpy_models_tables_on_random_scenarios(
        make_scenario, case, rule, strict_lines, near_the_ceiling):
    changes, first = case
    changes = deep_update(changes, {"state_aid": {"strict": True}, "lines": {
        line: {"state_aid": {"over_ceiling": rule}} for line in strict_lines}})
    for line in strict_lines:   # replaced whole: the drawn scenario may give another kind
        changes["lines"][line]["state_aid"]["prior_aid"] = {
            "dist": "empirical", "values": [0, 150_000, 190_000, 199_990],
            "weights": [1 - near_the_ceiling, *[near_the_ceiling / 3] * 3]}
    scenario = make_scenario(changes)
    assert unsupported(scenario) is None
    ids = [first, first + 1, first + 7]
    assert_same_tables(scenario, ids)
    kpis = simulate_chunk(scenario, ids, scenario.scenario.seed).kpis
    applied = (kpis["rejected_state_aid"] + kpis["reduced_state_aid"] > 0).sum()
    event(f"{rule}: replications where the rule applied: {applied} of 3")


@pytest.mark.parametrize("rule", ["reject", "reduce"])
def test_a_strict_run_where_no_aid_goes_over_never_runs_the_simpy_model(make_scenario,
                                                                         monkeypatch, rule):
    scenario = make_scenario(deep_update(STRICT_REJECT, {"lines": {
        line: {"state_aid": {"prior_aid": 0, "over_ceiling": rule}} for line in "AB"}}))
    got = assert_the_batch_engine_alone_gives_the_simpy_models_tables(
        scenario, list(range(6)), monkeypatch)
    assert (got.kpis["rejected_state_aid"] == 0).all()
    assert (got.kpis["reduced_state_aid"] == 0).all()


def _stepped_batch(scenario, ids):
    """A chunk's ``ChunkBatch`` after its month loop, as ``simulate_chunk`` runs it."""
    from simulator.batch import Calendar, legacy_from_month

    calendar = Calendar(scenario)
    batch = ChunkBatch(scenario, ids, scenario.scenario.seed, calendar,
                       legacy_from_month(scenario, calendar.offset))
    for month in range(calendar.horizon):
        if batch.quiet_from(month):
            batch.close_rest(max(month - 1, 0))
            break
        batch.step(month)
    else:
        batch.close(calendar.horizon - 1)
    batch._book()
    return batch


@pytest.mark.parametrize("name, changes", [
    ("wecare_fesr_2018.toml", []),
    ("grant_heavy.toml", []),
    ("revolving.toml", ["lines.A.instrument.coverage=0.8", "lines.A.instrument.grant_share=0.2"]),
])
def test_the_aid_bound_of_a_reducing_line_holds_for_every_commitment(name, changes):
    """Every committed project's aid, priced when it was committed (at its decision or
    after a wait), is within the bound that decides which replications the SimPy model
    runs again, and under the ceiling the bound compares it with."""
    from simulator.batch_loans import loan_table
    from simulator.batch_strict import aid_bounds

    scenario = load_scenario(ROOT / "scenarios" / name, changes)
    ids = list(range(40))
    batch = _stepped_batch(scenario, ids)
    loans = pd.DataFrame(loan_table(scenario, batch, ids))
    checked = 0
    for i, line_id in enumerate(scenario.lines):
        apps, aid, ceiling = aid_bounds(scenario, batch, i)
        bound = pd.DataFrame({
            "replication": np.asarray(ids)[batch.app_rep[apps]],
            "project_id": [f"{line_id}-{n + 1:05d}" for n in batch.app_number[apps]],
            "bound": aid, "lowest_ceiling": ceiling})
        mine = loans[loans["line"] == line_id].merge(bound, on=["replication", "project_id"],
                                                     how="left", validate="one_to_one")
        assert mine["bound"].notna().all()
        assert (mine["esl"] <= mine["bound"]).all()
        assert (mine["de_minimis_ceiling"] >= mine["lowest_ceiling"]).all()
        checked += len(mine)
    assert checked > 100


@pytest.mark.parametrize("rule", ["reject", "reduce"])
def test_kpis_only_of_a_strict_run_are_the_full_runs(make_scenario, rule):
    scenario = make_scenario(deep_update(STRICT_REJECT, {"lines": {
        line: {"state_aid": {"over_ceiling": rule}} for line in "AB"}}))
    ids = list(range(12))
    seed = scenario.scenario.seed
    pd.testing.assert_frame_equal(simulate_chunk(scenario, ids, seed, kpis_only=True).kpis,
                                  simulate_chunk(scenario, ids, seed).kpis, check_exact=True)


def _record_redone(monkeypatch) -> list[int]:
    """The positions of the replications ``simulate_chunk`` runs again on the SimPy model."""
    import simulator.batch

    redone: list[int] = []
    run_again = simulator.batch.redo_on_the_simpy_model

    def recorded(*args):
        redone.extend(args[4])
        return run_again(*args)

    monkeypatch.setattr(simulator.batch, "redo_on_the_simpy_model", recorded)
    return redone


# A grant of 30 % of 350,000 EUR is 105,000 EUR of aid: two of coop's three projects
# go over the 200,000 EUR ceiling of 2020, one does not; half the projects are
# admitted, so some replications reduce coop's aid and others cannot.
NAMED_REDUCING = ("date,line,eligible_cost,beneficiary\n"
                  "2020-02-10,A,350000,coop\n2020-04-10,A,350000,coop\n"
                  "2020-06-10,A,350000,coop\n2020-03-10,A,40000,small\n"
                  "2020-05-10,A,40000,small\n2020-07-10,A,350000,\n")


def test_a_strict_run_that_reduces_aid_of_named_beneficiaries_gives_the_simpy_models_tables(
        make_scenario, monkeypatch):
    scenario = make_scenario(
        {"fund": {"endowment": 5_000_000}, "state_aid": {"strict": True}, "lines": {"A": {
            "allocation": 5_000_000, "max_cost": 1_000_000,
            "instrument": {"coverage": 0.7, "grant_share": 0.3},
            "state_aid": {"over_ceiling": "reduce"},
            "applications": {"mode": "pipeline", "pipeline": "pipeline.csv",
                             "admission_rate": 0.5}}}},
        pipeline=NAMED_REDUCING)
    assert unsupported(scenario) is None
    assert chunk_size(scenario) >= BATCH_CHUNK_SIZE
    ids = list(range(16))
    assert_same_tables(scenario, ids)
    redone = _record_redone(monkeypatch)
    reduced = simulate_chunk(scenario, ids, scenario.scenario.seed).kpis["reduced_state_aid"]
    # coop's aid was reduced in some replications, which the SimPy model ran; the
    # others kept the batch engine's tables.
    assert set(np.flatnonzero(reduced > 0)) <= set(redone)
    assert (reduced > 0).sum() > 0 and len(redone) < len(ids)


def test_a_beneficiary_declared_different_aid_for_its_projects_is_run_again(make_scenario,
                                                                           monkeypatch):
    """A reducing line prices coop's first project, which it cannot cover, and commits
    the second: the SimPy model counts the aid declared for the first, the flagging
    run that of the first it commits. Where the two differ the replication is the
    SimPy model's, however far from the ceiling."""
    rows = "date,line,eligible_cost,beneficiary\n2020-02-10,A,100000,coop\n" \
           "2020-04-10,A,20000,coop\n"
    scenario = make_scenario(
        {"fund": {"endowment": 30_000}, "state_aid": {"strict": True}, "lines": {"A": {
            "allocation": 30_000,
            "state_aid": {"over_ceiling": "reduce", "prior_aid": {
                "dist": "empirical", "values": [0, 1_000], "weights": [0.5, 0.5]}},
            "applications": {"mode": "pipeline", "pipeline": "pipeline.csv"}}}},
        pipeline=rows)
    ids = list(range(12))
    assert_same_tables(scenario, ids)
    redone = _record_redone(monkeypatch)
    loans = simulate_chunk(scenario, ids, scenario.scenario.seed).loans.to_pandas()
    declared = _stepped_batch(scenario, ids).prior_aid.reshape(len(ids), 2)
    differ = np.flatnonzero(declared[:, 0] != declared[:, 1])
    assert sorted(redone) == differ.tolist() and 0 < len(differ) < len(ids)
    # Only the second project is committed, with the aid declared for the first.
    assert len(loans) == len(ids) and loans["project_id"].nunique() == 1
    assert (loans["eligible_cost"] == 2_000_000).all()
    assert loans["prior_aid"].tolist() == declared[:, 0].tolist()


def test_a_beneficiary_whose_first_project_is_committed_keeps_the_batch_tables(
        make_scenario, monkeypatch):
    """Without a waiting list the first project priced is the beneficiary's first
    decision: when it is also the first committed, different amounts declared for
    its projects change nothing, and the SimPy model does not run."""
    rows = "date,line,eligible_cost,beneficiary\n2020-02-10,A,20000,coop\n" \
           "2020-04-10,A,20000,coop\n"
    scenario = make_scenario(
        {"state_aid": {"strict": True}, "lines": {"A": {
            "state_aid": {"over_ceiling": "reduce", "prior_aid": {
                "dist": "empirical", "values": [0, 1_000], "weights": [0.5, 0.5]}},
            "applications": {"mode": "pipeline", "pipeline": "pipeline.csv"}}}},
        pipeline=rows)
    ids = list(range(12))
    declared = _stepped_batch(scenario, ids).prior_aid.reshape(len(ids), 2)
    assert (declared[:, 0] != declared[:, 1]).any()
    assert_the_batch_engine_alone_gives_the_simpy_models_tables(scenario, ids, monkeypatch)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(pipeline_scenarios(), st.sampled_from(["A", "B", "AB"]),
       st.sampled_from([0.0, 0.5, 1.0]), st.sampled_from([0.0, 0.3, 0.6]))
def test_strict_runs_reducing_aid_of_named_beneficiaries_give_the_simpy_models_tables(
        make_scenario, case, reducing, near_the_ceiling, grant_share):
    changes, rows, first = case
    changes = deep_update(changes, {"state_aid": {"strict": True}})
    for line in reducing:
        tables = deep_update(BASE_TABLES["lines"]["A"], changes["lines"][line])
        coverage = tables["instrument"]["coverage"]
        tables = changes["lines"][line] = deep_update(tables, {
            "state_aid": {"over_ceiling": "reduce"},
            "instrument": {"grant_share": min(grant_share,
                                              math.floor((1.0 - coverage) * 10_000) / 10_000)}})
        # Replaced whole: the drawn scenario may give another kind of distribution.
        tables["state_aid"]["prior_aid"] = _prior_aid_near_the_ceiling(near_the_ceiling)
    scenario = make_scenario(changes, pipeline=rows)
    if not _on_the_batch_engine(scenario):
        return
    ids = [first, first + 1, first + 7]
    assert_same_tables(scenario, ids)
    reduced = simulate_chunk(scenario, ids, scenario.scenario.seed).kpis["reduced_state_aid"]
    event(f"replications where aid was reduced: {(reduced > 0).sum()} of 3")


def test_chunks_are_large_for_small_funds_and_small_for_large_ones():
    small = load_scenario(ROOT / "scenarios" / "wecare_fesr_2018.toml")
    large = load_scenario(ROOT / "scenarios" / "large_fund.toml")
    assert chunk_size(small) == BATCH_CHUNK_SIZE
    assert 1 <= chunk_size(large) < 50


def test_a_desk_open_for_years_gets_larger_chunks_within_its_memory_bound():
    revolving = load_scenario(ROOT / "scenarios" / "revolving.toml")
    assert stepped_months(revolving) > LONG_DESK_MONTHS
    assert chunk_size(revolving) == LONG_DESK_CHUNK_SIZE
    assert chunk_size(revolving) * expected_applications(revolving) \
        <= LONG_DESK_APPLICATIONS_PER_CHUNK
    # The same desk with ten times the applications: fewer replications per chunk.
    crowded = load_scenario(ROOT / "scenarios" / "revolving.toml", [
        f"lines.{line}.applications.per_month="
        f"{10 * revolving.lines[line].applications.per_month}" for line in revolving.lines])
    assert chunk_size(crowded) * expected_applications(crowded) \
        <= LONG_DESK_APPLICATIONS_PER_CHUNK < (chunk_size(crowded) + 1) \
        * expected_applications(crowded)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(batch_scenarios(), st.lists(st.tuples(
    st.integers(0, 2_000_000_00), st.integers(0, 300_000_00), st.floats(0, 40),
    st.floats(0, 3), st.floats(0, 18), st.booleans(), st.floats(0, 1),
    st.floats(0, 1, exclude_max=True),
    st.floats(0, 1, exclude_max=True)), min_size=1, max_size=12))
def test_flows_over_arrays_equal_the_loan_books_project_by_project(make_scenario, case,
                                                                  projects):
    changes, _ = case
    scenario = make_scenario(changes)
    line = scenario.lines["A"]
    model = FundModel(scenario, 0, 1)
    columns = list(zip(*projects, strict=True))
    public, grant = (np.array(c, dtype=np.int64) for c in columns[:2])
    times = np.array(columns[2])
    fate = {"signing_months": np.array(columns[3]),
            "implementation_months": np.array(columns[4]),
            "fails": np.array(columns[5], dtype=bool), "failure_fraction": np.array(columns[6]),
            "default_u": np.array(columns[7]), "prepayment_u": np.array(columns[8])}
    # Both engines read the months to default and prepayment computed with the draws.
    fate["default_months"] = hazard_months(fate["default_u"], line.risk.default_rate)
    fate["prepayment_months"] = hazard_months(fate["prepayment_u"], line.risk.prepayment_rate)
    batch = flows_over_arrays(public, grant, times, fate, line, model.offset)
    for i, p in enumerate(projects):
        terms = Terms(p[0] + p[1] + 1, p[0], 0, p[1])
        one = project_flows(terms, Fate(*p[3:7], fate["default_months"][i],
                                        fate["prepayment_months"][i]),
                            p[2], model.month_of, line)
        for kind in FLOW_KINDS:
            index, months, amounts = batch.flat(kind)
            mine = index == i
            want = sorted((m, a) for m, a in getattr(one, kind) if a)
            got = sorted((m, a) for m, a in zip(months[mine].tolist(), amounts[mine].tolist(),
                                                strict=True) if a)
            assert got == want, (i, kind)
        assert batch.first_disbursement_month[i] == one.first_disbursement_month
        assert batch.completion_month[i] == one.completion_month
        assert batch.end_month[i] == one.end_month
    # Priced in two stages, the flows are the same, and no repayment (other than a
    # zero) falls before the month the batch engine waits for to price them.
    early = early_flows(public, grant, times, fate, Payouts.of_line(line, public),
                        model.offset)
    later = flows_over_arrays(public, grant, times, fate, line, model.offset, "repayments")
    due = early.repayments_from
    for kind in FLOW_KINDS:
        both = [np.concatenate([early.flat(kind)[k], later.flat(kind)[k]]) for k in range(3)]
        assert sorted(zip(*(b.tolist() for b in both), strict=True)) == \
            sorted(zip(*(b.tolist() for b in batch.flat(kind)), strict=True)), kind
        _, months, amounts = later.flat(kind)
        assert np.all(months[amounts != 0] >= due), kind


@pytest.mark.parametrize("annual_rate", [0.0, 1e-300, 0.001, 0.03, 0.5, 0.999, 1.0])
def test_hazard_months_over_arrays_agree_with_one_draw_at_a_time(annual_rate):
    draws = np.random.default_rng(5).random(20_000)
    draws[:3] = [0.0, 0.5, 1 - 1e-12]
    many = hazard_months(draws, annual_rate)
    one = np.array([monthly_hazard_month(u, annual_rate) for u in draws.tolist()])
    finite = np.isfinite(one)
    assert np.array_equal(np.isfinite(many), finite)
    # numpy's log1p may differ from the C library's in the last bit: at most a month,
    # and only on a draw that falls within a rounding error of a whole month.
    assert np.all(np.abs(many[finite] - one[finite]) <= 1)
    assert np.count_nonzero(many[finite] != one[finite]) <= max(1, finite.sum() // 1000)


def test_replications_in_any_order_get_their_own_kpis():
    scenario = load_scenario(ROOT / "scenarios" / "wecare_fesr_2018.toml")
    seed = scenario.scenario.seed
    sorted_ids = simulate_chunk(scenario, [2, 5, 9], seed).kpis.set_index("replication")
    shuffled = simulate_chunk(scenario, [9, 2, 5], seed).kpis.set_index("replication")
    pd.testing.assert_frame_equal(shuffled.loc[[2, 5, 9]], sorted_ids)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=1, max_size=40), st.data())
def test_waiting_list_heads_served_are_the_searched_prefix(exposures, data):
    # ChunkBatch._fitted looks a few entries ahead and searches only past them: the
    # same positions as searching every list.
    cum = np.concatenate(([0], np.cumsum(exposures)))
    lists = data.draw(st.lists(st.tuples(st.integers(0, len(exposures)),
                                         st.integers(0, len(exposures)),
                                         st.integers(0, 300)), min_size=1, max_size=10))
    kept = np.array([min(a, b) for a, b, _ in lists])
    tail = np.array([max(a, b) for a, b, _ in lists])
    budget = cum[kept] + np.array([free for _, _, free in lists])
    want = np.minimum(np.searchsorted(cum, budget, side="right") - 1, tail)
    got = ChunkBatch._fitted(SimpleNamespace(cum_exposure=cum), kept, tail, budget)
    assert got.tolist() == want.tolist()


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 40))
def test_runs_of_equal_flows_book_what_their_months_one_by_one_would(seed, horizon):
    """Interest-free instalments are booked as runs (their two ends, summed month by month
    as months close): the flow array and the loan totals are those of booking every
    instalment in its own month, with months from the horizon on in the spare month."""
    rng = np.random.default_rng(seed)
    kinds, size, decisions = 3, 4, 7
    batch = SimpleNamespace(
        horizon=horizon, size=size, runs_through=0, run_ends={},
        dec_unit=rng.integers(0, size, decisions),
        flow_array=np.zeros((kinds, horizon + 1, size), dtype=np.int64),
        loan_totals=np.zeros((kinds, decisions), dtype=np.int64))
    want_flows, want_totals = batch.flow_array.copy(), batch.loan_totals.copy()
    middle = int(rng.integers(0, horizon + 1))
    for stage, earliest in enumerate((0, middle)):
        for _ in range(int(rng.integers(1, 4))):
            count = int(rng.integers(1, 9))
            kind, stride = int(rng.integers(0, kinds)), int(rng.integers(1, 7))
            flowing = rng.integers(0, decisions, count)
            first = rng.integers(earliest, horizon + 10, count)
            counts = rng.integers(0, 13, count)
            amounts = rng.integers(-1_000, 1_000_000, count)
            ChunkBatch._add_runs(batch, kind, flowing, first, counts, amounts, stride)
            for position, start, times, amount in zip(flowing, first, counts, amounts,
                                                      strict=True):
                for month in range(start, start + stride * times, stride):
                    want_flows[kind, min(month, horizon), batch.dec_unit[position]] += amount
                    if month < horizon:
                        want_totals[kind, position] += amount
        # Months close up to the middle before the second stage's runs are booked.
        ChunkBatch._runs_into_flows(batch, middle if stage == 0 else horizon)
    assert np.array_equal(batch.flow_array, want_flows)
    assert np.array_equal(batch.loan_totals, want_totals)
    with pytest.raises(RuntimeError, match="already closed"):   # every month is closed
        ChunkBatch._add_runs(batch, 0, np.array([0]), np.array([horizon - 1]), np.array([1]),
                             np.array([5]), 1)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([0.0, 0.0, 0.005, 0.03]), st.sampled_from([1, 3, 6, 12]),
       st.integers(1, 12), st.integers(0, 3),
       st.sampled_from(["french", "italian", "bullet"]),
       st.sampled_from(["signing", "completion"]),
       st.lists(st.tuples(st.integers(0, 3_000_000_00), st.integers(0, 500_000_00),
                          st.integers(0, 4), st.sampled_from([0.0, 0.01, 0.02, 0.045]),
                          st.sampled_from([0.0, 0.01, 0.04]), st.integers(-1, 20),
                          st.integers(0, 30)), min_size=1, max_size=20))
def test_grant_equivalents_over_arrays_equal_state_aid_loan_by_loan(
        rate, period, instalments, grace_periods, method, grant_paid_at, loans):
    """The gross grant equivalent of each loan, interest-free ones in closed form, is
    ``state_aid``'s for its schedule (its own grace) to the cent."""
    from simulator.batch_flows import grant_equivalents
    from simulator.instruments import loan_schedule
    from simulator.state_aid import _grant_equivalent

    frequency = {1: "monthly", 3: "quarterly", 6: "semiannual", 12: "annual"}[period]
    instrument = SimpleNamespace(public_rate=rate, frequency=frequency, method=method,
                                 term_months=period * instalments,
                                 grace_months=period * grace_periods)
    line = SimpleNamespace(instrument=instrument,
                           disbursement=SimpleNamespace(grant_paid_at=grant_paid_at))
    public, grant, extra, reference, discount, first, done = (
        np.array(column) for column in zip(*loans, strict=True))
    grace = instrument.grace_months + period * extra   # a late tranche lengthens it
    got = grant_equivalents(public, grant, line, reference, discount, grace, first,
                            first + done)
    for i in range(len(loans)):
        schedule = loan_schedule(int(public[i]), rate, instrument.term_months, int(grace[i]),
                                 frequency, method)
        month = max(0, int(done[i])) if grant_paid_at == "completion" and first[i] >= 0 \
            else 0
        assert got[i] == _grant_equivalent(schedule, rate, float(reference[i]),
                                           float(discount[i]), int(grant[i]), month), i
