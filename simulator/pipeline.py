"""Pipeline files: real or planned applications replayed exactly.

A line in ``mode = "pipeline"`` takes its applications from a CSV file (path
relative to the scenario file that names it) instead of drawing them.  Columns:

==========================  ========  ==============================================
column                      required  meaning
==========================  ========  ==============================================
``date``                    yes       application date, ``YYYY-MM-DD`` or ``DD/MM/YYYY``
``line``                    yes       the line id (``A``, ``B``, ...)
``eligible_cost``           yes       euros, inside the line's [min_cost, max_cost]
``id``                      no        the project's id, unique (default: ``<line>-<row>``)
``admitted``                no        true/false (default: drawn with admission_rate)
``evaluation_months``       no        overrides the drawn evaluation time
``implementation_months``   no        overrides the drawn implementation time
``score``                   no        rank in a graduatoria (higher first)
``beneficiary``             no        the undertaking (any text): its projects share one
                                      de minimis ceiling (default: each row is its own)
==========================  ========  ==============================================

Fields are separated by commas, or by semicolons as in the CSV files Italian
Excel writes; in a semicolon file numbers may also be written the Italian way
(``1.250.000,50``).  Empty cells of optional columns mean "not given".

Every mistake is reported with the file and the CSV line number, all at once
(up to :data:`MAX_ROW_PROBLEMS` rows per file).
"""

from __future__ import annotations

import csv
import datetime as dt
import difflib
import hashlib
import io
import math
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .checks import TableReader, euros
from .errors import Problem

REQUIRED = ("date", "line", "eligible_cost")
OPTIONAL = ("id", "admitted", "evaluation_months", "implementation_months", "score",
            "beneficiary")
COLUMNS = ("row", "line", "date", "eligible_cost", "id", "admitted", "evaluation_months",
           "implementation_months", "score", "beneficiary")
MAX_ROW_PROBLEMS = 20
_TRUE = {"true", "1", "yes", "si", "sì", "y", "s", "vero"}
_FALSE = {"false", "0", "no", "n", "falso"}
_ITALIAN_NUMBER = re.compile(r"^-?\d{1,3}(\.\d{3})+(,\d+)?$|^-?\d+,\d+$")

Bounds = tuple[float, float] | None


@dataclass
class Pipelines:
    """The pipeline rows of every line in pipeline mode, and what was wrong."""

    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)  # SHA-256 of the file read
    paths: dict[str, Path] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


def _parse_date(text: str) -> dt.date:
    text = text.strip()
    for fmt in ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise ValueError(f"date must be YYYY-MM-DD or DD/MM/YYYY, got {text!r}")


def _parse_number(text: str, what: str, decimal_comma: bool = False) -> float:
    text = text.strip()
    plain = text
    if decimal_comma and _ITALIAN_NUMBER.match(text):
        plain = text.replace(".", "").replace(",", ".")
    try:
        value = float(plain)
    except ValueError:
        sep = "',' or '.'" if decimal_comma else "'.'"
        raise ValueError(f"{what} must be a number (use {sep} for decimals), got {text!r}") \
            from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{what} must be a number of 0 or more, got {text!r}")
    return value


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252")  # what Excel on Windows writes


