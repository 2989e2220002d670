"""The verbs for deciding between alternatives: ``compare``, ``sweep`` and ``solve``.

Plain click commands, registered on the ``fesr-sim`` group by :mod:`simulator.cli`.
As every verb, they turn an :class:`~simulator.errors.InputError` into one
line per mistake on standard error and exit code 2, without a traceback;
Ctrl-C exits with 130 (a termination request with 143) and leaves no
half-written folder (a sweep keeps the points it finished, and resumes from
them).
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Callable, Iterator
from functools import wraps
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from .console import note_more_workers_than_cores, stopped
from .errors import InputError, Problem

err_console = Console(stderr=True, highlight=False, soft_wrap=True)
console = Console(highlight=False)


def note_engine(scenario: Any, said: set[str]) -> None:
    """Say once why scenarios run on the SimPy model, if some do (``said``: notes said;
    ``fesr-sim run`` and the verbs here)."""
    from rich.markup import escape

    from .results import slow_engine_note

    note = slow_engine_note(scenario)
    if note is not None and note not in said:
        said.add(note)
        err_console.print(f"[cyan]note[/cyan] {escape(note)}", markup=True)

EXIT_INPUT = 2

#: KPIs shown in the sweep's terminal table unless --kpi says otherwise.
SWEEP_KPIS = ("fund_value_end_eur", "grants_paid_eur", "losses_eur", "net_public_cost_eur")


def _print_problems(problems: list[Problem]) -> None:
    from rich.markup import escape

    for problem in problems:
        err_console.print(f"[red]error[/red] {escape(str(problem))}", markup=True)


def _input_errors_exit(func: Callable) -> Callable:
    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except InputError as exc:
            _print_problems(exc.problems)
            sys.exit(EXIT_INPUT)
    return wrapper


def _wide() -> None:
    if not console.is_terminal:
        console.width = max(console.width, 160)  # files and pipes: no wrapped rows


# -- options shared by the three verbs -------------------------------------------------------

def _run_options(func: Callable) -> Callable:
    options = [
        click.option("--replications", "-n", type=click.IntRange(min=1), default=None,
                     help="Replications per scenario (default: the scenario's)."),
        click.option("--seed", type=click.IntRange(min=0, max=2**63 - 1), default=None,
                     help="Master seed, the same for every scenario (default: the "
                          "scenario's)."),
        click.option("--workers", "-w", type=click.IntRange(min=1), default=None,
                     callback=note_more_workers_than_cores,
                     help="Processes that simulate, this one included "
                          "(default: all cores; 1 = serial)."),
        click.option("--scheduler", metavar="tcp://HOST:PORT", default=None,
                     help="Run on a Dask distributed cluster instead of local processes."),
        click.option("--out", type=click.Path(path_type=Path), default=None,
                     help="Folder to write (default: under results/)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@contextlib.contextmanager
def _client(scheduler: str | None) -> Iterator[Any]:
    if scheduler is None:
        yield None
        return
    from .executors import connect

    client = connect(scheduler)
    try:
        yield client
    finally:
        client.close()


def _progress():
    """Replications' progress on standard error (:mod:`simulator.cli_progress`), imported
    when a verb runs: ``fesr-sim --help`` does not load numpy."""
    from .cli_progress import replication_progress

    return replication_progress(err_console)


# -- formats ------------------------------------------------------------------------------------

def _value(value: float, unit: str) -> str:
    from .labels import kpi_value

    return kpi_value(value, unit)


def _signed(value: float, unit: str, short: bool = False, like: float | None = None) -> str:
    """A difference with its sign: +1,2 M€, -3,0; a difference that shows as 0 has none.

    A difference of shares or percentages is in percentage points (``+28,9 p.p.``):
    "+28,9 %" would read as a relative change. ``like``: the amount whose unit
    (M€, k€, €) a short amount takes, so the two ends of an interval share one.
    """
    if unit in ("share", "%"):
        text = _points(value, unit)
    else:
        text = _short(value, unit, like) if short else _value(value, unit)
    if not any(c in "123456789" for c in text):
        return text.lstrip("-")
    return f"+{text}" if value > 0 else text


def _points(value: float, unit: str) -> str:
    """A difference of shares (0.25) or of percentages (25.0) in percentage points."""
    from .money import format_number

    if math.isnan(value):
        return _value(value, unit)
    points = value * 100 if unit == "share" else value
    return f"{format_number(points, 'it', 1 if unit == 'share' else 2)} p.p."


def _interval(low: float, high: float, unit: str, signed: bool = False) -> str:
    if math.isnan(low) or math.isnan(high):
        return "-"
    like = max(abs(low), abs(high))
    if signed:
        return f"[{_signed(low, unit, True, like)}; {_signed(high, unit, True, like)}]"
    return f"[{_short(low, unit, like)}; {_short(high, unit, like)}]"


def _short(value: float, unit: str, like: float | None = None) -> str:
    """A compact value for wide tables: 4,25 M€, 850 k€; other units as usual. ``like``:
    the amount whose size chooses the unit (default: ``value``'s own)."""
    from .money import format_keur, format_meur

    if unit != "EUR" or math.isnan(value):
        return _value(value, unit)
    cents = round(value * 100)
    size = abs(value) if like is None else like
    if size >= 1_000_000:
        return format_meur(cents, digits=2)
    if size >= 10_000:
        return format_keur(cents, digits=0)
    return _value(value, unit)


def _label(kpi: str, unit: str = "") -> str:
    from .labels import kpi_label

    return kpi_label(kpi, unit)


# -- compare ------------------------------------------------------------------------------------

def _comparison_tables(comparison: Any) -> list[Table]:
    """One table per alternative against the baseline: means and paired differences."""
    base = comparison.baseline
    n = len(comparison.replication_ids)
    tables = []
    for alt in comparison.alternatives:
        if alt.name == base:
            continue
        table = Table(title=f"{alt.name} rispetto a {base}: {n} replicazioni appaiate "
                      f"(seed {comparison.seed})", title_justify="left", header_style="bold")
        table.add_column("KPI")   # a narrow terminal wraps the labels, never a number
        table.add_column(f"{base}\nmedia", justify="right", no_wrap=True)
        table.add_column(f"{alt.name}\nmedia", justify="right", no_wrap=True)
        table.add_column("differenza\nmedia", justify="right", no_wrap=True)
        table.add_column("IC 90 %\ndella media", justify="right", no_wrap=True)
        table.add_column("90 % delle repliche\n(P5; P95)", justify="right", no_wrap=True)
        for row in comparison.table.to_dict("records"):
            unit = row["unit"]
            table.add_row(
                _label(row["kpi"], unit), _short(row[f"{base}.mean"], unit),
                _short(row[f"{alt.name}.mean"], unit),
                _signed(row.get(f"{alt.name}.diff_mean", math.nan), unit, True),
                _interval(row.get(f"{alt.name}.diff_mean_ci90_low", math.nan),
                          row.get(f"{alt.name}.diff_mean_ci90_high", math.nan), unit, True),
                _interval(row.get(f"{alt.name}.diff_p5_paired", math.nan),
                          row.get(f"{alt.name}.diff_p95_paired", math.nan), unit, True))
        tables.append(table)
    return tables


@click.command()
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--baseline", metavar="NAME", default=None,
              help="The alternative the others are compared with (default: the first).")
