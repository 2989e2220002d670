"""Helper processes: chunks come back in order, memory stays bounded, failures surface."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import pytest

from simulator.pool import HelperFailed, results_in_order

MAIN = os.getpid()


def _where(ids, pause=0.01, folder=None):
    """A chunk's 'result': its first id and the process that ran it."""
    if folder is not None:
        (folder / str(ids[0])).touch()
    time.sleep(pause)
    return ids[0], os.getpid()


def _no_helper_left():
    deadline = time.monotonic() + 5
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.05)
    return multiprocessing.active_children() == []


def test_results_come_back_in_order_from_helpers_and_from_here():
    chunks = [[i] for i in range(40)]
    results = list(results_in_order(_where, chunks, helpers=2, window=5))
    assert [first for first, _ in results] == list(range(40))
    places = {pid for _, pid in results}
    assert MAIN in places and len(places) >= 2   # this process and helpers shared the work
    assert _no_helper_left()


def test_helpers_left_to_the_caller_end_by_themselves_and_are_waited_for_there():
    from simulator.pool import reap

    ending = []
    results = list(results_in_order(_where, [[i] for i in range(12)], helpers=2, window=5,
                                    ending=ending))
    assert [first for first, _ in results] == list(range(12))
    assert len(ending) == 2   # not waited for by results_in_order
    reap(ending)
    assert [process.exitcode for process in ending] == [0, 0]
    assert multiprocessing.active_children() == []


def test_a_run_on_two_processes_leaves_no_helper_behind(tmp_path):
    from simulator import load_scenario
    from simulator.runner import run_to_folder

    scenario = load_scenario(Path(__file__).parent.parent / "scenarios" / "wecare_fesr_2018.toml")
    # Three chunks: this process and a helper share them.
    run_to_folder(scenario, tmp_path / "run", replications=600, workers=2)
    assert (tmp_path / "run" / "summary.csv").exists()
    assert multiprocessing.active_children() == []


def test_chunks_taken_ahead_of_a_slow_caller_stay_within_the_window(tmp_path):
    from functools import partial

    window = 3
    results = results_in_order(partial(_where, pause=0.0, folder=tmp_path),
                               [[i] for i in range(30)], helpers=2, window=window)
    next(results)
    time.sleep(1.0)   # the caller is busy writing chunk 0: the helpers wait for slots
    assert len(list(tmp_path.iterdir())) <= window
    assert [first for first, _ in results] == list(range(1, 30))
    assert len(list(tmp_path.iterdir())) == 30


def _fails_on_seven(ids):
    if ids[0] == 7:
        raise ValueError("chunk seven is wrong")
    return _where(ids)


def test_an_error_in_a_chunk_is_raised_here_and_stops_the_helpers():
    with pytest.raises(ValueError, match="chunk seven"):
        list(results_in_order(_fails_on_seven, [[i] for i in range(30)], helpers=2, window=5))
    assert _no_helper_left()


def _slow_in_a_helper_wrong_here(ids):
    """Chunk 0 takes a while here, chunk 1 longer in a helper; chunk 2, run here while
    chunk 1 is not back, is wrong."""
    here = os.getpid() == MAIN
    if ids[0] == 2 and here:
        raise ValueError("chunk two is wrong")
    pauses = {0: 0.2 if here else 0.01, 1: 0.01 if here else 0.6}
    return _where(ids, pause=pauses.get(ids[0], 0.01))


def test_an_error_here_in_a_chunk_taken_ahead_waits_for_the_chunks_before_it():
    """What came before a wrong chunk is handed over first (a sweep writes those points),
    whichever process ran it: here, this process ran chunk 2 while a helper still ran
    chunk 1."""
    for _ in range(10):   # until this process runs chunk 2 (a helper may take it)
        got, raised = [], None
        try:
            for result in results_in_order(_slow_in_a_helper_wrong_here,
                                           [[i] for i in range(6)], helpers=1, window=5):
                got.append(result)
        except ValueError as exc:
            raised = exc
        if raised is not None:
            break
    assert raised is not None and "chunk two" in str(raised)
    assert [first for first, _ in got] == [0, 1]
    assert _no_helper_left()


def _dies_in_a_helper(ids):
    if os.getpid() != MAIN:
        os._exit(3)   # a helper killed (out of memory, say) in the middle of a chunk
    return _where(ids, pause=0.05)


def test_a_helper_that_dies_is_reported_not_waited_for():
    with pytest.raises(HelperFailed, match="exit code 3"):
        list(results_in_order(_dies_in_a_helper, [[i] for i in range(30)], helpers=1,
                              window=4))
    assert _no_helper_left()


def test_a_caller_that_stops_reading_stops_the_helpers():
    results = results_in_order(_where, [[i] for i in range(100)], helpers=2, window=5)
    assert next(results)[0] == 0
    results.close()
    assert _no_helper_left()


def _input_error(ids):
    from simulator.errors import InputError, Problem

    if os.getpid() == MAIN:
        return _where(ids, pause=0.3)   # meanwhile the helpers fail
    raise InputError([Problem("pipeline.csv", "row 3", "eligible_cost is missing"),
                      Problem("pipeline.csv", "row 5", "line X does not exist")])


def test_an_input_error_in_a_helper_comes_back_with_every_problem():
    from simulator.errors import InputError

    with pytest.raises(InputError) as raised:
        list(results_in_order(_input_error, [[i] for i in range(4)], helpers=2, window=4))
    assert [p.field for p in raised.value.problems] == ["row 3", "row 5"]
    assert "raised in a helper process" in "".join(raised.value.__notes__)
    assert _no_helper_left()


def test_an_input_error_survives_pickling():
    import pickle

    from simulator.errors import InputError, Problem

    error = InputError([Problem("a.toml", "fund.endowment", "must be positive")])
    back = pickle.loads(pickle.dumps(error))
    assert back.problems == error.problems and str(back) == str(error)


def test_helpers_of_a_killed_parent_do_not_outlive_it(tmp_path):
    """kill -9 of the main process: its helpers end too (no orphans computing or stuck)."""
    import signal
    import subprocess
    import sys

    script = tmp_path / "parent.py"
    script.write_text(
        "import multiprocessing, os, sys, time\n"
        "from simulator.pool import results_in_order\n"
        "def big(ids):\n"
        "    time.sleep(0.05)\n"
        "    return b'x' * 3_000_000\n"   # more than a channel takes at once by default
        "results = results_in_order(big, [[i] for i in range(1000)], helpers=2, window=50)\n"
        "next(results)\n"
        "print(' '.join(str(p.pid) for p in multiprocessing.active_children()), flush=True)\n"
        "time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parent.parent)
    helpers = [int(pid) for pid in parent.stdout.readline().split()]
    assert len(helpers) == 2
    time.sleep(0.5)   # the helpers fill their channels
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    alive = helpers
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [pid for pid in helpers if _running(pid)]
    for pid in alive:
        os.kill(pid, signal.SIGKILL)
    assert alive == []


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"   # a zombie has ended
    except FileNotFoundError:
        return False


def _unpicklable_in_helpers(ids):
    if os.getpid() == MAIN:
        return _where(ids, pause=0.3)
    return lambda: ids   # cannot travel back


def test_a_result_that_cannot_travel_back_is_reported_with_its_cause():
    with pytest.raises(Exception) as raised:
        list(results_in_order(_unpicklable_in_helpers, [[i] for i in range(4)], helpers=2,
                              window=4))
    assert not isinstance(raised.value, HelperFailed)   # the cause, not "it died"
    assert "raised in a helper process" in "".join(raised.value.__notes__)
    assert _no_helper_left()
