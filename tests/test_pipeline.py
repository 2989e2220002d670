"""Pipeline files: applications replayed from a CSV, checked row by row."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pytest

from simulator.errors import InputError
from simulator.scenario import load_scenario

DATA = Path(__file__).resolve().parent / "data"
PIPELINE = DATA / "pipeline"
COLUMNS = ["row", "line", "date", "eligible_cost", "id", "admitted", "evaluation_months",
           "implementation_months", "score", "beneficiary", "t"]


def messages(exc: pytest.ExceptionInfo[InputError]) -> list[str]:
    return [str(p) for p in exc.value.problems]


def write_pipeline_scenario(folder: Path, csv_text: str, extra: str = "") -> Path:
    """A scenario in ``folder`` with line A replaying ``csv_text``."""
    (folder / "rows.csv").write_text(csv_text, encoding="utf-8")
    path = folder / "scenario.toml"
    path.write_text(f'base = "{(DATA / "base.toml").as_posix()}"\n{extra}\n'
                    '[lines.A.applications]\nmode = "pipeline"\npipeline = "rows.csv"\n',
                    encoding="utf-8")
    return path


@pytest.mark.parametrize("name", ["pipeline.toml", "semicolon.toml"])
def test_pipeline_loads_sorted_by_date_with_optional_columns(name):
    scenario = load_scenario(PIPELINE / name)
    rows = scenario.pipeline("A")
    assert list(rows.columns) == COLUMNS
    assert list(rows["date"]) == sorted(rows["date"])
    # Same date: CSV order kept (row 2 before row 6); the blank line 5 is skipped.
    assert list(rows["id"]) == ["WEC-001", "WEC-002", "WEC-003", "WEC-004"]
    assert list(rows["row"]) == [3, 4, 2, 6]
    assert list(rows["eligible_cost"]) == [1_200_000, 1_750_000.5, 2_500_000, 1_000_000]
    assert list(rows["admitted"]) == [None, False, True, True]
    assert math.isnan(rows["evaluation_months"][0]) and rows["evaluation_months"][1] == 1.5
    assert list(rows["implementation_months"].fillna(-1)) == [-1, -1, 18, 12]
    assert list(rows["score"].fillna(-1)) == [-1, 64, 71.5, 80]
    assert rows["date"][0] == dt.date(2018, 11, 20)
    assert list(rows["line"]) == ["A"] * 4
    assert rows["t"].is_monotonic_increasing
    assert rows["t"][0] == pytest.approx(scenario.month_of(dt.date(2018, 11, 20)))


def test_semicolon_file_reads_like_the_comma_file():
    comma = load_scenario(PIPELINE / "pipeline.toml").pipeline("A")
    semicolon = load_scenario(PIPELINE / "semicolon.toml").pipeline("A")
    assert comma.equals(semicolon)


def test_poisson_lines_have_no_pipeline():
    scenario = load_scenario(PIPELINE / "pipeline.toml")
    with pytest.raises(KeyError):
        scenario.pipeline("B")


def test_hash_counts_the_pipeline_content_not_its_path(tmp_path):
    original = load_scenario(PIPELINE / "pipeline.toml")
    text = (PIPELINE / "applications.csv").read_text(encoding="utf-8")
    copy = load_scenario(write_pipeline_scenario(tmp_path, text,
                                                 '[scenario]\nname = "test_pipeline"\n'))
    assert copy.hash() == original.hash()
    assert copy == original
    changed = load_scenario(write_pipeline_scenario(
        tmp_path, text.replace("2500000", "2600000"), '[scenario]\nname = "test_pipeline"\n'))
    assert changed.hash() != original.hash()


def test_pipeline_path_is_relative_to_the_file_that_names_it(tmp_path):
    """A file inheriting from pipeline.toml, elsewhere, still finds applications.csv."""
    child = tmp_path / "child.toml"
    child.write_text(f'base = "{(PIPELINE / "pipeline.toml").as_posix()}"\n'
                     '[lines.A.instrument]\ngrant_share = 0.0\n', encoding="utf-8")
    scenario = load_scenario(child)
    assert len(scenario.pipeline("A")) == 4
    assert Path(scenario.lines["A"].applications.pipeline) == PIPELINE / "applications.csv"


def test_resolved_toml_of_a_pipeline_scenario_loads_anywhere(tmp_path):
    scenario = load_scenario(PIPELINE / "pipeline.toml")
    (tmp_path / "resolved.toml").write_text(scenario.resolved_toml(), encoding="utf-8")
    again = load_scenario(tmp_path / "resolved.toml")
    assert again == scenario and again.hash() == scenario.hash()
    assert again.pipeline("A").equals(scenario.pipeline("A"))


def test_every_bad_row_is_reported_with_its_line_number(tmp_path):
    csv_text = ("date,line,eligible_cost,id,admitted\n"
                "2019-01-10,A,1200000,P1,true\n"        # line 2: fine
                "2019-02-30,A,1300000,P2,true\n"        # line 3: no such day
                "2019-03-10,A,900000,P3,true\n"         # line 4: below min_cost
                "2019-04-10,Z,1300000,P4,true\n"        # line 5: unknown line
                "2019-05-10,A,1300000,P5,maybe\n"       # line 6: admitted
                "2019-06-10,A,abc,P6,true\n"            # line 7: not a number
                "2019-07-10,A,1300000,P1,true\n")       # line 8: duplicate id
    with pytest.raises(InputError) as exc:
        load_scenario(write_pipeline_scenario(tmp_path, csv_text))
    found = messages(exc)
    label = str(tmp_path / "rows.csv")
    expected = {3: "date must be YYYY-MM-DD or DD/MM/YYYY, got '2019-02-30'",
                4: "eligible_cost 900.000 € is outside line A's bounds",
                5: "unknown line 'Z' (lines: A, B)",
                6: "admitted must be true or false, got 'maybe'",
                7: "eligible_cost must be a number (use '.' for decimals), got 'abc'",
                8: "id 'P1' is already used on line 2"}
    assert len(found) == len(expected), found
    for number, fragment in expected.items():
        assert any(m.startswith(f"{label}: line {number}: ") and fragment in m
                   for m in found), (number, found)


def test_one_message_per_row_with_several_mistakes(tmp_path):
    with pytest.raises(InputError) as exc:
        load_scenario(write_pipeline_scenario(
            tmp_path, "date,line,eligible_cost\n2019-13-01,A,5\n"))
    (message,) = messages(exc)
    assert ": line 2: " in message and "date" in message and "outside line A's bounds" in message


def test_line_numbers_count_physical_lines_with_quoted_newlines(tmp_path):
    csv_text = ('date,line,eligible_cost,id\n'
                '2019-01-10,A,1200000,"two\nlines"\n'   # lines 2-3
                '2019-01-11,A,10,P2\n')                  # line 4
    with pytest.raises(InputError) as exc:
        load_scenario(write_pipeline_scenario(tmp_path, csv_text))
    (message,) = messages(exc)
    assert ": line 4: eligible_cost 10 €" in message


def test_semicolon_numbers_the_italian_way(tmp_path):
    csv_text = ("date;line;eligible_cost;evaluation_months\n"
                "10/01/2019;A;1.200.000,75;2,5\n"
                "11/01/2019;A;1300000.5;3\n")
    rows = load_scenario(write_pipeline_scenario(tmp_path, csv_text)).pipeline("A")
    assert list(rows["eligible_cost"]) == [1_200_000.75, 1_300_000.5]
    assert list(rows["evaluation_months"]) == [2.5, 3.0]


def test_excel_utf8_bom_and_windows_encoding(tmp_path):
    text = "date;line;eligible_cost;id\r\n10/01/2019;A;1200000;Città\r\n"
    (tmp_path / "rows.csv").write_bytes(text.encode("cp1252"))
    path = write_pipeline_scenario(tmp_path, "")
    (tmp_path / "rows.csv").write_bytes(text.encode("cp1252"))
    assert list(load_scenario(path).pipeline("A")["id"]) == ["Città"]
    (tmp_path / "rows.csv").write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert list(load_scenario(path).pipeline("A")["date"]) == [dt.date(2019, 1, 10)]


def test_many_bad_rows_are_capped(tmp_path):
    csv_text = "date,line,eligible_cost\n" + "".join(
        f"2019-01-{d:02d},A,10\n" for d in range(1, 29))
    with pytest.raises(InputError) as exc:
        load_scenario(write_pipeline_scenario(tmp_path, csv_text))
    found = messages(exc)
    assert len(found) == 21
    assert found[-1].endswith("... and 8 more rows with problems")


def test_empty_file_and_header_only(tmp_path):
    with pytest.raises(InputError) as exc:
        load_scenario(write_pipeline_scenario(tmp_path, ""))
    assert len(messages(exc)) == 3  # the three required columns
    with pytest.raises(InputError) as exc:
        load_scenario(write_pipeline_scenario(tmp_path, "date,line,eligible_cost\n"))
    assert messages(exc) == [f"{tmp_path / 'rows.csv'}: no applications in the file"]


def test_pipeline_rows_are_checked_alongside_scenario_errors(tmp_path):
    """A scenario mistake does not hide the pipeline's: all are reported at once."""
    path = write_pipeline_scenario(tmp_path, "date,line,eligible_cost\n2019-01-10,A,10\n",
                                   "[lines.B.instrument]\npublic_loan_share = 1.4\n")
    with pytest.raises(InputError) as exc:
        load_scenario(path)
    found = messages(exc)
    assert len(found) == 2, found
    assert any("lines.B.instrument.public_loan_share: must be between 0 and 1" in m
               for m in found)
    assert any(": line 2: eligible_cost 10 €" in m for m in found)


def test_rows_of_a_line_with_wrong_bounds_are_not_checked_against_them(tmp_path):
    """min_cost > max_cost is one mistake: the rows are not blamed for it too."""
    path = write_pipeline_scenario(tmp_path, "date,line,eligible_cost\n2019-01-10,A,1200000\n",
                                   "[lines.A]\nmax_cost = 500_000\n")
    with pytest.raises(InputError) as exc:
        load_scenario(path)
    (message,) = messages(exc)
    assert "lines.A.max_cost: must not be below min_cost" in message


def test_set_a_pipeline_path_relative_to_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "other.csv").write_text("date,line,eligible_cost\n2019-05-01,A,3000000\n",
                                        encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    scenario = load_scenario(PIPELINE / "pipeline.toml",
                             ["lines.A.applications.pipeline=other.csv"])
    assert list(scenario.pipeline("A")["eligible_cost"]) == [3_000_000]
