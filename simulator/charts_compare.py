"""Charts that set scenarios side by side: comparisons and sweeps.

They take DataFrames, not a run folder, so ``fesr-sim compare`` and
``fesr-sim sweep`` (or a notebook) can draw them from their own tables:

* :func:`compare_kpi_chart`: for each KPI, the median of every alternative
  with its P5-P95 interval (long table ``alternative, kpi, unit, p5, p50,
  p95``; :func:`comparison_long` turns the wide table of
  :func:`simulator.compare.comparison_table` into it);
* :func:`compare_cash_chart`: the median fund cash of every alternative,
  overlaid (``alternative, date, cash`` in euros; :func:`cash_medians`
  builds it from runs);
* :func:`sweep_heatmap_chart`: one KPI over two swept parameters;
* :func:`sweep_line_chart`: one KPI along one swept parameter, median and
  P5-P95 band, optionally one line per value of a second parameter.

Sweep tables are ``sweep.csv`` rows: one column per swept dotted path, then
``kpi, unit, p5, p50, p95`` (and more).  Every function returns a
:class:`~simulator.charts.Chart` (figure and the data drawn) in the house
style of :mod:`simulator.charts_style`.
"""

from __future__ import annotations

import datetime as dt
import math
import textwrap
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import LinearSegmentedColormap

from . import __version__
from .charts import Chart, _dates, _start, percentiles
from .charts_style import (
    BLUE,
    GREY,
    INK,
    LINE_COLORS,
    Region,
    check_lang,
    count_axis,
    date_axis,
    euro_axis,
    format_day,
    format_euros_short,
    house_style,
    number_axis,
    share_axis,
)
from .labels import kpi_label, param_label
from .money import format_number, format_pct

DEFAULT_KPIS = ("fund_value_end_eur", "net_public_cost_eur", "loans_disbursed_eur",
                "absorption_at_eligibility_end", "leverage", "rejected_no_funds")


def _t(lang: str, it: str, en: str) -> str:
    return it if lang == "it" else en


def compare_source(alternatives: int, replications: int, lang: str = "it") -> str:
    """``Fonte: fesr-sim 0.1.0, confronto di 3 scenari su 200 replicazioni appaiate``."""
    if lang == "it":
        return (f"Fonte: fesr-sim {__version__}, confronto di {alternatives} scenari su "
                f"{format_number(replications, lang)} replicazioni appaiate")
    return (f"Source: fesr-sim {__version__}, comparison of {alternatives} scenarios on "
            f"{format_number(replications, lang)} paired replications")


def sweep_source(points: int, replications: int, lang: str = "it") -> str:
    """``Fonte: fesr-sim 0.1.0, analisi di sensibilità su 12 varianti, 200 replicazioni ...``."""
    if lang == "it":
        return (f"Fonte: fesr-sim {__version__}, analisi di sensibilità su {points} varianti, "
                f"{format_number(replications, lang)} replicazioni ciascuna")
    return (f"Source: fesr-sim {__version__}, sensitivity analysis over {points} variants, "
            f"{format_number(replications, lang)} replications each")


