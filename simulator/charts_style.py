"""The house style of fesr-sim charts: palette, fonts, frame, axis formats, saving.

Every chart is a :class:`matplotlib.figure.Figure` built without ``pyplot``
(no global state: charts can be drawn in a loop, a worker or a notebook
without leaking figures).  The *frame* (:class:`Frame`) is the same on every
figure, three subfigures stacked:

* a title band: the chart's name (bold) and, below it, the scenario's title;
* the body, where the chart adds its axes, laid out by constrained layout;
* a foot with the figure legend (if any) and the source line, e.g.
  ``Fonte: fesr-sim 0.1.0, scenario wecare_fesr_2018 (ed4db7cf0abd), 200
  replicazioni``.

A chart can be drawn in a new figure or in a subfigure of a larger one (a
page of the PDF report): the report then shows the very same vector chart
as ``charts/*.svg``.

Axis formats follow ``simulator.money``: euros as ``1,2 M€`` / ``850 k€``
(never scientific notation), dates as ``gen 2020``, decimal comma in
Italian.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import matplotlib as mpl
import matplotlib.dates as mdates
import numpy as np
from babel.dates import format_date
from matplotlib.axes import Axes
from matplotlib.figure import Figure, SubFigure
from matplotlib.ticker import Formatter, FuncFormatter, MaxNLocator
from matplotlib.transforms import ScaledTranslation

from .money import format_eur, format_keur, format_meur, format_number, format_pct

# --------------------------------------------------------------------------- palette

# Sober, print-safe colours (distinguishable in grey scale and by colour-blind
# readers): the Region's blue first, then muted companions.
BLUE = "#1f4e79"
LIGHT_BLUE = "#9dbcd9"
TEAL = "#2a7f7a"
OCHRE = "#c88a12"
RED = "#a83232"
GREEN = "#3b7d3b"
GREY = "#6b6b6b"
LIGHT_GREY = "#d9d9d9"
INK = "#222222"

LINE_COLORS = (BLUE, TEAL, OCHRE, "#7a4e8c", "#8c6d31", GREY)
TOTAL_COLOR = INK

WIDTH_IN = 7.5          # fits an A4 page with margins; pastes into Word at ~1:1
DPI = 200

_LOCALES = {"it": "it_IT", "en": "en_GB"}

STYLE: dict[str, object] = {
    "font.family": "DejaVu Sans",
    "font.size": 9.0,
    "axes.titlesize": 9.5,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.labelsize": 9.0,
    "axes.labelcolor": INK,
    "axes.edgecolor": "#8a8a8a",
    "axes.linewidth": 0.7,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.grid.axis": "y",
    "axes.axisbelow": True,
    "grid.color": "#e4e4e4",
    "grid.linewidth": 0.6,
    "xtick.labelsize": 8.0,
    "ytick.labelsize": 8.0,
    "xtick.color": "#444444",
    "ytick.color": "#444444",
    "xtick.major.size": 3.0,
    "ytick.major.size": 0.0,
    "legend.fontsize": 8.0,
    "legend.frameon": False,
    "lines.linewidth": 1.6,
    "axes.formatter.useoffset": False,
    "axes.formatter.limits": (-99, 99),   # never scientific notation
    "svg.fonttype": "none",               # text stays text in SVG (searchable, editable)
    "svg.hashsalt": "fesr-sim",           # element ids from the content: the same SVG bytes
    "pdf.fonttype": 42,                   # embed TrueType: text extractable from the PDF
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
}


@contextmanager
def house_style() -> Iterator[None]:
    """Apply the house style while a chart's artists are created."""
    with mpl.rc_context(STYLE):
        yield


def check_lang(lang: str) -> str:
    if lang not in _LOCALES:
        raise ValueError(f"unsupported language {lang!r}: expected 'it' or 'en'")
    return lang


# --------------------------------------------------------------------------- frame

TITLE_BAND_IN = 0.62    # chart name + scenario title
SOURCE_BAND_IN = 0.26   # source line
LEGEND_ROW_IN = 0.16    # one row of a figure legend

