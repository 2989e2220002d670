"""``fesr-sim report RUN_DIR``: charts, PDF brief and Excel workbook of a run folder.

:func:`write_report` reads a run folder and writes into it:

* ``charts/``: every chart as ``<name>.png`` (200 dpi), ``<name>.svg`` and
  ``<name>.csv`` (the data drawn, amounts in euros);
* ``report.pdf``: cover, one-page summary, one page per chart with its
  caption, annex with the resolved scenario (:mod:`simulator.report_pdf`);
* ``report.xlsx``: sheets ``Sintesi``, ``Serie``, ``Progetti``, ``Scenario``
  and one sheet per chart (:mod:`simulator.report_xlsx`).

Everything is first written into a hidden temporary folder inside the folder
it goes to (the run folder, or ``out``) and moved into place only when all
of it has been written: a failure leaves the previous report (or none), no
half-written file, and no folder made for ``out``.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from functools import partial
from pathlib import Path

import pandas as pd

from .charts import CHARTS, Chart, median_replication
from .charts_style import DPI, check_lang, forget_text_measures, house_style, save_figure
from .errors import InputError, Problem
from .report_pdf import write_pdf
from .report_xlsx import (
    Book,
    write_chart_sheet,
    write_loans,
    write_scenario,
    write_series,
    write_summary,
)
from .results import Results, load_results, missing_folders, remove_if_empty, staging_folder

__all__ = ["REPORT_FILES", "write_charts", "write_doc_figures", "write_report",
           "write_workbook"]

REPORT_FILES = ("charts", "report.pdf", "report.xlsx")

# Charts whose numbers are counts, not euros (for the workbook's formats).
_COUNT_CHARTS = ("04_progetti",)


def write_report(folder: Path | str, lang: str = "it", replication: int | None = None,
                 today: dt.date | None = None, workers: int | None = None,
                 out: Path | str | None = None) -> list[Path]:
    """Write ``charts/``, ``report.pdf`` and ``report.xlsx`` into a run folder (or into
    ``out``: a report in another language next to the run folder's, say).

    ``replication`` chooses the loan book of the ``Progetti`` sheet (default:
    the median replication, as in the sources-and-uses chart).  ``workers``:
    processes that write the files, this one included (default: all cores;
    1: one after the other). Returns the paths written (chart files, then
    the PDF and the workbook).
    """
    check_lang(lang)
    folder = Path(folder)
    # Columns and replications are read as each part needs them: a large run's
    # timeseries is never held whole.
    results = load_results(folder, lazy=True)
    if replication is not None and replication not in set(results.kpis["replication"]):
        raise ValueError(f"replication {replication} is not in the run "
                         f"({results.kpis['replication'].min()}..."
                         f"{results.kpis['replication'].max()})")
    target = folder if out is None else Path(out)
    _check_target(folder, target)
    made = missing_folders(target)
    target.mkdir(parents=True, exist_ok=True)
    try:
        tmp = staging_folder(target, prefix=".report-", suffix=".partial")
        try:
            _write_parts(results, tmp, lang, today, replication, workers)
            return _move_into_place(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        remove_if_empty(made)
        raise


def _check_target(folder: Path, target: Path) -> None:
    """A report replaces the ``charts/``, PDF and workbook of the folder it goes to: another
    folder than the run's must hold nothing else (it could be another run's, or a
    user's documents, whose files would go)."""
    if not target.exists() or target.resolve() == folder.resolve():
        return
    if not target.is_dir():
        raise InputError([Problem("--out", str(target), "is a file: name a folder")])
    others = sorted(path.name for path in target.iterdir()
                    if path.name not in REPORT_FILES and not path.name.startswith(".report-"))
    charts = target / "charts"
    if charts.is_dir():   # replaced whole: only a report's charts may be in it
        drawn = {f"{spec.slug}{suffix}" for spec in CHARTS for suffix in (".png", ".svg", ".csv")}
        others += sorted(f"charts/{path.name}" for path in charts.iterdir()
                         if path.name not in drawn)
    if others:
        raise InputError([Problem("--out", str(target), f"holds other files ({others[0]}"
                                  f"{' ...' if len(others) > 1 else ''}): name a new or empty "
                                  "folder, or one that holds only a report")])


# The report's files as parts that processes take as they come free: the two
# longest first (seconds each on a large run), then the charts one by one.
_PARTS = ("report.pdf", "report.xlsx", *(spec.slug for spec in CHARTS))


def _write_parts(results: Results, tmp: Path, lang: str, today: dt.date | None,
                 replication: int | None, workers: int | None) -> None:
    """Every file of the report into ``tmp``, on ``workers`` processes.

    Each part is drawn by one process from the same data: chart data,
    pictures and workbook do not depend on the number of processes, vector
    files hardly (:func:`forget_text_measures`). On several, the workbook
    computes the charts' data for itself (without drawing them) rather than
    waiting for the charts.
    """
    from .executors import default_workers

    workers = workers or default_workers()
    if workers == 1:
        charts = write_charts(results, tmp / "charts", lang)
        forget_text_measures()
        write_pdf(results, tmp / "report.pdf", lang, today=today)
        write_workbook(results, tmp / "report.xlsx", lang, charts, replication)
        return
    from .pool import results_in_order

    _ = results.layout   # read once here, not once per process
    write = partial(_write_part, results, tmp, lang, today, replication)
    for _ in results_in_order(write, [[i] for i in range(len(_PARTS))],
                              helpers=min(workers, len(_PARTS)) - 1, window=len(_PARTS)):
        pass


def _write_part(results: Results, tmp: Path, lang: str, today: dt.date | None,
                replication: int | None, part: list[int]) -> None:
    name = _PARTS[part[0]]
    forget_text_measures()
    if name == "report.pdf":
        write_pdf(results, tmp / name, lang, today=today)
    elif name == "report.xlsx":
        write_workbook(results, tmp / name, lang, None, replication)
    else:
        write_charts(results, tmp / "charts", lang, only=(name,))


def write_charts(results: Results, folder: Path, lang: str = "it",
                 only: tuple[str, ...] | None = None) -> dict[str, Chart]:
    """Every chart (or those named in ``only``) as PNG, SVG and CSV of its data into
    ``folder``; return the charts."""
    folder.mkdir(parents=True, exist_ok=True)
    charts: dict[str, Chart] = {}
    for spec in CHARTS:
        if only is not None and spec.slug not in only:
            continue
        forget_text_measures()
        chart = spec.draw(results, lang=lang)
        save_figure(chart.figure, folder / spec.slug)
        chart.data.to_csv(folder / f"{spec.slug}.csv", index=False, float_format="%.2f")
        charts[spec.slug] = chart
    return charts


def write_workbook(results: Results, path: Path, lang: str = "it",
                   charts: dict[str, Chart] | None = None,
                   replication: int | None = None) -> None:
    """The Excel workbook of a run (sheets described in :mod:`simulator.report_xlsx`).

    ``charts``: the report's charts, when drawn already; otherwise their data
    are computed here, without drawing them.
    """
    chart_data = {slug: chart.data for slug, chart in charts.items()} if charts is not None \
        else {spec.slug: spec.data(results, lang=lang) for spec in CHARTS}
    scenario = results.scenario
    title = f"{scenario.title} - fesr-sim"
    median = median_replication(results.kpis)
    rep = median if replication is None else replication
    if lang == "it":
        which = f"replicazione mediana (n. {rep})" if rep == median else \
            f"replicazione n. {rep}"
    else:
        which = f"median replication (no. {rep})" if rep == median else f"replication no. {rep}"
    book = Book(path)
    try:
        write_summary(book, results.summary, title, lang)
        write_series(book, results, title, lang)
        write_loans(book, results.replication_loans(rep), rep, title, lang, which)
        write_scenario(book, scenario, results.manifest or {}, title, lang)
        for spec in CHARTS:
            write_chart_sheet(book, spec.slug, title, spec.caption(lang), chart_data[spec.slug],
                              money=spec.slug not in _COUNT_CHARTS, lang=lang)
        book.workbook.set_properties({"title": title, "author": "fesr-sim",
                                      "comments": f"scenario {scenario.name}"})
    finally:
        book.close()


def _move_into_place(tmp: Path, folder: Path) -> list[Path]:
    """Rename the finished files over the old ones (each rename is atomic)."""
    written: list[Path] = []
    charts = folder / "charts"
    old = None
    if charts.exists():
        old = folder / f".charts-old-{os.getpid()}"
        os.rename(charts, old)
    os.rename(tmp / "charts", charts)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    written += sorted(charts.iterdir())
    for name in ("report.pdf", "report.xlsx"):
        os.replace(tmp / name, folder / name)
        written.append(folder / name)
    return written


DOC_FIGURES = ("01_fondo_disponibile", "03_fonti_impieghi")


def write_doc_figures(folder: Path | str, out: Path | str = Path("docs/img"),
                      names: tuple[str, ...] = DOC_FIGURES, lang: str = "it") -> list[Path]:
    """The README's figures: chosen charts of a run folder as PNG (200 dpi) into ``out``."""
    results = load_results(folder)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    specs = {spec.slug: spec for spec in CHARTS}
    written = []
    for name in names:
        chart = specs[name].draw(results, lang=lang)
        png = out / f"{name}.png"
        tmp = out / f".{name}.png.partial"
        with house_style():
            chart.figure.savefig(tmp, dpi=DPI, format="png", metadata={"Software": None})
        os.replace(tmp, png)
        written.append(png)
    return written


def chart_frames(folder: Path | str) -> dict[str, pd.DataFrame]:
    """The CSV data of every chart of a run folder's report, by chart name."""
    folder = Path(folder) / "charts"
    return {spec.slug: pd.read_csv(folder / f"{spec.slug}.csv") for spec in CHARTS}
