"""State aid in the model: ESL at the rates in force, de minimis ceilings, strict runs, legacy.

The de minimis cases use grant-only lines whose grant is paid at signing, so
each project's ESL is its grant, to the cent, and the expected flags follow
from the ceilings by hand.
"""

from __future__ import annotations

import datetime as dt
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import BASE_TABLES, ROOT, deep_update, write_scenario

from simulator.batch import simulate_chunk, unsupported
from simulator.errors import InputError
from simulator.instruments import loan_schedule
from simulator.runner import run_replication
from simulator.scenario import load_scenario
from simulator.state_aid import (
    DEFAULT_RATES_FILE,
    grant_equivalent,
    load_rate_table,
    window_start,
)

# -- the de minimis switch, 2023 -> 2024 ------------------------------------------------

# Line A (prior aid 0), line B (prior aid 100,000 EUR declared), line G (GBER: no ceiling).
# Ceilings: 200,000 EUR for aid granted until 31 Dec 2023 (fiscal years Y-2..Y),
# 300,000 EUR from 1 Jan 2024 (the three years before the grant, rolling).
SWITCH_ROWS = """date,line,eligible_cost,id,beneficiary
2020-06-15,A,150000,OLD-1,OLD
2020-12-20,A,100000,ROLL-1,ROLL
2021-01-20,A,100000,ROLL2-1,ROLL2
2021-06-15,A,150000,RECENT-1,RECENT
2023-12-15,A,250000,D1,
2023-12-15,A,150000,D2,
2023-12-15,B,90000,B2,
2023-12-15,G,450000,G1,
2023-12-18,A,150000,ACME-1,ACME
2023-12-20,A,150000,OLD-2,OLD
2023-12-20,A,100000,RECENT-2,RECENT
2024-01-10,A,250000,ROLL-2,ROLL
2024-01-10,A,250000,ROLL2-2,ROLL2
2024-01-15,A,250000,J1,
2024-01-15,B,250000,B1,
2024-01-16,A,350000,J2,
2024-01-18,A,160000,ACME-2,ACME
"""

# id -> (ceiling in EUR, aid already had in the period in EUR), by hand.
EXPECTED = {
    "OLD-1": (200_000, 0),
    "ROLL-1": (200_000, 0),
    "ROLL2-1": (200_000, 0),
    "RECENT-1": (200_000, 0),
    "D1": (200_000, 0),             # 250,000 > 200,000: over
    "D2": (200_000, 0),
    "B2": (200_000, 100_000),       # 90,000 + 100,000 declared = 190,000: not over
    "G1": (None, 0),                # GBER: no ceiling
    "ACME-1": (200_000, 0),
    "OLD-2": (200_000, 0),          # OLD-1 (2020) is outside fiscal years 2021-2023
    "RECENT-2": (200_000, 150_000),  # RECENT-1 (2021) inside: 250,000: over
    "ROLL-2": (300_000, 0),         # ROLL-1 (20 Dec 2020) is more than 3 years before
    "ROLL2-2": (300_000, 100_000),  # ROLL2-1 (20 Jan 2021) is inside: 350,000: over
    "J1": (300_000, 0),             # 250,000 <= 300,000 from 2024
    "B1": (300_000, 100_000),       # 350,000: over
    "J2": (300_000, 0),             # 350,000: over
    "ACME-2": (300_000, 150_000),   # ACME-1 of Dec 2023 counts in 2024: 310,000: over
}
OVER = {"D1", "RECENT-2", "ROLL2-2", "B1", "J2", "ACME-2"}


def _grant_line(allocation: float, **state_aid) -> dict:
    line = deep_update(BASE_TABLES["lines"]["A"], {
        "allocation": allocation, "min_cost": 10_000, "max_cost": 500_000,
        "applications": {"mode": "pipeline", "pipeline": "pipeline.csv"},
        "instrument": {"coverage": 0.0, "public_loan_share": 0.0, "grant_share": 1.0},
        "disbursement": {"grant_paid_at": "signing", "implementation_months": 3},
    })
    if state_aid:
        line["state_aid"] = state_aid
    return line


