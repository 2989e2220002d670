"""Charts of one run, for a deliberation of the Giunta and the fund manager's reports.

Each chart function takes a :class:`~simulator.results.Results` (a run read
back with ``load_results`` or returned by ``simulator.run``) and returns a
:class:`Chart`: the matplotlib figure and the DataFrame of exactly the data
drawn on it (what ``charts/<name>.csv`` and the workbook's chart sheets hold,
so a reader can redraw the chart).  Amounts in those tables are in euros.
Each chart also has a function of its data alone (``fund_cash_data``, ...,
``ChartSpec.data``): the same table, without drawing the figure.

Conventions shared by the charts:

* *percentiles* are taken over replications, month by month, with numpy's
  linear interpolation (as in ``summary.csv``);
* the **median replication** is the replication closest to the median of
  the run both in the fund value at the horizon (``fund_value_end_eur``)
  and in the amount paid to final recipients (loans + grants): see
  :func:`median_replication`.  It is an actual replication, so its flows
  add up exactly, which percentiles of each flow separately would not.

Italian by default; ``lang="en"`` for English.  The house style (fonts,
palette, frame with title, scenario and source line) is in
:mod:`simulator.charts_style`; comparison and sweep charts are in
:mod:`simulator.charts_compare`.
"""

from __future__ import annotations

import datetime as dt
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from .charts_data import (
    RunFacts,
    median_replication,
    percentiles,
    percentiles_of,
    quantile_over_replications,
    sources_uses,
)
from .charts_style import (
    GREEN,
    GREY,
    INK,
    LINE_COLORS,
    OCHRE,
    RED,
    TOTAL_COLOR,
    Frame,
    Region,
    check_lang,
    count_axis,
    date_axis,
    euro_axis,
    format_day,
    format_euros_short,
    frame,
    house_style,
    new_region,
)
from .labels import kpi_label, line_label, series_label
from .money import format_number, format_pct

__all__ = ["CHARTS", "Chart", "ChartSpec", "RunFacts", "all_charts", "disbursement_chart",
           "disbursement_data", "fees_chart", "fees_data", "fund_cash_chart", "fund_cash_data",
           "kpi_distribution_chart", "kpi_distribution_data", "median_replication",
           "percentiles", "projects_chart", "projects_data", "sources_uses", "waterfall_chart",
           "waterfall_data"]


class Chart(NamedTuple):
    """A chart: the figure and the data drawn on it (amounts in euros)."""

    figure: Figure
    data: pd.DataFrame


def _t(lang: str, it: str, en: str) -> str:
    return it if lang == "it" else en


def _start(region: Region | None, height: float, title: str, subtitle: str,
           source: str) -> Frame:
    """Frame a chart in ``region``, or in a new figure ``height`` inches tall."""
    return frame(region if region is not None else new_region(height), title, subtitle, source)


def _dates(values: pd.Series | list) -> np.ndarray:
    return np.array(pd.to_datetime(pd.Series(values)).to_numpy(), dtype="datetime64[D]")


def _deadline_lines(ax: Axes, facts: RunFacts, lang: str) -> list[tuple[Line2D, str]]:
    """Mark the eligibility deadline and the revolving cut-off; return legend entries.

    Not a date at the horizon's end (a desk open to the last month): its line
    would lie on the plot's border, unseen, with an entry in the legend.
    """
    entries = []
    lo, hi = facts.start, facts.end
    if lo <= facts.eligibility_end < hi:
        h = ax.axvline(np.datetime64(facts.eligibility_end), color=INK, lw=0.9, ls="--")
        entries.append((h, _t(lang, "Termine di ammissibilità", "Eligibility deadline")
                        + f" ({format_day(facts.eligibility_end)})"))
    if facts.revolving_until is not None and lo <= facts.revolving_until < hi:
        h = ax.axvline(np.datetime64(facts.revolving_until), color=GREY, lw=0.9, ls=":")
        entries.append((h, _t(lang, "Fine rotazione", "End of revolving")
                        + f" ({format_day(facts.revolving_until)})"))
    return entries


# --------------------------------------------------------------------------- 1. fund cash fan