def value_text(value: float, unit: str, lang: str = "it") -> str:
    """A KPI value on a chart: ``1,2 M€``, ``80,3 %``, ``1,13``, ``18``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return _t(lang, "n.d.", "n/a")
    if unit == "EUR":
        return format_euros_short(value, lang)
    if unit == "share":
        return format_pct(value, lang)
    if unit == "%":
        return format_number(value, lang, 2) + (" %" if lang == "it" else "%")
    if unit == "count":
        return format_number(value, lang, 0 if float(value).is_integer() else 1)
    return format_number(value, lang, 2)


def _value_axis(ax: Axes, unit: str, lang: str, axis: str = "y") -> None:
    if unit == "EUR":
        euro_axis(ax, lang, axis)
    elif unit == "share":
        share_axis(ax, lang, axis)
    elif unit == "count":
        count_axis(ax, lang, axis)
    else:
        number_axis(ax, lang, axis, digits=1)


# --------------------------------------------------------------------------- compare


def comparison_long(table: pd.DataFrame) -> pd.DataFrame:
    """The wide comparison table (``<alternative>.p50`` columns) as ``alternative, kpi, ...``."""
    if "alternative" in table.columns:
        return table
    names = list(dict.fromkeys(c.rsplit(".", 1)[0] for c in table.columns
                               if c.endswith(".p50")))
    rows = []
    for _, row in table.iterrows():
        for name in names:
            rows.append({"alternative": name, "kpi": row["kpi"], "unit": row["unit"],
                         **{s: row.get(f"{name}.{s}", np.nan)
                            for s in ("mean", "p5", "p50", "p95")}})
    return pd.DataFrame(rows)


def compare_kpi_chart(table: pd.DataFrame, kpis: Sequence[str] | None = None,
                      lang: str = "it", region: Region | None = None, *, source: str,
                      subtitle: str = "") -> Chart:
    """KPI medians with P5-P95 intervals, one panel per KPI, one bar per alternative.

    ``table``: long (``alternative, kpi, unit, p5, p50, p95``) or the wide
    comparison table.  Data: the rows drawn, in panel order.
    """
    check_lang(lang)
    long = comparison_long(table)
    wanted = [k for k in (kpis or DEFAULT_KPIS) if k in set(long["kpi"])]
    data = long[long["kpi"].isin(wanted)].copy()
    data["kpi"] = pd.Categorical(data["kpi"], wanted, ordered=True)
    alternatives = list(dict.fromkeys(long["alternative"]))
    data["alternative"] = pd.Categorical(data["alternative"], alternatives, ordered=True)
    data = data.sort_values(["kpi", "alternative"]).reset_index(drop=True)
    data["kpi"] = data["kpi"].astype(str)
    data["alternative"] = data["alternative"].astype(str)
    ncols = 2 if len(wanted) > 1 else 1
    nrows = -(-len(wanted) // ncols)
    panel_h = 0.45 + 0.28 * len(alternatives)
    with house_style():
        fr = _start(region, 1.3 + panel_h * nrows,
                    _t(lang, "Confronto tra scenari: indicatori principali",
                       "Scenario comparison: main indicators"), subtitle, source)
        for i, kpi in enumerate(wanted):
            ax = fr.body.add_subplot(nrows, ncols, i + 1)
            d = data[data["kpi"] == kpi]
            unit = str(d["unit"].iloc[0])
            y = np.arange(len(d))
            colors = [LINE_COLORS[k % len(LINE_COLORS)] for k in range(len(d))]
            p50 = d["p50"].to_numpy(float)
            ax.barh(y, p50, color=colors, height=0.6, alpha=0.85, zorder=2)
            err = np.vstack([p50 - d["p5"].to_numpy(float), d["p95"].to_numpy(float) - p50])
            ax.errorbar(p50, y, xerr=np.clip(err, 0, None), fmt="none", ecolor=INK,
                        elinewidth=1.0, capsize=3, zorder=3)
            for yy, row in zip(y, d.itertuples(), strict=True):
                ax.annotate(value_text(row.p50, unit, lang), (max(row.p95, row.p50), yy),
                            xytext=(4, 0), textcoords="offset points", va="center",
                            fontsize=7.5, color=INK)
            ax.set_yticks(y, [textwrap.shorten(a, 22, placeholder="…")
                              for a in d["alternative"]] if i % ncols == 0 else [])
            ax.set_ylim(len(d) - 0.4, -0.6)
            ax.set_title(textwrap.fill(kpi_label(kpi, unit, lang), 34), fontsize=8.5)
            ax.grid(axis="y", visible=False)
            ax.grid(axis="x", visible=True)
            ax.tick_params(axis="y", length=0)
            low = min(0.0, float(np.nanmin(d["p5"])))
            high = float(np.nanmax(d["p95"]))
            ax.set_xlim(low, high * 1.3 if high > 0 else 1.0)
            _value_axis(ax, unit, lang, axis="x")
            ax.xaxis.get_major_locator().set_params(nbins=4)
        fr.legend([_bar_handle(), _errorbar_handle()],
                  [_t(lang, "Mediana", "Median"),
                   _t(lang, "Intervallo P5-P95", "P5-P95 range")], ncols=2)
    return Chart(fr.root, data)


def _bar_handle():
    from matplotlib.patches import Patch

    return Patch(color=GREY, alpha=0.85)


def _errorbar_handle():
    from matplotlib.lines import Line2D

    return Line2D([], [], color=INK, lw=1.0, marker="|", markersize=7)


def cash_medians(runs: Mapping[str, object], line: str = "total") -> pd.DataFrame:
    """Median fund cash (euros) month by month of each run: ``alternative, date, cash``."""
    parts = []
    for name, results in runs.items():
        p = percentiles(results, "cash", line, (50,))
        parts.append(pd.DataFrame({"alternative": name, "date": p["date"], "cash": p["p50"]}))
    return pd.concat(parts, ignore_index=True)


def compare_cash_chart(medians: pd.DataFrame, lang: str = "it", region: Region | None = None,
                       *, source: str, subtitle: str = "",
                       eligibility_end: dt.date | None = None,
                       revolving_until: dt.date | None = None) -> Chart:
    """The median fund cash of every alternative over time, overlaid (euros).

    Data: ``medians`` as drawn (``alternative, date, cash``).
    """
    check_lang(lang)
    data = medians[["alternative", "date", "cash"]].copy()
    data["date"] = pd.to_datetime(data["date"]).dt.date
    alternatives = list(dict.fromkeys(data["alternative"]))
    with house_style():
        fr = _start(region, 4.4, _t(lang, "Confronto tra scenari: fondo disponibile (mediana)",
                                    "Scenario comparison: fund cash (median)"),
                    subtitle, source)
        ax = fr.body.add_subplot(1, 1, 1)
        handles, labels = [], []
        styles = ["-", (0, (5, 2)), (0, (1, 1.5)), "-.", (0, (8, 2, 1, 2))]
        for i, name in enumerate(alternatives):
            d = data[data["alternative"] == name]
            (h,) = ax.plot(_dates(d["date"]), d["cash"], color=LINE_COLORS[i % len(LINE_COLORS)],
                           ls=styles[i % len(styles)], lw=1.7)
            handles.append(h)
            labels.append(name)
        start, end = min(data["date"]), max(data["date"])
        for date, style, it, en in ((eligibility_end, "--", "Termine di ammissibilità",
                                     "Eligibility deadline"),
                                    (revolving_until, ":", "Fine rotazione", "End of revolving")):
            if date is not None and start <= date < end:   # not on the border (charts.py)
                handles.append(ax.axvline(np.datetime64(date), color=GREY, lw=0.9, ls=style))
                labels.append(f"{_t(lang, it, en)} ({format_day(date)})")
        ax.set_ylim(bottom=0)
        ax.set_ylabel(_t(lang, "Fondo disponibile", "Fund cash"))
        euro_axis(ax, lang)
        date_axis(ax, start, end, lang)
        fr.legend(handles, labels, ncols=2 if len(labels) > 3 else len(labels))
    return Chart(fr.root, data)


# --------------------------------------------------------------------------- sweep


def param_values(values: Sequence, path: str, lang: str, exact: bool = False) -> list[str]:
    """Swept values for people: shares as ``10 %``, amounts as ``1,2 M€``, numbers with the
    locale's decimal mark; other values (texts, distributions) as in the sweep's files.

    ``exact``: with every decimal the value has (a table to choose a value
    from: 0.0025 is ``0,25 %``, not ``0,3 %``; 1.234.567 € in full), where a
    chart's tick labels round.
    """
    from .decide import value_text
    from .money import format_eur

    leaf = path.rsplit(".", 1)[-1]
    out = []
    for v in values:
        if not isinstance(v, int | float) or isinstance(v, bool):
            out.append(value_text(v))
        elif leaf.endswith(("share", "_rate", "coverage")):
            percent = float(v) * 100
            out.append(format_pct(float(v), lang, _digits(percent, 4 if exact else 1)))
        elif leaf in ("allocation", "endowment", "min_cost", "max_cost", "max_public_loan",
                      "max_grant"):
            out.append(format_eur(round(float(v) * 100), lang, decimals=False) if exact
                       else format_euros_short(float(v), lang))
        else:
            out.append(format_number(float(v), lang, _digits(float(v), 6 if exact else 2)))
    return out


def _digits(value: float, most: int) -> int:
    """The fewest decimals (up to ``most``) that show ``value`` as it is."""
    return next((d for d in range(most + 1) if abs(round(value, d) - value) < 1e-9), most)


def _kpi_rows(table: pd.DataFrame, kpi: str) -> tuple[pd.DataFrame, str]:
    rows = table[table["kpi"] == kpi]
    if rows.empty:
        raise ValueError(f"KPI {kpi!r} is not in the sweep table")
    return rows, str(rows["unit"].iloc[0])


def sweep_heatmap_chart(table: pd.DataFrame, x: str, y: str, kpi: str, lang: str = "it",
                        region: Region | None = None, *, source: str, subtitle: str = "",
                        stat: str = "p50") -> Chart:
    """One KPI (median by default) over two swept parameters, values written in the cells.

    Data: ``x, y, stat`` values as drawn, plus P5 and P95 of each cell.
    """
    check_lang(lang)
    rows, unit = _kpi_rows(table, kpi)
    data = rows[[x, y, "p5", "p50", "p95"]].sort_values([y, x]).reset_index(drop=True)
    xs = sorted(data[x].unique())
    ys = sorted(data[y].unique())
    grid = data.pivot(index=y, columns=x, values=stat).reindex(index=ys, columns=xs)
    with house_style():
        label = kpi_label(kpi, unit, lang)
        fr = _start(region, 1.6 + max(2.4, 0.45 * len(ys) + 1.0),
                    _t(lang, f"Sensibilità: {label}", f"Sensitivity: {label}"),
                    subtitle, source)
        ax = fr.body.add_subplot(1, 1, 1)
        cmap = LinearSegmentedColormap.from_list("house", ["#f2f6fa", LINE_COLORS[0]])
        values = grid.to_numpy(float)
        finite = values[np.isfinite(values)]
        vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        image = ax.imshow(values, cmap=cmap, aspect="auto", vmin=vmin,
                          vmax=vmax if vmax > vmin else vmin + 1.0)
        for (i, j), v in np.ndenumerate(values):
            light = vmax > vmin and (v - vmin) / (vmax - vmin) > 0.55
            ax.text(j, i, value_text(v, unit, lang), ha="center", va="center", fontsize=8,
                    color="white" if light else INK)
        ax.set_xticks(range(len(xs)), param_values(xs, x, lang))
        ax.set_yticks(range(len(ys)), param_values(ys, y, lang))
        ax.set_xlabel(param_label(x, lang))
        ax.set_ylabel(param_label(y, lang))
        ax.grid(False)
        ax.tick_params(length=0)
        for side in ("left", "bottom"):
            ax.spines[side].set_visible(False)
        if vmax > vmin:   # a colour scale only when the values differ
            colorbar = fr.body.colorbar(image, ax=ax, shrink=0.9, pad=0.02)
            colorbar.outline.set_visible(False)
            _value_axis(colorbar.ax, unit, lang, axis="y")
            colorbar.set_label(_t(lang, "mediana", "median") if stat == "p50" else stat)
    data.insert(0, "kpi", kpi)
    return Chart(fr.root, data)


def sweep_line_chart(table: pd.DataFrame, param: str, kpi: str, lang: str = "it",
                     region: Region | None = None, *, source: str, subtitle: str = "",
                     by: str | None = None) -> Chart:
    """One KPI along a swept parameter: median with markers and the P5-P95 band.

    With ``by`` (a second swept path), one line per value of it, each with
    its P5-P95 as error bars; the lines are moved apart a little along the
    axis, so that lines with the same values (a KPI the second path does not
    change) stay visible side by side instead of hiding one another, and
    their ranges do not blur into one band.  Data: ``param, [by], p5, p50,
    p95`` as drawn (at the parameter's values, not moved).
    """
    check_lang(lang)
    rows, unit = _kpi_rows(table, kpi)
    keys = [param] if by is None else [by, param]
    data = rows[[*keys, "p5", "p50", "p95"]].sort_values(keys).reset_index(drop=True)
    groups = [(None, data)] if by is None else list(data.groupby(by, sort=True))
    with house_style():
        label = kpi_label(kpi, unit, lang)
        fr = _start(region, 4.2, _t(lang, f"Sensibilità: {label}", f"Sensitivity: {label}"),
                    subtitle, source)
        ax = fr.body.add_subplot(1, 1, 1)
        xs = sorted(data[param].unique())
        numeric = all(isinstance(v, int | float | np.number) for v in xs)
        position = {v: (float(v) if numeric else i) for i, v in enumerate(xs)}
        handles, labels = [], []
        places = sorted(position.values())
        step = min(np.diff(places)) if len(places) > 1 else 1.0
        for i, (key, d) in enumerate(groups):
            xx = np.array([position[v] for v in d[param]], dtype=float)
            if by is None:
                band = ax.fill_between(xx, d["p5"], d["p95"], color=BLUE, alpha=0.15, lw=0)
                (line,) = ax.plot(xx, d["p50"], color=BLUE, marker="o", ms=4.5)
                handles += [line, band]
                labels += [_t(lang, "Mediana", "Median"), "P5-P95"]
                continue
            color = LINE_COLORS[i % len(LINE_COLORS)]
            xx += step * 0.06 * (i - (len(groups) - 1) / 2)   # apart, centred on the value
            p50 = d["p50"].to_numpy(float)
            spread = np.vstack([p50 - d["p5"].to_numpy(float), d["p95"].to_numpy(float) - p50])
            ax.errorbar(xx, p50, yerr=np.clip(spread, 0, None), fmt="none", ecolor=color,
                        elinewidth=1.0, capsize=2.5, alpha=0.8)
            (line,) = ax.plot(xx, p50, color=color, marker="o", ms=4.5)
            handles.append(line)
            labels.append(f"{param_label(by, lang)}: {param_values([key], by, lang)[0]}")
        ax.set_xticks([position[v] for v in xs], param_values(xs, param, lang))
        ax.set_xlabel(param_label(param, lang))
        ax.set_ylabel(label)
        _value_axis(ax, unit, lang)
        if by is not None:
            labels.append(_t(lang, "linee: mediana; barre: P5-P95",
                             "lines: median; bars: P5-P95"))
            handles.append(_errorbar_handle())
        fr.legend(handles, labels, ncols=min(len(labels), 3))
    return Chart(fr.root, data)


# -- writing the charts of a comparison or sweep folder --------------------------------------

SWEEP_KPIS = ("fund_value_end_eur", "net_public_cost_eur", "projects_financed_A",
              "projects_financed_B")


def write_comparison_charts(table: pd.DataFrame, folder: Path, replications: int,
                            lang: str = "it", subtitle: str = "") -> list[Path]:
    """The KPI comparison chart (PNG, SVG and CSV of its data) into ``folder``."""
    from .charts_style import save_figure

    folder.mkdir(parents=True, exist_ok=True)
    alternatives = len({c.split(".")[0] for c in table.columns if c.endswith(".p50")})
    chart = compare_kpi_chart(table, lang=lang, source=compare_source(alternatives,
                                                                      replications, lang),
                              subtitle=subtitle)
    stem = folder / "confronto_indicatori"
    save_figure(chart.figure, stem)
    chart.data.to_csv(stem.with_suffix(".csv"), index=False, float_format="%.2f")
    return [stem.with_suffix(".png"), stem.with_suffix(".svg"), stem.with_suffix(".csv")]


def write_sweep_charts(table: pd.DataFrame, dims: Sequence[str], folder: Path,
                       replications: int, lang: str = "it", subtitle: str = "",
                       workers: int | None = None) -> list[Path]:
    """For each main KPI: a line chart (one or two swept paths) or a heatmap (two).

    With two swept paths both are drawn: lines along the first path, one per
    value of the second, and the heatmap of the medians. The charts are drawn
    on ``workers`` processes (default: all cores) as they come free; each is
    the same whichever process draws it (``charts_style.forget_text_measures``).
    """
    from .executors import default_workers

    folder.mkdir(parents=True, exist_ok=True)
    points = int(table["point"].nunique()) if "point" in table else len(table)
    kinds = {1: ["linee"], 2: ["linee", "mappa"]}.get(len(dims), [])
    jobs = [(kpi, kind) for kpi in SWEEP_KPIS if kpi in set(table["kpi"]) for kind in kinds]
    draw = partial(_sweep_chart, table, list(dims), folder, sweep_source(points, replications,
                                                                         lang), lang, subtitle)
    workers = min(workers or default_workers(), len(jobs))
    if workers <= 1:
        return [draw(job) for job in jobs]
    from .pool import results_in_order

    return list(results_in_order(draw, jobs, helpers=workers - 1, window=len(jobs)))


def _sweep_chart(table: pd.DataFrame, dims: list[str], folder: Path, source: str, lang: str,
                 subtitle: str, job: tuple[str, str]) -> Path:
    """One sensitivity chart (PNG, SVG and CSV of its data): ``job`` is (KPI, kind)."""
    from .charts_style import forget_text_measures, save_figure

    kpi, kind = job
    forget_text_measures()
    if kind == "mappa":
        chart = sweep_heatmap_chart(table, dims[0], dims[1], kpi, lang, source=source,
                                    subtitle=subtitle)
    else:
        chart = sweep_line_chart(table, dims[0], kpi, lang, source=source, subtitle=subtitle,
                                 by=dims[1] if len(dims) == 2 else None)
    stem = folder / f"sensibilita_{kind}_{kpi}"
    save_figure(chart.figure, stem)
    chart.data.to_csv(stem.with_suffix(".csv"), index=False, float_format="%.2f")
    return stem.with_suffix(".png")
