"""`solve`: goal seeking on cases with a closed-form answer, refusals, the command."""

from __future__ import annotations

import itertools
import json

import pytest
from click.testing import CliRunner
from conftest import BASE_TABLES, deep_update, write_scenario

from simulator.cli_decide import solve as solve_command
from simulator.errors import InputError
from simulator.solve import NotReachable, parse_target, solve

# One project of 100,000 € (application in February 2020), no risk, no fees, a 0 % loan
# of half the cost and a grant of `grant_share` x the cost paid at completion:
#   grants_paid_eur    = 100,000 x grant_share
#   fund_value_end_eur = 1,000,000 - 100,000 x grant_share   (the loan counts at par)
ONE_PROJECT = deep_update(BASE_TABLES, {
    "lines": {"A": {
        "applications": {"mode": "pipeline", "pipeline": "pipeline.csv"},
        "instrument": {"coverage": 0.5, "public_loan_share": 1.0},
    }},
})
PIPELINE = "date,line,eligible_cost,admitted\n2020-02-01,A,100000,true\n"
GRANT = "lines.A.instrument.grant_share"


@pytest.fixture
def one_project(tmp_path):
    (tmp_path / "pipeline.csv").write_text(PIPELINE, encoding="utf-8")
    return write_scenario(tmp_path, ONE_PROJECT, "one.toml")


def test_largest_grant_that_keeps_the_fund_above_a_floor(one_project):
    # 1,000,000 - 100,000 g >= 970,000  <=>  g <= 0.3
    solution = solve(one_project, GRANT, 0.0, 0.5, "fund_value_end_eur.p50 >= 970000",
                     goal="maximize", replications=3, tol=1e-4, workers=1)
    assert solution.value == pytest.approx(0.3, abs=1e-4)
    assert solution.value <= 0.3 + 1e-9  # the answer meets the target
    assert solution.found.met and solution.found.p50 >= 970_000
    assert solution.found.p5 == solution.found.p95 == pytest.approx(970_000, abs=10)
    assert solution.neighbour is not None and not solution.neighbour.met
    assert abs(solution.neighbour.x - solution.value) <= 1e-4
    assert len(solution.evaluations) < 15  # a straight line: Brent's method is quick
    assert [e.x for e in solution.evaluations[:2]] == [0.0, 0.5]


def test_smallest_grant_paying_at_least_an_amount_and_equality(one_project):
    low = solve(one_project, GRANT, 0.0, 0.5, "grants_paid_eur.mean >= 12345",
                goal="minimize", replications=2, tol=1e-5, workers=1)
    assert low.value == pytest.approx(0.12345, abs=1e-5) and low.value >= 0.12345 - 1e-9
    equal = solve(one_project, GRANT, 0.0, 0.5, "grants_paid_eur.mean = 25000",
                  replications=2, tol=1e-6, workers=1)
    assert equal.value == pytest.approx(0.25, abs=1e-6)
    assert equal.found.mean == pytest.approx(25_000, abs=1)


def test_every_evaluation_uses_the_same_replications(one_project, tmp_path):
    stochastic = deep_update(ONE_PROJECT, {"lines": {"A": {
        "applications": {"mode": "poisson", "per_month": 0.3, "pipeline": None,
                         "cost": {"dist": "uniform", "low": 50_000, "high": 150_000}}}}})
    del stochastic["lines"]["A"]["applications"]["pipeline"]
    path = write_scenario(tmp_path, stochastic, "stochastic.toml")
    solution = solve(path, GRANT, 0.0, 0.5, "fund_value_end_eur.mean >= 950000",
                     goal="maximize", replications=8, workers=1)
    # Common random numbers: the KPI is a deterministic, monotone function of the grant.
    ordered = sorted(solution.evaluations, key=lambda e: e.x)
    assert all(a.mean >= b.mean for a, b in itertools.pairwise(ordered))
    assert all(len(e.kpis) == 8 for e in solution.evaluations)
    ids = {tuple(e.kpis["replication"]) for e in solution.evaluations}
    assert ids == {tuple(range(8))}
    assert solution.found.met and solution.found.mean >= 950_000


