"""Same results whatever the backend: serial, local processes, Dask; streaming runs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator import load_scenario
from simulator import run as run_in_memory
from simulator.batch import unsupported
from simulator.decide import collect_kpis, run_kpis
from simulator.executors import Run, chunk_size, runs_results
from simulator.metrics import summarise
from simulator.results import load_results
from simulator.runner import run_to_folder

REFERENCE = "scenarios/wecare_fesr_2018.toml"
FILES = ("timeseries.parquet", "loans.parquet", "kpis.parquet", "summary.csv")


@pytest.fixture(scope="module")
def scenario():
    return load_scenario(REFERENCE)


def _bytes(folder):
    return {name: (folder / name).read_bytes() for name in FILES}


def test_serial_and_two_local_workers_write_identical_files(scenario, tmp_path):
    # 600 replications = 3 chunks of the batch engine: this process and a helper share them.
    assert chunk_size(scenario) == 250
    run_to_folder(scenario, tmp_path / "serial", replications=600, workers=1)
    run_to_folder(scenario, tmp_path / "pool", replications=600, workers=2)
    assert _bytes(tmp_path / "serial") == _bytes(tmp_path / "pool")


def test_workers_decide_how_many_processes_simulate(scenario, tmp_path, monkeypatch):
    # Each chunk notes the process that simulated it (helpers are forked: they run the
    # patched function too).
    from simulator import executors

    log = tmp_path / "pids"
    simulate = executors.run_chunk

    def noted(*args, **kwargs):
        with open(log, "a", encoding="utf-8") as out:
            out.write(f"{os.getpid()}\n")
        return simulate(*args, **kwargs)

    monkeypatch.setattr(executors, "run_chunk", noted)
    run_to_folder(scenario, tmp_path / "serial", replications=1500, workers=1)
    assert log.read_text().split() == [str(os.getpid())] * 6
    log.unlink()
    pool = run_to_folder(scenario, tmp_path / "pool", replications=1500, workers=2)
    pids = log.read_text().split()
    assert len(pids) == 6 and len(set(pids)) == 2   # this process and one helper
    assert (pool.manifest["backend"], pool.manifest["workers"]) == ("local processes (2)", 2)
    # A run of one chunk runs here, whatever was asked for; the manifest says so.
    log.unlink()
    small = run_to_folder(scenario, tmp_path / "small", replications=3, workers=4)
    assert log.read_text().split() == [str(os.getpid())]
    assert (small.manifest["backend"], small.manifest["workers"]) == ("serial", 1)
    three = run_in_memory(scenario, replications=600, workers=8)
    assert (three.manifest["backend"], three.manifest["workers"]) == ("local processes (3)", 3)


def test_in_memory_save_writes_the_same_bytes_as_a_streamed_run(scenario, tmp_path):
    run_to_folder(scenario, tmp_path / "streamed", replications=70, workers=1)
    run_in_memory(scenario, replications=70, workers=1).save(tmp_path / "saved")
    assert _bytes(tmp_path / "streamed") == _bytes(tmp_path / "saved")


@pytest.fixture(scope="module")
def simpy_scenario(tmp_path_factory):
    """The reference replaying a pipeline with a row of line A decided on the instant
    of its waiting list's tick (dated on a month's first day, evaluated in one month):
    a scenario the batch engine leaves to the SimPy model."""
    folder = tmp_path_factory.mktemp("simpy")
    (folder / "applications.csv").write_text(
        "date,line,eligible_cost,evaluation_months,beneficiary\n"
        "2019-01-10,A,1500000,,coop\n2019-02-12,B,60000,,coop\n"
        "2019-03-01,A,1200000,1,\n2019-04-20,B,80000,,\n2019-06-03,B,45000,,other\n",
        encoding="utf-8")
    (folder / "scenario.toml").write_text(
        f'base = "{(Path(REFERENCE).resolve()).as_posix()}"\n'
        + "".join(f'[lines.{line}.applications]\nmode = "pipeline"\n'
                  f'pipeline = "applications.csv"\n' for line in "AB"), encoding="utf-8")
    found = load_scenario(folder / "scenario.toml")
    assert unsupported(found) is not None
    return found


def _several_runs(scenario, simpy_scenario) -> list[Run]:
    """Runs of one to three chunks: the reference, a variant, one on the SimPy model."""
    variant = load_scenario(REFERENCE, ["lines.A.instrument.coverage=0.7",
                                        "lines.A.instrument.grant_share=0.3"])
    assert unsupported(variant) is None
    return [Run(scenario, list(range(150)), 7), Run(variant, list(range(150)), 7),
            Run(simpy_scenario, list(range(60, 120)), 9)]


def _kpis_of_runs(runs: list[Run], **backend) -> list[pd.DataFrame]:
    with runs_results(runs, kpis_only=True, **backend) as chunks:
        return [collect_kpis(chunks, len(run.ids)) for run in runs]


def test_several_runs_on_the_same_workers_keep_their_own_kpis(scenario, simpy_scenario):
    runs = _several_runs(scenario, simpy_scenario)
    serial = _kpis_of_runs(runs, workers=1)
    pooled = _kpis_of_runs(runs, workers=2)
    for run, one, two in zip(runs, serial, pooled, strict=True):
        # The KPI table of a run folder's run (timeseries and loans built and read too).
        expected = run_in_memory(run.scenario, replication_ids=run.ids, seed=run.seed,
                                 workers=1).kpis
        pd.testing.assert_frame_equal(one, expected)
        pd.testing.assert_frame_equal(two, expected)
    assert not serial[0].equals(serial[1])   # the variant's numbers are its own


def test_a_kpi_run_of_one_chunk_is_split_over_the_workers(scenario, monkeypatch):
    from simulator import executors

    chunks_run = []

    def recording(tasks, *args, **kwargs):
        chunks_run.append([ids for _, ids, _ in tasks])
        return map_tasks(tasks, *args, **kwargs)

    map_tasks = executors.map_tasks
    monkeypatch.setattr(executors, "map_tasks", recording)
    ids = list(range(5, 205))
    serial, pooled = (run_kpis(scenario, ids, 3, workers=workers) for workers in (1, 2))
    # 200 replications are one chunk of the batch engine: two on two processes.
    assert chunks_run == [[ids], [ids[:100], ids[100:]]]
    pd.testing.assert_frame_equal(serial, pooled)


def test_dask_local_cluster_gives_the_same_files(scenario, simpy_scenario, tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    run_to_folder(scenario, tmp_path / "serial", replications=600, workers=1)
    runs = _several_runs(scenario, simpy_scenario)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        with distributed.get_task_stream(client) as stream:
            results = run_to_folder(scenario, tmp_path / "dask", replications=600,
                                    client=client)
        on_dask = _kpis_of_runs(runs, client=client)
        workers = set(cluster.scheduler_info["workers"])
    # The three chunks ran as tasks on the cluster's workers, not here.
    chunks = [task for task in stream.data if task["key"].startswith("run_chunk")]
    assert len(chunks) == 3 and {task["worker"] for task in chunks} <= workers
    assert _bytes(tmp_path / "serial") == _bytes(tmp_path / "dask")
    assert results.manifest["backend"].startswith("dask")
    assert results.manifest["workers"] is None   # no local process simulated
    for serial, dask in zip(_kpis_of_runs(runs, workers=1), on_dask, strict=True):
        pd.testing.assert_frame_equal(serial, dask)


def test_the_same_scenario_sent_to_dask_run_after_run_is_never_lost(scenario):
    """A scenario is scattered under a key of its own for every run. Under the key of
    its contents, sending it again right after a run had released it could meet the
    workers deleting it ("lost dependencies": dask/distributed issues 3703, 8576),
    which once failed the test above."""
    distributed = pytest.importorskip("dask.distributed")
    from simulator.executors import map_tasks

    with distributed.Client(processes=False, n_workers=1, threads_per_worker=1,
                            dashboard_address=None) as client:
        for turn in range(40):
            (chunk,) = map_tasks([(scenario, [turn], 1)], client=client, kpis_only=True)
            assert chunk.kpis["replication"].tolist() == [turn]


def _summary_matches(folder, replications):
    results = load_results(folder)
    kpis = results.kpis
    assert len(kpis) == replications
    assert kpis["replication"].tolist() == list(range(replications))
    recomputed = summarise(kpis)
    pd.testing.assert_frame_equal(
        results.summary.drop(columns=["kpi", "unit"]),
        recomputed.drop(columns=["kpi", "unit"]), check_dtype=False, atol=1e-6, rtol=0)
    # And the KPIs agree with the streamed timeseries, replication by replication.
    ts = results.timeseries
    last = ts[(ts["line"] == "total") & (ts["date"] == ts["date"].max())]
    assert np.allclose(last["loans_disbursed"].to_numpy() / 100,
                       kpis["loans_disbursed_eur"].to_numpy())


def test_chunked_run_summary_equals_in_memory_computation(tmp_path):
    scenario = load_scenario(REFERENCE, ["scenario.horizon_months=40"])
    run_to_folder(scenario, tmp_path / "run", replications=500, workers=2)
    _summary_matches(tmp_path / "run", 500)


def test_ten_thousand_replications_in_chunks(tmp_path):
    scenario = load_scenario(REFERENCE, ["scenario.horizon_months=40"])
    run_to_folder(scenario, tmp_path / "run", replications=10_000)
    _summary_matches(tmp_path / "run", 10_000)


def test_interrupted_run_leaves_no_folder(scenario, tmp_path):
    def interrupt(done):
        if done >= 50:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_to_folder(scenario, tmp_path / "run", replications=150, workers=2,
                      progress=interrupt)
    assert list(tmp_path.iterdir()) == []
    # Nor the folders made for it; one that was there stays.
    (tmp_path / "kept").mkdir()
    with pytest.raises(KeyboardInterrupt):
        run_to_folder(scenario, tmp_path / "kept" / "new" / "deep" / "run", replications=150,
                      workers=2, progress=interrupt)
    assert list(tmp_path.iterdir()) == [tmp_path / "kept"]
    assert list((tmp_path / "kept").iterdir()) == []


@pytest.mark.parametrize("kwargs", [{"replications": 0}, {"replication_ids": []},
                                    {"replication_ids": [-1, 2]}])
def test_no_replication_or_a_negative_one_is_a_clear_error(scenario, tmp_path, kwargs):
    from simulator.errors import InputError

    with pytest.raises(InputError, match="replication"):
        run_in_memory(scenario, workers=1, **kwargs)
    with pytest.raises(InputError, match="replication"):
        run_to_folder(scenario, tmp_path / "run", workers=1, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_a_writer_that_cannot_start_leaves_no_hidden_folder(scenario, tmp_path, monkeypatch):
    import simulator.results as results_module

    def broken(path):
        raise OSError("disk full")

    monkeypatch.setattr(results_module, "JoinedParquet", broken)
    with pytest.raises(OSError, match="disk full"):
        run_to_folder(scenario, tmp_path / "run", replications=5, workers=1)
    assert list(tmp_path.iterdir()) == []


@given(st.integers(0, 40), st.lists(st.sampled_from(["complete", "some", "none"]),
                                    min_size=1, max_size=6), st.integers(0, 2**32 - 1))
def test_summary_statistics_are_each_kpis_own(replications, kinds, seed):
    """Percentiles of many KPIs at once give, bit for bit, each KPI's own (NaN: undefined)."""
    rng = np.random.default_rng(seed)
    columns = {"replication": np.arange(replications)}
    for i, kind in enumerate(kinds):
        values = rng.lognormal(10, 2, replications) * rng.choice([-1, 1], replications)
        if kind == "some":
            values[rng.random(replications) < 0.5] = np.nan
        elif kind == "none":
            values[:] = np.nan
        columns[f"projects_financed_{i}"] = values
    summary = summarise(pd.DataFrame(columns))
    for i, row in summary.iterrows():
        values = columns[f"projects_financed_{i}"]
        defined = values[~np.isnan(values)]
        assert row["kpi"] == f"projects_financed_{i}" and row["replications"] == len(defined)
        if len(defined):
            expected = [defined.mean(), *np.percentile(defined, [5, 50, 95])]
            assert [row["mean"], row["p5"], row["p50"], row["p95"]] == expected
        else:
            assert np.isnan(row[["mean", "p5", "p50", "p95"]].to_numpy(dtype=float)).all()
