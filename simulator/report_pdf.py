"""The PDF brief of a run (``report.pdf``), A4 pages drawn with matplotlib's PdfPages.

Pages: a cover (scenario title, date, tool version, scenario hash), a
one-page summary (the KPIs a deliberation cites, with P5-P95 ranges, and
the key assumptions of the scenario), one page per chart with its caption
(the chart is the same vector drawing as ``charts/*.svg``), and an annex
with the resolved scenario (``scenario.toml``), paginated.

Text is laid out in inches from the top-left corner of the page by
:class:`Page`; fonts are embedded as TrueType so the text can be searched
and copied.
"""

from __future__ import annotations

import datetime as dt
import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from babel.dates import format_date
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from .charts import CHARTS, RunFacts
from .charts_style import BLUE, GREY, INK, RED, format_day, house_style
from .labels import kpi_label, kpi_value, line_label, rough_percentiles_note
from .metrics import FEW_REPLICATIONS
from .money import format_eur, format_number, format_pct

A4 = (8.27, 11.69)
MARGIN = 0.75           # inches, left and right
TOP = 0.7
BOTTOM = 0.75
BODY_PT = 9.5
MONO_PT = 7.2
MONO_LINE_IN = 0.125    # line height of the annex text
MONO_CHARS = 96         # characters per annex line before wrapping


def _t(lang: str, it: str, en: str) -> str:
    return it if lang == "it" else en


@dataclass
class Page:
    """An A4 page; ``y`` is the writing position in inches from the top."""

    figure: Figure
    y: float = TOP

    @classmethod
    def new(cls, layout: str | None = None) -> Page:
        with house_style():
            fig = Figure(figsize=A4, layout=layout)
        return cls(fig)

    @property
    def width(self) -> float:
        return A4[0] - 2 * MARGIN

    def text(self, s: str, size: float = BODY_PT, x: float = MARGIN, weight: str = "normal",
             color: str = INK, ha: str = "left", family: str | None = None,
             advance: float | None = None, y: float | None = None,
             linespacing: float | None = None) -> None:
        """Write one line (or block) at the current position and move down."""
        y = self.y if y is None else y
        kwargs: dict[str, Any] = {"fontsize": size, "fontweight": weight, "color": color,
                                  "ha": ha, "va": "top"}
        if linespacing:
            kwargs["linespacing"] = linespacing
        if family:
            kwargs["family"] = family
        self.figure.text(x / A4[0], 1 - y / A4[1], s, **kwargs)
        lines = s.count("\n") + 1
        self.y = y + (advance if advance is not None else lines * size * 1.45 / 72)

    def paragraph(self, s: str, size: float = BODY_PT, width_chars: int = 95,
                  **kwargs: Any) -> None:
        self.text(textwrap.fill(s, width_chars), size=size, **kwargs)

    def rule(self, color: str = "#bbbbbb", lw: float = 0.6, x0: float = MARGIN,
             x1: float | None = None) -> None:
        x1 = A4[0] - MARGIN if x1 is None else x1
        self.figure.add_artist(_hline(self.figure, x0, x1, self.y, color, lw))

    def space(self, inches: float) -> None:
        self.y += inches

    def header(self, left: str, right: str) -> None:
        keep = self.y
        self.text(left, size=7, color=GREY, y=0.38, advance=0)
        self.text(right, size=7, color=GREY, x=A4[0] - MARGIN, ha="right", y=0.38, advance=0)
        self.y = keep

    def footer(self, number: int) -> None:
        keep = self.y
        self.text(str(number), size=7.5, color=GREY, x=A4[0] / 2, ha="center",
                  y=A4[1] - 0.5, advance=0)
        self.y = keep


def _hline(fig: Figure, x0: float, x1: float, y: float, color: str, lw: float):
    from matplotlib.lines import Line2D

    return Line2D([x0 / A4[0], x1 / A4[0]], [1 - y / A4[1]] * 2, transform=fig.transFigure,
                  color=color, lw=lw)