def test_whole_numbers_are_bisected(one_project):
    # Application in month 1, signed at once, completed 3 months later: the grant is paid
    # in month 4, so the shortest horizon that includes it is 5 months.
    solution = solve(one_project, "scenario.horizon_months", 2, 40,
                     "grants_paid_eur.mean >= 10000", goal="minimize", replications=1,
                     workers=1, overrides=["lines.A.instrument.grant_share=0.1"])
    assert solution.kind == "int" and solution.value == 5
    assert solution.found.met and solution.neighbour is not None
    assert solution.neighbour.x == solution.value - 1 and not solution.neighbour.met


def test_target_out_of_reach_is_refused_with_the_evaluations(one_project):
    with pytest.raises(NotReachable, match="not reachable in the range") as info:
        solve(one_project, GRANT, 0.0, 0.5, "fund_value_end_eur.p50 >= 2000000",
              goal="maximize", replications=2, workers=1)
    assert [e.x for e in info.value.evaluations] == [0.0, 0.5]
    # Met at both ends, without --maximize/--minimize: no boundary to find.
    with pytest.raises(NotReachable, match="met over the whole range"):
        solve(one_project, GRANT, 0.0, 0.5, "fund_value_end_eur.p50 >= 100",
              replications=2, workers=1)
    # Met everywhere with --maximize: the upper bound.
    top = solve(one_project, GRANT, 0.0, 0.5, "fund_value_end_eur.p50 >= 100",
                goal="maximize", replications=2, workers=1)
    assert top.value == 0.5 and top.at_bound


def test_unknown_kpi_and_statistic_list_the_valid_ones():
    kpis = ["fund_value_end_eur", "grants_paid_eur"]
    with pytest.raises(InputError) as info:
        parse_target("fund_value.p55 >= 3e6", kpis)
    messages = [str(p) for p in info.value.problems]
    assert messages == [
        "--target: fund_value: unknown KPI (did you mean 'fund_value_end_eur'?); KPIs: "
        "fund_value_end_eur, grants_paid_eur",
        "--target: p55: unknown statistic; use one of mean, p5, p50, p95"]
    assert parse_target("grants_paid_eur.median<=3_000_000", kpis).statistic == "p50"
    with pytest.raises(InputError, match="expected"):
        parse_target("grants_paid_eur >= 3", kpis)


def test_bad_inputs_are_refused_before_anything_runs(one_project):
    with pytest.raises(InputError) as info:
        solve(one_project, "lines.A.instrument.grnt_share", 0.5, 0.0, "fund_value.p50 >= 1")
    messages = "\n".join(str(p) for p in info.value.problems)
    assert "--between: 0.5 0: give the lower bound first" in messages
    assert "--vary: lines.A.instrument.grnt_share: unknown field" in messages
    assert "--target: fund_value: unknown KPI" in messages
    with pytest.raises(InputError, match="is not a number"):
        solve(one_project, "lines.A.procedure", 0, 1, "fund_value_end_eur.p50 >= 1")
    with pytest.raises(InputError, match="exceed the eligible cost"):
        solve(one_project, GRANT, 0.0, 0.9, "fund_value_end_eur.p50 >= 1")


def test_command_prints_the_answer_and_writes_a_folder(one_project, tmp_path):
    out = tmp_path / "solved"
    result = CliRunner().invoke(solve_command, [
        str(one_project), "--vary", GRANT, "--between", "0", "0.5",
        "--target", "fund_value_end_eur.p50 >= 970000", "--maximize", "-n", "2", "-w", "1",
        "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"valore massimo trovato: {GRANT} = 0.300" in result.output
    assert {p.name for p in out.iterdir()} == {"evaluations.csv", "solution.json",
                                               "scenario.toml", "kpis.parquet"}
    manifest = json.loads((out / "solution.json").read_text())
    assert manifest["value"] == pytest.approx(0.3, abs=1e-3)
    refused = CliRunner().invoke(solve_command, [
        str(one_project), "--vary", GRANT, "--between", "0", "0.5",
        "--target", "fund_value_end_eur.p50 >= 2000000", "--maximize", "-n", "2", "-w", "1"])
    assert refused.exit_code == 2
    assert "not reachable in the range" in refused.output and "Traceback" not in refused.output
