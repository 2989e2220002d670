"""Every chart of the report is legible: no two of its texts overlap, tick labels on an
axis keep a gap between them, nothing is drawn outside the figure.

Checked on the drawn figure (Agg renderer, the same text measures as the PNG
files), for the shipped scenarios whose charts differ most: the reference, a
1 bn€ fund (amounts of ten characters, thousands of projects), a revolving
desk (fifteen years of lending) and a grant-heavy instrument; in Italian and
English.
"""

from __future__ import annotations

import itertools

import pytest
from conftest import SCENARIOS
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text

import simulator
from simulator import charts
from simulator.results import load_results

# The least room between two tick labels of an axis, in points (about two thirds of
# their size: less, and two labels read as one).
TICK_GAP_PT = 6.0

CASES = [("wecare_fesr_2018.toml", 20, "it"), ("wecare_fesr_2018.toml", 20, "en"),
         ("large_fund.toml", 5, "it"), ("large_fund.toml", 5, "en"),
         ("revolving.toml", 20, "it"), ("grant_heavy.toml", 20, "it")]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("layout")
    out = {}
    for scenario, replications, _lang in CASES:
        if scenario not in out:
            run = simulator.run(simulator.load_scenario(SCENARIOS / scenario),
                                replications=replications, workers=1)
            out[scenario] = load_results(run.save(folder / scenario.removesuffix(".toml")))
    return out


def drawn_texts(fig: Figure) -> list[tuple[Text, str]]:
    """The visible texts of a figure and its subfigures, with what each is (``xtick``...)."""
    found: dict[int, tuple[Text, str]] = {}

    def add(text: Text | None, kind: str) -> None:
        if text is not None and text.get_visible() and text.get_text().strip():
            found.setdefault(id(text), (text, kind))

    def walk(figure) -> None:
        for text in figure.texts:
            add(text, "text")
        for legend in figure.legends:
            for text in legend.get_texts():
                add(text, "legend")
        for ax in figure.axes:
            for text in (ax.title, ax._left_title, ax._right_title, ax.xaxis.label,
                         ax.yaxis.label, *ax.texts):
                add(text, "text")
            if ax.get_legend() is not None:
                for text in ax.get_legend().get_texts():
                    add(text, "legend")
            for axis, kind in ((ax.xaxis, "xtick"), (ax.yaxis, "ytick")):
                low, high = sorted(axis.get_view_interval())
                slack = (high - low) * 1e-9
                for tick in axis.get_major_ticks():
                    if tick.get_visible() and low - slack <= tick.get_loc() <= high + slack:
                        add(tick.label1, kind)
                        add(tick.label2, kind)
        for sub in figure.subfigs:
            walk(sub)

    walk(fig)
    return list(found.values())


def layout_problems(fig: Figure) -> list[str]:
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    gap_px = TICK_GAP_PT * fig.dpi / 72
    boxes = [(text, kind, text.get_window_extent(renderer)) for text, kind in drawn_texts(fig)]
    problems = []
    for text, kind, box in boxes:
        if box.x0 < -1 or box.y0 < -1 or box.x1 > fig.bbox.width + 1 \
                or box.y1 > fig.bbox.height + 1:
            problems.append(f"{kind} {text.get_text()!r} leaves the figure")
    for (t1, k1, b1), (t2, k2, b2) in itertools.combinations(boxes, 2):
        # Tick labels of one axis side by side need a gap; other texts must not touch.
        gap = gap_px if k1 == k2 and k1 in ("xtick", "ytick") and t1.axes is t2.axes else 0.0
        if min(b1.x1, b2.x1) - max(b1.x0, b2.x0) > -gap and \
                min(b1.y1, b2.y1) - max(b1.y0, b2.y0) > -gap:
            problems.append(f"{k1} {t1.get_text()!r} and {k2} {t2.get_text()!r} overlap")
    return problems


