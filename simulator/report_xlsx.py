"""The Excel workbook of a run (``report.xlsx``), written with XlsxWriter.

Sheets, all laid out the same way (title in row 1, a note in row 2, the
header in row 4 with a filter, data from row 5, panes frozen below the
header, euro amounts as ``#,##0 €``):

* ``Sintesi``: one row per KPI, mean, P5, median and P95 (``summary.csv``);
* ``Serie``: month by month, per line and per timeseries column, the
  percentiles over replications and the mean (euros for money);
* ``Progetti``: the loan book of one replication (by default the median
  replication of the charts);
* ``Scenario``: the resolved scenario as ``dotted.path -> value`` rows;
* one sheet per chart, named like ``charts/<name>.csv``, holding exactly the
  data drawn on the chart.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xlsxwriter
from xlsxwriter.workbook import Workbook
from xlsxwriter.worksheet import Worksheet

from .charts_data import percentiles_by_month
from .labels import (
    kpi_definition,
    kpi_label,
    loan_label,
    series_label,
    status_label,
    unit_label,
)

EURO = '#,##0 "€"'
EURO_CENTS = '#,##0.00 "€"'
COUNT = "#,##0"
DECIMAL = "#,##0.00"
SHARE = "0.0 %"   # with a space, as the ESL's "0.00 %" and Italian usage
DATE = "dd/mm/yyyy"

HEADER_ROW = 3          # zero-based: the header is on the 4th row
SERIES_QUANTILES = (5, 25, 50, 75, 95)

MONEY_SERIES = (
    "cash", "committed_undisbursed", "loans_outstanding", "legacy", "loans_disbursed",
    "grants_paid", "grants_recovered", "principal_repaid", "interest_received",
    "principal_written_off", "recoveries", "fees_paid", "fees_charged", "treasury_interest",
    "reallocated_in", "reallocated_out",
)
COUNT_SERIES = ("applications", "admitted", "committed", "rejected_no_funds", "waiting")

LOAN_MONEY = ("eligible_cost", "public_loan", "bank_loan", "grant", "loans_disbursed",
              "grant_paid", "principal_repaid", "interest_paid", "written_off", "recovered",
              "grant_recovered", "outstanding_end", "esl", "de_minimis_ceiling", "prior_aid")


def _t(lang: str, it: str, en: str) -> str:
    return it if lang == "it" else en


class Book:
    """A workbook and its cell formats."""

    def __init__(self, path: Path):
        self.workbook: Workbook = xlsxwriter.Workbook(
            str(path), {"default_date_format": DATE, "remove_timezone": True,
                        "strings_to_numbers": False, "strings_to_formulas": False,
                        "strings_to_urls": False, "constant_memory": True})
        wb = self.workbook
        self.title = wb.add_format({"bold": True, "font_size": 13, "font_color": "#1f4e79"})
        self.note = wb.add_format({"italic": True, "font_color": "#555555"})
        self.header = wb.add_format({"bold": True, "font_color": "white", "bg_color": "#1f4e79",
                                     "text_wrap": True, "valign": "vcenter",
                                     "border": 1, "border_color": "#9dbcd9"})
        self._formats: dict[str, Any] = {}

    def fmt(self, num_format: str | None) -> Any:
        if num_format is None:
            return None
        if num_format not in self._formats:
            self._formats[num_format] = self.workbook.add_format({"num_format": num_format})
        return self._formats[num_format]

    def table(self, name: str, title: str, note: str, frame: pd.DataFrame,
              headers: Mapping[str, str] | None = None,
              formats: Mapping[str, str | None] | None = None,
              widths: Mapping[str, float] | None = None,
              row_formats: Mapping[str, Sequence[str | None]] | None = None) -> Worksheet:
        """Write ``frame`` as a sheet: title, note, header (row 4), data, filter, frozen panes.

        ``formats`` gives a column's number format (default from its dtype);
        ``row_formats`` one format per row for columns whose unit changes
        from row to row.  Cells are written row after row (the workbook
        streams rows to disk: constant memory, fast to close).
        """
        ws = self.workbook.add_worksheet(name)
        headers = headers or {}
        formats = formats or {}
        widths = widths or {}
        row_formats = row_formats or {}
        cols = list(frame.columns)
        cells = [_cells(frame[c]) for c in cols]
        cell_formats: list[list[Any]] = []
        for j, col in enumerate(cols):
            num_format = formats.get(col, _default_format(frame[col]))
            ws.set_column(j, j, widths.get(col) or _width(headers.get(col, col), frame[col],
                                                             num_format))
            if col in row_formats:
                cell_formats.append([self.fmt(f) for f in row_formats[col]])
            else:
                cell_formats.append([self.fmt(num_format)] * len(frame))
        ws.write(0, 0, title, self.title)
        ws.write(1, 0, note, self.note)
        ws.set_row(HEADER_ROW, 30)
        for j, col in enumerate(cols):
            ws.write_string(HEADER_ROW, j, headers.get(col, col), self.header)
        writers = [_writer(ws, values) for values in cells]
        for i in range(len(frame)):
            r = HEADER_ROW + 1 + i
            for j in range(len(cols)):
                value = cells[j][i]
                if value is not None:
                    writers[j](r, j, value, cell_formats[j][i])
        if cols:
            ws.autofilter(HEADER_ROW, 0, HEADER_ROW + max(len(frame), 1), len(cols) - 1)
        ws.freeze_panes(HEADER_ROW + 1, 0)
        return ws

    def close(self) -> None:
        self.workbook.close()


def _writer(ws: Worksheet, values: list) -> Any:
    """The fastest XlsxWriter method that takes every value of a column."""
    kinds = {type(v) for v in values if v is not None}
    if kinds and kinds <= {float, int}:
        return ws.write_number
    if kinds == {dt.datetime}:
        return ws.write_datetime
    if kinds == {str}:
        return ws.write_string
    return ws.write


def _default_format(series: pd.Series) -> str | None:
    if pd.api.types.is_datetime64_any_dtype(series):
        return DATE
    if series.dtype == object and series.map(lambda v: isinstance(v, dt.date)).any():
        return DATE
    if pd.api.types.is_integer_dtype(series):
        return COUNT
    if pd.api.types.is_float_dtype(series):
        return DECIMAL
    return None


def _cells(series: pd.Series) -> list:
    """Python values for XlsxWriter: NaN/None/NaT become blanks, numpy scalars plain."""
    if pd.api.types.is_datetime64_any_dtype(series):
        return [None if pd.isna(v) else v.to_pydatetime() for v in series]
    out = []
    for v in series.tolist():
        if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NaT:
            out.append(None)
        elif isinstance(v, dt.date) and not isinstance(v, dt.datetime):
            out.append(dt.datetime(v.year, v.month, v.day))
        else:
            out.append(v)
    return out


def _width(label: str, series: pd.Series, num_format: str | None) -> float:
    if num_format == DATE:
        body = 11
    elif series.dtype == object:
        body = int(series.astype(str).str.len().quantile(0.95)) if len(series) else 8
    elif pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        # Wide enough for the largest value (a 1 bn€ fund's 1.000.000.000 €): a
        # narrower column shows ##### in Excel.
        peak = float(np.nanmax(np.abs(series.to_numpy(float)))) if len(series) and \
            series.notna().any() else 0.0
        suffix = {EURO: 2, EURO_CENTS: 5, DECIMAL: 3}.get(num_format, 0)   # " €", ",00 €"
        body = max(len(f"{peak:,.0f}") + suffix, 10)
    else:
        body = 10
    head = max((len(w) for w in label.split()), default=8)
    return float(min(max(body, head, min(len(label), 18)) + 2, 60))


# --------------------------------------------------------------------------- sheets


def summary_frame(summary: pd.DataFrame, lang: str) -> pd.DataFrame:
    """The ``Sintesi`` table: summary.csv with the KPI's name for people and its definition."""
    out = pd.DataFrame({
        "indicatore": [kpi_label(k, u, lang) for k, u in zip(summary["kpi"], summary["unit"],
                                                               strict=True)],
        "kpi": summary["kpi"], "unit": [unit_label(u, lang) for u in summary["unit"]],
        "mean": summary["mean"], "p5": summary["p5"], "p50": summary["p50"],
        "p95": summary["p95"],
    })
    if "replications" in summary.columns:
        out["replications"] = summary["replications"]
    out["definition"] = [kpi_definition(name, lang) for name in summary["kpi"]]
    return out


