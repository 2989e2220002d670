"""Charts: titles, axis labels, series and the data behind each figure, in Italian and English."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from conftest import SCENARIOS
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure, FigureBase
from matplotlib.lines import Line2D

import simulator
from simulator import __version__, charts
from simulator.charts_data import percentiles_by_month
from simulator.charts_style import (
    EuroFormatter,
    format_euros_short,
    format_month,
    new_region,
    source_line,
)
from simulator.results import load_results

REPLICATIONS = 20


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """A small run of the reference scenario, saved and read back like a user's run folder."""
    scenario = simulator.load_scenario(SCENARIOS / "wecare_fesr_2018.toml")
    run = simulator.run(scenario, replications=REPLICATIONS, workers=1)
    folder = run.save(tmp_path_factory.mktemp("run") / "wecare")
    return load_results(folder)


def all_texts(fig: FigureBase) -> list[str]:
    """Every string drawn on a figure: its texts, subfigures, axes titles, labels, legends."""
    out = [t.get_text() for t in fig.texts]
    for legend in fig.legends:
        out += [t.get_text() for t in legend.get_texts()]
    for ax in fig.axes:
        out += [ax.get_title(loc) for loc in ("left", "center", "right")]
        out += [ax.get_xlabel(), ax.get_ylabel()]
        out += [t.get_text() for t in ax.texts]
        out += [t.get_text() for t in ax.get_xticklabels() + ax.get_yticklabels()]
    for sub in fig.subfigs:
        out += all_texts(sub)
    return [t for t in out if t]


def drawn(fig: Figure) -> Figure:
    fig.draw_without_rendering()     # computes ticks and their labels
    return fig


def chart_axes(fig: Figure) -> list[Axes]:
    return fig.get_axes()


def bands(ax: Axes) -> list[PolyCollection]:
    return [c for c in ax.collections if isinstance(c, PolyCollection)]


def data_lines(ax: Axes) -> list[Line2D]:
    """Plotted series, not the vertical deadline markers (axvline: two x values)."""
    return [ln for ln in ax.get_lines() if len(np.atleast_1d(ln.get_xdata())) > 2]


def source_of(results) -> str:
    return (f"Fonte: fesr-sim {simulator.__version__}, scenario wecare_fesr_2018 "
            f"({results.scenario.hash()[:12]}), {REPLICATIONS} replicazioni")


# --------------------------------------------------------------------------- house style


def test_source_line_names_tool_scenario_hash_and_replications():
    assert source_line("0.1.0", "s", "abcdef0123456789", 1000) == \
        "Fonte: fesr-sim 0.1.0, scenario s (abcdef012345), 1.000 replicazioni"
    assert source_line("0.1.0", "s", "abcdef0123456789", 1000, "en") == \
        "Source: fesr-sim 0.1.0, scenario s (abcdef012345), 1,000 replications"


def test_euro_ticks_use_one_unit_decimal_comma_and_no_scientific_notation():
    def ticks(locs: list[float], lang: str = "it") -> list[str]:
        fmt = EuroFormatter(lang)
        fmt.set_locs(locs)
        return [fmt(v) for v in locs]

    assert ticks([0, 500_000, 1_000_000, 1_500_000]) == ["0,0 M€", "0,5 M€", "1,0 M€",
                                                          "1,5 M€"]
    assert ticks([0, 250_000, 500_000]) == ["0 k€", "250 k€", "500 k€"]
    assert ticks([0, 2_000_000, 4_000_000]) == ["0,0 M€", "2,0 M€", "4,0 M€"]
    assert ticks([1_000_000, 1_250_000]) == ["1,00 M€", "1,25 M€"]
    assert ticks([0, 2_000, 4_000]) == ["0 €", "2.000 €", "4.000 €"]
    assert ticks([0, 1_000_000, 2_000_000], "en") == ["€0.0M", "€1.0M", "€2.0M"]


