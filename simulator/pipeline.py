"""Pipeline files: real or planned applications replayed exactly.

A line in ``mode = "pipeline"`` takes its applications from a CSV file (path
relative to the scenario file) instead of drawing them.  Columns:

==========================  ========  ==============================================
column                      required  meaning
==========================  ========  ==============================================
``date``                    yes       application date, ``YYYY-MM-DD`` or ``DD/MM/YYYY``
``line``                    yes       the line id (``A``, ``B``, ...)
``eligible_cost``           yes       euros, inside the line's [min_cost, max_cost]
``id``                      no        the project's id (default: ``<line>-<row>``)
``admitted``                no        true/false (default: drawn with admission_rate)
``evaluation_months``       no        overrides the drawn evaluation time
``implementation_months``   no        overrides the drawn implementation time
``score``                   no        rank in a graduatoria (higher first)
==========================  ========  ==============================================

Every mistake is reported with the file and the CSV line number.
"""

from __future__ import annotations

import csv
import datetime as dt
import difflib
import hashlib
import math
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from .errors import InputError, Problem

REQUIRED = ("date", "line", "eligible_cost")
OPTIONAL = ("id", "admitted", "evaluation_months", "implementation_months", "score")
_TRUE = {"true", "1", "yes", "si", "sì", "y", "s"}
_FALSE = {"false", "0", "no", "n"}


def _parse_date(text: str) -> dt.date:
    text = text.strip()
    for fmt in ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise ValueError(f"not a date (YYYY-MM-DD or DD/MM/YYYY): {text!r}")


def _parse_number(text: str, what: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError(f"{what} must be a number (use '.' for decimals, no thousands "
                         f"separators), got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{what} must be a number of 0 or more, got {text!r}")
    return value


def read_pipeline(path: Path, label: str, lines: dict) -> tuple[pd.DataFrame, list[Problem]]:
    """Read and check a pipeline CSV against the scenario's lines.

    Returns the rows (one per application, in date order) and the problems found.
    """
    problems: list[Problem] = []
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return pd.DataFrame(), [Problem(label, "", "pipeline file not found")]
    except (OSError, UnicodeDecodeError) as exc:
        return pd.DataFrame(), [Problem(label, "", f"cannot be read: {exc}")]
    # Italian Excel exports separate fields with semicolons.
    header = text.splitlines()[0] if text else ""
    delimiter = ";" if header.count(";") > header.count(",") else ","
    reader = csv.DictReader(text.splitlines(), delimiter=delimiter)
    columns = [c.strip() for c in (reader.fieldnames or [])]
    reader.fieldnames = columns
    missing = [c for c in REQUIRED if c not in columns]
    for name in missing:
        problems.append(Problem(label, "", f"missing required column '{name}' "
                                f"(columns found: {', '.join(columns) or 'none'})"))
    for name in columns:
        if name not in REQUIRED + OPTIONAL:
            close = difflib.get_close_matches(name, REQUIRED + OPTIONAL, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else \
                f"; allowed: {', '.join(REQUIRED + OPTIONAL)}"
            problems.append(Problem(label, "", f"unknown column '{name}'{hint}"))
    if problems:
        return pd.DataFrame(), problems

    rows = []
    for row in reader:
        number = reader.line_num
        if not any((v or "").strip() for v in row.values()):
            continue
        try:
            rows.append(_parse_row(row, number, lines))
        except ValueError as exc:
            problems.append(Problem(label, f"line {number}", str(exc)))
    if not rows and not problems:
        problems.append(Problem(label, "", "no applications in the file"))
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame = frame.sort_values(["date", "row"], kind="stable").reset_index(drop=True)
    return frame, problems


def _parse_row(row: dict, number: int, lines: dict) -> dict:
    errors = []
    line = (row.get("line") or "").strip()
    if line not in lines:
        errors.append(f"unknown line {line!r} (lines: {', '.join(lines)})")
    record: dict = {"row": number, "line": line}
    try:
        record["date"] = _parse_date(row.get("date") or "")
    except ValueError as exc:
        errors.append(f"date: {exc}")
    try:
        cost = _parse_number(row.get("eligible_cost") or "", "eligible_cost")
        record["eligible_cost"] = cost
        if line in lines:
            low, high = lines[line].min_cost, lines[line].max_cost
            if not low <= cost <= high:
                errors.append(f"eligible_cost {cost:,.2f} is outside line {line}'s bounds "
                              f"[{low:,.0f}, {high:,.0f}]")
    except ValueError as exc:
        errors.append(str(exc))
    record["id"] = (row.get("id") or "").strip() or f"{line}-{number}"
    admitted = (row.get("admitted") or "").strip().lower()
    if admitted and admitted not in _TRUE | _FALSE:
        errors.append(f"admitted must be true or false, got {admitted!r}")
    record["admitted"] = (admitted in _TRUE) if admitted else None
    for name in ("evaluation_months", "implementation_months", "score"):
        raw = (row.get(name) or "").strip()
        record[name] = math.nan
        if raw:
            try:
                record[name] = _parse_number(raw, name)
            except ValueError as exc:
                errors.append(str(exc))
    if errors:
        raise ValueError("; ".join(errors))
    return record


def attach_pipelines(scenario, folder: Path, where: Callable[[str], str]) -> None:
    """Read the pipeline file of every line in pipeline mode into the scenario."""
    from .scenario import date_to_months

    problems: list[Problem] = []
    by_file: dict[Path, list[str]] = {}
    for line_id, line in scenario.lines.items():
        if line.applications.mode == "pipeline":
            path = (folder / line.applications.pipeline).resolve()
            by_file.setdefault(path, []).append(line_id)
    start = scenario.scenario.start
    horizon = scenario.scenario.horizon_months
    for path, line_ids in by_file.items():
        field = f"lines.{line_ids[0]}.applications.pipeline"
        if not path.exists():
            problems.append(Problem(where(field), field,
                                    f"pipeline file not found: {path.name} (looked in {path})"))
            continue
        frame, found = read_pipeline(path, path.name, scenario.lines)
        problems.extend(found)
        if found:
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        others = sorted(set(frame["line"]) - set(line_ids))
        for other in others:
            rows = frame.loc[frame["line"] == other, "row"].tolist()
            problems.append(Problem(
                path.name, f"line {rows[0]}",
                f"line {other!r} does not take its applications from this file (its "
                f"applications mode is not pipeline with {path.name}); rows {rows}"))
        frame["t"] = [date_to_months(start, d) for d in frame["date"]]
        late = frame[(frame["t"] < 0) | (frame["t"] >= horizon)]
        for _, row in late.iterrows():
            problems.append(Problem(path.name, f"line {row['row']}",
                                    f"date {row['date']} is outside the simulated span "
                                    f"(from {start}, {horizon} months)"))
        for line_id in line_ids:
            scenario._pipelines[line_id] = frame[frame["line"] == line_id].reset_index(
                drop=True)
            scenario._pipeline_digests[line_id] = digest
    if problems:
        raise InputError(problems)