def _unit_format(unit: str) -> str:
    return {"EUR": EURO, "share": SHARE, "ratio": DECIMAL, "count": "#,##0.0",
            "months": "#,##0.0", "%": '0.00" %"'}.get(unit, DECIMAL)


def write_summary(book: Book, summary: pd.DataFrame, title: str, lang: str) -> None:
    data = summary_frame(summary, lang)
    headers = {"indicatore": _t(lang, "Indicatore", "Indicator"), "kpi": _t(lang, "Codice",
                                                                             "Code"),
               "unit": _t(lang, "Unità", "Unit"), "mean": _t(lang, "Media", "Mean"),
               "p5": "P5", "p50": _t(lang, "Mediana (P50)", "Median (P50)"), "p95": "P95",
               "replications": _t(lang, "Replicazioni con valore", "Replications with a value"),
               "definition": _t(lang, "Definizione (formula)", "Definition (formula)")}
    unit_formats = [_unit_format(u) for u in summary["unit"]]
    book.table("Sintesi", title,
               _t(lang, "Indicatori sulle replicazioni: media, 5°, 50° e 95° percentile. "
                  "Importi in euro.", "Indicators over the replications: mean, 5th, 50th "
                  "and 95th percentile. Amounts in euros."),
               data, headers, widths={"indicatore": 42, "definition": 80, "kpi": 30},
               row_formats={c: unit_formats for c in ("mean", "p5", "p50", "p95")})