@_run_options
@_input_errors_exit
def compare(sources: tuple[Path, ...], baseline: str | None, replications: int | None,
            seed: int | None, workers: int | None, scheduler: str | None,
            out: Path | None) -> None:
    """Compare scenarios (files or run folders) on paired replications.

    Every scenario runs with the same seed and replication ids, so each
    difference is measured in the same simulated futures. Writes
    comparison.csv and each scenario's KPI table to a comparison folder.
    """
    from . import compare as comparing

    if out is not None and out.exists():
        raise InputError([Problem("--out", str(out), "already exists: choose another folder")])

    said: set[str] = set()

    def announce(alt: Any, count: int) -> None:
        bar.start(alt.name, count)
        err_console.print(f"esecuzione di {alt.name} ({alt.source}): {count} replicazioni")
        note_engine(alt.scenario, said)

    try:
        with _client(scheduler) as client, _progress() as bar:
            result = comparing.compare(list(sources), baseline=baseline, seed=seed,
                                       replications=replications, workers=workers,
                                       client=client, progress=bar, on_start=announce)
            folder = result.save(out or comparing.default_folder(), command=sys.argv)
    except KeyboardInterrupt:
        stopped("interrotto: nessuna cartella di confronto scritta")
    _wide()
    for table in _comparison_tables(result):
        console.print(table)
    console.print("p.p.: punti percentuali. "
                  "IC 90 % della media: intervallo di confidenza (t di Student) della "
                  "differenza media; 90 % delle repliche: P5-P95 delle differenze appaiate.")
    console.print(f"Confronto in [bold]{folder}[/bold]")


# -- sweep --------------------------------------------------------------------------------------

def _check_kpis(kpis: tuple[str, ...], scenario: Any) -> list[str]:
    from .solve import kpi_choices

    choices = kpi_choices(scenario)
    wrong = [k for k in kpis if k not in choices]
    if wrong:
        raise InputError([Problem("--kpi", k, f"unknown KPI; KPIs: {', '.join(choices)}")
                          for k in wrong])
    return list(kpis) or list(SWEEP_KPIS)