def test_short_amounts_and_months_in_italian_and_english():
    assert format_euros_short(1_234_567) == "1,2 M€"
    assert format_euros_short(-400_000) == "-400 k€"
    assert format_euros_short(950) == "950 €"
    assert format_euros_short(1_234_567, "en") == "€1.2M"
    assert format_month(pd.Timestamp("2020-01-31").date()) == "gen 2020"
    assert format_month(pd.Timestamp("2020-01-31").date(), "en") == "Jan 2020"


def test_unknown_language_is_refused(results):
    with pytest.raises(ValueError, match="unsupported language"):
        charts.fund_cash_chart(results, lang="fr")


# --------------------------------------------------------------------------- 1. fund cash


def test_fund_cash_chart_has_one_fan_per_line_and_total(results):
    fig, _data = charts.fund_cash_chart(results)
    texts = all_texts(drawn(fig))
    assert "Fondo disponibile per linea" in texts
    assert results.scenario.title in texts
    assert source_of(results) in texts
    axes = chart_axes(fig)
    assert [ax.get_title(loc="left") for ax in axes] == [
        results.scenario.lines["A"].title, results.scenario.lines["B"].title, "Totale fondo"]
    for ax in axes:
        assert len(bands(ax)) == 2             # P5-P95 and P25-P75
        assert len(data_lines(ax)) == 1        # the median
        assert len(ax.get_lines()) == 3        # + eligibility deadline + revolving cut-off
    legend = [t for t in texts if "Termine di ammissibilità (31/12/2023)" in t]
    assert legend and any("Fine rotazione (31/12/2031)" in t for t in texts)
    # Euro ticks: M€ with a decimal comma, never scientific notation.
    ticks = [t.get_text() for t in axes[0].get_yticklabels() if t.get_text()]
    assert all(re.fullmatch(r"\d+,\d M€", t) for t in ticks), ticks
    assert not any("e+" in t or "1e" in t for t in texts)
    months = [t.get_text() for t in axes[-1].get_xticklabels() if t.get_text()]
    assert months and all(re.fullmatch(r"gen \d{4}", m) for m in months), months


def test_fund_cash_data_are_the_percentiles_of_the_run(results):
    _fig, data = charts.fund_cash_chart(results)
    ts = results.timeseries
    months = ts["date"].nunique()
    assert list(data.columns) == ["line", "date", "p5", "p25", "p50", "p75", "p95"]
    assert len(data) == 3 * months
    date = sorted(ts["date"].unique())[30]
    cash = ts[(ts["line"] == "A") & (ts["date"] == date)]["cash"].to_numpy() / 100
    row = data[(data["line"] == "A") & (data["date"] == pd.Timestamp(date).date())].iloc[0]
    assert row["p50"] == pytest.approx(np.percentile(cash, 50))
    assert row["p5"] == pytest.approx(np.percentile(cash, 5))
    assert (data["p5"] <= data["p25"]).all() and (data["p75"] <= data["p95"]).all()


@given(hnp.arrays(np.int64, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=40),
                  elements=st.one_of(st.just(0), st.integers(-10**15, 10**15))),
       st.lists(st.integers(0, 100), min_size=1, max_size=6))
def test_percentiles_by_month_are_numpys_to_the_bit(values, qs):
    """The charts' and workbook's percentiles are ``np.percentile`` over replications of
    the float cents, bit for bit (ties, months of zeros and very large amounts too)."""
    qs = tuple(qs)
    expected = np.percentile(values.astype(float), qs, axis=0)
    assert np.array_equal(percentiles_by_month(values, qs), expected)


@pytest.mark.parametrize("lang", ["it", "en"])
def test_each_charts_data_alone_is_the_data_it_draws(results, lang):
    for spec in charts.CHARTS:
        pd.testing.assert_frame_equal(spec.data(results, lang=lang),
                                      spec.draw(results, lang=lang).data, check_exact=True,
                                      obj=spec.slug)