def series_frame(results, lang: str) -> pd.DataFrame:
    """``Serie``: per line, column and month, P5..P95 and mean over replications (euros).

    Vectorised: each column is read as replications x lines x months
    (``Results.series``, one column at a time) and reduced along the first axis.
    """
    layout = results.layout
    names = results.timeseries_columns()
    columns = [c for c in (*MONEY_SERIES, *COUNT_SERIES) if c in names]
    dates = pd.to_datetime(layout.dates)
    parts: dict[tuple[int, str], pd.DataFrame] = {}
    for col in columns:
        cube = results.series(col)
        for k, line in enumerate(layout.lines):
            values = cube[:, k, :]
            q = percentiles_by_month(values, SERIES_QUANTILES)   # (quantiles, months)
            scale = 100.0 if col in MONEY_SERIES else 1.0
            part = pd.DataFrame({"line": line, "column_label": series_label(col, lang),
                                 "column": col, "date": dates})
            for i, p in enumerate(SERIES_QUANTILES):
                part[f"p{p}"] = q[i] / scale
            part["mean"] = values.mean(axis=0) / scale
            parts[k, col] = part
    # Line by line, each line's columns in order.
    return pd.concat([parts[k, col] for k in range(len(layout.lines)) for col in columns],
                     ignore_index=True)


def write_series(book: Book, results, title: str, lang: str) -> pd.DataFrame:
    data = series_frame(results, lang)
    money = data["column"].isin(MONEY_SERIES).to_numpy()
    headers = {"line": _t(lang, "Linea", "Line"),
               "column": _t(lang, "Voce (codice)", "Item (code)"),
               "column_label": _t(lang, "Voce", "Item"),
               "date": _t(lang, "Fine mese", "Month end"),
               "p50": _t(lang, "Mediana (P50)", "Median (P50)"), "mean": _t(lang, "Media",
                                                                          "Mean"),
               **{f"p{p}": f"P{p}" for p in SERIES_QUANTILES if p != 50}}
    numbers = [*[f"p{p}" for p in SERIES_QUANTILES], "mean"]
    per_row = np.where(money, EURO, "#,##0.0").tolist()
    book.table("Serie", title,
               _t(lang, "Serie mensili per linea: percentili e media sulle replicazioni. "
                  "Importi in euro (flussi cumulati dall'avvio, stock a fine mese); "
                  "conteggi in numero. Usare il filtro su Linea e Voce.",
                  "Monthly series by line: percentiles and mean over the replications. "
                  "Amounts in euros (flows cumulated since the start, stocks at month "
                  "end); counts as numbers. Filter on Line and Item."),
               data, headers, formats={c: EURO for c in numbers},
               widths={"line": 8, "column": 22, "column_label": 32},
               row_formats={c: per_row for c in numbers})
    return data


def loans_frame(loans: pd.DataFrame, replication: int, lang: str) -> pd.DataFrame:
    """``Progetti``: the loan book of one replication, money in euros, statuses in words."""
    book = loans[loans["replication"] == replication].copy()
    for col in LOAN_MONEY:
        if col in book.columns:
            # Cents; a ceiling is empty (NaN) where no de minimis regime applies.
            cents = book[col] if book[col].dtype.kind == "f" else book[col].astype("int64")
            book[col] = cents / 100.0
    book["status"] = [status_label(s, lang) for s in book["status"]]
    return book.reset_index(drop=True)