def read_pipeline(path: Path, label: str,
                  bounds: Mapping[str, Bounds]) -> tuple[pd.DataFrame, list[Problem]]:
    """Read and check a pipeline CSV against the scenario's lines.

    ``bounds`` maps every line id of the scenario to its ``(min_cost,
    max_cost)`` (None if they are unknown).  Returns the rows (one per
    application, in date order, columns :data:`COLUMNS`) and the problems found.
    """
    try:
        text = _decode(path.read_bytes())
    except FileNotFoundError:
        return _empty(), [Problem(label, "", "pipeline file not found")]
    except OSError as exc:
        return _empty(), [Problem(label, "", f"cannot be read: {exc.strerror}")]
    header = text.splitlines()[0] if text else ""
    delimiter = ";" if header.count(";") > header.count(",") else ","
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    columns = [(c or "").strip() for c in (reader.fieldnames or [])]
    reader.fieldnames = columns
    problems = _column_problems(label, columns)
    if problems:
        return _empty(), problems

    rows, bad_rows, ids = [], [], {}
    for row in reader:
        number = reader.line_num
        if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            continue
        try:
            record = _parse_row(row, number, bounds, delimiter == ";")
            if record["id"] in ids:
                raise ValueError(f"id {record['id']!r} is already used on line "
                                 f"{ids[record['id']]}")
            ids[record["id"]] = number
            rows.append(record)
        except ValueError as exc:
            bad_rows.append(Problem(label, f"line {number}", str(exc)))
    problems.extend(_capped(bad_rows, label))
    if not rows and not problems:
        problems.append(Problem(label, "", "no applications in the file"))
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    if not frame.empty:
        frame = frame.sort_values(["date", "row"], kind="stable").reset_index(drop=True)
    return frame, problems


def _empty() -> pd.DataFrame:
    return pd.DataFrame(columns=list(COLUMNS))


def _capped(problems: list[Problem], label: str) -> list[Problem]:
    if len(problems) <= MAX_ROW_PROBLEMS:
        return problems
    more = len(problems) - MAX_ROW_PROBLEMS
    return [*problems[:MAX_ROW_PROBLEMS],
            Problem(label, "", f"... and {more} more rows with problems")]


def _column_problems(label: str, columns: list[str]) -> list[Problem]:
    """Problems of the header (CSV line 1): missing, unknown or repeated columns."""
    problems = []
    allowed = REQUIRED + OPTIONAL
    unknown = [c for c in columns if c not in allowed]
    for name in REQUIRED:
        if name not in columns:
            close = difflib.get_close_matches(name, unknown, n=1)
            hint = f" (is '{close[0]}' meant to be '{name}'?)" if close else ""
            problems.append(Problem(label, "line 1", f"missing required column '{name}'{hint}; "
                                    f"columns found: {', '.join(columns) or 'none'}"))
    for name in unknown:
        close = difflib.get_close_matches(name, allowed, n=1)
        if close and close[0] in REQUIRED and close[0] not in columns:
            continue  # already reported as the missing column it misspells
        hint = f" (did you mean '{close[0]}'?)" if close else f"; allowed: {', '.join(allowed)}"
        problems.append(Problem(label, "line 1", f"unknown column '{name}'{hint}"))
    for name in {c for c in columns if columns.count(c) > 1}:
        problems.append(Problem(label, "line 1", f"column '{name}' appears more than once"))
    return problems


def _parse_row(row: dict, number: int, bounds: Mapping[str, Bounds],
               decimal_comma: bool) -> dict[str, Any]:
    errors = []
    if None in row:  # csv puts surplus fields under the key None
        errors.append(f"{len(row[None])} more field(s) than columns")
    line = (row.get("line") or "").strip()
    if line not in bounds:
        close = difflib.get_close_matches(line, list(bounds), n=1)
        hint = f", did you mean '{close[0]}'?" if close else ""
        errors.append(f"unknown line {line!r} (lines: {', '.join(bounds)}{hint})")
    record: dict[str, Any] = {"row": number, "line": line}
    try:
        record["date"] = _parse_date(row.get("date") or "")
    except ValueError as exc:
        errors.append(str(exc))
    try:
        cost = _parse_number(row.get("eligible_cost") or "", "eligible_cost", decimal_comma)
        record["eligible_cost"] = cost
        line_bounds = bounds.get(line)
        if line_bounds is not None and not line_bounds[0] <= cost <= line_bounds[1]:
            low, high = line_bounds
            errors.append(f"eligible_cost {euros(cost)} is outside line {line}'s bounds "
                          f"min_cost - max_cost ({euros(low)} - {euros(high)})")
    except ValueError as exc:
        errors.append(str(exc))
    record["id"] = (row.get("id") or "").strip() or f"{line}-{number}"
    record["beneficiary"] = (row.get("beneficiary") or "").strip() or None
    admitted = (row.get("admitted") or "").strip().lower()
    if admitted and admitted not in _TRUE | _FALSE:
        errors.append(f"admitted must be true or false, got {admitted!r}")
    record["admitted"] = (admitted in _TRUE) if admitted else None
    for name in ("evaluation_months", "implementation_months", "score"):
        raw = (row.get(name) or "").strip()
        record[name] = math.nan
        if raw:
            try:
                record[name] = _parse_number(raw, name, decimal_comma)
            except ValueError as exc:
                errors.append(str(exc))
    if errors:
        raise ValueError("; ".join(errors))
    return record