def switch_tables(strict: bool = False, rule: str = "flag") -> dict:
    tables = deep_update(BASE_TABLES, {"fund": {"endowment": 6_000_000}})
    tables["lines"] = {
        "A": _grant_line(3_000_000, over_ceiling=rule),
        "B": _grant_line(1_000_000, over_ceiling=rule, prior_aid=100_000),
        "G": _grant_line(2_000_000, regime="gber", over_ceiling=rule),
    }
    tables["state_aid"] = {"strict": strict}
    return tables


@pytest.fixture
def switch(tmp_path):
    (tmp_path / "pipeline.csv").write_text(SWITCH_ROWS, encoding="utf-8")

    def build(strict: bool = False, rule: str = "flag"):
        return load_scenario(write_scenario(tmp_path, switch_tables(strict, rule)))
    return build


def _rows(loans: dict) -> dict[str, dict]:
    names = list(loans)
    return {loans["project_id"][i]: {n: loans[n][i] for n in names}
            for i in range(len(loans["project_id"]))}


def _replication_zero(scenario, engine: str) -> tuple[dict, dict]:
    """Loan table columns and KPIs of replication 0, on the SimPy model or the batch engine."""
    if engine == "simpy":
        tables = run_replication(scenario, 0, check=True)
        return tables.loans, tables.kpis
    assert unsupported(scenario) is None
    chunk = simulate_chunk(scenario, [0], scenario.scenario.seed, check=True)
    loans = chunk.loans.to_pandas()
    return {name: loans[name].to_numpy() for name in loans}, chunk.kpis.iloc[0].to_dict()


@pytest.mark.parametrize("engine", ["simpy", "batch"])
def test_flags_exactly_the_beneficiaries_over_the_ceiling_across_the_switch(switch, engine):
    loans, kpis = _replication_zero(switch(), engine)
    rows = _rows(loans)
    assert set(rows) == set(EXPECTED)  # a normal run commits everything
    for pid, (ceiling, prior) in EXPECTED.items():
        row = rows[pid]
        applied = dt.date.fromisoformat(next(line.split(",")[0] for line in
                                             SWITCH_ROWS.splitlines() if f",{pid}," in line))
        assert row["commitment_date"] == applied, pid
        assert row["esl"] == row["grant"] == row["eligible_cost"], pid  # ESL = the grant
        if ceiling is None:
            assert np.isnan(row["de_minimis_ceiling"]), pid
        else:
            assert row["de_minimis_ceiling"] == ceiling * 100, pid
        assert row["prior_aid"] == prior * 100, pid
        assert bool(row["over_ceiling"]) == (pid in OVER), pid
        if ceiling is not None:
            assert row["over_ceiling"] == (row["esl"] + row["prior_aid"] > ceiling * 100)
    assert kpis["projects_over_de_minimis"] == len(OVER)
    assert kpis["rejected_state_aid"] == kpis["reduced_state_aid"] == 0


def test_a_strict_run_with_flag_only_flags(switch):
    normal = run_replication(switch(), 0, check=True)
    strict = run_replication(switch(strict=True, rule="flag"), 0, check=True)
    for name in ("project_id", "grant", "esl", "over_ceiling"):
        assert np.array_equal(normal.loans[name], strict.loans[name])


def test_reject_leaves_the_application_uncommitted(switch):
    tables = run_replication(switch(strict=True, rule="reject"), 0, check=True)
    rows = _rows(tables.loans)
    assert set(rows) == set(EXPECTED) - OVER
    assert not tables.loans["over_ceiling"].any()
    assert tables.kpis["rejected_state_aid"] == len(OVER)
    assert tables.kpis["projects_over_de_minimis"] == 0
    assert tables.kpis["rejected_no_funds"] == 0  # not a matter of money
    committed = sum(r["grant"] for r in rows.values())
    assert tables.series["total"]["grants_paid"][-1] == committed