def fund_cash_data(results, lang: str = "it") -> pd.DataFrame:
    """The data of :func:`fund_cash_chart`, without drawing it."""
    parts = []
    for line in RunFacts.of(results).panels:
        p = percentiles(results, "cash", line)
        p.insert(0, "line", line)
        parts.append(p)
    return pd.concat(parts, ignore_index=True)


def fund_cash_chart(results, lang: str = "it", region: Region | None = None) -> Chart:
    """Fund cash by line over time: median, P25-P75 and P5-P95 over replications.

    One panel per line (and the total), the eligibility deadline and the
    revolving cut-off marked.  Data: ``line, date, p5, p25, p50, p75, p95``
    (euros).
    """
    check_lang(lang)
    facts = RunFacts.of(results)
    panels = facts.panels
    data = fund_cash_data(results, lang)
    height = 1.25 + 1.75 * len(panels)
    with house_style():
        title = _t(lang, "Fondo disponibile per linea", "Fund cash by line")
        fr = _start(region, height, title, facts.title, facts.source(lang))
        axes: list[Axes] = []
        for i in range(len(panels)):
            axes.append(fr.body.add_subplot(len(panels), 1, i + 1,
                                        sharex=axes[0] if axes else None))
        entries: list[tuple] = []
        for i, (ax, line) in enumerate(zip(axes, panels, strict=True)):
            d = data[data["line"] == line]
            x = _dates(d["date"])
            color = TOTAL_COLOR if line == "total" else LINE_COLORS[i % len(LINE_COLORS)]
            ax.fill_between(x, d["p5"], d["p95"], color=color, alpha=0.15, lw=0)
            ax.fill_between(x, d["p25"], d["p75"], color=color, alpha=0.32, lw=0)
            ax.plot(x, d["p50"], color=color)
            marks = _deadline_lines(ax, facts, lang)
            ax.set_title(_panel_title(results, line, lang))
            ax.set_ylim(bottom=0)
            euro_axis(ax, lang)
            date_axis(ax, facts.start, facts.end, lang)
            if i < len(panels) - 1:
                ax.tick_params(labelbottom=False)
            if i == 0:
                grey = "#777777"
                entries = [(Line2D([], [], color=grey), _t(lang, "Mediana", "Median")),
                           (Patch(color=grey, alpha=0.45), "P25-P75"),
                           (Patch(color=grey, alpha=0.2), "P5-P95"), *marks]
        fr.legend([e[0] for e in entries], [e[1] for e in entries], ncols=3)
    return Chart(fr.root, data)


def _panel_title(results, line: str, lang: str) -> str:
    if line == "total":
        return _t(lang, "Totale fondo", "Whole fund")
    title = results.scenario.lines[line].title
    return title or line_label(line, lang)


# --------------------------------------------------------------------------- 2. disbursements


def disbursement_data(results, lang: str = "it") -> pd.DataFrame:
    """The data of :func:`disbursement_chart`, without drawing it."""
    # The fund's total line of each series, copied out of its cube so that one cube
    # at a time is held (a large run's cube is hundreds of megabytes).
    loans_paid, grants_paid = (np.array(results.layout.of_line(results.series(name), "total"))
                               for name in ("loans_disbursed", "grants_paid"))
    loans = percentiles_of(results, loans_paid, (50,))
    grants = percentiles_of(results, grants_paid, (50,))
    total = percentiles_of(results, loans_paid + grants_paid, (5, 50, 95))
    return pd.DataFrame({"date": loans["date"], "loans_p50": loans["p50"],
                         "grants_p50": grants["p50"], "total_p5": total["p5"],
                         "total_p50": total["p50"], "total_p95": total["p95"],
                         "endowment": RunFacts.of(results).endowment_eur})