def test_fund_cash_chart_in_english(results):
    fig, _data = charts.fund_cash_chart(results, lang="en")
    texts = all_texts(drawn(fig))
    assert "Fund cash by line" in texts
    assert any(t.startswith("Source: fesr-sim") for t in texts)
    assert any(re.fullmatch(r"Jan \d{4}", t) for t in texts)
    assert any(re.fullmatch(r"€\d+\.\dM", t) for t in texts)


# --------------------------------------------------------------------------- 2. disbursements


def test_disbursement_chart_shows_loans_grants_endowment_and_absorption(results):
    fig, data = charts.disbursement_chart(results)
    texts = all_texts(drawn(fig))
    assert "Erogazioni cumulate ai destinatari e dotazione" in texts
    (ax,) = chart_axes(fig)
    assert ax.get_ylabel() == "Erogato cumulato"
    assert len(bands(ax)) == 1                                     # P5-P95 of the total
    assert len(data_lines(ax)) == 3                                # total, loans, grants
    endowment = [ln for ln in ax.get_lines() if list(ln.get_ydata()) == [5_000_000] * 2]
    assert endowment, "endowment line missing"
    absorption = results.kpis["absorption_at_eligibility_end"].median()
    note = next(t for t in texts if t.startswith("Assorbimento al 31/12/2023"))
    assert f"{absorption * 100:.1f}".replace(".", ",") + " %" in note
    assert "Dotazione del fondo (5,0 M€)" in texts
    assert list(data.columns) == ["date", "loans_p50", "grants_p50", "total_p5", "total_p50",
                                  "total_p95", "endowment"]
    total = results.timeseries.query("line == 'total'")
    last = total[total["date"] == total["date"].max()]
    paid = (last["loans_disbursed"] + last["grants_paid"]).to_numpy() / 100
    assert data["total_p50"].iloc[-1] == pytest.approx(np.median(paid))


# --------------------------------------------------------------------------- 3. waterfall


def test_median_replication_is_central_in_value_and_payments():
    kpis = pd.DataFrame({"replication": [0, 1, 2, 3, 4],
                         "fund_value_end_eur": [10.0, 20.0, 30.0, 40.0, 50.0],
                         "loans_disbursed_eur": [5.0, 1.0, 3.0, 2.0, 4.0],
                         "grants_paid_eur": [0.0] * 5})
    assert charts.median_replication(kpis) == 2      # median on both
    kpis["loans_disbursed_eur"] = [3.0, 1.0, 5.0, 2.0, 4.0]
    # 2 has the median value but paid the most; 3 is one step off the median on both.
    assert charts.median_replication(kpis) == 3
    kpis["loans_disbursed_eur"] = [3.0, 2.0, 5.0, 1.0, 4.0]
    # 1 and 3 are equally central: the tie goes to the lower replication number.
    assert charts.median_replication(kpis) == 1


def test_sources_and_uses_add_up_to_the_fund_value_of_the_replication(results):
    rep = charts.median_replication(results.kpis)
    table = charts.sources_uses(results, rep)
    totals = table[table["kind"] == "total"].set_index("item")["amount"]
    assert totals["endowment"] == results.scenario.fund.endowment
    kpis = results.kpis.set_index("replication").loc[rep]
    assert totals["fund_value"] == pytest.approx(kpis["fund_value_end_eur"], abs=0.005)
    assert list(table["item"][:3]) == ["endowment", "principal_repaid", "recoveries"]
    # Every total is the previous one plus the flows in between.
    running = 0.0
    for row in table[table["kind"] != "memo"].itertuples():
        if row.kind == "total":
            assert row.amount == pytest.approx(running, abs=0.005) or row.item == "endowment"
            running = row.amount
        else:
            assert row.start == pytest.approx(running) and row.end == pytest.approx(
                running + row.amount)
            running += row.amount
    uses = table.set_index("item").loc[["loans_disbursed", "grants_paid", "fees_paid"],
                                       "amount"]
    assert uses["loans_disbursed"] == pytest.approx(-kpis["loans_disbursed_eur"], abs=0.005)
    assert uses["fees_paid"] <= 0
    assert (table.loc[table["kind"] != "memo", ["start", "end"]] >= 0).all().all()
    losses = table.set_index("item").loc["losses", "amount"]
    assert losses == pytest.approx(-kpis["losses_eur"], abs=0.005)