Region = Figure | SubFigure
"""Where a chart is drawn: a whole figure, or a subfigure of a larger one (a PDF page)."""


def new_region(height_in: float, width_in: float = WIDTH_IN) -> Figure:
    """A fresh figure of the given size (inches) for one chart."""
    return Figure(figsize=(width_in, height_in), dpi=100, layout="constrained")


def region_size(region: Region) -> tuple[float, float]:
    """Width and height of a region in inches."""
    if isinstance(region, Figure):
        w, h = region.get_size_inches()
        return float(w), float(h)
    root = region.get_figure(root=True)
    region._redo_transform_rel_fig()   # the subfigure's box from its gridspec slot
    return region.bbox.width / root.dpi, region.bbox.height / root.dpi


class Frame:
    """The house frame of one chart in a region: title band, body, legend and source.

    The region is split into three subfigures stacked vertically: the title
    band (chart name, scenario title), the body (where the chart adds its
    axes, laid out by constrained layout) and the foot (figure legend and
    source line).  :meth:`legend` makes the foot taller by as many rows as
    the legend needs.
    """

    def __init__(self, region: Region, title: str, subtitle: str, source: str):
        self.root: Figure = region if isinstance(region, Figure) else \
            region.get_figure(root=True)
        self.width_in, self.height_in = region_size(region)
        self._grid = region.add_gridspec(3, 1, height_ratios=self._heights(0), hspace=0,
                                         left=0, right=1, top=1, bottom=0)
        self.head = region.add_subfigure(self._grid[0])
        self.body = region.add_subfigure(self._grid[1])
        self.foot = region.add_subfigure(self._grid[2])
        inch = self.root.dpi_scale_trans
        top_left = self.head.transSubfigure + ScaledTranslation(0.10, 0.0, inch)
        self.head.text(0, 1, title, transform=top_left + ScaledTranslation(0, -0.07, inch),
                       ha="left", va="top", fontsize=12, fontweight="bold", color=INK)
        self.head.text(0, 1, subtitle, transform=top_left + ScaledTranslation(0, -0.34, inch),
                       ha="left", va="top", fontsize=9, color=GREY)
        self.foot.text(0, 0, source, transform=self.foot.transSubfigure
                       + ScaledTranslation(0.10, 0.08, inch),
                       ha="left", va="bottom", fontsize=7, color=GREY)

    def _heights(self, legend_rows: int) -> list[float]:
        foot = SOURCE_BAND_IN + (LEGEND_ROW_IN * legend_rows + 0.10 if legend_rows else 0.0)
        return [TITLE_BAND_IN, max(self.height_in - TITLE_BAND_IN - foot, 0.5), foot]

    def legend(self, handles: list, labels: list[str], ncols: int) -> None:
        """A legend centred in the foot, above the source line."""
        rows = -(-len(labels) // ncols)
        self._grid.set_height_ratios(self._heights(rows))
        # matplotlib fills a legend column by column: reorder so it reads row by row.
        order = [r * ncols + c for c in range(ncols) for r in range(rows)
                 if r * ncols + c < len(labels)]
        handles = [handles[k] for k in order]
        labels = [labels[k] for k in order]
        below_top = self.foot.transSubfigure + ScaledTranslation(
            0, -0.08, self.root.dpi_scale_trans)
        self.foot.legend(handles, labels, loc="upper center", ncols=ncols,
                         bbox_to_anchor=(0.5, 1.0), bbox_transform=below_top,
                         handlelength=1.8, columnspacing=1.6, borderaxespad=0.0,
                         borderpad=0.0)


def frame(region: Region, title: str, subtitle: str, source: str) -> Frame:
    """Frame a chart in ``region``; add the axes to the returned frame's ``body``."""
    return Frame(region, title, subtitle, source)


def source_line(version: str, scenario_name: str, scenario_hash: str, replications: int,
                lang: str = "it") -> str:
    """``Fonte: fesr-sim 0.1.0, scenario wecare_fesr_2018 (ed4db7cf0abd), 200 replicazioni``."""
    if lang == "it":
        reps = "1 replicazione" if replications == 1 else \
            f"{format_number(replications, 'it')} replicazioni"
        return f"Fonte: fesr-sim {version}, scenario {scenario_name} ({scenario_hash[:12]}), {reps}"
    reps = "1 replication" if replications == 1 else \
        f"{format_number(replications, 'en')} replications"
    return f"Source: fesr-sim {version}, scenario {scenario_name} ({scenario_hash[:12]}), {reps}"


# --------------------------------------------------------------------------- formats


@lru_cache(maxsize=4096)
def format_month(date: dt.date, lang: str = "it") -> str:
    """``gen 2020`` (it), ``Jan 2020`` (en)."""
    return format_date(date, "MMM yyyy", locale=_LOCALES[check_lang(lang)])


def format_day(date: dt.date, lang: str = "it") -> str:
    """``31/12/2023`` in both languages (the form used in Italian acts)."""
    return f"{date.day:02d}/{date.month:02d}/{date.year}"


def euro_unit(max_abs_euros: float) -> str:
    """The unit an axis speaks: ``M`` from 1 M€, ``k`` from 10 k€, else euros."""
    if max_abs_euros >= 999_500:
        return "M"
    if max_abs_euros >= 9_999.5:
        return "k"
    return ""


@lru_cache(maxsize=4096)
def format_euros_in(value: float, unit: str, lang: str, digits: int) -> str:
    """An amount in euros printed in a chosen unit (``M``, ``k`` or euros)."""
    cents = round(value * 100)
    if unit == "M":
        return format_meur(cents, lang, digits=digits)
    if unit == "k":
        return format_keur(cents, lang, digits=digits)
    return format_eur(cents, lang, decimals=digits > 0)


def format_euros_short(value: float, lang: str = "it") -> str:
    """A bar or point label: ``1,2 M€``, ``850 k€``, ``950 €`` (unit from the value)."""
    unit = euro_unit(abs(value))
    return format_euros_in(value, unit, lang, 1 if unit == "M" else 0)


class EuroFormatter(Formatter):
    """Tick labels in euros, one unit per axis (``M€``, ``k€`` or ``€``), never scientific.

    The unit follows the largest visible amount and the decimals follow the
    tick step, so labels are distinct and aligned: ``0,0 M€, 0,5 M€, 1,0 M€``.
    """

    def __init__(self, lang: str = "it"):
        self.lang = lang
        self.unit = ""
        self.digits = 0
        self._seen = False

    def set_locs(self, locs) -> None:
        self._seen = True
        low, high = self.axis.get_view_interval() if self.axis is not None else (0.0, 1.0)
        span = max(abs(low), abs(high), *(abs(v) for v in locs)) if len(locs) else \
            max(abs(low), abs(high))
        self.unit = euro_unit(span)
        scale = {"M": 1e6, "k": 1e3, "": 1.0}[self.unit]
        step = float(np.min(np.diff(sorted(locs)))) / scale if len(locs) > 1 else 1.0
        # As many decimals as the step needs (0.25 M -> 2), at least one in M€.
        digits = next((d for d in range(4) if abs(step * 10**d - round(step * 10**d)) < 1e-6),
                      3)
        self.digits = max(digits, 1) if self.unit == "M" else digits

    def __call__(self, x: float, pos: int | None = None) -> str:
        if not self._seen:   # called outside tick drawing (e.g. a cursor readout)
            self.set_locs([x])
        value = 0.0 if abs(x) < 1e-6 else float(x)
        return format_euros_in(value, self.unit, self.lang, self.digits)


def euro_axis(ax: Axes, lang: str = "it", axis: str = "y") -> None:
    """Format an axis holding euros as ``1,2 M€`` / ``850 k€`` (one unit per axis)."""
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]))
    target.set_major_formatter(EuroFormatter(lang))