def disbursement_chart(results, lang: str = "it", region: Region | None = None) -> Chart:
    """Cumulative loans and grants paid to final recipients against the endowment.

    Medians of loans and of grants, median and P5-P95 of their sum, the
    endowment as a horizontal line; the absorption at the eligibility
    deadline (KPI ``absorption_at_eligibility_end``) is annotated.  Data:
    ``date, loans_p50, grants_p50, total_p5, total_p50, total_p95, endowment``.
    """
    check_lang(lang)
    facts = RunFacts.of(results)
    data = disbursement_data(results, lang)
    absorption = results.kpis["absorption_at_eligibility_end"].dropna().to_numpy(float)
    a5, a50, a95 = (np.percentile(absorption, [5, 50, 95]) if len(absorption)
                    else (np.nan,) * 3)
    height = 4.6
    with house_style():
        title = _t(lang, "Erogazioni cumulate ai destinatari e dotazione",
                   "Cumulative payments to final recipients and endowment")
        fr = _start(region, height, title, facts.title, facts.source(lang))
        ax = fr.body.add_subplot(1, 1, 1)
        x = _dates(data["date"])
        band = ax.fill_between(x, data["total_p5"], data["total_p95"], color=LINE_COLORS[0],
                               alpha=0.15, lw=0)
        (tot,) = ax.plot(x, data["total_p50"], color=INK, lw=1.9)
        (ln,) = ax.plot(x, data["loans_p50"], color=LINE_COLORS[0], lw=1.4, ls=(0, (5, 2)))
        (gr,) = ax.plot(x, data["grants_p50"], color=OCHRE, lw=1.4)
        endow = ax.axhline(facts.endowment_eur, color=RED, lw=1.0, ls="-.")
        marks = _deadline_lines(ax, facts, lang)
        ax.set_ylim(bottom=0, top=max(facts.endowment_eur, float(data["total_p95"].max()))
                    * 1.08)
        euro_axis(ax, lang)
        date_axis(ax, facts.start, facts.end, lang)
        ax.set_ylabel(_t(lang, "Erogato cumulato", "Cumulative payments"))
        if facts.start <= facts.eligibility_end <= facts.end and np.isfinite(a50):
            deadline = np.datetime64(facts.eligibility_end)
            at = data[pd.to_datetime(data["date"]) <= pd.Timestamp(facts.eligibility_end)]
            y = float(at["total_p50"].iloc[-1]) if len(at) else 0.0
            text = _t(lang,
                      f"Assorbimento al {format_day(facts.eligibility_end)}:\n"
                      f"{format_pct(a50, lang)} della dotazione (mediana)\n"
                      f"P5-P95: {format_pct(a5, lang)} - {format_pct(a95, lang)}",
                      f"Absorption at {format_day(facts.eligibility_end)}:\n"
                      f"{format_pct(a50, lang)} of the endowment (median)\n"
                      f"P5-P95: {format_pct(a5, lang)} - {format_pct(a95, lang)}")
            ax.plot([deadline], [y], "o", color=INK, ms=4.5, zorder=5)
            upper = y > 0.3 * ax.get_ylim()[1]      # room below the point: box there
            ax.annotate(text, xy=(deadline, y), xycoords="data",
                        xytext=(14, -16 if upper else 16), textcoords="offset points",
                        ha="left", va="top" if upper else "bottom", fontsize=8,
                        bbox={"boxstyle": "round,pad=0.4", "fc": "white", "ec": "#bbbbbb",
                              "lw": 0.6},
                        arrowprops={"arrowstyle": "-", "color": "#888888", "lw": 0.7,
                                    "shrinkA": 0, "shrinkB": 3})
        handles = [tot, band, ln, gr, endow, *(m[0] for m in marks)]
        labels = [_t(lang, "Finanziamenti + contributi (mediana)",
                     "Loans + grants (median)"),
                  _t(lang, "Finanziamenti + contributi, P5-P95", "Loans + grants, P5-P95"),
                  _t(lang, "Finanziamenti erogati (mediana)", "Loans disbursed (median)"),
                  _t(lang, "Contributi erogati (mediana)", "Grants paid (median)"),
                  _t(lang, "Dotazione del fondo", "Fund endowment")
                  + f" ({format_euros_short(facts.endowment_eur, lang)})",
                  *(m[1] for m in marks)]
        fr.legend(handles, labels, ncols=2)
    return Chart(fr.root, data)


# --------------------------------------------------------------------------- 3. waterfall


def _waterfall_label(item: str, lang: str) -> str:
    words = {
        "endowment": ("Dotazione iniziale", "Initial endowment"),
        "contribution_paid_in": ("Dotazione versata", "Endowment paid in"),
        "sources": ("Risorse complessive", "Total resources"),
        "fees_paid": ("Commissioni di gestione", "Management fees"),
        "legacy": ("Accantonato a legacy", "Set aside as legacy"),
        "cash": ("Liquidità a fine periodo", "Cash at the horizon"),
        "loans_outstanding": ("Crediti in essere", "Loans outstanding"),
        "fund_value": ("Valore del fondo", "Fund value"),
        "losses": ("Perdite nette su crediti", "Net loan losses"),
    }
    if item in words:
        return words[item][0 if lang == "it" else 1]
    return series_label(item, lang)


