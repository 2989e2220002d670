"""Replications: run the model, collect its tables, check the invariants.

Replication ``i`` draws only from streams spawned from the scenario's master
seed and ``i`` (see ``model.line_rng``), so any replication can be re-run
alone (``fesr-sim run --replication 17``) and gives the same numbers, and
the result does not depend on how replications are spread over workers.

A replication's output is a :class:`ReplicationTables` of numpy columns (not
DataFrames: building a DataFrame costs more than a small replication), and
:func:`to_frames` turns a batch of them into the three tables of a run.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from .ledger import (
    check_invariants,
    timeseries_columns,
    total_series,
)
from .metrics import replication_kpis
from .model import FundModel, Loan, eligibility_month, simulate
from .scenario import Scenario

LOAN_COLUMNS = (
    "replication", "project_id", "line", "status", "application_date", "decision_date",
    "commitment_date", "first_disbursement_date", "completion_date", "end_date",
    "eligible_cost", "public_loan", "bank_loan", "grant", "loans_disbursed", "grant_paid",
    "principal_repaid", "interest_paid", "written_off", "recovered", "grant_recovered",
    "outstanding_end", "esl", "esl_pct", "de_minimis_ceiling", "prior_aid", "over_ceiling",
)


@dataclass
class ReplicationTables:
    """The three tables of one replication as numpy columns."""

    replication: int
    series: dict[str, dict[str, np.ndarray]]   # line id (and "total") -> column -> array
    loans: dict[str, np.ndarray]
    kpis: dict[str, float]


def run_replication(scenario: Scenario, replication: int, seed: int | None = None,
                    check: bool = False) -> ReplicationTables:
    """Simulate one replication and collect its tables (assert invariants if ``check``)."""
    model = simulate(scenario, replication, seed)
    return collect(model, check)


def collect(model: FundModel, check: bool = False) -> ReplicationTables:
    scenario = model.scenario
    series = {line_id: ledger.series() for line_id, ledger in model.ledgers.items()}
    total = total_series(list(series.values()))
    if check:
        dates = model.month_dates()
        for line_id, s in series.items():
            ledger = model.ledgers[line_id]
            check_invariants(s, ledger.allocation, line_id, dates)
        check_invariants(total, round(scenario.fund.endowment * 100), "total", dates)
    series["total"] = total
    loans = loan_table(model)
    if check:
        _check_loans(loans, model)
    first_dry = model.first_dry
    kpis = replication_kpis(scenario, total, loans, first_dry,
                            eligibility_month(scenario, model.offset),
                            state_aid={"rejected": model.aid.rejected,
                                       "reduced": model.aid.reduced})
    return ReplicationTables(model.replication, series, loans, kpis)


def loan_table(model: FundModel) -> dict[str, np.ndarray]:
    """One row per committed project, money in cents truncated at the horizon.

    Built column by column from the rows the model booked (``model.Loan``):
    a large fund has tens of thousands of loans per replication, and their
    dates are computed all at once.
    """
    # Line by line (in the scenario's order), each in the order of commitment.
    order = {line_id: i for i, line_id in enumerate(model.scenario.lines)}
    rows = sorted(model.loans, key=lambda loan: order[loan.line])
    book = dict(zip(Loan._fields, zip(*rows, strict=True), strict=True)) if rows else \
        {name: () for name in Loan._fields}

    def cents(name: str) -> np.ndarray:
        return np.array(book[name], dtype=np.int64)

    def text(name: str) -> np.ndarray:
        return np.array(book[name], dtype=object)

    eligible_cost = cents("eligible_cost")
    disbursed, repaid, written_off = (cents("loans_disbursed"), cents("principal_repaid"),
                                      cents("written_off"))
    esl = cents("esl")
    ceilings = [math.nan if c is None else c for c in book["de_minimis_ceiling"]]
    out = {
        "replication": np.full(len(rows), model.replication, dtype=np.int64),
        "project_id": text("project_id"),
        "line": text("line"),
        "status": text("status"),
        "application_date": model.dates_of(np.array(book["arrival"], dtype=float)),
        "decision_date": model.dates_of(np.array(book["decided"], dtype=float)),
        "commitment_date": text("commitment_date"),
        "first_disbursement_date": model.month_end_dates(book["first_disbursement_month"]),
        "completion_date": model.month_end_dates(book["completion_month"]),
        "end_date": model.month_end_dates(book["end_month"]),
        "eligible_cost": eligible_cost,
        "public_loan": cents("public_loan"),
        "bank_loan": cents("bank_loan"),
        "grant": cents("grant"),
        "loans_disbursed": disbursed,
        "grant_paid": cents("grant_paid"),
        "principal_repaid": repaid,
        "interest_paid": cents("interest_paid"),
        "written_off": written_off,
        "recovered": cents("recovered"),
        "grant_recovered": cents("grant_recovered"),
        "outstanding_end": disbursed - repaid - written_off,
        "esl": esl,
        "esl_pct": 100.0 * esl / eligible_cost,
        "de_minimis_ceiling": np.array(ceilings, dtype=float if
                                       ceiling_may_be_empty(model.scenario) else np.int64),
        "prior_aid": cents("prior_aid"),
        "over_ceiling": np.array(book["over_ceiling"], dtype=bool),
    }
    return {name: out[name] for name in LOAN_COLUMNS}


def ceiling_may_be_empty(scenario: Scenario) -> bool:
    """Whether the loan table's de minimis ceiling may be empty (a line without a ceiling).

    Cents as integers otherwise; float (NaN for empty) only if the scenario has
    such lines, so that every replication and the run folder read back alike.
    """
    return any(line.state_aid.regime in ("gber", "none") for line in scenario.lines.values())


def _check_loans(loans: dict[str, np.ndarray], model: FundModel) -> None:
    """Loan-level identities: nothing repaid or written off beyond what was lent."""
    from .ledger import InvariantError

    owed = loans["loans_disbursed"] - loans["principal_repaid"] - loans["written_off"]
    bad = (owed < 0) | (loans["loans_disbursed"] > loans["public_loan"]) | \
        (loans["recovered"] > loans["written_off"])
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InvariantError(
            f"loan {loans['project_id'][i]} (replication {model.replication}): disbursed "
            f"{loans['loans_disbursed'][i]}, repaid {loans['principal_repaid'][i]}, written off "
            f"{loans['written_off'][i]}, recovered {loans['recovered'][i]} cents")


def to_frames(batch: list[ReplicationTables],
              scenario: Scenario) -> tuple[pa.Table, pa.Table, pd.DataFrame]:
    """Timeseries and loan tables (Arrow) and the KPI DataFrame of a batch of replications."""
    names = [*scenario.lines, "total"]
    series = {col: np.array([[t.series[name][col] for name in names] for t in batch],
                            dtype=np.int64) for col in timeseries_columns(scenario)} \
        if batch else {}
    loans = {k: np.concatenate([t.loans[k] for t in batch]) for k in LOAN_COLUMNS}
    kpis = [{"replication": t.replication, **t.kpis} for t in batch]
    return frames(scenario, [t.replication for t in batch], series, loans, kpis)


def frames(scenario: Scenario, replications: list[int],
           series: dict[str, np.ndarray], loans: dict[str, np.ndarray],
           kpis: list[dict] | dict[str, np.ndarray]) -> tuple[pa.Table, pa.Table, pd.DataFrame]:
    """The three tables of replications given as arrays.

    ``series``: column -> replications x lines (in the scenario's order, then
    ``"total"``) x months, the order of the timeseries rows: replication by
    replication, line by line, month by month; ``loans``: the loan table's
    columns, replication by replication; ``kpis``: one dict per
    replication, or one column per KPI. The two large
    tables are Arrow tables with the run folder's schemas (``results``): they
    travel between processes and go to Parquet without a detour through
    Python objects. The timeseries' ``line`` is dictionary-coded (a code per
    row, the line names once), as Parquet stores it: the codes are what the
    writer would otherwise find by hashing every row's text
    (``results.travelling_timeseries_schema``).
    """
    from .model import month_calendar
    from .results import coded_loan_text, travelling_loans_schema, travelling_timeseries_schema

    names = [*scenario.lines, "total"]
    horizon = scenario.scenario.horizon_months
    dates = month_calendar(scenario.scenario.start, horizon)[0]
    count = len(replications)
    schema = travelling_timeseries_schema(scenario)
    if count:
        line_codes = np.tile(np.repeat(np.arange(len(names), dtype=np.int32), horizon), count)
        columns = {
            "replication": np.repeat(np.array(replications, dtype=np.int32),
                                     len(names) * horizon),
            "date": np.tile(dates, count * len(names)),
            "line": pa.DictionaryArray.from_arrays(line_codes, pa.array(names)),
            **{col: series[col].reshape(-1) for col in timeseries_columns(scenario)},
        }
        timeseries = arrow_table(columns, schema)
    else:
        timeseries = schema.empty_table()
    loan_table = arrow_table(coded_loan_text(loans, scenario), travelling_loans_schema())
    return timeseries, loan_table, kpi_frame(kpis)


def kpi_frame(kpis: list[dict] | dict[str, np.ndarray]) -> pd.DataFrame:
    """The KPI table of replications: one dict per replication, or one column per KPI."""
    frame = pd.DataFrame(kpis)
    frame["replication"] = frame["replication"].astype(np.int32)
    return frame


def arrow_table(columns: dict, schema: pa.Schema) -> pa.Table:
    """An Arrow table of numpy columns (NaN and NaT become nulls) or Arrow arrays (cast
    to the schema's type: coded text as text, say)."""
    def column(field: pa.Field):
        values = columns[field.name]
        if not isinstance(values, pa.Array):
            return pa.array(values, type=field.type, from_pandas=True)
        return values if values.type == field.type else values.cast(field.type)

    return pa.Table.from_arrays([column(field) for field in schema], schema=schema)


def _replication_ids(scenario: Scenario, replications: int | None,
                     replication_ids: list[int] | None) -> list[int]:
    from .errors import InputError, Problem

    if replication_ids is not None:
        ids = sorted(set(replication_ids))
    else:
        count = scenario.scenario.replications if replications is None else replications
        ids = list(range(count))
    if not ids:
        raise InputError([Problem("replications", "", "at least one replication is needed")])
    if ids[0] < 0:
        raise InputError([Problem("replications", "", f"replication numbers start at 0, "
                                  f"got {ids[0]}")])
    return ids


def as_run(scenario: Scenario, seed: int, ids: list[int], drill_down: bool) -> Scenario:
    """``scenario`` with the seed and number of replications the run used (``--seed``,
    ``--replications``), as its run folder's ``scenario.toml`` records it: that file
    runs again to the same results. A drill-down (chosen replications) keeps the
    scenario's number; the manifest lists the replications run.
    """
    info = {"seed": seed} if drill_down else {"seed": seed, "replications": len(ids)}
    if all(getattr(scenario.scenario, name) == value for name, value in info.items()):
        return scenario
    return scenario.model_copy(update={"scenario": scenario.scenario.model_copy(update=info)})


def run(scenario: Scenario | str, replications: int | None = None, seed: int | None = None,
        check: bool = False, replication_ids: list[int] | None = None,
        workers: int | None = None, client=None, command: list[str] | None = None,
        progress=None):
    """Run replications of a scenario in memory; return a :class:`~simulator.results.Results`.

    ``replication_ids`` runs chosen replications only (a drill-down gives the
    same numbers as in the full run); ``workers`` local processes (default:
    all cores; 1 = serial) or a Dask ``client`` run the chunks; ``progress``
    is called with the number of replications done. For runs too large for
    memory use :func:`run_to_folder`.
    """
    from .executors import backend_name, chunk_results, processes_used
    from .metrics import summarise
    from .results import Results, manifest
    from .scenario import load_scenario

    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    seed = scenario.scenario.seed if seed is None else seed
    ids = _replication_ids(scenario, replications, replication_ids)
    scenario = as_run(scenario, seed, ids, replication_ids is not None)
    started = dt.datetime.now()
    parts, done = [], 0
    with chunk_results(scenario, ids, seed, check, workers, client) as results:
        for chunk in results:
            parts.append(chunk)
            done += len(chunk.replications)
            if progress is not None:
                progress(done)
    timeseries = _to_pandas([p.timeseries for p in parts])
    loans = _to_pandas([p.loans for p in parts])
    kpis = pd.concat([p.kpis for p in parts], ignore_index=True)
    ended = dt.datetime.now()
    chunks = len(parts)
    return Results(scenario, timeseries, loans, kpis, summarise(kpis),
                   manifest(scenario, seed, ids, started, ended,
                            backend_name(workers, client, chunks), command,
                            processes_used(workers, client, chunks)))


def _to_pandas(tables: list[pa.Table]) -> pd.DataFrame:
    """Chunks' tables as one DataFrame, as ``pd.read_parquet`` reads the run folder's file
    (dictionary-coded text as text)."""
    from .results import decoded

    return decoded(pa.concat_tables(tables)).to_pandas()


def run_to_folder(scenario: Scenario, folder, replications: int | None = None,
                  seed: int | None = None, check: bool = False,
                  replication_ids: list[int] | None = None, workers: int | None = None,
                  client=None, command: list[str] | None = None, progress=None):
    """Run and stream every chunk into a run folder, written atomically.

    Only the KPI table (one row per replication) is kept in memory; the
    timeseries and the loan book go to disk chunk by chunk, so memory does
    not grow with the number of replications.
    """
    from .executors import backend_name, chunk_results, processes_used
    from .results import RunWriter, manifest

    seed = scenario.scenario.seed if seed is None else seed
    ids = _replication_ids(scenario, replications, replication_ids)
    scenario = as_run(scenario, seed, ids, replication_ids is not None)
    started = dt.datetime.now()
    with RunWriter(scenario, folder) as writer:
        done = chunks = 0
        with chunk_results(scenario, ids, seed, check, workers, client,
                           encode=True) as results:
            for chunk in results:
                writer.add(chunk.timeseries, chunk.loans, chunk.kpis, chunk.kpis_part)
                done += len(chunk.replications)
                chunks += 1
                if progress is not None:
                    progress(done)
            # While helper processes end (chunk_results waits for them after this).
            writer.finish(manifest(scenario, seed, ids, started, dt.datetime.now(),
                                   backend_name(workers, client, chunks), command,
                                   processes_used(workers, client, chunks)))
    return writer.results