def table(page: Page, columns: Sequence[tuple[str, float, str]], rows: Sequence[Sequence[str]],
          size: float = 8.5, row_in: float = 0.205, header_color: str = BLUE,
          bold_first: bool = False) -> None:
    """A plain table: ``columns`` are (header, x in inches, alignment); rules between rows."""
    for header, x, ha in columns:
        page.text(header, size=size, x=x, ha=ha, weight="bold", color=header_color,
                  advance=0)
    page.y += row_in
    page.rule(color=header_color, lw=0.8)
    page.y += 0.05
    for row in rows:
        height = max(cell.count("\n") + 1 for cell in row) * size * 1.3 / 72
        for j, (cell, (_h, x, ha)) in enumerate(zip(row, columns, strict=True)):
            page.text(cell, size=size, x=x, ha=ha, advance=0,
                      weight="bold" if bold_first and j == 0 else "normal")
        page.y += max(row_in, height + 0.07)
        page.rule(color="#dddddd", lw=0.5)
        page.y += 0.05


# --------------------------------------------------------------------------- content


def _long_date(value: dt.date, lang: str) -> str:
    return format_date(value, "long", locale="it_IT" if lang == "it" else "en_GB")


def cover(results, facts: RunFacts, lang: str, today: dt.date) -> Figure:
    page = Page.new()
    manifest = results.manifest or {}
    page.y = 2.2
    page.text("fesr-sim", size=11, color=GREY)
    page.space(0.1)
    page.paragraph(facts.title, size=22, weight="bold", color=BLUE, width_chars=34)
    page.space(0.1)
    page.paragraph(_t(lang, "Simulazione Monte Carlo dello strumento finanziario misto "
                      "(finanziamento agevolato + contributo)",
                      "Monte Carlo simulation of the mixed financial instrument "
                      "(soft loan + grant)"), size=12, color=INK, width_chars=70)
    description = results.scenario.scenario.description
    if description:
        page.space(0.25)
        page.paragraph(description, size=10, color=GREY, width_chars=80)
    page.space(0.5)
    page.rule()
    page.space(0.15)
    run_end = str(manifest.get("end_time", ""))[:10]
    try:
        run_date = _long_date(dt.date.fromisoformat(run_end), lang)
    except ValueError:
        run_date = run_end or "-"
    rows = [
        (_t(lang, "Data del rapporto", "Report date"), _long_date(today, lang)),
        (_t(lang, "Data della simulazione", "Run date"), run_date),
        (_t(lang, "Scenario", "Scenario"), facts.name),
        (_t(lang, "Impronta dello scenario (SHA-256)", "Scenario hash (SHA-256)"),
         facts.hash[:32] + "\n" + facts.hash[32:]),
        (_t(lang, "Versione dello strumento", "Tool version"), f"fesr-sim {facts.version}"),
        (_t(lang, "Replicazioni", "Replications"), format_number(facts.replications, lang)),
        (_t(lang, "Seme", "Seed"), str(manifest.get("seed", "-"))),
    ]
    for label, value in rows:
        page.text(label, size=9.5, color=GREY, advance=0)
        page.text(value, size=9.5, x=MARGIN + 2.7, family="DejaVu Sans Mono"
                  if "\n" in value else None)
        page.space(0.06)
    page.y = A4[1] - 1.6
    page.paragraph(_t(lang, "Risultati simulati: ogni valore è una stima con la sua "
                      "incertezza (intervallo tra il 5° e il 95° percentile delle "
                      "replicazioni). Le ipotesi sono riportate a pagina 2 e, per intero, "
                      "nell'allegato.",
                      "Simulated results: every value is an estimate with its uncertainty "
                      "(range between the 5th and 95th percentile of the replications). The "
                      "assumptions are on page 2 and, in full, in the annex."),
                   size=8.5, color=GREY, width_chars=100)
    return page.figure


def headline_kpis(results) -> list[str]:
    """The KPIs of the summary page, in the order a deliberation cites them."""
    names = [f"projects_financed_{line}" for line in results.scenario.lines]
    names += ["loans_disbursed_eur"]
    if float(results.kpis.get("grants_paid_eur", pd.Series([0.0])).abs().max()) > 0:
        names += ["grants_paid_eur"]
    names += ["absorption_at_eligibility_end", "leverage", "net_public_cost_eur",
              "fund_value_end_eur", "rejected_no_funds"]
    available = set(results.summary["kpi"])
    return [n for n in names if n in available]