# Value labels sit on a white patch, so grid lines do not run through them.
_LABEL_BOX = {"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none"}


def waterfall_data(results, lang: str = "it", replication: int | None = None
                   ) -> pd.DataFrame:
    """The data of :func:`waterfall_chart`, without drawing it."""
    rep = median_replication(results.kpis) if replication is None else replication
    data = sources_uses(results, rep)
    data.insert(2, "label", [_waterfall_label(i, lang) for i in data["item"]])
    return data


def waterfall_chart(results, lang: str = "it", region: Region | None = None,
                    replication: int | None = None) -> Chart:
    """Sources and uses of the fund over the horizon, median replication (see module doc).

    A horizontal waterfall read top to bottom like a statement: balances in
    blue, outflows in red, inflows in green; below it, for the record, the
    net loan losses (hatched, not part of the sum).  Data:
    :func:`sources_uses` with a ``label`` column.
    """
    check_lang(lang)
    facts = RunFacts.of(results)
    rep = median_replication(results.kpis) if replication is None else replication
    data = waterfall_data(results, lang, rep)
    bars = data[data["kind"] != "memo"].reset_index(drop=True)
    memo = data.set_index("item")["amount"]
    losses, written_off = -float(memo["losses"]), -float(memo["principal_written_off"])
    height = 1.6 + 0.3 * (len(bars) + 1.5)
    with house_style():
        which = _t(lang, f"replicazione mediana (n. {rep})", f"median replication (no. {rep})") \
            if replication is None else _t(lang, f"replicazione n. {rep}",
                                           f"replication no. {rep}")
        title = _t(lang, "Fonti e impieghi del fondo fino all'orizzonte",
                   "Sources and uses of the fund up to the horizon")
        fr = _start(region, height, title, f"{facts.title} - {which}", facts.source(lang))
        ax = fr.body.add_subplot(1, 1, 1)
        ax.grid(axis="y", visible=False)
        ax.grid(axis="x", visible=True)
        y = np.arange(len(bars), dtype=float)
        colors = [LINE_COLORS[0] if kind == "total" else GREEN if amount >= 0 else RED
                  for kind, amount in zip(bars["kind"], bars["amount"], strict=True)]
        lefts = np.where(bars["kind"] == "total", 0.0, np.minimum(bars["start"], bars["end"]))
        widths = np.where(bars["kind"] == "total", bars["amount"], bars["amount"].abs())
        ax.barh(y, widths, left=lefts, color=colors, height=0.62, zorder=2)
        for i in range(len(bars) - 1):   # connectors between the bars
            level = bars["end"].iloc[i]
            ax.plot([level, level], [i + 0.31, i + 0.69], color="#9a9a9a", lw=0.6, zorder=1)
        for i, row in bars.iterrows():
            amount = row["amount"]
            text = format_euros_short(amount, lang)
            if row["kind"] == "flow" and amount > 0:
                text = "+" + text
            x = amount if row["kind"] == "total" else max(row["start"], row["end"])
            ax.annotate(text, (x, i), xytext=(3, 0), textcoords="offset points",
                        ha="left", va="center", fontsize=7.5, color=INK, bbox=_LABEL_BOX)
        # For the record: the losses, below the statement and not part of it.
        memo_y = len(bars) + 0.5
        ax.barh([memo_y], [losses], left=0, height=0.62, color="white", edgecolor=GREY,
                hatch="////", lw=0.6, zorder=2)
        ax.annotate(_t(lang, f"{format_euros_short(losses, lang)} (capitale svalutato "
                       f"{format_euros_short(written_off, lang)} meno recuperi)",
                       f"{format_euros_short(losses, lang)} (principal written off "
                       f"{format_euros_short(written_off, lang)} less recoveries)"),
                    (max(losses, 0.0), memo_y), xytext=(3, 0), textcoords="offset points",
                    ha="left", va="center", fontsize=7.5, color=INK, bbox=_LABEL_BOX)
        labels = [*bars["label"], _t(lang, "Per memoria: perdite nette su crediti",
                                     "Memo: net loan losses")]
        ax.set_yticks([*y, memo_y], [textwrap.fill(label, 24) for label in labels])
        for tick, kind in zip(ax.get_yticklabels(), [*bars["kind"], "memo"], strict=True):
            if kind == "total":
                tick.set_fontweight("bold")
            elif kind == "memo":
                tick.set_color(GREY)
        ax.tick_params(axis="y", length=0)
        ax.set_ylim(memo_y + 0.6, -0.6)
        right = float(np.nanmax(np.maximum(bars["start"], bars["end"])))
        left = min(0.0, float(np.nanmin(np.minimum(bars["start"], bars["end"]))))
        ax.set_xlim(left * 1.05, right * 1.16)
        euro_axis(ax, lang, axis="x")
        ax.spines["left"].set_visible(True)
        handles = [Patch(color=LINE_COLORS[0]), Patch(color=RED), Patch(color=GREEN)]
        legend_labels = [_t(lang, "Saldo", "Balance"), _t(lang, "Uscite", "Outflows"),
                         _t(lang, "Entrate e crediti ancora da incassare",
                            "Inflows and loans still owed")]
        fr.legend(handles, legend_labels, ncols=3)
    return Chart(fr.root, data)


