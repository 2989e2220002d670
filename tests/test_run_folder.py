"""The run folder contract, determinism and the `fesr-sim run` command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from simulator import load_scenario
from simulator import results as results_module
from simulator import run as run_scenario
from simulator.cli import main
from simulator.results import FILES, load_results

REFERENCE = "scenarios/wecare_fesr_2018.toml"


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs") / "ref"
    results = run_scenario(load_scenario(REFERENCE), replications=6, check=True)
    results.save(folder)
    return folder


def test_run_folder_has_every_file_and_column(reference_run):
    for name in FILES:
        assert (reference_run / name).exists(), name
    results = load_results(reference_run)
    ts = results.timeseries
    for col in ("replication", "date", "line", "cash", "committed_undisbursed",
                "loans_outstanding", "legacy", "loans_disbursed", "grants_paid",
                "grants_recovered", "principal_repaid", "interest_received",
                "principal_written_off", "recoveries", "fees_paid", "treasury_interest",
                "reallocated_in", "reallocated_out", "applications", "admitted", "committed",
                "rejected_no_funds", "waiting"):
        assert col in ts.columns, col
    assert set(ts["line"]) == {"A", "B", "total"}
    assert len(ts) == 6 * 207 * 3
    assert ts["cash"].dtype == np.int64
    # Every timeseries cell has a value, and the file says so (required columns).
    schema = pq.read_schema(reference_run / "timeseries.parquet")
    assert not any(field.nullable for field in schema)
    assert not ts.isna().any().any()
    for col in ("replication", "project_id", "line", "status", "application_date",
                "commitment_date", "first_disbursement_date", "completion_date", "end_date",
                "eligible_cost", "public_loan", "bank_loan", "grant", "principal_repaid",
                "interest_paid", "written_off", "recovered", "esl"):
        assert col in results.loans.columns, col
    assert set(results.loans["status"]) <= {"active", "repaid", "prepaid", "defaulted",
                                            "failed"}
    assert list(results.summary.columns[:6]) == ["kpi", "unit", "mean", "p5", "p50", "p95"]
    manifest = json.loads((reference_run / "manifest.json").read_text())
    assert manifest["replications"] == 6
    assert manifest["scenario_hash"] == results.scenario.hash()
    # The scenario as run: the file's, with the 6 replications asked for.
    assert results.scenario.scenario.replications == 6
    assert load_scenario(REFERENCE, ["scenario.replications=6"]).hash() == \
        results.scenario.hash()


def test_total_is_the_sum_of_lines_and_dates_are_month_ends(reference_run):
    ts = load_results(reference_run).timeseries
    money = [c for c in ts.columns if c not in ("replication", "date", "line")]
    lines = ts[ts["line"] != "total"].groupby(["replication", "date"])[money].sum()
    total = ts[ts["line"] == "total"].set_index(["replication", "date"])[money]
    pd.testing.assert_frame_equal(lines.sort_index(), total.sort_index(), check_dtype=False)
    dates = pd.to_datetime(ts["date"])
    assert (dates + pd.Timedelta(days=1)).dt.day.eq(1).all()
    assert dates.min() == pd.Timestamp("2018-10-31")
    assert dates.max() == pd.Timestamp("2035-12-31")


def test_kpis_match_the_timeseries(reference_run):
    results = load_results(reference_run)
    ts = results.timeseries
    last = ts[(ts["line"] == "total") & (ts["date"] == ts["date"].max())].set_index(
        "replication")
    kpis = results.kpis.set_index("replication")
    assert np.allclose(kpis["loans_disbursed_eur"], last["loans_disbursed"] / 100)
    assert np.allclose(kpis["fund_value_end_eur"],
                       (last["cash"] + last["loans_outstanding"]) / 100)
    financed = results.loans.groupby(["replication", "line"]).size().unstack(fill_value=0)
    assert np.array_equal(kpis["projects_financed_A"].to_numpy(),
                          financed.reindex(kpis.index, fill_value=0)["A"].to_numpy())


def test_same_seed_gives_identical_files_and_other_seed_differs(tmp_path):
    runner = CliRunner()
    for name, seed in (("a", "5"), ("b", "5"), ("c", "6")):
        result = runner.invoke(main, ["run", REFERENCE, "-n", "3", "--seed", seed, "--out",
                                      str(tmp_path / name), "--no-report"])
        assert result.exit_code == 0, result.output
    for name in ("timeseries.parquet", "loans.parquet", "kpis.parquet", "summary.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "loans.parquet").read_bytes() != \
        (tmp_path / "c" / "loans.parquet").read_bytes()


def test_run_folder_scenario_runs_again_to_the_same_files(tmp_path):
    # --replications and --seed are recorded in scenario.toml: running that file again
    # (without them) gives the same files; the hash is the scenario's as run.
    runner = CliRunner()
    first = runner.invoke(main, ["run", REFERENCE, "-n", "4", "--seed", "77", "--out",
                                 str(tmp_path / "first"), "--no-report"])
    assert first.exit_code == 0, first.output
    ran = load_scenario(tmp_path / "first" / "scenario.toml")
    assert (ran.scenario.replications, ran.scenario.seed) == (4, 77)
    again = runner.invoke(main, ["run", str(tmp_path / "first" / "scenario.toml"), "--out",
                                 str(tmp_path / "again"), "--no-report"])
    assert again.exit_code == 0, again.output
    for name in ("timeseries.parquet", "loans.parquet", "kpis.parquet", "summary.csv",
                 "scenario.toml"):
        assert (tmp_path / "first" / name).read_bytes() == \
            (tmp_path / "again" / name).read_bytes(), name
    manifests = [json.loads((tmp_path / f / "manifest.json").read_text())
                 for f in ("first", "again")]
    assert manifests[0]["scenario_hash"] == manifests[1]["scenario_hash"] == ran.hash()
    assert ran.hash() != load_scenario(REFERENCE).hash()
    # A drill-down keeps the scenario's number of replications (the manifest lists its own).
    drill = runner.invoke(main, ["run", REFERENCE, "--replication", "3", "--out",
                                 str(tmp_path / "drill"), "--no-report"])
    assert drill.exit_code == 0, drill.output
    kept = load_scenario(tmp_path / "drill" / "scenario.toml")
    assert kept.scenario.replications == load_scenario(REFERENCE).scenario.replications
    assert json.loads((tmp_path / "drill" / "manifest.json").read_text())[
        "replication_ids"] == [3]


def test_one_replication_drill_down_gives_the_same_numbers(tmp_path, reference_run):
    full = load_results(reference_run)
    alone = run_scenario(load_scenario(REFERENCE), replication_ids=[4])
    pd.testing.assert_frame_equal(
        full.loans[full.loans["replication"] == 4].reset_index(drop=True),
        alone.loans.reset_index(drop=True))
    pd.testing.assert_frame_equal(
        full.kpis[full.kpis["replication"] == 4].reset_index(drop=True), alone.kpis)


def test_bad_scenario_writes_no_folder(tmp_path):
    result = CliRunner().invoke(main, ["run", REFERENCE, "--set",
                                       "lines.B.instrument.public_loan_share=1.4",
                                       "--out", str(tmp_path / "out"), "--no-report"])
    assert result.exit_code == 2
    assert "lines.B.instrument.public_loan_share" in result.output
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_interrupted_save_leaves_nothing(tmp_path, monkeypatch):
    results = run_scenario(load_scenario(REFERENCE), replications=1)

    def explode(*args, **kwargs):
        raise KeyboardInterrupt

    # Ctrl-C while the last files are written, every table already in place.
    monkeypatch.setattr(results_module, "write_tables", explode)
    with pytest.raises(KeyboardInterrupt):
        results.save(tmp_path / "run")
    assert list(tmp_path.iterdir()) == []


def _decided_on_a_tick(folder: Path) -> str:
    """The reference with a pipeline row decided on the instant of line A's waiting-list
    tick (dated on a month's first day, evaluated in one month): the SimPy model's."""
    (folder / "applications.csv").write_text(
        "date,line,eligible_cost,evaluation_months\n2019-03-01,A,1200000,1\n"
        "2019-04-20,A,1500000,\n", encoding="utf-8")
    (folder / "tick.toml").write_text(
        f'base = "{Path(REFERENCE).resolve().as_posix()}"\n[scenario]\nname = "tick"\n'
        '[lines.A.applications]\nmode = "pipeline"\npipeline = "applications.csv"\n',
        encoding="utf-8")
    return str(folder / "tick.toml")


_SIMPY_NOTE = ("line A decides on the instant of its waiting list's monthly tick: the "
               "scenario runs on the SimPy model")


def test_a_run_says_when_the_scenario_is_left_to_the_simpy_model(tmp_path):
    """The command says the run is on the SimPy model, and the manifest records the
    engine; neither for the reference."""
    runs = {}
    for name, scenario in (("tick", _decided_on_a_tick(tmp_path)), ("reference", REFERENCE)):
        result = CliRunner().invoke(main, ["run", scenario, "-n", "2", "--out",
                                           str(tmp_path / name), "--no-report"])
        assert result.exit_code == 0, result.output
        manifest = json.loads((tmp_path / name / "manifest.json").read_text())
        runs[name] = result.output, manifest["engine"]
    output, engine = runs["tick"]
    assert _SIMPY_NOTE in " ".join(output.split())
    assert engine == "simpy (line A decides on the instant of its waiting list's monthly tick)"
    output, engine = runs["reference"]
    assert "SimPy" not in output and engine == "batch"


def test_a_comparison_says_once_which_scenarios_run_on_the_simpy_model(tmp_path):
    tick = _decided_on_a_tick(tmp_path)
    result = CliRunner().invoke(main, ["compare", REFERENCE, tick, "-n", "2", "--out",
                                       str(tmp_path / "comparison")])
    assert result.exit_code == 0, result.output
    assert " ".join(result.output.split()).count(_SIMPY_NOTE) == 1


def test_run_prints_the_summary_table(tmp_path):
    result = CliRunner().invoke(main, ["run", REFERENCE, "-n", "2", "--out",
                                       str(tmp_path / "r"), "--no-report", "--check"])
    assert result.exit_code == 0, result.output
    assert "Progetti finanziati, linea A" in result.output
    assert "P95" in result.output
    assert str(tmp_path / "r") in result.output.replace("\n", "")


def test_a_narrow_terminal_wraps_kpi_labels_never_numbers(monkeypatch):
    from rich.console import Console

    from simulator import cli
    from simulator.labels import kpi_value

    out = Console(width=80, force_terminal=True, color_system=None, highlight=False)
    monkeypatch.setattr(cli, "console", out)
    summary = pd.DataFrame({"kpi": ["disbursed_by_source_FSC", "leverage"],
                            "unit": ["EUR", "ratio"], "mean": [9254611.4, 3.37],
                            "p5": [7646684.0, 2.88], "p50": [9361968.0, 3.41],
                            "p95": [10622383.0, 3.7]})
    with out.capture() as captured:
        cli._print_summary(summary, "riepilogo", 1000)
    text = captured.get()
    for row in summary.itertuples():
        for value in (row.mean, row.p5, row.p50, row.p95):
            assert kpi_value(value, row.unit) in text, value
    assert max(len(line) for line in text.splitlines()) <= 80


def test_a_run_folder_has_the_permissions_of_any_new_folder(tmp_path):
    """Written privately while incomplete, readable like any folder once in place."""
    import stat

    from simulator import load_scenario
    from simulator.runner import run_to_folder

    (tmp_path / "plain").mkdir()
    expected = stat.S_IMODE((tmp_path / "plain").stat().st_mode)
    run_to_folder(load_scenario("scenarios/wecare_fesr_2018.toml"), tmp_path / "run",
                  replications=3, workers=1)
    assert stat.S_IMODE((tmp_path / "run").stat().st_mode) == expected


def test_sources_of_money_are_named_in_the_users_language():
    from simulator.labels import kpi_label

    assert [kpi_label(f"disbursed_{s}_eur", "EUR") for s in ("eu", "state", "region", "fsc")] \
        == ["Erogato da fonte UE", "Erogato da fonte Stato", "Erogato da fonte Regione",
            "Erogato da fonte FSC"]
    assert kpi_label("disbursed_state_eur", "EUR", "en") == "Paid out of State"
    assert kpi_label("disbursed_bei_eur", "EUR") == "Erogato da fonte BEI"   # not named


def test_summary_says_which_kpis_cover_fewer_replications_and_when_there_are_few(tmp_path):
    few = CliRunner().invoke(main, ["run", REFERENCE, "-n", "30", "--out",
                                    str(tmp_path / "few"), "--no-report"])
    assert few.exit_code == 0, few.output
    summary = pd.read_csv(tmp_path / "few" / "summary.csv")
    partial = summary[summary["replications"] < 30]
    assert len(partial)   # months to the desk's exhaustion: only where it ran dry
    text = " ".join(few.output.split())
    assert "Solo sulle replicazioni in cui l'indicatore ha un valore (su 30)" in text
    from simulator.labels import kpi_label

    for row in partial.itertuples():
        assert f"{kpi_label(row.kpi, row.unit)}: {row.replications}" in text
    assert "Con meno di 100 replicazioni i percentili sono stime grezze" in text
    enough = CliRunner().invoke(main, ["run", REFERENCE, "-n", "100", "--out",
                                       str(tmp_path / "enough"), "--no-report"])
    assert enough.exit_code == 0, enough.output
    assert "stime grezze" not in enough.output
    # A drill-down is few replications by choice: no warning.
    drill = CliRunner().invoke(main, ["run", REFERENCE, "--replication", "17", "--out",
                                      str(tmp_path / "drill"), "--no-report"])
    assert drill.exit_code == 0, drill.output
    assert "1 replicazioni" in drill.output and "stime grezze" not in drill.output


def test_folders_left_by_a_killed_run_are_removed_by_the_next_one(tmp_path):
    import os
    import socket
    import subprocess
    import sys

    from simulator.runner import run_to_folder

    host = socket.gethostname().replace(".", "_")
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    dead = int(ended.stdout)   # a process that has ended (SIGKILL'd, say)
    abandoned = tmp_path / f".old.{host}-{dead}.ab12cd34.partial"
    writing = tmp_path / f".other.{host}-{os.getpid()}.zz99yy88.partial"   # alive: stays
    elsewhere = tmp_path / f".shared.otherhost-{dead}.qq11ww22.partial"   # other machine
    untagged = tmp_path / ".older.k3j4h5g6.partial"   # an older version's: not ours to judge
    for folder in (abandoned, writing, elsewhere, untagged):
        (folder / "sub").mkdir(parents=True)
        (folder / "sub" / "timeseries.parquet").write_bytes(b"x" * 1000)
    run_to_folder(load_scenario(REFERENCE), tmp_path / "new", replications=2, workers=1)
    assert not abandoned.exists()
    assert writing.exists() and elsewhere.exists() and untagged.exists()
    assert (tmp_path / "new" / "summary.csv").exists()