def test_reduce_lowers_the_grant_to_the_room_left(switch):
    tables = run_replication(switch(strict=True, rule="reduce"), 0, check=True)
    rows = _rows(tables.loans)
    assert set(rows) == set(EXPECTED)
    for pid, (ceiling, prior) in EXPECTED.items():
        row = rows[pid]
        if pid in OVER:
            # The largest grant that fits: exactly the room under the ceiling.
            assert row["grant"] == row["esl"] == (ceiling - prior) * 100, pid
        else:
            assert row["grant"] == row["eligible_cost"], pid
        assert row["public_loan"] == 0
    assert not tables.loans["over_ceiling"].any()
    assert tables.kpis["reduced_state_aid"] == len(OVER)
    assert tables.kpis["rejected_state_aid"] == 0
    cut = sum(rows[p]["eligible_cost"] - rows[p]["grant"] for p in OVER)
    assert cut == 26_000_000  # 5 x 50,000 + 10,000 EUR
    assert tables.series["total"]["grants_paid"][-1] == sum(r["grant"] for r in rows.values())
    private = sum(r["eligible_cost"] - r["public_loan"] - r["grant"] for r in rows.values())
    assert tables.kpis["private_cofinancing_eur"] * 100 == private == cut


def test_reduce_lowers_the_loan_when_the_grant_is_not_enough(make_scenario):
    line = {"max_cost": 5_000_000, "applications": {"mode": "pipeline",
                                                    "pipeline": "pipeline.csv"},
            "instrument": {"coverage": 0.8, "public_loan_share": 0.9, "grant_share": 0.2,
                           "term_months": 120, "grace_months": 24},
            "state_aid": {"over_ceiling": "reduce"}}
    rows = "date,line,eligible_cost\n2024-01-15,A,3000000\n"
    changes = {"fund": {"endowment": 5_000_000}, "state_aid": {"strict": True},
               "lines": {"A": {**line, "allocation": 5_000_000}}}
    tables = run_replication(make_scenario(changes, pipeline=rows), 0, check=True)
    loans = tables.loans
    assert loans["grant"][0] == 0
    assert 0 < loans["public_loan"][0] < 216_000_000      # 3 M x 0.8 x 0.9, reduced
    assert loans["bank_loan"][0] == 24_000_000           # unchanged: 3 M x 0.8 x 0.1
    esl = int(loans["esl"][0])
    assert esl <= 30_000_000 and 30_000_000 - esl <= 1   # the largest loan that fits
    # One cent more of loan would not fit.
    table = load_rate_table()
    ref, disc = table.reference_rate_at(dt.date(2024, 1, 15)), \
        table.discount_rate_at(dt.date(2024, 1, 15))
    more = loan_schedule(int(loans["public_loan"][0]) + 1, 0.0, 120, 24)
    assert grant_equivalent(more, 0.0, ref, disc) > 30_000_000 or \
        grant_equivalent(more, 0.0, ref, disc) == esl
    assert tables.kpis["reduced_state_aid"] == 1
    assert tables.series["A"]["loans_disbursed"][-1] == loans["public_loan"][0]


def test_no_room_left_rejects_even_when_reducing(make_scenario):
    line = _grant_line(1_000_000, over_ceiling="reduce", prior_aid=300_000)
    rows = "date,line,eligible_cost\n2024-01-15,A,50000\n"
    tables = run_replication(make_scenario({"state_aid": {"strict": True},
                                            "lines": {"A": line}}, pipeline=rows), 0,
                             check=True)
    assert len(tables.loans["project_id"]) == 0
    assert tables.kpis["rejected_state_aid"] == 1


# -- the rates in force at the commitment date ------------------------------------------

STRADDLE = "date,line,eligible_cost\n2023-12-15,A,100000\n2024-01-15,A,100000\n"


def _loan_tables(make_scenario, extra: dict | None = None):
    changes = {"lines": {"A": {"applications": {"mode": "pipeline",
                                                "pipeline": "pipeline.csv"}}}}
    return run_replication(make_scenario(deep_update(changes, extra or {}),
                                         pipeline=STRADDLE), 0, check=True)