def _sweep_table(result: Any, kpis: list[str]) -> Table:
    from .charts_compare import param_values
    from .labels import param_label

    paths = list(result.sweep.dims)
    names = [param_label(path) for path in paths]   # as the charts name them
    if len(set(names)) < len(names):   # two paths that read the same: their codes
        names = paths
    table = Table(title=f"{result.sweep.label}: {len(result.sweep.points)} punti, media "
                  "[P5; P95]", title_justify="left", header_style="bold")
    table.add_column("#", justify="right")
    for name in names:
        table.add_column(name, justify="right")
    for kpi in kpis:
        table.add_column(_label(kpi), justify="right")
    rows = {(row["point"], row["kpi"]): row
            for row in result.table[["point", "kpi", "mean", "p5", "p95", "unit"]]
            .to_dict("records") if row["kpi"] in kpis}
    for point in result.sweep.points:
        cells = [str(point.number), *(param_values([point.values[p]], p, "it", exact=True)[0]
                                      for p in paths)]
        for kpi in kpis:
            row = rows[(point.number, kpi)]
            cells.append(f"{_short(row['mean'], row['unit'])}\n"
                         f"{_interval(row['p5'], row['p95'], row['unit'])}")
        table.add_row(*cells)
    return table


@click.command()
@click.argument("sweep_file", type=click.Path(path_type=Path))
@click.option("--vary", multiple=True, metavar="PATH=V1,V2,...",
              help="Vary a value over a list (repeatable), e.g. "
                   "--vary lines.A.instrument.grant_share=0,0.1,0.2")
@click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE",
              help="Set a value for every point, e.g. --set scenario.horizon_months=120")
@click.option("--kpi", "kpis", multiple=True, metavar="KPI",
              help="KPI to show in the terminal table (repeatable; all are in sweep.csv).")
@_run_options
@_input_errors_exit
def sweep(sweep_file: Path, vary: tuple[str, ...], overrides: tuple[str, ...],
          kpis: tuple[str, ...], replications: int | None, seed: int | None,
          workers: int | None, scheduler: str | None, out: Path | None) -> None:
    """Run every combination of the values in a sweep file (or of --vary lists).

    Points are checked before anything runs and cached in the sweep folder
    (default results/sweep-<file name>): running again reuses finished
    points and resumes an interrupted sweep. Writes sweep.csv and
    sweep.parquet (one row per point and KPI).
    """
    from .sweep import read_sweep, run_sweep

    definition = read_sweep(sweep_file, vary, overrides)
    shown = _check_kpis(kpis, definition.points[0].scenario)
    folder = out or definition.default_folder()
    total = len(definition.points)
    err_console.print(f"{total} punti in {folder}")

    said: set[str] = set()

    def count(point: Any) -> int:
        return replications or point.scenario.scenario.replications

    def announce(point: Any, reused: bool) -> None:
        state = "già calcolato" if reused else "in esecuzione"
        err_console.print(f"punto {point.number}/{total} ({point.describe()}): {state}")
        if reused:
            bar.skip(count(point))
        else:
            note_engine(point.scenario, said)
            bar.part(f"punto {point.number}/{total}")

    try:
        with _client(scheduler) as client, _progress() as bar:
            # One count for the whole sweep: its points' bars would flash by.
            bar.start(f"punto 1/{total}", sum(count(point) for point in definition.points))
            result = run_sweep(definition, folder, replications=replications, seed=seed,
                               workers=workers, client=client, progress=bar,
                               on_point=announce, command=sys.argv)
    except KeyboardInterrupt:
        stopped(f"interrotto: i punti completati restano in {folder / 'points'}; "
                "rilancia lo stesso comando per riprendere")
    _wide()
    console.print(_sweep_table(result, shown))
    console.print(f"{len(result.computed)} punti calcolati, {len(result.reused)} ripresi "
                  f"dalla cache. Risultati in [bold]{folder}[/bold] (sweep.csv, sweep.parquet)")


# -- solve --------------------------------------------------------------------------------------

def _x_text(x: float, solution: Any) -> str:
    if solution.kind == "int":
        return str(round(x))
    decimals = max(0, 1 - math.floor(math.log10(solution.tol))) if solution.tol > 0 else 6
    return f"{x:.{decimals}f}"


def _evaluations_table(evaluations: list[Any], path: str, target: Any, x_text: Callable
                       ) -> Table:
    from .decide import unit_of

    unit = unit_of(target.kpi)
    table = Table(title=f"Valutazioni ({target})", title_justify="left", header_style="bold")
    table.add_column("#", justify="right")
    table.add_column(path, justify="right")
    table.add_column(f"{target.kpi}.{target.statistic}", justify="right")
    table.add_column("P5", justify="right")
    table.add_column("P50", justify="right")
    table.add_column("P95", justify="right")
    table.add_column("obiettivo", justify="center")
    for e in evaluations:
        table.add_row(str(e.number), x_text(e.x), _value(e.statistic, unit), _value(e.p5, unit),
                      _value(e.p50, unit), _value(e.p95, unit), "sì" if e.met else "no")
    return table


