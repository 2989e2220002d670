"""`sweep`: every combination, monotone effects, the point cache, resuming, bad files."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import BASE_TABLES, ROOT, assert_same_charts, deep_update, write_scenario

from simulator import sweep as sweep_module
from simulator.cli_decide import sweep as sweep_command
from simulator.decide import parse_values
from simulator.errors import InputError
from simulator.sweep import is_sweep_file, read_sweep, run_sweep

SMALL = deep_update(BASE_TABLES, {
    "scenario": {"horizon_months": 36, "replications": 10},
    "lines": {"A": {
        "desk_closes": "2020-12-31",
        "applications": {"per_month": 0.5,
                         "cost": {"dist": "uniform", "low": 50_000, "high": 150_000}},
        "instrument": {"coverage": 0.5, "public_loan_share": 1.0},
        "risk": {"default_rate": 0.05, "recovery_rate": 0.3},
    }},
})


def _sweep_file(folder: Path, lines: str, name: str = "sweep.toml") -> Path:
    write_scenario(folder, SMALL, "base.toml")
    path = folder / name
    path.write_text(f'base = "base.toml"\n\n[sweep]\n{lines}', encoding="utf-8")
    return path


GRANTS = '"lines.A.instrument.grant_share" = [0.0, 0.1, 0.2, 0.3]\n'
RUN_POINT = sweep_module.run_point


class Counter:
    """Stands in for the point runner: counts calls, optionally fails after ``limit``."""

    def __init__(self, limit: int | None = None):
        self.calls, self.limit = 0, limit

    def __call__(self, *args, **kwargs):
        if self.limit is not None and self.calls >= self.limit:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C
        self.calls += 1
        return RUN_POINT(*args, **kwargs)


def test_grant_share_up_fund_value_down(tmp_path):
    """More grant, less left in the fund: monotone in every statistic (common random numbers)."""
    result = run_sweep(read_sweep(_sweep_file(tmp_path, GRANTS)), tmp_path / "out", workers=1)
    table = result.table
    assert len(table) == 4 * table["kpi"].nunique()
    value = table[table["kpi"] == "fund_value_end_eur"].sort_values(
        "lines.A.instrument.grant_share")
    assert list(value["lines.A.instrument.grant_share"]) == [0.0, 0.1, 0.2, 0.3]
    for stat in ("mean", "p5", "p50", "p95"):
        assert value[stat].is_monotonic_decreasing, stat
    assert value["mean"].iloc[0] > value["mean"].iloc[-1]
    grants = table[table["kpi"] == "grants_paid_eur"]["mean"]
    assert grants.is_monotonic_increasing and grants.iloc[0] == 0


def test_shipped_sweep_is_monotone_for_each_coverage(tmp_path):
    sweep = read_sweep(ROOT / "scenarios" / "sweep_grant_share.toml",
                       overrides=["scenario.horizon_months=120"])
    assert len(sweep.points) == 8
    result = run_sweep(sweep, tmp_path / "out", replications=10, workers=1)
    value = result.table[result.table["kpi"] == "fund_value_end_eur"]
    for _, group in value.groupby("lines.A.instrument.coverage"):
        assert group.sort_values("lines.A.instrument.grant_share")["mean"] \
            .is_monotonic_decreasing
    assert len(read_sweep(ROOT / "scenarios" / "sweep_risk.toml").points) == 9
    assert is_sweep_file(ROOT / "scenarios" / "sweep_risk.toml")
    assert not is_sweep_file(ROOT / "scenarios" / "wecare_fesr_2018.toml")


def test_outputs_one_row_per_point_and_kpi(tmp_path):
    path = _sweep_file(tmp_path, GRANTS + '"lines.A.risk.default_rate" = [0.0, 0.1]\n')
    result = run_sweep(read_sweep(path), tmp_path / "out", replications=5, seed=11, workers=1)
    out = tmp_path / "out"
    for name in ("sweep.parquet", "sweep.csv", "sweep.json"):
        assert (out / name).is_file()
    table = pd.read_parquet(out / "sweep.parquet")
    assert list(table.columns[:3]) == ["point", "lines.A.instrument.grant_share",
                                       "lines.A.risk.default_rate"]
    assert {"kpi", "label", "unit", "mean", "p5", "p50", "p95", "replications",
            "scenario_hash"} <= set(table.columns)
    assert table["point"].nunique() == 8 and (table["replications"] <= 5).all()
    assert len(pd.read_csv(out / "sweep.csv")) == len(table) == len(result.table)
    assert len(list((out / "points").glob("*.parquet"))) == 8
    manifest = json.loads((out / "sweep.json").read_text())
    assert len(manifest["points"]) == 8 and {p["seed"] for p in manifest["points"]} == {11}


def test_interrupted_sweep_resumes_computing_only_the_missing_points(tmp_path, monkeypatch):
    path = _sweep_file(tmp_path, GRANTS)
    out = tmp_path / "out"
    first = Counter(limit=2)
    monkeypatch.setattr(sweep_module, "run_point", first)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(read_sweep(path), out, workers=1)
    assert first.calls == 2
    assert len(list((out / "points").glob("*.parquet"))) == 2
    assert not (out / "sweep.csv").exists()  # written only when every point is there
    assert not list((out / "points").glob(".*partial"))

    second = Counter()
    monkeypatch.setattr(sweep_module, "run_point", second)
    resumed = run_sweep(read_sweep(path), out, workers=1)
    assert second.calls == 2 and resumed.reused == [1, 2] and resumed.computed == [3, 4]

    third = Counter()
    monkeypatch.setattr(sweep_module, "run_point", third)
    again = run_sweep(read_sweep(path), out, workers=1)
    assert third.calls == 0
    pd.testing.assert_frame_equal(again.table, resumed.table)

    # The same numbers as a sweep run in one go.
    fresh = run_sweep(read_sweep(path), tmp_path / "fresh", workers=1)
    pd.testing.assert_frame_equal(fresh.table, resumed.table)

    # A changed point is computed again; the others are reused.
    changed = _sweep_file(tmp_path, '"lines.A.instrument.grant_share" = [0.0, 0.1, 0.25, 0.3]\n')
    fourth = Counter()
    monkeypatch.setattr(sweep_module, "run_point", fourth)
    assert run_sweep(read_sweep(changed), out, workers=1).computed == [3]
    assert fourth.calls == 1
    # More replications are a different point too.
    assert run_sweep(read_sweep(changed), out, replications=3, workers=1).reused == []
    # And so is every point for another version of the tool (its numbers may differ).
    monkeypatch.setattr("simulator.__version__", "99.0")
    assert run_sweep(read_sweep(changed), out, workers=1).reused == []


def test_a_sweep_on_two_processes_gives_the_same_table_around_cached_points(tmp_path):
    path = _sweep_file(tmp_path, GRANTS)
    serial = run_sweep(read_sweep(path), tmp_path / "serial", workers=1)
    # Points 2 and 4 are already there; 1 and 3 share the two processes around them.
    out = tmp_path / "pooled"
    two = _sweep_file(tmp_path, '"lines.A.instrument.grant_share" = [0.1, 0.3]\n', "two.toml")
    run_sweep(read_sweep(two), out, workers=2)
    pooled = run_sweep(read_sweep(path), out, workers=2)
    assert pooled.reused == [2, 4] and pooled.computed == [1, 3]
    pd.testing.assert_frame_equal(pooled.table, serial.table)
    # Its charts, drawn on two processes, are the serial sweep's.
    assert_same_charts(out / "charts", tmp_path / "serial" / "charts")


def test_two_points_that_make_the_same_scenario_are_computed_once(tmp_path, monkeypatch):
    counter = Counter()
    monkeypatch.setattr(sweep_module, "run_point", counter)
    path = _sweep_file(tmp_path, '"lines.A.instrument.grant_share" = [0, 0.0, 0.1]\n')
    result = run_sweep(read_sweep(path), tmp_path / "out", workers=2)
    assert counter.calls == 2 and result.computed == [1, 3] and result.reused == [2]
    table = result.table.set_index(["point", "kpi"])
    pd.testing.assert_frame_equal(table.loc[1].drop(columns=["lines.A.instrument.grant_share"]),
                                  table.loc[2].drop(columns=["lines.A.instrument.grant_share"]))


def test_vary_adds_and_replaces_lists(tmp_path):
    path = _sweep_file(tmp_path, GRANTS)
    sweep = read_sweep(path, vary=["lines.A.instrument.grant_share=0,0.05",
                                   "lines.A.procedure=sportello,graduatoria"])
    assert sweep.dims == {"lines.A.instrument.grant_share": [0, 0.05],
                          "lines.A.procedure": ["sportello", "graduatoria"]}
    assert len(sweep.points) == 4
    assert sweep.points[1].scenario.lines["A"].procedure == "graduatoria"
    # The folder is named by the file and the paths added on the command line: other
    # values for the file's paths find the finished points in the same folder.
    assert sweep.default_folder() == Path("results/sweep-sweep-procedure")
    assert read_sweep(path, vary=["lines.A.instrument.grant_share=0.5"]).default_folder() == \
        Path("results/sweep-sweep")
    # A scenario file with --vary is a sweep too.
    plain = read_sweep(tmp_path / "base.toml", vary=["lines.A.risk.default_rate=0.01,0.02"])
    assert [p.scenario.lines["A"].risk.default_rate for p in plain.points] == [0.01, 0.02]
    assert plain.default_folder() == Path("results/sweep-base-default_rate")


def test_values_with_commas():
    assert parse_values('0, 0.1, 2020-03-01') == [0, 0.1, dt.date(2020, 3, 1)]
    assert parse_values('{dist = "uniform", low = 1, high = 3}, 2') == [
        {"dist": "uniform", "low": 1, "high": 3}, 2]
    assert parse_values("sportello,graduatoria") == ["sportello", "graduatoria"]


@pytest.mark.parametrize(("lines", "expected"), [
    ('"lines.A.instrument.grnt_share" = [0.1]\n',
     "[sweep] lines.A.instrument.grnt_share: unknown field (did you mean 'grant_share'?)"),
    ('"lines.A.risk.default_rate" = []\n',
     "[sweep] lines.A.risk.default_rate: empty list"),
    ('"lines.A.risk.default_rate" = [0.01, "high"]\n',
     "[sweep] lines.A.risk.default_rate: expected a number, got 'high'"),
    ('"lines.A.risk.default_rate" = [0.01, 1.5]\n',
     "[sweep] lines.A.risk.default_rate: must be between 0 and 1, got 1.5"),
    ('"lines.A.risk.default_rate" = 0.01\n',
     "[sweep] lines.A.risk.default_rate: must be a list of values"),
    ('"lines.Z.risk.default_rate" = [0.01]\n',
     "[sweep] lines.Z.risk.default_rate: no line 'Z'"),
])
def test_bad_sweep_files_are_refused_before_anything_runs(tmp_path, monkeypatch, lines,
                                                          expected):
    counter = Counter(limit=0)
    monkeypatch.setattr(sweep_module, "run_point", counter)
    path = _sweep_file(tmp_path, lines)
    with pytest.raises(InputError) as info:
        read_sweep(path)
    assert any(f"sweep.toml: {expected}" in str(p) for p in info.value.problems), \
        [str(p) for p in info.value.problems]
    out = tmp_path / "out"
    result = CliRunner().invoke(sweep_command, [str(path), "--out", str(out)])
    assert result.exit_code == 2
    assert expected in result.output and "Traceback" not in result.output
    assert counter.calls == 0 and not out.exists()


def test_every_mistake_at_once_and_combinations_named(tmp_path):
    path = _sweep_file(tmp_path, '"lines.A.instrument.grnt_share" = [0.1]\n'
                                 '"lines.A.risk.default_rate" = [0.01, -1]\n'
                                 '"lines.A.instrument.coverage" = [0.5, 1.0]\n'
                                 '"lines.A.instrument.grant_share" = [0.0, 0.2]\n'
                                 '"lines.A.risk.failure_rate" = []\n')
    with pytest.raises(InputError) as info:
        read_sweep(path)
    messages = [str(p) for p in info.value.problems]
    assert len(messages) == 4, messages
    assert any("failure_rate: empty list" in m for m in messages)
    assert any("grnt_share: unknown field" in m for m in messages)
    assert any("default_rate: must be between 0 and 1, got -1" in m for m in messages)
    # Loan + grant above the cost happens only in one combination: it is named.
    assert any("exceed the eligible cost" in m and "with lines.A.instrument.coverage=1, "
               "lines.A.instrument.grant_share=0.2" in m for m in messages)


def test_nothing_to_vary_and_missing_base(tmp_path):
    write_scenario(tmp_path, SMALL, "base.toml")
    with pytest.raises(InputError, match="nothing to vary"):
        read_sweep(tmp_path / "base.toml")
    orphan = tmp_path / "orphan.toml"
    orphan.write_text('[sweep]\n"lines.A.risk.default_rate" = [0.01]\n', encoding="utf-8")
    with pytest.raises(InputError, match="base: missing"):
        read_sweep(orphan)
    with pytest.raises(InputError, match="--vary: nope"):
        read_sweep(tmp_path / "base.toml", vary=["nope"])


def test_cli_prints_the_table_and_reuses_points(tmp_path):
    path = _sweep_file(tmp_path, GRANTS)
    out = tmp_path / "out"
    args = [str(path), "--out", str(out), "-w", "1", "--kpi", "grants_paid_eur"]
    first = CliRunner().invoke(sweep_command, args)
    assert first.exit_code == 0, first.output
    assert "Contributi erogati" in first.output and "grant_share" in first.output
    # The table (standard output) names the swept value and shows it as the charts do.
    assert "Quota di contributo" in first.stdout and "10 %" in first.stdout
    assert "0.1" not in first.stdout
    assert "4 punti calcolati, 0 ripresi" in first.output
    second = CliRunner().invoke(sweep_command, args)
    assert "0 punti calcolati, 4 ripresi" in second.output
    bad = CliRunner().invoke(sweep_command, [*args, "--kpi", "fund_value"])
    assert bad.exit_code == 2 and "--kpi: fund_value: unknown KPI" in bad.output


def test_cli_table_shows_whole_and_fine_values_exactly(tmp_path):
    # TOML reads 0 as an integer; a rate of 0.0025 is 0,25 % (not 0,3 %).
    path = _sweep_file(tmp_path, '"lines.A.risk.default_rate" = [0, 0.0025, 0.05]\n')
    result = CliRunner().invoke(sweep_command, [str(path), "--out", str(tmp_path / "out"),
                                                "-w", "1", "--kpi", "losses_eur"])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    rows = [line for line in result.stdout.splitlines() if line.startswith("│")]
    assert [row.split("│")[2].strip() for row in rows if row.split("│")[1].strip()] == \
        ["0 %", "0,25 %", "5 %"]