def _oracle(when: dt.date, margin_bp: int | None = None, table=None) -> int:
    table = table or load_rate_table()
    # BASE_TABLES line A: 80,000 EUR at 0 %, 6 months grace, 24 months, quarterly French.
    schedule = loan_schedule(8_000_000, 0.0, 24, 6, "quarterly", "french")
    return grant_equivalent(schedule, 0.0, table.reference_rate_at(when, margin_bp),
                            table.discount_rate_at(when))


def test_same_terms_straddling_a_rate_change_get_the_rates_then_in_force(make_scenario):
    loans = _loan_tables(make_scenario).loans
    dec, jan = dt.date(2023, 12, 15), dt.date(2024, 1, 15)
    assert list(loans["commitment_date"]) == [dec, jan]
    assert loans["public_loan"][0] == loans["public_loan"][1] == 8_000_000
    # 3.04 % then 5.11 % (base 2.04 % and 4.11 %, + 100 bp for both rates).
    assert list(loans["esl"]) == [_oracle(dec), _oracle(jan)]
    assert loans["esl"][1] > loans["esl"][0] > 0
    ref_dec = grant_equivalent(loan_schedule(8_000_000, 0.0, 24, 6), 0.0, 0.0304, 0.0304)
    assert loans["esl"][0] == ref_dec


def test_rating_and_collateral_set_the_margin(make_scenario):
    loans = _loan_tables(make_scenario,
                         {"state_aid": {"rating": "weak", "collateral": "low"}}).loans
    dec, jan = dt.date(2023, 12, 15), dt.date(2024, 1, 15)
    assert list(loans["esl"]) == [_oracle(dec, 650), _oracle(jan, 650)]
    explicit = _loan_tables(make_scenario, {"state_aid": {"margin_bp": 650}}).loans
    assert list(explicit["esl"]) == list(loans["esl"])


def test_default_margin_is_sme_without_rating_100_bp(make_scenario):
    scenario = make_scenario()
    assert scenario.reference_margin_bp() == 100
    assert scenario.state_aid.rating is None and scenario.state_aid.collateral == "normal"


FLAT_RATES = """
[[rates]]
valid_from = 2016-01-01
base_pct = 1.5

[margins]
default = "flat"
collateral = ["any"]

[margins.named_bp]
flat = 200

[margins.by_rating_bp]
"""


def test_a_rates_file_of_ones_own_is_used_and_counts_in_the_hash(tmp_path):
    rows = tmp_path / "pipeline.csv"
    rows.write_text(STRADDLE, encoding="utf-8")
    (tmp_path / "rates").mkdir()
    (tmp_path / "rates" / "flat.toml").write_text(FLAT_RATES, encoding="utf-8")
    tables = deep_update(BASE_TABLES, {"lines": {"A": {"applications": {
        "mode": "pipeline", "pipeline": "pipeline.csv"}}}})
    default = load_scenario(write_scenario(tmp_path, tables, "default.toml"))
    tables["state_aid"] = {"rates_file": "rates/flat.toml", "collateral": "any"}
    own = load_scenario(write_scenario(tmp_path, tables, "own.toml"))
    assert own.rate_table() is own.rate_table()  # read once
    assert own.reference_margin_bp() == 200
    loans = run_replication(own, 0, check=True).loans
    flat = grant_equivalent(loan_schedule(8_000_000, 0.0, 24, 6), 0.0, 0.035, 0.025)
    assert list(loans["esl"]) == [flat, flat]  # one rate: no change at the switch
    assert own.hash() != default.hash()

    # The content counts, not the path: the same file elsewhere gives the same hash ...
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "copy.toml").write_text(FLAT_RATES, encoding="utf-8")
    (other / "pipeline.csv").write_text(STRADDLE, encoding="utf-8")
    tables["state_aid"]["rates_file"] = "copy.toml"
    moved = load_scenario(write_scenario(other, tables, "own.toml"))
    assert moved.hash() == own.hash()
    # ... and a changed rate gives another hash.
    (other / "copy.toml").write_text(FLAT_RATES.replace("1.5", "1.75"), encoding="utf-8")
    assert load_scenario(other / "own.toml").hash() != own.hash()
    # The shipped file named explicitly is the default.
    tables["state_aid"] = {"rates_file": str(DEFAULT_RATES_FILE)}
    assert load_scenario(write_scenario(tmp_path, tables, "shipped.toml")).hash() == \
        default.hash()


