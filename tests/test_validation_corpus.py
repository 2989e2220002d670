"""`fesr-sim validate` on a corpus of invalid scenario files, one mistake each.

Every file of ``tests/data/invalid/`` is listed in ``EXPECTED.toml`` with the
fragments its error lines must contain.  A user who types a wrong value must
see one clear message per mistake (file, dotted field path, what is expected,
the value found), exit code 2, no traceback, and nothing written.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from simulator.cli import main

DATA = Path(__file__).resolve().parent / "data"
INVALID = DATA / "invalid"
EXPECTED: dict[str, list[str]] = tomllib.loads((INVALID / "EXPECTED.toml").read_text("utf-8"))
CORPUS = sorted(p.name for p in INVALID.glob("*.toml") if p.name != "EXPECTED.toml")


def _snapshot(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")
            if "__pycache__" not in p.parts}


def validate(*args: str | Path) -> tuple[int, str, str]:
    """Run ``fesr-sim validate ARGS`` in-process; return exit code, stdout, stderr."""
    result = CliRunner().invoke(main, ["validate", *map(str, args)])
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        result.exception
    return result.exit_code, result.stdout, result.stderr


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def test_corpus_is_large_and_every_file_has_expectations():
    assert len(CORPUS) >= 30
    assert sorted(EXPECTED) == CORPUS, "every invalid file needs an entry in EXPECTED.toml"


@pytest.mark.parametrize("name", CORPUS)
def test_invalid_file_gives_one_clear_message_per_mistake(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = _snapshot(DATA)
    code, out, err = validate(INVALID / name)
    lines = error_lines(err)
    assert code == 2, (out, err)
    assert out == "", "nothing but errors on a failed validation"
    assert "Traceback" not in err
    for fragment in EXPECTED[name]:
        assert any(fragment in line for line in lines), f"{fragment!r} not in:\n{err}"
    assert len(lines) == len(EXPECTED[name]), f"expected {len(EXPECTED[name])} error(s):\n{err}"
    assert all(line.startswith("error ") for line in lines), err
    assert list(tmp_path.iterdir()) == [], "validate must not write anything"
    assert _snapshot(DATA) == before


def test_three_independent_mistakes_are_reported_at_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = validate(DATA / "three_mistakes.toml")
    lines = error_lines(err)
    assert code == 2 and out == ""
    assert len(lines) == 3, err
    for fragment in (
        "three_mistakes.toml: fund.treasury_rat: unknown key (did you mean 'treasury_rate'?)",
        "three_mistakes.toml: lines.A.instrument.public_loan_share: must be between 0 and 1, "
        "got 1.4",
        "three_mistakes.toml: lines.B.max_cost: must not be below min_cost (10.000 €), "
        "got 5.000 €",
    ):
        assert any(fragment in line for line in lines), f"{fragment!r} not in:\n{err}"


def test_valid_files_print_ok_and_exit_0(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = validate(DATA / "base.toml", DATA / "pipeline" / "pipeline.toml")
    assert code == 0, err
    assert err == ""
    flat = " ".join(out.split())  # the console may wrap a long line
    assert flat.count("OK ") == 2
    assert "base.toml" in flat and "pipeline.toml" in flat
    assert list(tmp_path.iterdir()) == []


def test_valid_and_invalid_files_together(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = validate(DATA / "base.toml", INVALID / "share_above_one.toml")
    assert code == 2
    assert out.startswith("OK ")
    assert len(error_lines(err)) == 1


def test_errors_name_the_file_relative_to_the_working_directory(monkeypatch):
    monkeypatch.chdir(DATA)
    code, _, err = validate("invalid/negative_rate.toml")
    assert code == 2
    assert err.startswith(f"error {Path('invalid') / 'negative_rate.toml'}: "
                          "lines.A.instrument.public_rate: ")


def test_missing_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = validate("nowhere.toml")
    assert code == 2 and out == ""
    assert error_lines(err) == ["error nowhere.toml: file not found"]


def test_console_script_on_the_whole_corpus(tmp_path):
    """The installed ``fesr-sim`` in a fresh process: exit 2, no traceback, all errors."""
    script = shutil.which("fesr-sim", path=str(Path(sys.executable).parent))
    assert script, "the fesr-sim console script is installed next to the interpreter"
    files = [str(INVALID / name) for name in CORPUS]
    env = {**os.environ, "COLUMNS": "80", "NO_COLOR": "1"}
    done = subprocess.run([script, "validate", *files], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert len(error_lines(done.stderr)) == sum(len(v) for v in EXPECTED.values())
    assert list(tmp_path.iterdir()) == []