def _value(value: float, unit: str, lang: str) -> str:
    """A KPI value for the summary table; counts as whole numbers (3, not 3,0 or 3,05)."""
    if unit == "count" and math.isfinite(value):
        return format_number(value, lang)     # whole projects: 3.05 (interpolated) -> 3
    return kpi_value(value, unit, lang)


def _kpi_name(name: str, unit: str, facts: RunFacts, lang: str) -> str:
    if name == "absorption_at_eligibility_end":
        return _t(lang, "Assorbimento al ", "Absorption at ") + format_day(facts.eligibility_end)
    return kpi_label(name, unit, lang)


_DIST_WORDS = {"lognormal": ("lognormale", "lognormal"), "uniform": ("uniforme", "uniform"),
               "triangular": ("triangolare", "triangular"), "normal": ("normale", "normal"),
               "median": ("mediana", "median"), "low": ("min", "min"), "high": ("max", "max"),
               "mode": ("moda", "mode"), "mean": ("media", "mean"), "sd": ("dev. st.", "sd")}


def _describe(value: Any, money: bool, lang: str) -> str:
    """A cost or duration as written in the scenario, for people."""

    def word(key: str) -> str:
        it, en = _DIST_WORDS.get(key, (key, key))
        return it if lang == "it" else en

    def number(key: str, v: Any) -> str:
        if isinstance(v, int | float) and money and key != "sigma":
            return format_eur(round(v * 100), lang, decimals=False)
        digits = 0 if float(v).is_integer() else 2
        return format_number(v, lang, digits)

    if isinstance(value, dict):
        parts = [f"{word(k)} {number(k, v)}" for k, v in value.items() if k != "dist"]
        return f"{word(str(value.get('dist', '')))} ({', '.join(parts)})"
    if isinstance(value, int | float):
        return number("value", value)
    return str(value)


def assumption_rows(scenario, lang: str, width: int = 34) -> list[list[str]]:
    """Key assumptions per line: one row per item, one column per line (``width`` chars)."""
    lines = list(scenario.lines.values())
    # A line that replays a pipeline file: its rows (the Poisson fields are not used).
    pipelines = [scenario.pipeline(line_id) if line.applications.mode == "pipeline" else None
                 for line_id, line in scenario.lines.items()]
    any_file = any(rows is not None for rows in pipelines)

    def row(label: str, values: list[str]) -> list[str]:
        return [label, *values]

    def pct(v: float) -> str:
        return format_pct(v, lang, digits=0 if round(v * 100, 6).is_integer() else 1)

    def eur(v: float) -> str:
        return format_eur(round(v * 100), lang, decimals=False)

    def months(v: int) -> str:
        return _t(lang, f"{v} mesi", f"{v} months")

    def applications(li, rows) -> str:
        if rows is not None:
            n = len(rows)
            return _t(lang, f"da file: {n} domand{'a' if n == 1 else 'e'}",
                      f"from file: {n} application{'' if n == 1 else 's'}")
        if li.applications.per_month is None:
            return _t(lang, "da file", "from file")
        per_month = format_number(li.applications.per_month, lang, 1)
        return per_month + _t(lang, " al mese", " a month") if any_file else per_month

    def cost(li, rows) -> str:
        if rows is not None:
            return _t(lang, "da file: mediana ", "from file: median ") \
                + eur(float(rows["eligible_cost"].median())) if len(rows) else "-"
        if li.applications.cost is None:
            return "-"
        return "\n".join(textwrap.wrap(_describe(_file_value(li.applications.cost), True,
                                                 lang), width))

    procedure = {("sportello", "reject"): ("sportello; a fondi esauriti: respinte",
                                           "desk; when dry: rejected"),
                 ("sportello", "waiting_list"): ("sportello; a fondi esauriti: lista d'attesa",
                                                 "desk; when dry: waiting list")}
    rows = [
        row(_t(lang, "Dotazione", "Allocation"), [eur(li.allocation) for li in lines]),
        row(_t(lang, "Costo ammissibile", "Eligible cost"),
            [f"{eur(li.min_cost)} - {eur(li.max_cost)}" for li in lines]),
        row(_t(lang, "Procedura", "Procedure"),
            ["\n".join(textwrap.wrap(procedure.get((li.procedure, li.when_dry), (
                li.procedure, li.procedure))[0 if lang == "it" else 1], width)) for li in lines]),
        row(_t(lang, "Domande al mese", "Applications per month") if not any_file
            else _t(lang, "Domande", "Applications"),
            [applications(li, rows) for li, rows in zip(lines, pipelines, strict=True)]),
        row(_t(lang, "Costo tipico dei progetti", "Typical project cost"),
            [cost(li, rows) for li, rows in zip(lines, pipelines, strict=True)]),
        row(_t(lang, "Quota ammessa", "Admission rate"),
            [pct(li.applications.admission_rate) for li in lines]),
        row(_t(lang, "Finanziamento del fondo", "Fund loan"),
            [pct(li.instrument.coverage * li.instrument.public_loan_share) + " "
             + _t(lang, "del costo", "of cost") for li in lines]),
        row(_t(lang, "Finanziamento bancario", "Bank loan"),
            [pct(li.instrument.coverage * (1 - li.instrument.public_loan_share)) + " "
             + _t(lang, "del costo", "of cost") for li in lines]),
        row(_t(lang, "Contributo a fondo perduto", "Grant"),
            [pct(li.instrument.grant_share) + " " + (
                _t(lang, "del costo", "of cost") if li.instrument.grant_base == "eligible_cost"
                else _t(lang, "del finanziamento", "of the loan")) for li in lines]),
        row(_t(lang, "Tasso fondo / banca", "Rate fund / bank"),
            [f"{pct(li.instrument.public_rate)} / {pct(li.instrument.bank_rate)}"
             for li in lines]),
        row(_t(lang, "Durata (preammortamento)", "Term (grace)"),
            [f"{months(li.instrument.term_months)} ({months(li.instrument.grace_months)})"
             for li in lines]),
        row(_t(lang, "Revoca / default / recupero", "Failure / default / recovery"),
            [f"{pct(li.risk.failure_rate)} / {pct(li.risk.default_rate)} / "
             f"{pct(li.risk.recovery_rate)}" for li in lines]),
    ]
    return rows


