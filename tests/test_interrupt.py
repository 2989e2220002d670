"""Ctrl-C during a parallel run: workers stop promptly and no run folder is left."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STOPS = [signal.SIGINT, signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])]


@pytest.fixture(autouse=True)
def _own_signal_handlers():
    """Tests that call the command's entry point in this process install its handlers:
    put pytest's back, so a later SIGTERM (a CI time limit) is not a KeyboardInterrupt."""
    import simulator.console as console

    saved = {stop: signal.getsignal(stop) for stop in STOPS}
    state = console._pressed, console._stopped_by
    yield
    for stop, handler in saved.items():
        signal.signal(stop, handler)
    console._pressed, console._stopped_by = state


def _default_stops() -> None:
    # A shell (or nohup) may start the test with some of them ignored: the command must
    # see them as a terminal's user would.
    for stop in STOPS:
        signal.signal(stop, signal.SIG_DFL)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_stops_workers_and_leaves_nothing(tmp_path):
    command = shutil.which("fesr-sim", path=str(Path(sys.executable).parent))
    assert command, "the fesr-sim console script is installed next to python"
    process = subprocess.Popen(
        [command, "run", str(ROOT / "scenarios" / "revolving.toml"), "-n", "200000",
         "--workers", "2", "--out", str(tmp_path / "run"), "--no-report"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        # A shell may start background jobs with SIGINT ignored: restore the default.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(4)  # long enough for the pool to be busy, far from the end of the run
    assert process.poll() is None, "the run ended before it could be interrupted"
    sent = time.monotonic()
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C sends: the whole process group
    _, err = process.communicate(timeout=30)
    assert time.monotonic() - sent < 10
    assert process.returncode == 130
    assert b"no run folder was written" in err
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ProcessLookupError):
        os.killpg(process.pid, 0)  # no worker of that group survives


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize(("stop", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_termination_request_cleans_up_as_ctrl_c_does(tmp_path, stop, code):
    # kill, a batch system's time limit, a closed terminal: sent to the command alone,
    # twice (a closing terminal's shell forwards SIGHUP, and the kernel sends one too).
    command = shutil.which("fesr-sim", path=str(Path(sys.executable).parent))
    process = subprocess.Popen(
        [command, "run", str(ROOT / "scenarios" / "revolving.toml"), "-n", "200000",
         "--workers", "2", "--out", str(tmp_path / "run"), "--no-report"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        preexec_fn=_default_stops)
    try:
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob(".run.*.partial")):   # the run is writing its folder
            assert process.poll() is None, "the run ended before it could be stopped"
            assert time.monotonic() < deadline, "the run did not start within a minute"
            time.sleep(0.05)
        time.sleep(0.5)
        process.send_signal(stop)
        time.sleep(0.02)
        process.send_signal(stop)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == code
    assert b"no run folder was written" in err
    assert b"Traceback" not in err
    assert list(tmp_path.iterdir()) == []   # no hidden .partial folder either
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:   # the helper ends with its parent
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("a helper outlived the command")


def test_a_second_stop_signal_does_not_cut_the_first_ones_clean_up_short(monkeypatch):
    import simulator.console as console

    monkeypatch.setattr(console, "_pressed", False)
    with pytest.raises(KeyboardInterrupt):
        console._on_ctrl_c(signal.SIGHUP, None)
    assert console._on_ctrl_c(signal.SIGHUP, None) is None   # ignored: already stopping
    assert console.exit_code() == 129


def test_the_stop_message_to_a_terminal_that_hung_up_keeps_the_exit_code(monkeypatch):
    import simulator.console as console

    class HungUp:
        def write(self, text):
            raise OSError(5, "Input/output error")

        def flush(self):
            raise OSError(5, "Input/output error")

    monkeypatch.setattr(console, "_stopped_by", signal.SIGHUP)
    monkeypatch.setattr(sys, "stderr", HungUp())
    with pytest.raises(SystemExit) as ended:
        console.stopped("interrupted")
    assert ended.value.code == 129


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_while_the_command_starts_is_one_line_not_a_traceback(tmp_path):
    command = shutil.which("fesr-sim", path=str(Path(sys.executable).parent))
    process = subprocess.Popen(
        [command, "run", str(ROOT / "scenarios" / "wecare_fesr_2018.toml"),
         "--out", str(tmp_path / "run")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(0.1)   # still importing its libraries
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130
    assert b"Traceback" not in err
    assert b"interrupted" in err
    assert list(tmp_path.iterdir()) == []


def test_the_command_starts_without_the_numeric_libraries():
    """`fesr-sim --help`, `--version` and a mistyped verb answer at once: the command's
    module loads pandas, pyarrow, scipy and matplotlib only for the verb that needs them."""
    code = ("import sys, simulator.cli; "
            "print(sorted(m for m in ('pandas', 'pyarrow', 'scipy', 'matplotlib', 'simpy') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_ctrl_c_in_any_verb_is_exit_code_130_not_clicks_abort(monkeypatch, capsys):
    import click

    import simulator.cli
    from simulator.console import main

    @click.command()
    def stopped_by_the_user():
        raise KeyboardInterrupt   # Ctrl-C while a verb reads its scenario, say

    monkeypatch.setattr(simulator.cli, "main", stopped_by_the_user)
    monkeypatch.setattr(sys, "argv", ["fesr-sim"])
    with pytest.raises(SystemExit) as ended:
        main()
    assert ended.value.code == 130
    assert "interrupted" in capsys.readouterr().err


@pytest.mark.parametrize("args, code", [(["--version"], 0), (["no-such-verb"], 2),
                                        (["validate"], 2)])
def test_the_entry_point_keeps_clicks_exit_codes(args, code):
    command = shutil.which("fesr-sim", path=str(Path(sys.executable).parent))
    done = subprocess.run([command, *args], capture_output=True, text=True)
    assert done.returncode == code
    if code:
        assert "Usage" in done.stderr or "Error" in done.stderr


def test_a_ctrl_c_whose_interrupt_got_lost_still_stops_the_run(monkeypatch, tmp_path):
    """A library may swallow the KeyboardInterrupt; the run stops at its next chunk anyway."""
    import simulator.console as console

    monkeypatch.setattr(console, "_pressed", True)   # pressed, and the interrupt was lost
    monkeypatch.setattr(sys, "argv", ["fesr-sim", "run",
                                      str(ROOT / "scenarios" / "wecare_fesr_2018.toml"),
                                      "-n", "600", "--workers", "1", "--no-report",
                                      "--out", str(tmp_path / "run")])
    previous = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(SystemExit) as ended:
            console.main()
    finally:
        signal.signal(signal.SIGINT, previous)   # main() installs its own handler
    assert ended.value.code == 130
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_while_the_report_is_written_says_the_run_folder_is_complete(
        monkeypatch, tmp_path):
    from click.testing import CliRunner

    import simulator.report
    from simulator.cli import main

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(simulator.report, "write_report", stopped)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["run", str(ROOT / "scenarios" / "wecare_fesr_2018.toml"),
                                       "-n", "3", "--out", str(out)])
    assert result.exit_code == 130
    assert "the run folder" in result.stderr and "is complete" in result.stderr
    assert f"fesr-sim report {out}" in result.stderr.replace("\n", " ")
    assert (out / "summary.csv").exists() and not (out / "report.pdf").exists()
