"""The report of a run folder: charts/, report.pdf and report.xlsx, written atomically."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import struct

import numpy as np
import pandas as pd
import pytest
from conftest import BASE_TABLES, SCENARIOS, assert_same_charts, deep_update
from openpyxl import load_workbook
from pypdf import PdfReader

import simulator
from simulator import charts, report
from simulator.labels import loan_label
from simulator.report_pdf import assumption_rows, chart_pages, write_pdf
from simulator.report_xlsx import HEADER_ROW
from simulator.results import load_results
from simulator.runner import LOAN_COLUMNS

REPLICATIONS = 20
TODAY = dt.date(2026, 3, 2)
FIRST = HEADER_ROW + 2          # first data row of a sheet, 1-based as in Excel


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    scenario = simulator.load_scenario(SCENARIOS / "wecare_fesr_2018.toml")
    run = simulator.run(scenario, replications=REPLICATIONS, workers=1)
    return run.save(tmp_path_factory.mktemp("run") / "wecare")


@pytest.fixture(scope="module")
def reported(run_folder):
    """The run folder after ``write_report`` (Italian), and the paths it returned."""
    paths = report.write_report(run_folder, today=TODAY)
    return run_folder, paths


@pytest.fixture(scope="module")
def results(reported):
    return load_results(reported[0])


@pytest.fixture(scope="module")
def pdf_pages(reported) -> list[str]:
    reader = PdfReader(reported[0] / "report.pdf")
    return [page.extract_text() for page in reader.pages]


@pytest.fixture(scope="module")
def workbook(reported):
    return load_workbook(reported[0] / "report.xlsx")


def column(ws, header: str) -> list:
    """The values under a header of a sheet (header on row HEADER_ROW + 1)."""
    headers = [c.value for c in ws[HEADER_ROW + 1]]
    j = headers.index(header) + 1
    return [ws.cell(row=r, column=j).value for r in range(FIRST, ws.max_row + 1)]


# --------------------------------------------------------------------------- files


def test_report_writes_charts_pdf_and_workbook(reported):
    folder, paths = reported
    names = {p.name for p in paths}
    for spec in charts.CHARTS:
        assert {f"{spec.slug}.png", f"{spec.slug}.svg", f"{spec.slug}.csv"} <= names
    assert {"report.pdf", "report.xlsx"} <= names
    assert all(p.exists() and p.stat().st_size > 0 for p in paths)
    assert not [p for p in folder.iterdir() if p.name.startswith(".")], "temporary left over"


def test_pngs_are_200_dpi(reported):
    folder, _paths = reported
    png = (folder / "charts" / "02_erogazioni_cumulate.png").read_bytes()
    width, _height = struct.unpack(">II", png[16:24])
    assert width == 1500                                   # 7.5 in at 200 dpi
    phys = png.index(b"pHYs")
    ppm = struct.unpack(">I", png[phys + 4:phys + 8])[0]
    assert round(ppm * 0.0254) == 200
    svg = (folder / "charts" / "02_erogazioni_cumulate.svg").read_text(encoding="utf-8")
    assert "Erogazioni cumulate ai destinatari e dotazione" in svg   # text kept as text


def test_chart_csvs_hold_the_data_of_the_charts(reported, results):
    folder, _paths = reported
    for spec in charts.CHARTS:
        _fig, data = spec.draw(results)
        saved = pd.read_csv(folder / "charts" / f"{spec.slug}.csv")
        assert list(saved.columns) == list(data.columns)
        assert len(saved) == len(data)
        numeric = data.select_dtypes("number").columns
        np.testing.assert_allclose(saved[numeric].to_numpy(float),
                                   data[numeric].to_numpy(float), atol=0.006)


# --------------------------------------------------------------------------- PDF


def test_pdf_has_cover_summary_charts_and_annex(reported, results, pdf_pages):
    chart_page_count = len(chart_pages(results, charts.RunFacts.of(results)))
    annex = [i for i, text in enumerate(pdf_pages) if "Allegato - scenario risolto" in text]
    assert annex and annex[0] == 2 + chart_page_count
    assert len(pdf_pages) == 2 + chart_page_count + len(annex)
    cover = " ".join(pdf_pages[0].split())       # long titles wrap
    assert results.scenario.title in cover
    assert "2 marzo 2026" in cover                        # report date, Italian
    assert f"fesr-sim {simulator.__version__}" in cover
    digest = results.scenario.hash()
    assert digest[:32] in cover and digest[32:] in cover
    assert "Replicazioni" in cover and "20" in cover


def test_pdf_summary_cites_kpis_with_ranges_and_assumptions(results, pdf_pages):
    # 20 replications: the summary says the percentiles are rough.
    assert "percentili sono stime grezze" in " ".join(pdf_pages[1].split())
    page = pdf_pages[1]
    summary = results.summary.set_index("kpi")
    assert "Sintesi" in page and "Intervallo P5 - P95" in page
    for label in ("Progetti finanziati, linea A", "Finanziamenti erogati",
                  "Assorbimento al 31/12/2023", "Effetto leva", "Costo pubblico netto",
                  "Valore del fondo all'orizzonte"):
        assert label in page, label
    # Italian amounts: 1.234.567 € with dots for thousands, ranges P5 - P95.
    p50 = round(summary.loc["fund_value_end_eur", "p50"] * 100)
    from simulator.money import format_eur
    value = format_eur(p50, decimals=False)
    assert re.fullmatch(r"\d{1,3}(\.\d{3})+ €", value)
    assert value in page
    low = format_eur(round(summary.loc["loans_disbursed_eur", "p5"] * 100), decimals=False)
    high = format_eur(round(summary.loc["loans_disbursed_eur", "p95"] * 100), decimals=False)
    assert f"{low} - {high}" in page
    assert "Ipotesi principali" in page
    for text in ("4.000.000 €", "1.000.000 €", "70 % del costo", "96 mesi (24 mesi)",
                 "Linea A", "Linea B"):
        assert text in page, text


def test_pdf_chart_pages_have_numbered_captions_and_italian_axes(results, pdf_pages):
    chart_text = "\n".join(pdf_pages[2:2 + len(chart_pages(results,
                                                            charts.RunFacts.of(results)))])
    for i, spec in enumerate(charts.CHARTS, start=1):
        assert f"Figura {i}." in chart_text
        assert spec.caption("it")[:40] in chart_text.replace("\n", " ")
    assert re.search(r"\d,\d M€", chart_text)            # 1,2 M€ on the axes
    assert "gen 2020" in chart_text
    assert "Fonte: fesr-sim" in chart_text


def test_pdf_annex_holds_the_resolved_scenario(reported, pdf_pages):
    annex = "\n".join(t for t in pdf_pages if "Allegato - scenario risolto" in t)
    toml = (reported[0] / "scenario.toml").read_text(encoding="utf-8")
    for line in toml.splitlines():
        if line.startswith("[") or line.startswith("endowment"):
            assert line in annex, line


def test_pdf_of_a_drill_down_says_which_replications_ran(tmp_path):
    scenario = simulator.load_scenario(SCENARIOS / "wecare_fesr_2018.toml")
    folder = simulator.run(scenario, replication_ids=[3, 7], workers=1).save(tmp_path / "d")
    write_pdf(load_results(folder), tmp_path / "d.pdf", today=TODAY)
    text = " ".join(" ".join(page.extract_text() for page in
                             PdfReader(tmp_path / "d.pdf").pages).split())
    assert "Eseguite solo le replicazioni 3, 7" in text
    assert "stime grezze" not in text   # few by choice


def test_pdf_in_english(results, tmp_path):
    pages = write_pdf(results, tmp_path / "en.pdf", lang="en", today=TODAY)
    text = [p.extract_text() for p in PdfReader(tmp_path / "en.pdf").pages]
    assert len(text) == pages
    assert "2 March 2026" in text[0]
    assert "Summary" in text[1] and "Key assumptions" in text[1]
    assert "Figure 1." in "\n".join(text) and "Annex - resolved scenario" in "\n".join(text)


def test_an_english_report_next_to_the_italian_one(run_folder, tmp_path):
    from click.testing import CliRunner

    from simulator.cli import main

    folder = tmp_path / "run"
    shutil.copytree(run_folder, folder)
    italian = CliRunner().invoke(main, ["report", str(folder), "-w", "1"])
    assert italian.exit_code == 0, italian.output
    before = (folder / "report.pdf").read_bytes()
    english = CliRunner().invoke(main, ["report", str(folder), "--lang", "en", "-w", "1",
                                        "--out", str(folder / "en")])
    assert english.exit_code == 0, english.output
    assert f"written {folder / 'en' / 'report.pdf'}" in english.output
    assert (folder / "report.pdf").read_bytes() == before   # the Italian one is kept
    assert "Summary" in PdfReader(folder / "en" / "report.pdf").pages[1].extract_text()
    assert sorted(p.name for p in (folder / "en").iterdir()) == ["charts", "report.pdf",
                                                                 "report.xlsx"]
    # Again into the same folder: it holds only a report, which is replaced.
    again = CliRunner().invoke(main, ["report", str(folder), "--lang", "en", "-w", "1",
                                      "--out", str(folder / "en")])
    assert again.exit_code == 0, again.output
    # A folder with other files, another run's say, is refused: nothing of it goes.
    other = tmp_path / "documents"
    (other / "charts").mkdir(parents=True)
    (other / "charts" / "budget.xlsx").write_bytes(b"mine")
    (other / "notes.txt").write_text("mine")
    refused = CliRunner().invoke(main, ["report", str(folder), "--out", str(other)])
    assert refused.exit_code == 2
    assert f"--out: {other}: holds other files (notes.txt ...)" in refused.stderr
    (other / "notes.txt").unlink()   # a charts/ folder of other files is not a report's either
    refused = CliRunner().invoke(main, ["report", str(folder), "--out", str(other)])
    assert refused.exit_code == 2
    assert "holds other files (charts/budget.xlsx)" in refused.stderr
    assert (other / "charts" / "budget.xlsx").read_bytes() == b"mine"
    assert sorted(p.name for p in other.iterdir()) == ["charts"]


def test_a_failed_report_into_a_new_folder_leaves_no_folder(run_folder, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(report, "write_pdf", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        report.write_report(run_folder, out=tmp_path / "new" / "deep" / "en", workers=1)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- workbook


def test_workbook_sheets_layout_and_formats(workbook):
    names = workbook.sheetnames
    assert names[:4] == ["Sintesi", "Serie", "Progetti", "Scenario"]
    assert names[4:] == [spec.slug for spec in charts.CHARTS]
    for ws in workbook.worksheets:
        assert ws.freeze_panes == f"A{FIRST}", ws.title
        assert ws.cell(row=HEADER_ROW + 1, column=1).font.b, ws.title
        assert ws.column_dimensions["A"].width > 5
    sintesi = workbook["Sintesi"]
    headers = [c.value for c in sintesi[HEADER_ROW + 1]]
    assert headers[:7] == ["Indicatore", "Codice", "Unità", "Media", "P5", "Mediana (P50)",
                           "P95"]
    row = column(sintesi, "Codice").index("fund_value_end_eur") + FIRST
    assert sintesi.cell(row=row, column=6).number_format == '#,##0 "€"'
    row = column(sintesi, "Codice").index("absorption_at_eligibility_end") + FIRST
    assert sintesi.cell(row=row, column=6).number_format == "0.0 %"


def test_workbook_summary_equals_summary_csv(workbook, results):
    ws = workbook["Sintesi"]
    codes = column(ws, "Codice")
    assert codes == results.summary["kpi"].tolist()
    for header, col in (("Media", "mean"), ("P5", "p5"), ("Mediana (P50)", "p50"),
                        ("P95", "p95")):
        got = np.array([np.nan if v is None else v for v in column(ws, header)], float)
        np.testing.assert_allclose(got, results.summary[col].to_numpy(float), rtol=1e-9)
    assert column(ws, "Indicatore")[codes.index("net_public_cost_eur")] == \
        "Costo pubblico netto"
    # Every KPI defined, in Italian, with its unit in words.
    definitions = column(ws, "Definizione (formula)")
    assert all(definitions), [c for c, d in zip(codes, definitions, strict=True) if not d]
    assert definitions[codes.index("net_public_cost_eur")].startswith("contributi erogati")
    assert definitions[codes.index("disbursed_eu_eur")].startswith("finanziamenti e contributi")
    assert set(column(ws, "Unità")) <= {"numero", "euro", "rapporto", "quota", "mesi", "%"}


def test_every_kpi_definition_has_its_italian_text():
    from simulator.labels import KPI_DEFINITIONS_IT, kpi_definition
    from simulator.metrics import KPI_DEFINITIONS

    assert set(KPI_DEFINITIONS_IT) == set(KPI_DEFINITIONS)
    assert kpi_definition("leverage", "en") == KPI_DEFINITIONS["leverage"][1]
    assert kpi_definition("projects_financed_B", "it") == \
        KPI_DEFINITIONS_IT["projects_financed_<line>"]


def test_workbook_series_are_percentiles_by_line_in_euros(workbook, results):
    ws = workbook["Serie"]
    lines, items = column(ws, "Linea"), column(ws, "Voce (codice)")
    dates, p50, p95 = column(ws, "Fine mese"), column(ws, "Mediana (P50)"), column(ws, "P95")
    ts = results.timeseries
    months = ts["date"].nunique()
    assert len(lines) == 3 * months * 21
    date = sorted(ts["date"].unique())[40]
    cash = ts[(ts["line"] == "B") & (ts["date"] == date)]["cash"].to_numpy() / 100
    i = next(k for k in range(len(lines)) if lines[k] == "B" and items[k] == "cash"
             and pd.Timestamp(dates[k]) == pd.Timestamp(date))
    assert p50[i] == pytest.approx(np.percentile(cash, 50))
    assert p95[i] == pytest.approx(np.percentile(cash, 95))
    assert ws.cell(row=FIRST + i, column=column_index(ws, "P95")).number_format == \
        '#,##0 "€"'
    committed = next(k for k in range(len(lines)) if items[k] == "committed")
    assert ws.cell(row=FIRST + committed, column=column_index(ws, "P95")).number_format \
        == "#,##0.0"


def column_index(ws, header: str) -> int:
    return [c.value for c in ws[HEADER_ROW + 1]].index(header) + 1


def test_workbook_loan_book_of_the_median_replication(workbook, results):
    ws = workbook["Progetti"]
    rep = charts.median_replication(results.kpis)
    book = results.loans[results.loans["replication"] == rep]
    assert set(column(ws, "Replicazione")) == {rep}
    assert column(ws, "Progetto") == book["project_id"].tolist()
    np.testing.assert_allclose(column(ws, "Finanziamento del fondo"),
                               book["public_loan"].to_numpy() / 100)
    assert ws.cell(row=FIRST, column=column_index(ws, "Finanziamento del fondo")) \
        .number_format == '#,##0.00 "€"'
    commitment = column(ws, "Concessione")
    assert [d.date() for d in commitment] == book["commitment_date"].tolist()
    assert ws.cell(row=FIRST, column=column_index(ws, "Concessione")).number_format == \
        "dd/mm/yyyy"
    assert set(column(ws, "Stato")) <= {"in ammortamento", "rimborsato", "estinto in anticipo",
                                         "in default", "revocato"}
    # Every column has its label, and the de minimis amounts are euros too.
    assert [c.value for c in ws[HEADER_ROW + 1]] == [loan_label(c) for c in LOAN_COLUMNS]
    for name, header in (("de_minimis_ceiling", "Massimale de minimis"),
                         ("prior_aid", "Aiuti già ricevuti nel periodo")):
        np.testing.assert_allclose(column(ws, header), book[name].to_numpy() / 100)
        assert ws.cell(row=FIRST, column=column_index(ws, header)).number_format == \
            '#,##0.00 "€"'
    assert column(ws, "Oltre il massimale") == book["over_ceiling"].tolist()


def test_workbook_scenario_sheet_has_dotted_paths(workbook, results):
    ws = workbook["Scenario"]
    values = dict(zip(column(ws, "Parametro"), column(ws, "Valore"), strict=True))
    assert values["fund.endowment"] == 5_000_000
    assert values["lines.A.instrument.public_loan_share"] == 0.7
    assert values["lines.A.disbursement.tranches.1.at"] == "completion"
    assert values["run.scenario_hash"] == results.scenario.hash()
    assert values["fund.eligibility_end"].date() == dt.date(2023, 12, 31)


def test_workbook_chart_sheets_equal_the_chart_csvs(workbook, reported):
    folder, _paths = reported
    for spec in charts.CHARTS:
        ws = workbook[spec.slug]
        saved = pd.read_csv(folder / "charts" / f"{spec.slug}.csv")
        assert [c.value for c in ws[HEADER_ROW + 1]] == list(saved.columns)
        assert ws.max_row - HEADER_ROW - 1 == len(saved)
        for col in saved.select_dtypes("number").columns:
            np.testing.assert_allclose(np.array(column(ws, col), float), saved[col],
                                       atol=0.006, err_msg=f"{spec.slug}.{col}")


def test_workbook_years_and_replications_are_plain_numbers(workbook):
    ws = workbook["05_commissioni"]
    headers = [c.value for c in ws[HEADER_ROW + 1]]
    year = ws.cell(row=FIRST, column=headers.index("year") + 1)
    assert year.value == 2018 and year.number_format == "0"   # not 2.018 €
    ws = workbook["06_distribuzione_indicatori"]
    headers = [c.value for c in ws[HEADER_ROW + 1]]
    assert ws.cell(row=FIRST, column=headers.index("replication") + 1).number_format == "0"


def test_workbook_columns_are_wide_enough_for_the_largest_amount(tmp_path):
    # A 1 bn€ fund's amounts in the summary's columns, whose format changes by row.
    from simulator.report_xlsx import EURO, SHARE, Book

    book = Book(tmp_path / "wide.xlsx")
    frame = pd.DataFrame({"kpi": ["fund_value_end_eur", "absorption"],
                          "mean": [1_000_000_000.0, 0.8], "count": [18_879, 3]})
    book.table("Sintesi", "t", "n", frame, row_formats={"mean": [EURO, SHARE]})
    book.close()
    ws = load_workbook(tmp_path / "wide.xlsx")["Sintesi"]
    assert ws.column_dimensions["B"].width >= len("1.000.000.000 €") + 1
    assert ws.column_dimensions["C"].width >= len("18.879") + 1


def test_a_workbook_without_the_charts_computes_their_data_without_drawing(
        results, tmp_path, monkeypatch):
    """On several processes the workbook is written without the charts: it computes
    their data alone (no figure), and its sheets are those written from the charts."""
    drawn = charts.all_charts(results)
    report.write_workbook(results, tmp_path / "drawn.xlsx", charts=drawn)

    def no_figure(*args, **kwargs):
        raise AssertionError("a figure was drawn")

    monkeypatch.setattr(charts, "new_region", no_figure)
    report.write_workbook(results, tmp_path / "data.xlsx")
    one, other = (load_workbook(tmp_path / name, read_only=True)
                  for name in ("drawn.xlsx", "data.xlsx"))
    assert one.sheetnames == other.sheetnames
    for name in one.sheetnames:
        assert list(one[name].iter_rows(values_only=True)) == \
            list(other[name].iter_rows(values_only=True)), name


def test_workbook_of_a_chosen_replication(results, tmp_path):
    report.write_workbook(results, tmp_path / "r.xlsx", replication=4)
    ws = load_workbook(tmp_path / "r.xlsx", read_only=True)["Progetti"]
    reps = {row[0] for row in ws.iter_rows(min_row=FIRST, values_only=True)}
    assert reps == {4}
    assert "replicazione n. 4" in ws.cell(row=2, column=1).value


def test_report_refuses_a_replication_not_in_the_run(run_folder):
    with pytest.raises(ValueError, match="not in the run"):
        report.write_report(run_folder, replication=500)


# --------------------------------------------------------------------------- atomicity


def test_a_failure_leaves_the_previous_report_and_no_temporary_files(reported, tmp_path,
                                                                     monkeypatch):
    copy = tmp_path / "run"
    shutil.copytree(reported[0], copy)
    before = {p.name: p.read_bytes() for p in (copy / "charts").iterdir()}
    pdf = (copy / "report.pdf").read_bytes()

    def charts_written(_results, folder, _lang="it"):
        folder.mkdir(parents=True)
        (folder / "01_fondo_disponibile.png").write_bytes(b"new")
        return {}

    def boom(*_args, **_kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(report, "write_charts", charts_written)
    monkeypatch.setattr(report, "write_pdf", lambda _r, path, *a, **k: path.write_bytes(b"x"))
    monkeypatch.setattr(report, "write_workbook", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        report.write_report(copy, today=TODAY, workers=1)
    assert {p.name: p.read_bytes() for p in (copy / "charts").iterdir()} == before
    assert (copy / "report.pdf").read_bytes() == pdf
    assert not [p for p in copy.iterdir() if p.name.startswith(".")]


def test_a_failure_on_a_fresh_folder_writes_nothing(run_folder, tmp_path, monkeypatch):
    copy = tmp_path / "run"
    shutil.copytree(run_folder, copy, ignore=shutil.ignore_patterns("charts", "report.*"))

    def boom(*_args, **_kwargs):
        raise OSError("no space left on device")

    monkeypatch.setattr(report, "write_charts", boom)
    with pytest.raises(OSError, match="no space"):
        report.write_report(copy, today=TODAY, workers=1)
    assert sorted(p.name for p in copy.iterdir()) == sorted(
        p.name for p in run_folder.iterdir() if p.name not in report.REPORT_FILES)


def test_a_part_that_fails_on_another_process_leaves_nothing(run_folder, tmp_path, monkeypatch):
    copy = tmp_path / "run"
    shutil.copytree(run_folder, copy, ignore=shutil.ignore_patterns("charts", "report.*"))

    def boom(*_args, **_kwargs):
        raise OSError("no space left on device")

    monkeypatch.setattr(report, "write_workbook", boom)   # forked helpers see it too
    with pytest.raises(OSError, match="no space"):
        report.write_report(copy, today=TODAY, workers=2)
    assert sorted(p.name for p in copy.iterdir()) == sorted(
        p.name for p in run_folder.iterdir() if p.name not in report.REPORT_FILES)


def test_the_report_is_the_same_on_one_process_or_several(run_folder, tmp_path):
    # Data and workbook to the bit. Parts are drawn by whichever process is free,
    # and a text's extent can differ in its last bits with what that process drew
    # before: vector coordinates agree to far below a pixel, and pictures (so far
    # always the same bytes) could at most differ in a pixel at an edge.
    written = {}
    for workers in (1, 2):
        copy = tmp_path / f"run{workers}"
        shutil.copytree(run_folder, copy, ignore=shutil.ignore_patterns("charts", "report.*"))
        report.write_report(copy, today=TODAY, workers=workers)
        written[workers] = copy
    one, two = written[1], written[2]
    assert_same_charts(one / "charts", two / "charts")
    pages_a = [page.extract_text() for page in PdfReader(one / "report.pdf").pages]
    pages_b = [page.extract_text() for page in PdfReader(two / "report.pdf").pages]
    assert pages_a == pages_b
    book_a, book_b = load_workbook(one / "report.xlsx"), load_workbook(two / "report.xlsx")
    assert book_a.sheetnames == book_b.sheetnames
    for sheet in book_a.sheetnames:
        assert [[c.value for c in row] for row in book_a[sheet].iter_rows()] == \
            [[c.value for c in row] for row in book_b[sheet].iter_rows()], sheet


def test_assumptions_of_a_line_that_replays_a_pipeline(make_scenario):
    # The line's Poisson fields (inherited here from the base tables) are not used.
    scenario = make_scenario(
        {"lines": {"A": {"applications": {"mode": "pipeline", "pipeline": "pipeline.csv"}}}},
        pipeline="date,line,eligible_cost\n2020-03-10,A,100000\n2020-04-10,A,300000\n"
                 "2020-05-10,A,200000\n")
    rows = {row[0]: row[1:] for row in assumption_rows(scenario, "it")}
    assert rows["Domande"] == ["da file: 3 domande"]
    assert rows["Costo tipico dei progetti"] == ["da file: mediana 200.000 €"]
    english = {row[0]: row[1:] for row in assumption_rows(scenario, "en")}
    assert english["Applications"] == ["from file: 3 applications"]
    # A line that takes no row of the file; a Poisson line next to a pipeline line.
    line_b = deep_update(BASE_TABLES["lines"]["A"], {"applications": {
        "mode": "pipeline", "pipeline": "pipeline.csv"}})
    two = make_scenario({"fund": {"endowment": 2_000_000}, "lines": {
        "A": {"applications": {"mode": "poisson"}}, "B": line_b}},
        pipeline="date,line,eligible_cost\n2020-03-10,B,100000\n")
    rows = {row[0]: row[1:] for row in assumption_rows(two, "it")}
    assert rows["Domande"] == ["0,0 al mese", "da file: 1 domanda"]
    empty = make_scenario({"fund": {"endowment": 2_000_000}, "lines": {
        "A": {"applications": {"mode": "pipeline", "pipeline": "pipeline.csv"}}, "B": line_b}},
        pipeline="date,line,eligible_cost\n2020-03-10,A,100000\n")
    rows = {row[0]: row[1:] for row in assumption_rows(empty, "it")}
    assert rows["Domande"] == ["da file: 1 domanda", "da file: 0 domande"]
    assert rows["Costo tipico dei progetti"][1] == "-"


def test_a_report_reads_the_timeseries_column_by_column(reported, tmp_path, monkeypatch):
    """A large run's report never holds its whole timeseries or loan book: each part
    reads the columns and the replication it draws (on 10,000 replications of the
    reference, a peak of ~0.6 GiB instead of ~3 GiB), with the same chart data."""
    from simulator.results import Results

    folder, _paths = reported
    copy = tmp_path / "run"
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("charts", "report.*"))

    def whole_table(_self):
        raise AssertionError("a whole table was read")

    monkeypatch.setattr(Results, "timeseries", property(whole_table))
    monkeypatch.setattr(Results, "loans", property(whole_table))
    report.write_report(copy, today=TODAY, workers=1)
    for csv in sorted((folder / "charts").glob("*.csv")):
        assert csv.read_bytes() == (copy / "charts" / csv.name).read_bytes(), csv.name


def test_lazy_results_read_columns_and_replications_as_the_loaded_table(run_folder):
    eager, lazy = load_results(run_folder), load_results(run_folder, lazy=True)
    assert lazy.timeseries_columns() == eager.timeseries_columns()
    assert lazy.layout.lines == eager.layout.lines
    assert np.array_equal(lazy.layout.replications, eager.layout.replications)
    assert list(pd.to_datetime(lazy.layout.dates)) == list(pd.to_datetime(eager.layout.dates))
    for col in ("cash", "waiting", "loans_disbursed"):
        assert np.array_equal(lazy.series(col), eager.series(col))
    for col in ("cash", "treasury_interest", "grants_recovered", "legacy"):
        assert lazy.has_nonzero(col) == eager.has_nonzero(col) == \
            bool(np.abs(eager.series(col)).max() > 0), col
    assert lazy.has_nonzero("cash") and not lazy.has_nonzero("treasury_interest")
    rep = int(eager.kpis["replication"].iloc[3])
    pd.testing.assert_frame_equal(lazy.replication_loans(rep), eager.replication_loans(rep))
    got, want = lazy.replication_timeseries(rep), eager.replication_timeseries(rep)
    assert len(got) == len(want) > 0
    for col in eager.timeseries_columns():
        if col != "date":
            assert got[col].tolist() == want[col].tolist(), col
    assert lazy._timeseries is None and lazy._loans is None   # neither table was read whole
