"""Progress of replications: the bar on a terminal, the lines in a log (``cli_progress``)."""

from __future__ import annotations

import io

from click.testing import CliRunner
from rich.console import Console

from simulator.cli import main
from simulator.cli_progress import replication_progress

REFERENCE = "scenarios/wecare_fesr_2018.toml"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _log() -> Console:
    """Standard error as a log file: not a terminal."""
    return Console(file=io.StringIO(), force_terminal=False, width=200)


def _terminal() -> Console:
    return Console(file=io.StringIO(), force_terminal=True, width=140)


def _shown(bar) -> str:
    out = Console(file=io.StringIO(), width=140)
    out.print(bar.get_renderable())
    return out.file.getvalue()


def test_bar_on_a_terminal_shows_done_rate_elapsed_and_time_left():
    clock = Clock()
    terminal = _terminal()
    with replication_progress(terminal, clock=clock) as tracker:
        tracker.start("replicazioni", 4000)
        clock.now = 1.0
        tracker(500)
        clock.now = 2.0
        tracker(1000)
        shown = _shown(tracker.bar)
        # 500 replications a second: 3,000 left take 6 seconds.
        assert "replicazioni" in shown
        assert "1000/4000" in shown
        assert "500 repl./s" in shown
        assert "0:00:02" in shown   # elapsed
        assert "0:00:06" in shown   # left
        clock.now = 10.0
        tracker(4000)
        clock.now = 30.0   # done: the rate is the count's, however long the bar stays up
        assert "400 repl./s" in _shown(tracker.bar)
        assert "0:00:10" in _shown(tracker.bar)
        tracker.start("punto 2/3", 10)   # a new count replaces the old one
        assert [task.description for task in tracker.bar.tasks] == ["punto 2/3"]
        assert "0/10" in _shown(tracker.bar)


def test_log_gets_a_line_at_most_every_15_seconds_and_none_at_the_end():
    clock = Clock()
    log = _log()
    with replication_progress(log, clock=clock) as tracker:
        assert tracker.bar is None
        tracker.start("replicazioni", 4000)
        for now, done in ((5, 500), (16, 1600), (20, 2000), (32, 3200), (40, 4000)):
            clock.now = now
            tracker(done)
    lines = log.file.getvalue().splitlines()
    assert lines == ["replicazioni: 1600/4000 (40 %), 100 repl./s, ancora ~0:00:24",
                     "replicazioni: 3200/4000 (80 %), 100 repl./s, ancora ~0:00:08"]


def test_log_line_restarts_its_rate_with_each_count():
    clock = Clock()
    log = _log()
    with replication_progress(log, clock=clock) as tracker:
        tracker.start("punto 1/2", 100)
        clock.now = 100.0
        tracker.start("punto 2/2", 1000)
        clock.now = 120.0
        tracker(400)
    assert log.file.getvalue().splitlines() == [
        "punto 2/2: 400/1000 (40 %), 20 repl./s, ancora ~0:00:30"]


def test_run_writes_no_bar_and_no_progress_line_into_a_log(tmp_path):
    # CliRunner's standard error is not a terminal, as in CI; a short run says nothing of
    # its progress there.
    result = CliRunner().invoke(main, ["run", REFERENCE, "-n", "3", "--out",
                                       str(tmp_path / "run"), "--no-report"])
    assert result.exit_code == 0, result.output
    assert "━" not in result.stderr
    assert "repl" not in result.stderr
    assert (tmp_path / "run" / "summary.csv").exists()


def test_bar_rate_is_steady_when_two_chunks_arrive_together():
    # A sweep's point may get two chunks at once as it starts (they began while the
    # previous point ended): the rate is counted from the point's start, not between them.
    clock = Clock()
    terminal = _terminal()
    with replication_progress(terminal, clock=clock) as tracker:
        tracker.start("punto 2/8", 3000)
        clock.now = 0.5
        tracker(250)
        clock.now = 0.500001
        tracker(500)
        shown = _shown(tracker.bar)
    assert "1.000 repl./s" in shown
    assert "0:00:03" in shown   # 2,500 left at 1,000 a second: 2.5 s, shown whole


def test_a_count_in_parts_adds_up_and_skipped_parts_leave_the_total():
    # A sweep of three points of 1,000 replications, the second found done.
    clock = Clock()
    log = _log()
    terminal = _terminal()
    with replication_progress(log, clock=clock) as lines, \
            replication_progress(terminal, clock=clock) as bar:
        for tracker in (lines, bar):
            tracker.start("punto 1/3", 3000)
        for now, done in ((10, 500), (20, 1000)):
            clock.now = now
            lines(done), bar(done)
        for tracker in (lines, bar):
            tracker.skip(1000)
            tracker.part("punto 3/3")
        clock.now = 50
        lines(500), bar(500)
        shown = _shown(bar.bar)
    # Logged at 20 s (none at 10 s: too soon), then at 50 s.
    assert log.file.getvalue().splitlines() == [
        "punto 1/3: 1000/3000 (33 %), 50 repl./s, ancora ~0:00:40",
        "punto 3/3: 1500/2000 (75 %), 30 repl./s, ancora ~0:00:17"]
    assert "punto 3/3" in shown and "1500/2000" in shown and "30 repl./s" in shown


def test_a_slow_run_shows_its_rate_with_decimals_and_hours_left():
    # A 1 bn€ fund: a replication takes seconds.
    clock = Clock()
    log = _log()
    with replication_progress(log, clock=clock) as tracker:
        tracker.start("replicazioni", 300)
        clock.now = 16.0
        tracker(4)
    assert log.file.getvalue().splitlines() == [
        "replicazioni: 4/300 (1 %), 0,25 repl./s, ancora ~0:19:44"]


def test_force_color_does_not_put_a_bar_into_a_log(monkeypatch):
    monkeypatch.setenv("FORCE_COLOR", "1")
    log = Console(file=io.StringIO(), width=200)   # a file, which FORCE_COLOR calls a terminal
    assert log.is_terminal
    with replication_progress(log) as tracker:
        assert tracker.bar is None


def test_more_workers_than_cores_get_a_note(tmp_path):
    from simulator.console import cores

    many = cores() + 3
    result = CliRunner().invoke(main, ["run", REFERENCE, "-n", "3", "--workers", str(many),
                                       "--out", str(tmp_path / "run"), "--no-report"])
    assert result.exit_code == 0, result.output
    assert f"note --workers {many}: this machine has {cores()} cores" in result.stderr
    fitting = CliRunner().invoke(main, ["run", REFERENCE, "-n", "3", "--workers", "1",
                                        "--out", str(tmp_path / "one"), "--no-report"])
    assert fitting.exit_code == 0, fitting.output
    assert "note --workers" not in fitting.stderr