@lru_cache(maxsize=4096)
def _number(value: float, lang: str, digits: int) -> str:
    return format_number(value, lang, digits)


@lru_cache(maxsize=4096)
def _pct(value: float, lang: str) -> str:
    return format_pct(value, lang, digits=0)


def count_axis(ax: Axes, lang: str = "it", axis: str = "y") -> None:
    """An axis of whole numbers (projects, replications) with the locale's separators."""
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_locator(MaxNLocator(nbins=6, integer=True, steps=[1, 2, 5, 10]))
    target.set_major_formatter(FuncFormatter(lambda v, _p: _number(float(v), lang, 0)))


def share_axis(ax: Axes, lang: str = "it", axis: str = "y") -> None:
    """An axis of shares (0.25) printed as percentages (``25 %``)."""
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]))
    target.set_major_formatter(FuncFormatter(lambda v, _p: _pct(float(v), lang)))


def number_axis(ax: Axes, lang: str = "it", axis: str = "y", digits: int = 1) -> None:
    """An axis of plain numbers (ratios) with a decimal comma in Italian."""
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_formatter(FuncFormatter(lambda v, _p: _number(float(v), lang, digits)))


@lru_cache(maxsize=4096)
def _month_tick(value: float, lang: str) -> str:
    return format_month(mdates.num2date(value).date(), lang)