def load_pipelines(tables: dict[str, Any], folder_of: Callable[[str], Path],
                   where: Callable[[str], str], bad: Collection[str] = ()) -> Pipelines:
    """Read and check the pipeline file of every line in pipeline mode.

    Works on the merged tables, so that the rows are checked in the same pass
    as the rest of the scenario; values the field checks refused (``bad``)
    are not used.  ``folder_of(field_path)`` is the folder a relative path
    set at that field starts from.
    """
    from .scenario import _label, date_to_months  # local: scenario imports this module

    read = TableReader(tables, bad)
    out = Pipelines()
    lines = read.get("lines")
    lines = {k: v for k, v in lines.items() if isinstance(v, dict)} \
        if isinstance(lines, dict) else {}
    bounds: dict[str, Bounds] = {}
    by_file: dict[Path, list[str]] = {}
    for line_id in lines:
        low, high = read.num(f"lines.{line_id}.min_cost"), read.num(f"lines.{line_id}.max_cost")
        bounds[line_id] = (low, high) if low is not None and high is not None \
            and low <= high else None
        apps = f"lines.{line_id}.applications"
        name = read.text(f"{apps}.pipeline")
        if read.text(f"{apps}.mode") == "pipeline" and name:
            path = (folder_of(f"{apps}.pipeline") / name).resolve()
            by_file.setdefault(path, []).append(line_id)

    start = read.date("scenario.start")
    horizon = read.get("scenario.horizon_months")
    for path, line_ids in by_file.items():
        field_path = f"lines.{line_ids[0]}.applications.pipeline"
        if not path.is_file():
            name = read.text(field_path)
            out.problems.append(Problem(where(field_path), field_path,
                                        f"pipeline file not found: {name} (looked for {path})"))
            continue
        label = _label(path)
        frame, found = read_pipeline(path, label, bounds)
        if found:
            out.problems.extend(found)
            continue
        late: list[Problem] = []
        for other in sorted(set(frame["line"]) - set(line_ids)):
            rows = frame.loc[frame["line"] == other, "row"].tolist()
            also = f" (also on lines {', '.join(map(str, rows[1:]))})" if rows[1:] else ""
            late.append(Problem(label, f"line {rows[0]}",
                                f"line {other!r} does not take its applications from this file "
                                f"(lines.{other}.applications.mode is not \"pipeline\" with "
                                f"this file){also}"))
        if start is not None:
            frame["t"] = [date_to_months(start, d) for d in frame["date"]]
            span = isinstance(horizon, int) and not isinstance(horizon, bool)
            for row, date, t in zip(frame["row"], frame["date"], frame["t"], strict=True):
                if t < 0 or (span and t >= horizon):
                    late.append(Problem(label, f"line {row}",
                                        f"date {date} is outside the simulated span "
                                        f"(scenario.start {start}, {horizon} months)"))
        if late:
            out.problems.extend(_capped(late, label))
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        for line_id in line_ids:
            out.frames[line_id] = frame[frame["line"] == line_id].reset_index(drop=True)
            out.digests[line_id] = digest
            out.paths[line_id] = path
    return out