def _file_value(dist: Any) -> Any:
    from .distributions import to_file_value

    return to_file_value(dist)


def summary_page(results, facts: RunFacts, lang: str) -> Figure:
    page = Page.new()
    page.header(facts.title, "fesr-sim " + facts.version)
    page.text(_t(lang, "Sintesi", "Summary"), size=16, weight="bold", color=BLUE)
    page.paragraph(_t(lang, f"Valori sulle {format_number(facts.replications, lang)} "
                      "replicazioni: mediana e intervallo tra il 5° e il 95° percentile "
                      "(9 casi simulati su 10 cadono nell'intervallo).",
                      f"Values over the {format_number(facts.replications, lang)} "
                      "replications: median and range between the 5th and the 95th "
                      "percentile (9 simulated cases out of 10 fall in the range)."),
                   size=8.5, color=GREY, width_chars=110)
    if facts.replications < FEW_REPLICATIONS and not facts.drill_down:   # few, by choice
        page.paragraph(rough_percentiles_note(lang), size=8.5, color=RED, width_chars=110)
    page.space(0.12)
    summary = results.summary.set_index("kpi")
    rows = []
    for name in headline_kpis(results):
        s = summary.loc[name]
        unit = str(s["unit"])
        rows.append([_kpi_name(name, unit, facts, lang), _value(s["p50"], unit, lang),
                     f"{_value(s['p5'], unit, lang)} - {_value(s['p95'], unit, lang)}"])
    right = A4[0] - MARGIN
    table(page, [(_t(lang, "Indicatore", "Indicator"), MARGIN, "left"),
                 (_t(lang, "Mediana", "Median"), right - 2.35, "right"),
                 (_t(lang, "Intervallo P5 - P95", "Range P5 - P95"), right, "right")],
          rows, size=9, row_in=0.235)
    page.space(0.3)
    page.text(_t(lang, "Ipotesi principali", "Key assumptions"), size=12, weight="bold",
              color=BLUE)
    fund = results.scenario.fund
    fees = fund.fees
    revolving = format_day(fund.revolving_until) if fund.revolving_until else "-"
    page.paragraph(_t(
        lang,
        f"Dotazione {format_eur(round(fund.endowment * 100), lang, decimals=False)}; avvio "
        f"{format_day(results.scenario.scenario.start)}; orizzonte {format_day(facts.end)}; "
        f"termine di ammissibilità {format_day(fund.eligibility_end)}; rotazione fino al "
        f"{revolving}. Commissioni di gestione {format_pct(fees.base_rate, lang)} annuo di base "
        f"+ {format_pct(fees.performance_rate, lang)} sull'erogato (tetto "
        f"{format_pct(fees.cap, lang, 0)}), "
        f"{'a carico del fondo' if fees.paid_from_fund else 'a carico della Regione'}; "
        f"liquidità remunerata al {format_pct(fund.treasury_rate, lang)}.",
        f"Endowment {format_eur(round(fund.endowment * 100), lang, decimals=False)}; start "
        f"{format_day(results.scenario.scenario.start)}; horizon {format_day(facts.end)}; "
        f"eligibility deadline {format_day(fund.eligibility_end)}; revolving until "
        f"{revolving}. Management fees {format_pct(fees.base_rate, lang)} a year base + "
        f"{format_pct(fees.performance_rate, lang)} on payments (cap "
        f"{format_pct(fees.cap, lang, 0)}), "
        f"{'paid from the fund' if fees.paid_from_fund else 'paid by the Region'}; "
        f"idle cash earns {format_pct(fund.treasury_rate, lang)}."),
        size=8.5, width_chars=108)
    page.space(0.08)
    lines = list(results.scenario.lines)
    first = MARGIN + 2.1
    step = (A4[0] - MARGIN - first) / max(len(lines), 1)
    columns = [("", MARGIN, "left")] + [(line_label(li, lang), first + i * step, "left")
                                        for i, li in enumerate(lines)]
    width = int(step * 72 / (8 * 0.56)) - 2     # characters that fit a column at 8 pt
    table(page, columns, assumption_rows(results.scenario, lang, width), size=8, row_in=0.2)
    page.space(0.1)
    page.paragraph(_t(lang, "Tutti i parametri sono nell'allegato (scenario risolto) e nel "
                      "foglio Scenario di report.xlsx; definizioni degli indicatori nel "
                      "foglio Sintesi.",
                      "Every parameter is in the annex (resolved scenario) and in the "
                      "Scenario sheet of report.xlsx; indicator definitions in the Sintesi "
                      "sheet."), size=7.5, color=GREY, width_chars=120)
    page.footer(2)
    return page.figure


