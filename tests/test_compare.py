"""`compare`: paired replications (common random numbers), intervals, run folders, CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import BASE_TABLES, deep_update, write_scenario

from simulator import load_scenario
from simulator import run as run_scenario
from simulator.cli_decide import compare as compare_command
from simulator.compare import compare, difference_stats
from simulator.errors import InputError

# A small stochastic fund: Poisson applications of random cost, no constraint on money,
# so that a grant changes the fund by exactly the grants paid.
STOCHASTIC = deep_update(BASE_TABLES, {
    "scenario": {"horizon_months": 36},
    "lines": {"A": {
        "desk_closes": "2020-12-31",
        "applications": {"per_month": 0.4,
                         "cost": {"dist": "uniform", "low": 50_000, "high": 150_000}},
        "instrument": {"coverage": 0.5, "public_loan_share": 1.0},
        "risk": {"failure_rate": 0.1, "default_rate": 0.05, "recovery_rate": 0.3},
    }},
})


@pytest.fixture
def files(tmp_path):
    base = write_scenario(tmp_path, STOCHASTIC, "base.toml")
    grant = write_scenario(tmp_path, deep_update(STOCHASTIC, {
        "scenario": {"name": "grant"},
        "lines": {"A": {"instrument": {"grant_share": 0.2}}}}), "grant.toml")
    return base, grant


def test_a_scenario_compared_with_itself_differs_by_exactly_zero(files):
    base, _ = files
    result = compare([base, base], replications=15, workers=1)
    names = [a.name for a in result.alternatives]
    assert len(set(names)) == 2  # same scenario twice: told apart
    other = names[1]
    table = result.table.set_index("kpi")
    assert table.loc["projects_financed_A", f"{names[0]}.mean"] > 0
    for column in ("diff_mean", "diff_p5_paired", "diff_p50_paired", "diff_p95_paired",
                   "diff_mean_ci90_low", "diff_mean_ci90_high"):
        values = table[f"{other}.{column}"].dropna()
        assert len(values) >= len(table) - 1  # desk_exhausted_month may be undefined
        assert (values == 0).all(), column


def test_common_random_numbers_make_the_paired_difference_exact(files):
    base, grant = files
    result = compare([base, grant], replications=15, workers=1)
    kpis = {a.name: a.kpis.set_index("replication") for a in result.alternatives}
    a, b = kpis["tiny"], kpis["grant"]
    # Same applications and fates in every replication: the same projects are financed,
    # and the fund loses exactly what the grants cost (no fees, no money constraint).
    assert (a["projects_financed_A"] == b["projects_financed_A"]).all()
    extra_grants = b["grants_paid_eur"] - a["grants_paid_eur"]
    assert (extra_grants >= 0).all() and extra_grants.sum() > 0
    lost = a["fund_value_end_eur"] - b["fund_value_end_eur"]
    np.testing.assert_allclose(lost, extra_grants, atol=0.01)
    row = result.table.set_index("kpi").loc["grants_paid_eur"]
    assert row["grant.diff_mean"] == pytest.approx(extra_grants.mean())
    assert row["grant.diff_p5_paired"] <= row["grant.diff_mean"] <= row["grant.diff_p95_paired"]
    assert row["grant.diff_mean_ci90_low"] < row["grant.diff_mean"] < \
        row["grant.diff_mean_ci90_high"]
    assert row["grant.diff_pairs"] == 15


def test_interval_formulas():
    diff = np.arange(1.0, 11.0)  # mean 5.5, sd 3.02765
    stats = difference_stats(diff)
    assert stats["diff_mean"] == 5.5
    assert stats["diff_p5_paired"] == pytest.approx(np.percentile(diff, 5))
    assert stats["diff_p95_paired"] == pytest.approx(np.percentile(diff, 95))
    half = 1.8331129326536335 * diff.std(ddof=1) / np.sqrt(10)  # t(0.95, 9)
    assert stats["diff_mean_ci90_low"] == pytest.approx(5.5 - half)
    assert stats["diff_mean_ci90_high"] == pytest.approx(5.5 + half)


def test_baseline_by_name_and_unknown_baseline(files):
    base, grant = files
    result = compare([base, grant], baseline="grant", replications=5, workers=1)
    assert result.baseline == "grant"
    assert "tiny.diff_mean" in result.table.columns
    assert "grant.diff_mean" not in result.table.columns
    with pytest.raises(InputError, match="no such alternative"):
        compare([base, grant], baseline="nope", replications=5, workers=1)


def test_run_folders_pair_with_files_and_refuse_different_seeds(files, tmp_path):
    base, grant = files
    run_scenario(load_scenario(base), replications=8, seed=3, workers=1).save(tmp_path / "r1")
    run_scenario(load_scenario(grant), replications=8, seed=4, workers=1).save(tmp_path / "r2")
    # A run folder fixes the seed and the replications the files are run with.
    mixed = compare([tmp_path / "r1", grant], workers=1)
    assert mixed.seed == 3 and mixed.replication_ids == list(range(8))
    fresh = compare([base, grant], seed=3, replications=8, workers=1)
    pd.testing.assert_frame_equal(mixed.table, fresh.table)
    with pytest.raises(InputError, match="cannot pair") as info:
        compare([tmp_path / "r1", tmp_path / "r2"], workers=1)
    assert "seed 4" in str(info.value) and "seed 3" in str(info.value)
    with pytest.raises(InputError, match="run with seed 3"):
        compare([tmp_path / "r1", grant], seed=9, workers=1)


def test_comparison_folder_and_terminal_table(files, tmp_path):
    base, grant = files
    out = tmp_path / "cmp"
    result = CliRunner().invoke(compare_command, [str(base), str(grant), "-n", "6", "-w", "1",
                                                  "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "grant rispetto a tiny" in result.output
    assert "Contributi erogati" in result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "charts", "comparison.csv", "comparison.json", "kpis_grant.parquet",
        "kpis_tiny.parquet", "scenario_grant.toml", "scenario_tiny.toml"]
    assert sorted(p.name for p in (out / "charts").iterdir()) == [
        "confronto_indicatori.csv", "confronto_indicatori.png", "confronto_indicatori.svg"]
    table = pd.read_csv(out / "comparison.csv")
    assert {"kpi", "label", "unit", "tiny.mean", "tiny.p5", "tiny.p50", "tiny.p95",
            "grant.mean", "grant.diff_mean", "grant.diff_p5_paired", "grant.diff_p95_paired",
            "grant.diff_mean_ci90_low", "grant.diff_mean_ci90_high"} <= set(table.columns)
    assert len(pd.read_parquet(out / "kpis_tiny.parquet")) == 6
    manifest = json.loads((out / "comparison.json").read_text())
    assert manifest["baseline"] == "tiny" and manifest["replications"] == 6
    # The folder exists now: a second run refuses to overwrite it, writing nothing.
    again = CliRunner().invoke(compare_command, [str(base), str(grant), "--out", str(out)])
    assert again.exit_code == 2 and "already exists" in again.output


def test_cli_errors_are_one_line_each(files, tmp_path):
    base, _ = files
    result = CliRunner().invoke(compare_command, [str(base), str(tmp_path / "missing.toml")])
    assert result.exit_code == 2
    assert "missing.toml: file not found" in result.output
    assert "Traceback" not in result.output


def test_terminal_differences_of_shares_in_points_and_intervals_in_one_unit():
    from simulator.cli_decide import _interval, _signed

    # 2,64 % -> 31,49 %: +28,85 points, not "+28,85 %" (a relative change of 1,093 %).
    assert _signed(28.85, "%", True) == "+28,85 p.p."
    assert _signed(-0.016, "share", True) == "-1,6 p.p."
    assert _signed(0.0, "share", True) == "0,0 p.p."
    assert _interval(-0.05, 0.125, "share", signed=True) == "[-5,0 p.p.; +12,5 p.p.]"
    # Both ends of an interval in the unit of the larger one.
    assert _interval(-148_000.0, 8_605.0, "EUR", signed=True) == "[-148 k€; +9 k€]"
    assert _interval(-2_500_000.0, 40_000.0, "EUR", signed=True) == "[-2,50 M€; +0,04 M€]"
    assert _signed(1_200_000.0, "EUR", True) == "+1,20 M€"