def date_axis(ax: Axes, start: dt.date, end: dt.date, lang: str = "it",
              max_ticks: int = 9) -> None:
    """Ticks on whole years (or months for short spans) labelled ``gen 2020``."""
    months = (end.year - start.year) * 12 + end.month - start.month
    years = months / 12
    for base in (1, 2, 3, 4, 5, 10):
        if years / base <= max_ticks:
            break
    if years < 2.5:
        step = max(1, math.ceil(months / max_ticks))
        step = next(s for s in (1, 2, 3, 4, 6, 12) if s >= step)
        locator: mdates.DateLocator = mdates.MonthLocator(
            bymonth=range(1, 13, step) if 12 % step == 0 else None, interval=1
            if 12 % step == 0 else step)
    else:
        locator = mdates.YearLocator(base=base, month=1, day=1)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(
        FuncFormatter(lambda v, _p: _month_tick(float(v), lang)))
    ax.set_xlim(np.datetime64(start), np.datetime64(end))


# --------------------------------------------------------------------------- saving


def save_figure(fig: Figure, base: Path) -> list[Path]:
    """Write ``base.png`` (200 dpi) and ``base.svg``; return the paths."""
    base.parent.mkdir(parents=True, exist_ok=True)
    png = base.with_suffix(".png")
    svg = base.with_suffix(".svg")
    with mpl.rc_context(STYLE):
        fig.savefig(png, dpi=DPI, metadata={"Software": None})
        # The layout is settled by the first drawing: keep it (laying out again
        # costs as much as drawing, and would give the same positions).
        engine = fig.get_layout_engine()
        fig.set_layout_engine("none")
        try:
            fig.savefig(svg, metadata={"Date": None})
        finally:
            fig.set_layout_engine(engine)
    return [png, svg]


def forget_text_measures() -> None:
    """Let the next figure measure its text afresh, whatever was drawn before it.

    matplotlib keeps the fonts it found and loaded, and the sizes of the
    texts it measured; measured again with a font object that other figures
    left at another size, a text's extent can differ in its last bits, and
    so can positions in the sixth decimal of an SVG or a PDF. Forgetting
    them before each chart and the PDF makes these files depend far less on
    which process draws them and what it drew before (measured: the same
    bytes on one process or two for a revolving run, the same PDF run after
    run), though not always (a 20-replication run still differed in a few
    sixth decimals). Chart data and the workbook do not depend on it, and
    the PNG pictures (200 dpi) came out the same in every comparison. These
    caches are private to matplotlib: where a version has other ones,
    nothing is forgotten.
    """
    from matplotlib import font_manager, text

    for cache in (getattr(font_manager.fontManager, "_findfont_cached", None),
                  getattr(font_manager, "_get_font", None)):
        if hasattr(cache, "cache_clear"):
            cache.cache_clear()
    defaults = getattr(getattr(text, "_get_text_metrics_function", None), "__defaults__", None)
    if defaults and hasattr(defaults[0], "clear"):
        defaults[0].clear()