CAPTION_IN = 0.62        # rule, caption (two lines) and space after a chart
USABLE_IN = A4[1] - TOP - BOTTOM


def chart_pages(results, facts: RunFacts) -> list[list[int]]:
    """Charts grouped into pages: in order, as many as fit one above the other."""
    pages: list[list[int]] = []
    used = USABLE_IN
    for i, spec in enumerate(CHARTS):
        need = chart_height(spec.slug, results, facts) + CAPTION_IN
        if used + need > USABLE_IN:
            pages.append([])
            used = 0.0
        pages[-1].append(i)
        used += need
    return pages


def chart_height(slug: str, results, facts: RunFacts) -> float:
    """Height (inches) of a chart on a page: enough for its panels or bars."""
    if slug.startswith("01"):
        return min(1.3 + 2.2 * len(facts.panels), USABLE_IN - CAPTION_IN)
    if slug.startswith("03"):
        steps = 11 + sum(1 for col in ("treasury_interest", "grants_recovered", "legacy")
                         if results.has_nonzero(col))
        return 1.35 + 0.27 * steps
    if slug.startswith("04"):
        return 1.4 + 2.5 * -(-len(facts.lines) // 2)
    return 4.0


def chart_page(results, facts: RunFacts, lang: str, indices: list[int], number: int) -> Figure:
    """A page with one or more charts, each followed by its numbered caption.

    Each chart is drawn into its own subfigure of the page (a slot of a grid
    whose rows are the charts and their captions), so it is the same vector
    drawing as the chart on its own.
    """
    page = Page.new(layout="constrained")
    page.header(facts.title, "fesr-sim " + facts.version)
    fig = page.figure
    heights = [chart_height(CHARTS[i].slug, results, facts) for i in indices]
    rows = [TOP]
    for h in heights:
        rows += [h, CAPTION_IN]
    rows.append(max(A4[1] - sum(rows), 0.01))
    chart_w = A4[0] - 2 * MARGIN + 0.2
    grid = fig.add_gridspec(len(rows), 3, height_ratios=rows,
                            width_ratios=[MARGIN - 0.1, chart_w, A4[0] - MARGIN - 0.1 - chart_w],
                            hspace=0, wspace=0, left=0, right=1, top=1, bottom=0)
    for k, (index, height) in enumerate(zip(indices, heights, strict=True)):
        spec = CHARTS[index]
        with house_style():
            spec.draw(results, lang=lang, region=fig.add_subfigure(grid[1 + 2 * k, 1]))
        page.y += height + 0.08
        page.rule(color="#dddddd")
        page.space(0.06)
        page.paragraph(_t(lang, f"Figura {index + 1}. ", f"Figure {index + 1}. ")
                       + spec.caption(lang), size=8.5, width_chars=105, advance=0)
        page.y += CAPTION_IN - 0.14
    page.footer(number)
    return fig


def annex_pages(toml_text: str, facts: RunFacts, lang: str, first_number: int) -> list[Figure]:
    """The resolved scenario in a monospaced font, long lines wrapped, as many pages as needed."""
    lines: list[str] = []
    for raw in toml_text.splitlines():
        indent = " " * (len(raw) - len(raw.lstrip()) + 4)
        lines += textwrap.wrap(raw, MONO_CHARS, subsequent_indent=indent,
                               drop_whitespace=True, replace_whitespace=False) or [""]
    first_line = TOP + 0.42

    def per_page(step: float) -> int:
        return int((A4[1] - BOTTOM - first_line) / step)

    # Tighten the lines a little when that saves a page with a few lines on it.
    step = MONO_LINE_IN
    for tighter in (MONO_LINE_IN * 0.95, MONO_LINE_IN * 0.9):
        if -(-len(lines) // per_page(tighter)) < -(-len(lines) // per_page(step)):
            step = tighter
            break
    rows = per_page(step)
    chunks = [lines[i:i + rows] for i in range(0, max(len(lines), 1), rows)]
    figures = []
    for k, chunk in enumerate(chunks):
        page = Page.new()
        page.header(facts.title, "fesr-sim " + facts.version)
        title = _t(lang, "Allegato - scenario risolto (scenario.toml)",
                   "Annex - resolved scenario (scenario.toml)")
        if len(chunks) > 1:
            title += f" ({k + 1}/{len(chunks)})"
        page.text(title, size=12, weight="bold", color=BLUE)
        for i, line in enumerate(chunk):   # one text per line: exact, even spacing
            if line:
                page.text(line, size=MONO_PT, family="DejaVu Sans Mono",
                          y=first_line + i * step, advance=0)
        page.footer(first_number + k)
        figures.append(page.figure)
    return figures


def write_pdf(results, path: Path, lang: str = "it", today: dt.date | None = None) -> int:
    """Write the PDF brief; return the number of pages."""
    facts = RunFacts.of(results)
    today = today or dt.date.today()
    toml_path = results.path / "scenario.toml" if results.path else None
    toml_text = toml_path.read_text(encoding="utf-8") if toml_path and toml_path.exists() \
        else results.scenario.resolved_toml()
    if facts.drill_down:   # the file's number of replications is not the run's
        shown = ", ".join(str(r) for r in facts.chosen[:20]) + (" ..." if len(facts.chosen)
                                                                > 20 else "")
        toml_text = _t(lang, f"# Eseguite solo le replicazioni {shown} (come nell'esecuzione "
                       "completa):\n# replications qui sotto è il numero dello scenario.\n",
                       f"# Only replications {shown} were run (as in the whole run):\n"
                       "# replications below is the scenario's number.\n") + toml_text
    count = 0
    with house_style(), PdfPages(path, metadata={
            "Title": f"{facts.title} - fesr-sim", "Author": "fesr-sim " + facts.version,
            "Subject": f"scenario {facts.name} ({facts.hash[:12]})", "Creator": "fesr-sim",
            "CreationDate": None, "ModDate": None}) as pdf:
        figures = [cover(results, facts, lang, today), summary_page(results, facts, lang)]
        for indices in chart_pages(results, facts):
            figures.append(chart_page(results, facts, lang, indices, len(figures) + 1))
        figures += annex_pages(toml_text, facts, lang, len(figures) + 1)
        for fig in figures:
            pdf.savefig(fig)
            count += 1
    return count