def write_loans(book: Book, loans: pd.DataFrame, replication: int, title: str,
                lang: str, which: str) -> pd.DataFrame:
    data = loans_frame(loans, replication, lang)
    formats = {c: EURO_CENTS for c in LOAN_MONEY if c in data.columns}
    formats["esl_pct"] = '0.00" %"'
    formats["replication"] = "0"
    for col in data.columns:
        if col.endswith("_date"):
            formats[col] = DATE
    book.table("Progetti", title,
               _t(lang, f"Progetti finanziati nella {which}: importi in euro, flussi fino "
                  "all'orizzonte.", f"Projects financed in the {which}: amounts in euros, "
                  "flows up to the horizon."),
               data, {c: loan_label(c, lang) for c in data.columns}, formats)
    return data


def flatten(tables: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    """``{"a": {"b": 1}}`` -> ``("a.b", 1)``; lists of tables get an index (``tranches.0``)."""
    for key, value in tables.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from flatten(value, path + ".")
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            for i, item in enumerate(value):
                yield from flatten(item, f"{path}.{i}.")
        elif isinstance(value, list):
            yield path, ", ".join(str(v) for v in value)
        else:
            yield path, value


def scenario_frame(scenario, manifest: Mapping[str, Any]) -> pd.DataFrame:
    rows: list[tuple[str, Any]] = [
        ("run.scenario_hash", manifest.get("scenario_hash") or scenario.hash()),
        ("run.tool_version", str(manifest.get("version", ""))),
        ("run.seed", manifest.get("seed", "")),
        ("run.replications", manifest.get("replications", "")),
        ("run.end_time", str(manifest.get("end_time", ""))),
    ]
    rows += list(flatten(scenario.to_dict()))
    return pd.DataFrame(rows, columns=["path", "value"])


def write_scenario(book: Book, scenario, manifest: Mapping[str, Any], title: str,
                   lang: str) -> pd.DataFrame:
    data = scenario_frame(scenario, manifest)
    ws = book.workbook.add_worksheet("Scenario")
    ws.write(0, 0, title, book.title)
    ws.write(1, 0, _t(lang, "Scenario risolto (dopo ereditarietà e --set), come simulato; "
                      "righe run.* dal manifest.json.", "Resolved scenario (after "
                      "inheritance and --set), as run; run.* rows from manifest.json."),
             book.note)
    ws.set_row(HEADER_ROW, 30)
    ws.write(HEADER_ROW, 0, _t(lang, "Parametro", "Parameter"), book.header)
    ws.write(HEADER_ROW, 1, _t(lang, "Valore", "Value"), book.header)
    date_fmt = book.fmt(DATE)
    for i, (path, value) in enumerate(data.itertuples(index=False)):
        r = HEADER_ROW + 1 + i
        ws.write_string(r, 0, path)
        if isinstance(value, bool):
            ws.write_boolean(r, 1, value)
        elif isinstance(value, int | float):
            ws.write_number(r, 1, value)
        elif isinstance(value, dt.date):
            ws.write_datetime(r, 1, dt.datetime(value.year, value.month, value.day), date_fmt)
        else:
            ws.write_string(r, 1, str(value))
    ws.set_column(0, 0, max(20, int(data["path"].str.len().max()) + 2))
    ws.set_column(1, 1, 40)
    ws.autofilter(HEADER_ROW, 0, HEADER_ROW + len(data), 1)
    ws.freeze_panes(HEADER_ROW + 1, 0)
    return data


def write_chart_sheet(book: Book, name: str, title: str, caption: str, data: pd.DataFrame,
                      money: bool, lang: str) -> None:
    """One chart's data, columns named as in ``charts/<name>.csv``."""
    formats: dict[str, str | None] = {}
    for col in data.columns:
        series = data[col]
        if col in ("replication", "year"):
            formats[col] = "0"   # 2018, not 2.018 €
        elif col.startswith("projects"):
            formats[col] = COUNT
        elif pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            formats[col] = EURO if money else DECIMAL
    note = caption + " " + _t(lang, f"Dati del grafico charts/{name}.png.",
                              f"Data of chart charts/{name}.png.")
    if money:
        note += _t(lang, " Importi in euro.", " Amounts in euros.")
    book.table(name[:31], title, note, data, formats=formats)