def test_resolved_scenario_and_pickled_scenario_keep_the_rates(tmp_path):
    (tmp_path / "flat.toml").write_text(FLAT_RATES, encoding="utf-8")
    tables = deep_update(BASE_TABLES, {"state_aid": {"rates_file": "flat.toml",
                                                     "collateral": "any"}})
    scenario = load_scenario(write_scenario(tmp_path, tables))
    elsewhere = tmp_path / "out"
    elsewhere.mkdir()
    (elsewhere / "resolved.toml").write_text(scenario.resolved_toml(), encoding="utf-8")
    again = load_scenario(elsewhere / "resolved.toml")
    assert again.hash() == scenario.hash()
    assert again.rate_table() == scenario.rate_table()
    # Worker processes receive the scenario pickled, with its table.
    copy = pickle.loads(pickle.dumps(scenario))
    assert copy.rate_table() == scenario.rate_table()
    assert copy.rate_table().rates_at(dt.date(2020, 1, 1), 200) == (0.035, 0.025)
    assert copy.hash() == scenario.hash()


def test_strict_is_a_scenario_value_that_set_overrides(tmp_path):
    path = write_scenario(tmp_path, BASE_TABLES)
    assert load_scenario(path).state_aid.strict is False
    strict = load_scenario(path, ["state_aid.strict=true",
                                  "lines.A.state_aid.over_ceiling=reject"])
    assert strict.state_aid.strict is True
    assert strict.lines["A"].state_aid.over_ceiling == "reject"
    assert strict.hash() != load_scenario(path).hash()


# -- declared prior aid -----------------------------------------------------------------


def test_prior_aid_drawn_on_its_own_stream_leaves_the_other_draws_alone(make_scenario):
    changes = {"scenario": {"horizon_months": 60},
               "lines": {"A": {"applications": {"per_month": 2.0}}}}
    fixed = run_replication(make_scenario(changes), 3, check=True)
    drawn = run_replication(make_scenario(deep_update(changes, {"lines": {"A": {
        "state_aid": {"prior_aid": {"dist": "uniform", "low": 0, "high": 150_000}}}}})),
        3, check=True)
    for name in ("project_id", "eligible_cost", "commitment_date", "esl", "status"):
        assert list(fixed.loans[name]) == list(drawn.loans[name]), name
    prior = drawn.loans["prior_aid"]
    assert len(prior) > 5 and (prior >= 0).all() and (prior <= 15_000_000).all()
    assert len(set(prior.tolist())) > 1
    assert list(drawn.loans["over_ceiling"]) == \
        list(drawn.loans["esl"] + prior > drawn.loans["de_minimis_ceiling"])


# -- legacy -----------------------------------------------------------------------------


def test_short_horizon_warns_that_the_legacy_period_is_cut_short(make_scenario):
    scenario = make_scenario()  # 2020-01 .. 2024-12, eligibility end 2023-12-31
    (warning,) = scenario.warnings()
    assert warning.field == "scenario.horizon_months"
    assert "before the end of the 8-year legacy period" in warning.message
    assert "(2031-12-31)" in warning.message and "horizon_months = 144" in warning.message
    assert make_scenario({"scenario": {"horizon_months": 144}}).warnings() == []
    assert make_scenario({"scenario": {"horizon_months": 143}}).warnings() != []
    assert make_scenario({"fund": {"legacy_years": 1}}).warnings() == []
    assert load_scenario(ROOT / "scenarios" / "wecare_fesr_2018.toml").warnings() == []