def test_with_phased_payments_the_waterfall_starts_from_what_was_paid_in():
    # Part of the endowment is never paid in: the statement starts from what was.
    scenario = simulator.load_scenario(SCENARIOS / "wecare_fesr_2018.toml",
                                       ["fund.payments.phased=true"])
    results = simulator.run(scenario, replications=4, workers=1)
    rep = charts.median_replication(results.kpis)
    table = charts.sources_uses(results, rep)
    paid_in = results.kpis.set_index("replication").loc[rep, "contribution_paid_in_eur"]
    assert paid_in < scenario.fund.endowment
    assert table["item"].iloc[0] == "contribution_paid_in"
    assert table["amount"].iloc[0] == pytest.approx(paid_in, abs=0.005)
    fig, _ = charts.waterfall_chart(results)
    labels = [t.get_text().replace("\n", " ") for t in chart_axes(fig)[0].get_yticklabels()]
    assert labels[0] == "Dotazione versata"


def test_waterfall_chart_has_a_bar_per_step_and_the_losses_memo(results):
    fig, data = charts.waterfall_chart(results)
    texts = all_texts(drawn(fig))
    rep = charts.median_replication(results.kpis)
    assert "Fonti e impieghi del fondo fino all'orizzonte" in texts
    assert any(f"replicazione mediana (n. {rep})" in t for t in texts)
    (ax,) = chart_axes(fig)
    steps = data[data["kind"] != "memo"]
    assert len(ax.patches) == len(steps) + 1                # + the hatched memo bar
    labels = [t.get_text().replace("\n", " ") for t in ax.get_yticklabels()]
    assert labels[0] == "Dotazione iniziale" and labels[-2] == "Valore del fondo"
    assert "Risorse complessive" in labels
    assert labels[-1] == "Per memoria: perdite nette su crediti"
    assert "Finanziamenti erogati" in labels and "Rientri di capitale" in labels
    assert any(re.fullmatch(r"-\d+,\d M€", t) for t in texts)   # loans out, e.g. -4,0 M€


def test_waterfall_of_a_chosen_replication(results):
    _fig, data = charts.waterfall_chart(results, replication=3)
    assert set(data["replication"]) == {3}
    with pytest.raises(ValueError, match="not in the run"):
        charts.sources_uses(results, 999)


# --------------------------------------------------------------------------- 4. projects


def test_projects_chart_has_one_panel_per_line_with_three_series(results):
    fig, data = charts.projects_chart(results)
    texts = all_texts(drawn(fig))
    assert "Progetti finanziati, respinti e in attesa per linea" in texts
    axes = chart_axes(fig)
    assert [ax.get_title(loc="left") for ax in axes] == ["Linea A", "Linea B"]
    for ax in axes:
        assert ax.get_ylabel() == "Numero di progetti"
        assert len(data_lines(ax)) == 3          # financed, rejected, waiting
        assert len(bands(ax)) == 1               # financed P5-P95
    assert {"Finanziati (media, cumulati)", "In lista d'attesa (media)"} <= set(texts)
    final = data[data["date"] == data["date"].max()].set_index("line")
    for line in ("A", "B"):
        expected = results.kpis[f"projects_financed_{line}"].mean()
        assert final.loc[line, "committed_mean"] == pytest.approx(expected)


# --------------------------------------------------------------------------- 5. KPIs