def _print_solution(solution: Any) -> None:
    from .decide import unit_of

    target, at = solution.target, solution.found
    unit = unit_of(target.kpi)

    def x_text(x: float) -> str:
        return _x_text(x, solution)

    console.print(_evaluations_table(solution.evaluations, solution.path, target, x_text))
    goal = {"maximize": "valore massimo", "minimize": "valore minimo"}.get(
        solution.goal or "", "valore")
    console.print(f"[bold]{goal} trovato: {solution.path} = {x_text(at.x)}[/bold]"
                  + (" (un estremo dell'intervallo)" if solution.at_bound else ""))
    console.print(f"  {_label(target.kpi, unit)}: media {_value(at.mean, unit)}, "
                  f"P50 {_value(at.p50, unit)}, 90 % delle repliche "
                  f"{_interval(at.p5, at.p95, unit)}")
    verdict = "raggiunto" if at.met else "non raggiunto"
    other = solution.neighbour
    if other is not None:
        verdict += (f"; con {x_text(other.x)} no ({target.kpi}.{target.statistic} "
                    f"{_value(other.statistic, unit)})")
    console.print(f"  obiettivo {target}: {verdict}")
    console.print(f"{len(solution.evaluations)} valutazioni, {solution.replications} "
                  f"replicazioni ciascuna, seed {solution.seed} (numeri casuali comuni)")


@click.command()
@click.argument("scenario_file", type=click.Path(path_type=Path))
@click.option("--vary", "path", required=True, metavar="PATH",
              help="The number to vary, e.g. lines.A.instrument.grant_share")
@click.option("--between", nargs=2, type=float, required=True, metavar="LO HI",
              help="The range to search, e.g. --between 0 0.5")
@click.option("--target", required=True, metavar='"KPI.STAT >= VALUE"',
              help='e.g. "fund_value_end_eur.p50 >= 3000000" (STAT: mean, p5, p50, p95; '
                   "also <=, >, <, =)")
@click.option("--maximize", "goal", flag_value="maximize", default=None,
              help="The largest value that meets the target.")
@click.option("--minimize", "goal", flag_value="minimize",
              help="The smallest value that meets the target.")
@click.option("--tol", type=float, default=None,
              help="Precision on the value (default: the range / 1000).")
@click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE",
              help="Override another scenario value, e.g. --set lines.A.risk.default_rate=0.06")
@_run_options
@_input_errors_exit
def solve(scenario_file: Path, path: str, between: tuple[float, float], target: str,
          goal: str | None, tol: float | None, overrides: tuple[str, ...],
          replications: int | None, seed: int | None, workers: int | None,
          scheduler: str | None, out: Path | None) -> None:
    """Find the value of one parameter at which a KPI target is just met.

    Every evaluation uses the same seed and replications (common random
    numbers), so the KPI statistic is a deterministic function of the value
    and Brent's method (or bisection for whole numbers) finds it.
    """
    from . import solve as solving

    if out is not None and out.exists():
        raise InputError([Problem("--out", str(out), "already exists: choose another folder")])

    def announce(e: Any) -> None:
        from .decide import unit_of

        shown = _value(e.statistic, unit_of(e.kpi))
        err_console.print(f"valutazione {e.number}: {path} = {e.x:.6g} -> {shown} "
                          f"(obiettivo {'raggiunto' if e.met else 'non raggiunto'})")
        bar.start(f"valutazione {e.number + 1}", count)   # each one counts from zero

    from .scenario import load_scenario

    low, high = between
    base = load_scenario(scenario_file, list(overrides))
    note_engine(base, set())
    count = replications or base.scenario.replications
    try:
        with _client(scheduler) as client, _progress() as bar:
            bar.start("valutazione 1", count)
            solution = solving.solve(scenario_file, path, low, high, target, goal=goal,
                                     replications=replications, seed=seed, tol=tol,
                                     overrides=overrides, workers=workers, client=client,
                                     progress=bar, on_evaluation=announce)
    except solving.NotReachable as exc:
        if exc.evaluations:
            _wide()
            console.print(_evaluations_table(exc.evaluations, path, exc.target,
                                             lambda x: f"{x:g}"))
        raise
    except KeyboardInterrupt:
        stopped("interrotto: nessun risultato scritto")
    _wide()
    _print_solution(solution)
    folder = solution.save(out or solving.default_folder(solution.found.scenario.name),
                           command=sys.argv)
    console.print(f"Risultati in [bold]{folder}[/bold] (evaluations.csv, solution.json, "
                  "scenario.toml al valore trovato)")
