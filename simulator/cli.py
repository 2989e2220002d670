"""The ``fesr-sim`` command: the verbs a fund manager types.

Every verb turns an :class:`~simulator.errors.InputError` into one line per
mistake on standard error and exit code 2, without a traceback and without
writing anything.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from . import __version__
from .console import ctrl_c_pressed, note_more_workers_than_cores, stopped
from .errors import InputError

err_console = Console(stderr=True, highlight=False, soft_wrap=True)
console = Console(highlight=False, soft_wrap=True)

EXIT_INPUT = 2


def _input_errors_exit(func: Callable) -> Callable:
    @wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except InputError as exc:
            for problem in exc.problems:
                err_console.print(f"[red]error[/red] {escape(str(problem))}", markup=True)
            sys.exit(EXIT_INPUT)
    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fesr-sim")
def main() -> None:
    """Simulate a FESR mixed financial instrument (soft loan + grant) fund."""
    from .executors import keep_freed_memory

    keep_freed_memory()   # this process simulates too (see executors)


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE",
              help="Override a value, e.g. --set lines.A.instrument.grant_share=0.1")
def validate(files: tuple[Path, ...], overrides: tuple[str, ...]) -> None:
    """Check scenario files: print OK or every mistake (exit 0 or 2). Writes nothing."""
    from .scenario import load_scenario
    from .sweep import is_sweep_file, read_sweep

    failed = False
    for path in files:
        try:
            if is_sweep_file(path):
                # A sweep file is valid when every one of its points is.
                sweep = read_sweep(path, overrides=list(overrides))
                detail = f"sweep, {len(sweep.points)} punti"
            else:
                scenario = load_scenario(path, list(overrides))
                detail = f"{scenario.name}, hash {scenario.hash()[:12]}"
                _print_warnings(scenario)
        except InputError as exc:
            failed = True
            for problem in exc.problems:
                err_console.print(f"[red]error[/red] {escape(str(problem))}", markup=True)
            continue
        console.print(f"OK {escape(str(path))}  [dim]({escape(detail)})[/dim]")
    sys.exit(EXIT_INPUT if failed else 0)


def _print_warnings(scenario) -> None:
    """Things that are allowed but probably not meant (e.g. a horizon too short)."""
    for warning in scenario.warnings():
        err_console.print(f"[yellow]warning[/yellow] {escape(str(warning))}", markup=True)


def _print_summary(summary, title: str, replications: int, drill_down: bool = False) -> None:
    from rich.table import Table

    from .labels import kpi_label, kpi_value, rough_percentiles_note

    table = Table(title=escape(title), title_justify="left", header_style="bold")
    # A narrow terminal wraps the labels, never a number.
    table.add_column("KPI")
    for name in ("media", "P5", "P50", "P95"):
        table.add_column(name, justify="right", no_wrap=True)
    for row in summary.itertuples(index=False):
        table.add_row(kpi_label(row.kpi, row.unit),
                      *(kpi_value(getattr(row, c), row.unit) for c in ("mean", "p5", "p50",
                                                                      "p95")))
    if not console.is_terminal:
        console.width = max(console.width, 110)  # files and pipes: no wrapped rows
    console.print(table)
    from .metrics import FEW_REPLICATIONS

    counts = summary["replications"] if "replications" in summary else [replications] * \
        len(summary)
    subset = [f"{kpi_label(kpi, unit)}: {count}" for kpi, unit, count
              in zip(summary["kpi"], summary["unit"], counts, strict=True)
              if count < replications]
    if subset:
        console.print(f"Solo sulle replicazioni in cui l'indicatore ha un valore (su "
                      f"{replications}): " + "; ".join(subset) + ".")
    if replications < FEW_REPLICATIONS and not drill_down:   # few by choice: no warning
        console.print(f"[red]{rough_percentiles_note()}[/red]")


@main.command()
@click.argument("scenario_file", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Run folder to write (default: results/<name>-<timestamp>).")
@click.option("--replications", "-n", type=click.IntRange(min=1), default=None,
              help="Number of replications (default: the scenario's).")
@click.option("--replication", "only", type=click.IntRange(min=0), multiple=True,
              help="Run only this replication (repeatable): same numbers as in a full run.")
@click.option("--seed", type=click.IntRange(min=0, max=2**63 - 1), default=None,
              help="Master seed (default: the scenario's).")
@click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE",
              help="Override a scenario value, e.g. --set lines.A.risk.default_rate=0.06")
@click.option("--check", is_flag=True,
              help="Assert the ledger invariants at every month of every replication.")
@click.option("--workers", "-w", type=click.IntRange(min=1), default=None,
              callback=note_more_workers_than_cores,
              help="Processes that simulate and write the report, this one included "
                   "(default: all cores; 1 = serial).")
@click.option("--scheduler", metavar="tcp://HOST:PORT", default=None,
              help="Run on a Dask distributed cluster instead of local processes.")
@click.option("--strict", is_flag=True,
              help="Apply each line's state_aid.over_ceiling rule (reduce or reject) to aid "
                   "over the de minimis ceiling (same as --set state_aid.strict=true).")
@click.option("--no-report", is_flag=True, help="Do not write charts and reports.")
@_input_errors_exit
def run(scenario_file: Path, out: Path | None, replications: int | None, only: tuple[int, ...],
        seed: int | None, overrides: tuple[str, ...], check: bool, workers: int | None,
        scheduler: str | None, strict: bool, no_report: bool) -> None:
    """Run a scenario and write a run folder; print the KPI summary."""
    from .cli_progress import replication_progress
    from .executors import connect
    from .results import default_folder
    from .runner import run_to_folder
    from .scenario import load_scenario

    scenario = load_scenario(scenario_file,
                             [*overrides, *(["state_aid.strict=true"] if strict else [])])
    _print_warnings(scenario)
    note_engine(scenario, set())
    folder = out or default_folder(scenario)
    if folder.exists():
        from .errors import Problem
        raise InputError([Problem("--out", str(folder), "already exists: choose another "
                                  "folder")])
    count = len(set(only)) or replications or scenario.scenario.replications
    client = connect(scheduler) if scheduler else None
    try:
        with replication_progress(err_console) as show:
            show.start("replicazioni", count)

            def advance(done: int) -> None:
                if ctrl_c_pressed():   # pressed, but its KeyboardInterrupt got lost
                    raise KeyboardInterrupt
                show(done)

            results = run_to_folder(scenario, folder, replications=replications, seed=seed,
                                    check=check, replication_ids=sorted(set(only)) or None,
                                    workers=workers, client=client, command=sys.argv,
                                    progress=advance)
    except KeyboardInterrupt:
        stopped("interrupted: no run folder was written")
    finally:
        if client is not None:
            client.close()
    _print_summary(results.summary, f"{scenario.title} - {count} replicazioni", count,
                   drill_down=bool(only))
    if not no_report:
        from .report import write_report

        try:
            with console.status("grafici e rapporti..."):
                # On a Dask cluster the report is still written here, on this machine's cores.
                write_report(folder, workers=None if client is not None else workers)
        except KeyboardInterrupt:
            stopped(f"interrupted while writing the report: the run folder {folder} is "
                    f"complete; fesr-sim report {folder} writes its charts and reports")
    console.print(f"Risultati in [bold]{escape(str(folder))}[/bold]")


@main.command()
@click.option("--replications", "-n", type=click.IntRange(min=1), default=200,
              help="Replications for the demo run.")
@click.pass_context
def demo(ctx: click.Context, replications: int) -> None:
    """Run the reference scenario (scenarios/wecare_fesr_2018.toml)."""
    reference = Path(__file__).resolve().parent.parent / "scenarios" / "wecare_fesr_2018.toml"
    if not reference.exists():
        reference = Path("scenarios/wecare_fesr_2018.toml")
    ctx.invoke(run, scenario_file=reference, out=None, replications=replications, only=(),
               seed=None, overrides=(), check=False, workers=None, scheduler=None,
               strict=False, no_report=False)


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--lang", type=click.Choice(["it", "en"]), default="it", show_default=True,
              help="Language of the charts and reports.")
@click.option("--replication", type=click.IntRange(min=0), default=None,
              help="Replication shown in the loan book sheet (default: the median one).")
@click.option("--workers", "-w", type=click.IntRange(min=1), default=None,
              callback=note_more_workers_than_cores,
              help="Processes that write the files, this one included "
                   "(default: all cores; 1 = one after the other).")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Folder to write them into (default: the run folder, whose report they "
                   "replace), e.g. --lang en --out RUN_DIR/en to keep both languages.")
@_input_errors_exit
def report(run_dir: Path, lang: str, replication: int | None, workers: int | None,
           out: Path | None) -> None:
    """Write charts/, report.pdf and report.xlsx into a run folder (or --out)."""
    from .report import write_report
    from .results import load_results

    load_results(run_dir, lazy=True)  # a clear error if this is not a run folder
    paths = write_report(run_dir, lang=lang, replication=replication, workers=workers,
                         out=out)
    for path in paths:
        console.print(f"{'scritto' if lang == 'it' else 'written'} {escape(str(path))}")


from .cli_decide import compare, note_engine, solve, sweep  # noqa: E402  (the verbs that compare runs)

main.add_command(compare)
main.add_command(sweep)
main.add_command(solve)