# --------------------------------------------------------------------------- 4. projects


PROJECT_SERIES = ("committed", "rejected_no_funds", "waiting")


def projects_data(results, lang: str = "it") -> pd.DataFrame:
    """The data of :func:`projects_chart`, without drawing it."""
    return _projects(results, RunFacts.of(results))[0]


def _projects(results, facts: RunFacts) -> tuple[pd.DataFrame, dt.date]:
    """:func:`projects_chart`'s data, and the end of its time axis."""
    layout = results.layout
    lines = facts.lines
    dates = pd.to_datetime(layout.dates).date
    columns: dict[str, dict[str, np.ndarray]] = {line: {} for line in lines}
    changed = np.zeros(max(len(dates) - 1, 0), dtype=bool)   # a month differs from the one before
    # One series read at a time (a large run's cube is hundreds of megabytes), reduced
    # to what is drawn before the next is read.
    for name in PROJECT_SERIES:
        cube = results.series(name)
        for line in lines:
            values = layout.of_line(cube, line)
            columns[line][f"{name}_mean"] = values.mean(axis=0)
            if name == "committed":
                columns[line]["committed_p5"] = quantile_over_replications(values, 0.05)
                columns[line]["committed_p95"] = quantile_over_replications(values, 0.95)
            changed |= (np.diff(values, axis=1) != 0).any(axis=0)
        del cube
    data = pd.concat([pd.DataFrame({"line": line, "date": dates, **{
        name: columns[line][name] for name in ("committed_mean", "committed_p5", "committed_p95",
                                               "rejected_no_funds_mean", "waiting_mean")}})
        for line in sorted(lines)], ignore_index=True)
    # Last month in which any replication changes any of the counts.
    last = pd.Timestamp(dates[1:][changed].max()) if changed.any() else pd.Timestamp(facts.start)
    stop = min((last + pd.DateOffset(months=6)).date(), facts.end)
    stop = max(stop, min(facts.end, (pd.Timestamp(facts.start)
                                     + pd.DateOffset(months=12)).date()))
    data = data[data["date"] <= stop].reset_index(drop=True)
    return data, stop