def test_kpi_distribution_chart_has_three_histograms_of_all_replications(results):
    fig, data = charts.kpi_distribution_chart(results)
    texts = all_texts(drawn(fig))
    axes = chart_axes(fig)
    assert len(axes) == 3
    assert [ax.get_title(loc="left").replace("\n", " ") for ax in axes] == [
        "Valore del fondo all'orizzonte", "Costo pubblico netto",
        "Progetti finanziati (tutte le linee)"]
    assert axes[0].get_ylabel() == "Replicazioni"
    for ax in axes:
        assert sum(p.get_height() for p in ax.patches) == REPLICATIONS
        assert ax.get_xlabel().startswith("mediana ")
    assert len(data) == REPLICATIONS
    assert data["projects_financed"].tolist() == (
        results.kpis["projects_financed_A"] + results.kpis["projects_financed_B"]).tolist()
    assert any(re.fullmatch(r"\d+,\d M€", t) for t in texts)


def test_fees_chart_shows_ranges_only_where_replications_differ(results):
    fig, data = charts.fees_chart(results)
    (ax,) = chart_axes(drawn(fig))
    (ranges,) = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    varies = data["total_p95"] > data["total_p5"]
    assert 0 < varies.sum() < len(data)   # the last years charge nothing in every future
    assert len(ranges.lines[2][0].get_segments()) == varies.sum()


@given(hnp.arrays(np.int64, st.integers(1, 300), elements=st.integers(0, 100_000)))
def test_count_bins_hold_every_value_between_whole_numbers(values):
    edges = charts.count_bins(values)
    counts, _ = np.histogram(values, edges)
    assert counts.sum() == len(values)          # the largest value too
    assert np.all(edges % 1 == 0.5)             # no value sits on an edge
    widths = np.diff(edges)
    assert np.all(widths == widths[0]) and widths[0] >= 1
    assert len(widths) <= 26
    assert edges[0] < values.min() < edges[0] + 1


# --------------------------------------------------------------------------- all


def test_every_chart_draws_into_a_new_figure_or_a_region(results):
    page = new_region(30.0, 8.0)
    regions = page.subfigures(len(charts.CHARTS), 1)
    for spec, region in zip(charts.CHARTS, regions, strict=True):
        fig, data = spec.draw(results, region=region)
        assert fig is page
        assert not data.empty
    assert len(page.subfigs) == len(charts.CHARTS)


# --------------------------------------------------------------------------- comparisons, sweeps


def test_compare_kpi_chart_from_the_wide_comparison_table():
    from simulator.charts_compare import compare_kpi_chart, compare_source

    table = pd.DataFrame({
        "kpi": ["fund_value_end_eur", "absorption_at_eligibility_end"],
        "label": ["x", "y"], "unit": ["EUR", "share"], "baseline": ["base", "base"],
        "base.mean": [4.2e6, 0.8], "base.p5": [3.5e6, 0.4], "base.p50": [4.3e6, 0.81],
        "base.p95": [4.6e6, 0.95], "base.replications": [20, 20],
        "grant.mean": [3.0e6, 0.8], "grant.p5": [2.4e6, 0.4], "grant.p50": [3.1e6, 0.82],
        "grant.p95": [3.8e6, 0.95], "grant.replications": [20, 20],
        "grant.diff_mean": [-1.2e6, 0.0],
    })
    fig, data = compare_kpi_chart(table, source=compare_source(2, 20), subtitle="WECARE")
    texts = all_texts(drawn(fig))
    assert "Confronto tra scenari: indicatori principali" in texts
    assert f"Fonte: fesr-sim {__version__}, confronto di 2 scenari su 20 replicazioni appaiate" \
        in texts
    axes = chart_axes(fig)
    titles = [" ".join(ax.get_title(loc="left").split()) for ax in axes]  # wrapped titles
    assert titles == ["Valore del fondo all'orizzonte",
                      "Assorbimento alla scadenza di ammissibilità"]
    for ax in axes:
        assert len(ax.patches) == 2                          # one bar per alternative
    assert {"4,3 M€", "3,1 M€", "81,0 %", "82,0 %"} <= set(texts)
    assert data[["alternative", "kpi", "p50"]].values.tolist() == [
        ["base", "fund_value_end_eur", 4.3e6], ["grant", "fund_value_end_eur", 3.1e6],
        ["base", "absorption_at_eligibility_end", 0.81],
        ["grant", "absorption_at_eligibility_end", 0.82]]