@pytest.mark.parametrize("horizon", [60, 144, 160])
def test_legacy_period_returns(make_scenario, horizon):
    changes = {"scenario": {"horizon_months": horizon},
               "lines": {"A": {"applications": {"per_month": 1.0},
                               "instrument": {"public_rate": 0.02, "term_months": 96}}}}
    tables = run_replication(make_scenario(changes), 1, check=True)
    s = tables.series["total"]
    returns = s["principal_repaid"] + s["interest_received"] + s["recoveries"] + \
        s["grants_recovered"]
    eligibility, end = 47, min(143, horizon - 1)   # Dec 2023, Dec 2031 (months from Jan 2020)
    assert tables.kpis["legacy_period_returns_eur"] == (returns[end] - returns[eligibility]) / 100
    assert tables.kpis["legacy_period_returns_eur"] > 0


# -- helpers and documentation ------------------------------------------------------------


def test_window_of_each_regulation():
    assert window_start(dt.date(2023, 12, 20)) == dt.date(2021, 1, 1)
    assert window_start(dt.date(2024, 1, 10)) == dt.date(2021, 1, 11)
    assert window_start(dt.date(2024, 2, 29)) == dt.date(2021, 3, 1)
    assert window_start(dt.date(2024, 5, 1), "de_minimis_2013") == dt.date(2022, 1, 1)
    assert window_start(dt.date(2024, 5, 1), "gber") is None


def test_readme_worked_example_has_the_tested_numbers():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## State aid: the gross grant equivalent")[1].split("\n## ")[0]
    esl = grant_equivalent(loan_schedule(10_000_000, 0.0, 48, 12, "quarterly", "french"),
                           0.0, 0.0167, 0.0167)
    assert esl == 506_506
    assert f"{esl:,} cents" in section
    assert f"{esl / 100:,.2f} €" in section
    assert f"{esl / 10_000_000:.2%}".replace("%", " %") in section
    undiscounted = grant_equivalent(loan_schedule(10_000_000, 0.0, 48, 12), 0.0, 0.0167, 0.0)
    assert f"{undiscounted / 100:,.2f} €" in section
    assert re.search(r"loan_schedule\(10_000_000, 0\.0, 48, 12, \"quarterly\", \"french\"\)",
                     section)


def test_bad_rates_file_names_the_rates_file(tmp_path):
    (tmp_path / "rates.toml").write_text(FLAT_RATES.replace("base_pct = 1.5",
                                                            'base_pct = "1,5 %"'))
    tables = deep_update(BASE_TABLES, {"state_aid": {"rates_file": "rates.toml"}})
    with pytest.raises(InputError) as exc:
        load_scenario(write_scenario(tmp_path, tables))
    (problem,) = exc.value.problems
    assert Path(problem.file).name == "rates.toml"
    assert problem.field == "rates[0].base_pct"


def test_run_folder_keeps_copies_of_the_pipeline_and_rates_files(tmp_path):
    from simulator import run as run_scenario
    from simulator.results import load_results
    from simulator.runner import as_run

    source = tmp_path / "source"
    source.mkdir()
    (source / "pipeline.csv").write_text(STRADDLE, encoding="utf-8")
    (source / "flat.toml").write_text(FLAT_RATES, encoding="utf-8")
    tables = deep_update(BASE_TABLES, {
        "state_aid": {"rates_file": "flat.toml", "collateral": "any"},
        "lines": {"A": {"applications": {"mode": "pipeline", "pipeline": "pipeline.csv"}}}})
    scenario = load_scenario(write_scenario(source, tables, "own.toml"))
    run_scenario(scenario, replications=1, workers=1).save(tmp_path / "run")
    for name in ("pipeline.csv", "flat.toml", "own.toml"):
        (source / name).unlink()  # the folder must not need the originals
    assert sorted(p.name for p in (tmp_path / "run").glob("*_*.*")
                  if p.suffix in (".csv", ".toml")) == ["pipeline_pipeline.csv",
                                                        "rates_flat.toml"]
    again = load_results(tmp_path / "run")
    # The same scenario, with the one replication it ran.
    assert again.scenario.scenario.replications == 1
    assert again.scenario.hash() == as_run(scenario, scenario.scenario.seed, [0],
                                           drill_down=False).hash()
