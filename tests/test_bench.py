"""The benchmark's own measurements (the benchmark itself runs with ``make bench``)."""

from __future__ import annotations

import pytest

from benchmarks import bench


@pytest.mark.parametrize(("kind", "steps"), [("simpy", 20_000), ("memory", 3)])
def test_loops_run_together_take_at_least_as_long_as_one_loop_computes(kind, steps):
    alone = min(bench._LOOPS[kind](steps) for _ in range(3))
    together = bench._loop_together(kind, steps, 2)
    # Two loops at once end no sooner than one loop alone could compute its
    # steps (a third of slack for this process's own timing of that loop).
    assert together >= alone * 2 / 3
    assert together < 60


@pytest.mark.parametrize("kind", ["simpy", "memory"])
def test_the_machine_efficiency_compares_runs_taken_in_turns(kind):
    machine = bench.machine_parallel_efficiency(2, pairs=2, seconds=0.02, kind=kind)
    assert len(machine["seconds_alone"]) == len(machine["seconds_together"]) == 2
    assert machine["efficiency"] == pytest.approx(
        min(machine["seconds_alone"]) / min(machine["seconds_together"]))
    assert machine["efficiency_median_of_pairs"] > 0


@pytest.mark.parametrize(("what", "name", "replications", "check"), [
    ("run", "wecare_fesr_2018.toml", 3, lambda r: r["replications_per_s"] > 0),
    ("sweep", "sweep_grant_share.toml", 2, lambda r: r["points"] == 8),
    ("report", "wecare_fesr_2018.toml", 3, lambda r: 0 < r["peak_rss_gib"] < 4),
])
def test_each_kind_of_case_runs_in_its_own_process(what, name, replications, check):
    result = bench.measure(name, replications, workers=1, what=what)
    assert result["replications"] == replications and result["wall_s"] > 0
    assert result["wall_s_runs"] == [result["wall_s"]]
    assert check(result)


def test_the_fastest_run_keeps_every_runs_time_and_cost():
    runs = [{"wall_s": 2.0, "replications_per_s": 1000.0, "calibration_timeouts_per_s": 9e5},
            {"wall_s": 1.5, "replications_per_s": 1333.0, "calibration_timeouts_per_s": 1e6},
            {"wall_s": 1.8, "replications_per_s": 1111.0, "calibration_timeouts_per_s": 6e5}]
    best = bench.fastest(runs)
    assert best["wall_s"] == 1.5 and best["wall_s_runs"] == [2.0, 1.5, 1.8]
    assert best["cost_timeouts_runs"] == pytest.approx([900.0, 1e6 / 1333.0, 6e5 / 1111.0])
    # Cases timed without calibrations (reports, sweeps) have no costs.
    assert "cost_timeouts_runs" not in bench.fastest([{"wall_s": 1.0}])