@pytest.mark.parametrize(("scenario", "replications", "lang"), CASES)
def test_no_chart_has_overlapping_or_clipped_texts(runs, scenario, replications, lang):
    problems = []
    for spec in charts.CHARTS:
        fig = spec.draw(runs[scenario], lang=lang).figure
        problems += [f"{spec.slug}: {p}" for p in layout_problems(fig)]
    assert problems == []


def test_the_check_finds_touching_tick_labels_and_overlapping_texts():
    fig = Figure(figsize=(2.0, 2.0))
    ax = fig.add_subplot()
    ax.set_xlim(0, 4)
    ax.set_xticks([0, 1, 2, 3, 4], ["1.000,0 M€"] * 5)   # far too wide for their room
    ax.text(0.5, 0.5, "a note", transform=ax.transAxes)
    ax.text(0.5, 0.5, "another", transform=ax.transAxes)
    fig.text(0.9, 0.5, "runs off the right edge")
    problems = layout_problems(fig)
    assert any("xtick '1.000,0 M€' and xtick '1.000,0 M€' overlap" in p for p in problems)
    assert any("'a note' and text 'another' overlap" in p for p in problems)
    assert any("'runs off the right edge' leaves the figure" in p for p in problems)


@pytest.fixture(scope="module")
def decided(tmp_path_factory):
    """A sweep of the shipped grant-share file and a comparison of two shipped scenarios,
    20 replications each, made as a user makes them."""
    from click.testing import CliRunner

    from simulator.cli import main

    folder = tmp_path_factory.mktemp("decided")
    for args in (["sweep", str(SCENARIOS / "sweep_grant_share.toml"), "--out",
                  str(folder / "sweep")],
                 ["compare", str(SCENARIOS / "wecare_fesr_2018.toml"),
                  str(SCENARIOS / "grant_heavy.toml"), "--out", str(folder / "cmp")]):
        result = CliRunner().invoke(main, [*args, "-n", "20", "-w", "1"])
        assert result.exit_code == 0, result.output
    return folder


@pytest.mark.parametrize("lang", ["it", "en"])
def test_sweep_and_comparison_charts_are_legible(decided, lang):
    import pandas as pd

    from simulator.charts_compare import (
        SWEEP_KPIS,
        compare_kpi_chart,
        sweep_heatmap_chart,
        sweep_line_chart,
    )

    table = pd.read_parquet(decided / "sweep" / "sweep.parquet")
    share, coverage = "lines.A.instrument.grant_share", "lines.A.instrument.coverage"
    problems = []
    for kpi in SWEEP_KPIS:
        for chart in (sweep_line_chart(table, coverage, kpi, lang, source="s", subtitle="t",
                                       by=share),
                      sweep_line_chart(table[table[coverage] == 0.6], share, kpi, lang,
                                       source="s", subtitle="t"),
                      sweep_heatmap_chart(table, coverage, share, kpi, lang, source="s",
                                          subtitle="t")):
            problems += [f"{kpi}: {p}" for p in layout_problems(chart.figure)]
    comparison = pd.read_csv(decided / "cmp" / "comparison.csv")
    problems += [f"comparison: {p}" for p in layout_problems(
        compare_kpi_chart(comparison, lang=lang, source="s", subtitle="t").figure)]
    assert problems == []


def test_a_cut_off_at_the_horizons_end_is_not_drawn_on_the_border(runs):
    # The revolving scenario's desk is open to its horizon's last day (31/12/2035); the
    # reference's rotation ends four years before its horizon.
    def legend(results) -> list[str]:
        fig = charts.fund_cash_chart(results).figure
        return [text.get_text() for text, kind in drawn_texts(fig) if kind == "legend"]

    assert not any(t.startswith("Fine rotazione") for t in legend(runs["revolving.toml"]))
    assert "Fine rotazione (31/12/2031)" in legend(runs["wecare_fesr_2018.toml"])