def projects_chart(results, lang: str = "it", region: Region | None = None) -> Chart:
    """Projects financed, rejected for lack of funds and waiting, per line, over time.

    Counts are small integers, so the lines show the **mean** over
    replications (the expected number), with the P5-P95 band of the projects
    financed.  The time axis stops 6 months after the last change in any
    replication.  Data: ``line, date, committed_mean, committed_p5,
    committed_p95, rejected_no_funds_mean, waiting_mean``.
    """
    check_lang(lang)
    facts = RunFacts.of(results)
    lines = facts.lines
    data, stop = _projects(results, facts)
    ncols = min(len(lines), 2)
    nrows = -(-len(lines) // ncols)
    height = 1.4 + 2.5 * nrows
    with house_style():
        title = _t(lang, "Progetti finanziati, respinti e in attesa per linea",
                   "Projects financed, rejected and waiting, by line")
        fr = _start(region, height, title, facts.title, facts.source(lang))
        handles: list = []
        for i, line in enumerate(lines):
            ax = fr.body.add_subplot(nrows, ncols, i + 1)
            d = data[data["line"] == line]
            x = _dates(d["date"])
            color = LINE_COLORS[0]
            band = ax.fill_between(x, d["committed_p5"], d["committed_p95"], step="post",
                                   color=color, alpha=0.15, lw=0)
            (fin,) = ax.plot(x, d["committed_mean"], color=color, drawstyle="steps-post")
            (rej,) = ax.plot(x, d["rejected_no_funds_mean"], color=RED, lw=1.4,
                             drawstyle="steps-post")
            (wait,) = ax.plot(x, d["waiting_mean"], color=OCHRE, lw=1.4, ls=(0, (4, 1.5)),
                              drawstyle="steps-post")
            ax.set_title(line_label(line, lang))
            ax.set_ylabel(_t(lang, "Numero di progetti", "Number of projects"))
            peak = d[["committed_p95", "committed_mean", "rejected_no_funds_mean",
                      "waiting_mean"]].to_numpy(float).max() if len(d) else 0.0
            ax.set_ylim(bottom=0, top=max(1.0, peak) * 1.08)
            count_axis(ax, lang)
            date_axis(ax, facts.start, stop, lang, max_ticks=4 if ncols > 1 else 8)
            marks = _deadline_lines(ax, facts, lang) if facts.eligibility_end <= stop else []
            handles = [(fin, _t(lang, "Finanziati (media, cumulati)",
                                "Financed (mean, cumulative)")),
                       (band, _t(lang, "Finanziati, P5-P95", "Financed, P5-P95")),
                       (rej, _t(lang, "Respinti per mancanza di fondi (media, cumulati)",
                                "Rejected for lack of funds (mean, cumulative)")),
                       (wait, _t(lang, "In lista d'attesa (media)", "Waiting list (mean)")),
                       *marks]
        fr.legend([h[0] for h in handles], [h[1] for h in handles], ncols=2)
    return Chart(fr.root, data)


# --------------------------------------------------------------------------- 4b. fees by year


def fees_data(results, lang: str = "it") -> pd.DataFrame:
    """The data of :func:`fees_chart`, without drawing it."""
    layout = results.layout
    years = pd.to_datetime(layout.dates).year.to_numpy()
    year_end = np.flatnonzero(np.append(years[1:] != years[:-1], True))

    def per_year(column: str) -> np.ndarray:
        """Replications x years: cumulative at each year end, then what each year charged."""
        cumulative = layout.of_line(results.series(column), "total")[:, year_end]
        return np.diff(cumulative, axis=1, prepend=0) / 100.0

    fees, grant_part = per_year("fees_charged"), per_year("fees_grant_charged")
    return pd.DataFrame({
        "year": years[year_end],
        "loan_part_p50": np.median(fees - grant_part, axis=0),
        "grant_part_p50": np.median(grant_part, axis=0),
        "total_p5": quantile_over_replications(fees, 0.05),
        "total_p50": np.median(fees, axis=0),
        "total_p95": quantile_over_replications(fees, 0.95),
    })


def fees_chart(results, lang: str = "it", region: Region | None = None) -> Chart:
    """Management fees charged each calendar year (median over replications), by part.

    Data: ``year, loan_part_p50, grant_part_p50, total_p5, total_p50, total_p95`` in
    euros, from the ``total`` line's cumulative ``fees_charged`` and
    ``fees_grant_charged``.
    """
    check_lang(lang)
    facts = RunFacts.of(results)
    data = fees_data(results, lang)
    with house_style():
        title = _t(lang, "Commissioni di gestione per anno", "Management fees by year")
        fr = _start(region, 4.2, title, facts.title, facts.source(lang))
        ax = fr.body.add_subplot(1, 1, 1)
        years = data["year"].to_numpy()
        loan = ax.bar(years, data["loan_part_p50"], color=LINE_COLORS[0], width=0.7)
        grant = ax.bar(years, data["grant_part_p50"], bottom=data["loan_part_p50"],
                       color=OCHRE, width=0.7)
        # Ranges only for the years where the replications differ (caps on a zero-height
        # range are specks on the axis).
        varies = (data["total_p95"] > data["total_p5"]).to_numpy()
        shown = data[varies]
        spread = ax.errorbar(years[varies], shown["total_p50"],
                             yerr=[shown["total_p50"] - shown["total_p5"],
                                   shown["total_p95"] - shown["total_p50"]],
                             fmt="none", ecolor=INK, elinewidth=1, capsize=2)
        ax.set_ylabel(_t(lang, "Commissioni nell'anno", "Fees in the year"))
        ax.set_ylim(bottom=0)
        euro_axis(ax, lang)
        step = max(1, -(-len(years) // 9))
        ax.set_xticks(years[::step], [str(y) for y in years[::step]])
        fr.legend([loan, grant, spread],
                  [_t(lang, "Parte finanziamenti (mediana)", "Loan part (median)"),
                   _t(lang, "Parte contributi (mediana)", "Grant part (median)"),
                   _t(lang, "Totale, P5-P95", "Total, P5-P95")], ncols=3)
    return Chart(fr.root, data)


# --------------------------------------------------------------------------- 5. KPI distributions


def kpi_distribution_data(results, lang: str = "it") -> pd.DataFrame:
    """The data of :func:`kpi_distribution_chart`, without drawing it."""
    kpis = results.kpis
    financed_cols = [c for c in kpis.columns if c.startswith("projects_financed_")]
    return pd.DataFrame({
        "replication": kpis["replication"].astype(int),
        "fund_value_end_eur": kpis["fund_value_end_eur"].astype(float),
        "net_public_cost_eur": kpis["net_public_cost_eur"].astype(float),
        "projects_financed": kpis[financed_cols].sum(axis=1).astype(int),
    })


def count_bins(values: np.ndarray, most: int = 25) -> np.ndarray:
    """Histogram bin edges for whole numbers: each bin holds ``width`` consecutive values
    (1, or more to keep at most about ``most`` bins), centred between integers, the
    first from the smallest value, the last up to and including the largest."""
    lo, hi = int(values.min()), int(values.max())
    width = max(1, (hi - lo + 1) // most + 1)
    count = -(-(hi - lo + 1) // width)
    return lo - 0.5 + width * np.arange(count + 1)


def kpi_distribution_chart(results, lang: str = "it", region: Region | None = None) -> Chart:
    """Histograms over replications of three KPIs, median and P5/P95 marked.

    Fund value at the horizon, net public cost (euros) and projects financed
    (all lines).  Data: one row per replication with those three values.
    """
    check_lang(lang)
    facts = RunFacts.of(results)
    data = kpi_distribution_data(results, lang)
    height = 3.9
    titles = {
        "fund_value_end_eur": kpi_label("fund_value_end_eur", "EUR", lang),
        "net_public_cost_eur": kpi_label("net_public_cost_eur", "EUR", lang),
        "projects_financed": _t(lang, "Progetti finanziati (tutte le linee)",
                                "Projects financed (all lines)"),
    }
    with house_style():
        title = _t(lang, "Distribuzione degli indicatori sulle replicazioni",
                   "Distribution of the indicators over replications")
        fr = _start(region, height, title, facts.title, facts.source(lang))
        axes = [fr.body.add_subplot(1, 3, i + 1) for i in range(3)]
        handles: list = []
        for ax, (col, title) in zip(axes, titles.items(), strict=True):
            values = data[col].to_numpy(float)
            if col == "projects_financed":
                bins = count_bins(values)
            else:
                bins = min(30, max(8, int(np.sqrt(len(values))) + 2))
                if np.ptp(values) == 0:
                    bins = 1
            ax.hist(values, bins=bins, color=LINE_COLORS[0], alpha=0.75, lw=0.4,
                    edgecolor="white")
            p5, p50, p95 = np.percentile(values, [5, 50, 95])
            med = ax.axvline(p50, color=INK, lw=1.4)
            tail = ax.axvline(p5, color=GREY, lw=1.0, ls="--")
            ax.axvline(p95, color=GREY, lw=1.0, ls="--")
            ax.set_title("\n".join(textwrap.wrap(title, 26)), fontsize=8.5)
            if col == "projects_financed":
                count_axis(ax, lang, axis="x")
                fmt = lambda v: format_number(v, lang)  # noqa: E731
            else:
                euro_axis(ax, lang, axis="x")
                # Three panels side by side: wide labels (a large fund's "1.000,0 M€") need room.
                ax.xaxis.get_major_locator().set_params(nbins=3)
                fmt = lambda v: format_euros_short(v, lang)  # noqa: E731
            ax.set_xlabel(_t(lang, f"mediana {fmt(p50)}\nP5-P95: {fmt(p5)} - {fmt(p95)}",
                             f"median {fmt(p50)}\nP5-P95: {fmt(p5)} - {fmt(p95)}"),
                          fontsize=8)
            count_axis(ax, lang)
            handles = [(med, _t(lang, "Mediana", "Median")),
                       (tail, _t(lang, "P5 e P95", "P5 and P95"))]
        axes[0].set_ylabel(_t(lang, "Replicazioni", "Replications"))
        fr.legend([h[0] for h in handles], [h[1] for h in handles], ncols=2)
    return Chart(fr.root, data)


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class ChartSpec:
    """A chart of the report: file name, function, the function of its data alone (what
    the workbook's sheet holds, without drawing) and the caption under it."""

    slug: str
    draw: Callable[..., Chart]
    data: Callable[..., pd.DataFrame]
    caption_it: str
    caption_en: str
    height_in: float = 4.6

    def caption(self, lang: str) -> str:
        return self.caption_it if lang == "it" else self.caption_en


CHARTS: tuple[ChartSpec, ...] = (
    ChartSpec(
        "01_fondo_disponibile", fund_cash_chart, fund_cash_data,
        "Liquidità del fondo per linea, mese per mese: la linea è la mediana delle "
        "replicazioni, le bande contengono il 50 % e il 90 % dei casi simulati.",
        "Fund cash by line, month by month: the line is the median of the replications, the "
        "bands hold 50 % and 90 % of the simulated cases."),
    ChartSpec(
        "02_erogazioni_cumulate", disbursement_chart, disbursement_data,
        "Finanziamenti e contributi pagati ai destinatari finali dall'avvio, rispetto alla "
        "dotazione; il riquadro riporta la quota erogata entro il termine di ammissibilità.",
        "Loans and grants paid to final recipients since the start, against the endowment; "
        "the box gives the share paid by the eligibility deadline."),
    ChartSpec(
        "03_fonti_impieghi", waterfall_chart, waterfall_data,
        "Fonti (dotazione e rientri) e impieghi (erogazioni e commissioni) fino "
        "all'orizzonte nella replicazione più vicina alla mediana; in fondo, le perdite su "
        "crediti.",
        "Sources (endowment and reflows) and uses (payments and fees) up to the horizon in "
        "the replication closest to the median; at the bottom, the loan losses."),
    ChartSpec(
        "04_progetti", projects_chart, projects_data,
        "Numero atteso di progetti finanziati, di domande respinte per mancanza di fondi e "
        "di domande in lista d'attesa, per linea.",
        "Expected number of projects financed, of applications rejected for lack of funds "
        "and of applications on the waiting list, by line."),
    ChartSpec(
        "05_commissioni", fees_chart, fees_data,
        "Commissioni di gestione maturate in ciascun anno (mediana delle replicazioni), "
        "distinte tra parte finanziamenti e parte contributi, entro i tetti del "
        "Reg. delegato 480/2014.",
        "Management fees charged each year (median of the replications), loan part and "
        "grant part, within the caps of Delegated Reg. 480/2014."),
    ChartSpec(
        "06_distribuzione_indicatori", kpi_distribution_chart, kpi_distribution_data,
        "Dispersione dei risultati sulle replicazioni: valore del fondo all'orizzonte, "
        "costo pubblico netto e progetti finanziati.",
        "Spread of the results over the replications: fund value at the horizon, net public "
        "cost and projects financed."),
)


def all_charts(results, lang: str = "it") -> dict[str, Chart]:
    """Every chart of a run, by file name (``01_fondo_disponibile``, ...)."""
    return {spec.slug: spec.draw(results, lang=lang) for spec in CHARTS}