def test_compare_cash_chart_overlays_one_median_per_alternative(results):
    from simulator.charts_compare import cash_medians, compare_cash_chart

    medians = cash_medians({"base": results, "copy": results})
    fig, data = compare_cash_chart(medians, source="Fonte: test", lang="en",
                                   eligibility_end=results.scenario.fund.eligibility_end)
    texts = all_texts(drawn(fig))
    assert "Scenario comparison: fund cash (median)" in texts
    (ax,) = chart_axes(fig)
    assert len(data_lines(ax)) == 2
    assert {"base", "copy", "Eligibility deadline (31/12/2023)"} <= set(texts)
    assert data.equals(medians)


SWEEP = pd.DataFrame([
    {"lines.A.instrument.grant_share": g, "lines.A.instrument.coverage": c,
     "kpi": "net_public_cost_eur", "unit": "EUR", "p5": 4e5 + g * 4e6,
     "p50": 6e5 + g * 4e6 + c * 1e5, "p95": 1.5e6 + g * 4e6}
    for g in (0.0, 0.1, 0.2, 0.3) for c in (0.6, 0.7)])


def test_sweep_heatmap_has_a_cell_per_point_with_its_value():
    from simulator.charts_compare import sweep_heatmap_chart, sweep_source

    fig, data = sweep_heatmap_chart(SWEEP, "lines.A.instrument.grant_share",
                                    "lines.A.instrument.coverage", "net_public_cost_eur",
                                    source=sweep_source(8, 40))
    texts = all_texts(drawn(fig))
    assert "Sensibilità: Costo pubblico netto" in texts
    ax = chart_axes(fig)[0]
    assert ax.get_xlabel() == "Quota di contributo, linea A"
    assert ax.get_ylabel() == "Quota di costo finanziata, linea A"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0 %", "10 %", "20 %", "30 %"]
    assert len(ax.texts) == 8 and "660 k€" in texts
    assert len(data) == 8


def test_sweep_line_chart_with_and_without_a_second_parameter():
    from simulator.charts_compare import sweep_line_chart

    one = SWEEP[SWEEP["lines.A.instrument.coverage"] == 0.7]
    fig, data = sweep_line_chart(one, "lines.A.instrument.grant_share",
                                 "net_public_cost_eur", source="s")
    (ax,) = chart_axes(drawn(fig))
    assert len(data_lines(ax)) == 1 and len(bands(ax)) == 1
    assert ax.get_ylabel() == "Costo pubblico netto"
    assert list(data["p50"]) == list(one["p50"])
    fig, data = sweep_line_chart(SWEEP, "lines.A.instrument.grant_share",
                                 "net_public_cost_eur", source="s",
                                 by="lines.A.instrument.coverage", lang="en")
    texts = all_texts(drawn(fig))
    (ax,) = chart_axes(fig)
    # One median line per coverage, each with its P5-P95 as error bars (bands of several
    # lines blur into one), moved apart a little so equal lines do not hide each other.
    lines = [line for line in data_lines(ax) if line.get_marker() == "o"]   # not the caps
    assert len(lines) == 2 and bands(ax) == []
    assert len([c for c in ax.containers if isinstance(c, ErrorbarContainer)]) == 2
    shares = sorted(SWEEP["lines.A.instrument.grant_share"].unique())
    step = min(np.diff(shares))
    first, second = (np.asarray(line.get_xdata(), float) for line in lines)
    assert np.all(first < second)
    assert np.allclose((first + second) / 2, shares)
    assert np.all(second - first < 0.2 * step)
    assert "lines: median; bars: P5-P95" in texts
    assert "Share of cost financed, line A: 60%" in texts
    with pytest.raises(ValueError, match="not in the sweep"):
        sweep_line_chart(SWEEP, "lines.A.instrument.grant_share", "leverage", source="s")
