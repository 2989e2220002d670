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

from .ledger import (
    check_invariants,
    timeseries_columns,
    total_series,
)
from .metrics import replication_kpis
from .model import FundModel, simulate
from .scenario import Scenario, date_to_months

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
    eligibility_month = math.floor(
        date_to_months(model.start, scenario.fund.eligibility_end) + model.offset)
    first_dry = model.first_dry
    kpis = replication_kpis(scenario, total, loans, first_dry, eligibility_month,
                            state_aid={"rejected": model.aid.rejected,
                                       "reduced": model.aid.reduced})
    return ReplicationTables(model.replication, series, loans, kpis)


def loan_table(model: FundModel) -> dict[str, np.ndarray]:
    """One row per committed project, money in cents truncated at the horizon.

    Built column by column: a large fund has tens of thousands of loans per
    replication, and dates are computed for all of them at once.
    """
    horizon = model.horizon
    loans = model.loans
    apps = [loan.application for loan in loans]
    terms = [loan.terms for loan in loans]
    flows = [loan.flows for loan in loans]
    aids = [loan.aid for loan in loans]  # priced at commitment (state_aid.AidRegister)

    def cents(values) -> np.ndarray:
        return np.array(values, dtype=np.int64)

    def seen(kind: str) -> np.ndarray:
        """What the run saw of each project's flows of one kind (before the horizon)."""
        return cents([getattr(f, kind).total_before(horizon) for f in flows])

    def text(values) -> np.ndarray:
        return np.array(values, dtype=object)

    statuses = [_status(f, horizon) for f in flows]
    end_months = np.array([f.end_month if status != "active" else -1
                           for f, status in zip(flows, statuses, strict=True)], dtype=np.int64)
    eligible_cost = cents([t.eligible_cost for t in terms])
    disbursed = seen("loans_disbursed")
    repaid = seen("principal_repaid")
    written_off = seen("principal_written_off")
    esl = cents([aid.esl for aid in aids])
    # Cents, empty (NaN) for lines without a ceiling: float only if the scenario has such
    # lines, so that every replication and the run folder read back alike.
    ceiling_may_be_empty = any(line.state_aid.regime in ("gber", "none")
                               for line in model.scenario.lines.values())
    ceilings = [math.nan if aid.ceiling is None else aid.ceiling for aid in aids]
    out = {
        "replication": np.full(len(loans), model.replication, dtype=np.int64),
        "project_id": text([app.project_id for app in apps]),
        "line": text([app.line_id for app in apps]),
        "status": text(statuses),
        "application_date": model.dates_of(np.array([app.arrival for app in apps],
                                                    dtype=float)),
        "decision_date": model.dates_of(np.array([app.decided for app in apps], dtype=float)),
        "commitment_date": text([loan.commit_date or model.date_of(loan.commit_time)
                                 for loan in loans]),
        "first_disbursement_date": model.month_end_dates(
            [f.first_disbursement_month for f in flows]),
        "completion_date": model.month_end_dates([f.completion_month for f in flows]),
        "end_date": model.month_end_dates(end_months),
        "eligible_cost": eligible_cost,
        "public_loan": cents([t.public_loan for t in terms]),
        "bank_loan": cents([t.bank_loan for t in terms]),
        "grant": cents([t.grant for t in terms]),
        "loans_disbursed": disbursed,
        "grant_paid": seen("grants_paid"),
        "principal_repaid": repaid,
        "interest_paid": seen("interest_received"),
        "written_off": written_off,
        "recovered": seen("recoveries"),
        "grant_recovered": seen("grants_recovered"),
        "outstanding_end": disbursed - repaid - written_off,
        "esl": esl,
        "esl_pct": 100.0 * esl / eligible_cost,
        "de_minimis_ceiling": np.array(ceilings, dtype=float if ceiling_may_be_empty
                                       else np.int64),
        "prior_aid": cents([aid.prior for aid in aids]),
        "over_ceiling": np.array([aid.over for aid in aids], dtype=bool),
    }
    return {name: out[name] for name in LOAN_COLUMNS}


def _status(flows, horizon: int) -> str:
    """A project's status at the horizon: what it ended as, or active if it has not ended."""
    if flows.status == "failed" and flows.end_month < horizon:
        return "failed"
    return flows.status if 0 <= flows.end_month < horizon else "active"


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
              scenario: Scenario) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Timeseries, loans and KPI DataFrames of a batch of replications."""
    from .model import month_dates

    line_ids = list(scenario.lines)
    horizon = scenario.scenario.horizon_months
    names = [*line_ids, "total"]
    dates = np.array(month_dates(scenario.scenario.start, horizon), dtype="datetime64[D]")
    ts_parts = []
    for tables in batch:
        columns: dict[str, np.ndarray] = {
            "replication": np.full(horizon * len(names), tables.replication, dtype=np.int32),
            "date": np.tile(dates, len(names)),
            "line": np.repeat(np.array(names, dtype=object), horizon),
        }
        for col in timeseries_columns(scenario):
            columns[col] = np.concatenate([tables.series[n][col] for n in names])
        ts_parts.append(columns)
    timeseries = pd.DataFrame({k: np.concatenate([p[k] for p in ts_parts])
                               for k in ts_parts[0]}) if ts_parts else pd.DataFrame()
    loans = pd.DataFrame({k: np.concatenate([t.loans[k] for t in batch])
                          for k in LOAN_COLUMNS})
    loans["replication"] = loans["replication"].astype(np.int32)
    kpis = pd.DataFrame([{"replication": t.replication, **t.kpis} for t in batch])
    kpis["replication"] = kpis["replication"].astype(np.int32)
    return timeseries, loans, kpis


def _replication_ids(scenario: Scenario, replications: int | None,
                     replication_ids: list[int] | None) -> list[int]:
    if replication_ids is not None:
        return sorted(set(replication_ids))
    count = scenario.scenario.replications if replications is None else replications
    return list(range(count))


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
    from .executors import backend_name, chunked, map_chunks
    from .metrics import summarise
    from .results import Results, manifest
    from .scenario import load_scenario

    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    seed = scenario.scenario.seed if seed is None else seed
    ids = _replication_ids(scenario, replications, replication_ids)
    started = dt.datetime.now()
    parts, done = [], 0
    for chunk in map_chunks(scenario, chunked(ids), seed, check, workers, client):
        parts.append(chunk)
        done += len(chunk.replications)
        if progress is not None:
            progress(done)
    timeseries = pd.concat([p.timeseries for p in parts], ignore_index=True)
    loans = pd.concat([p.loans for p in parts], ignore_index=True)
    kpis = pd.concat([p.kpis for p in parts], ignore_index=True)
    ended = dt.datetime.now()
    return Results(scenario, timeseries, loans, kpis, summarise(kpis),
                   manifest(scenario, seed, ids, started, ended, backend_name(workers, client),
                            command, workers))


def run_to_folder(scenario: Scenario, folder, replications: int | None = None,
                  seed: int | None = None, check: bool = False,
                  replication_ids: list[int] | None = None, workers: int | None = None,
                  client=None, command: list[str] | None = None, progress=None):
    """Run and stream every chunk into a run folder, written atomically.

    Only the KPI table (one row per replication) is kept in memory; the
    timeseries and the loan book go to disk chunk by chunk, so memory does
    not grow with the number of replications.
    """
    from .executors import backend_name, chunked, map_chunks
    from .results import RunWriter, load_results, manifest

    seed = scenario.scenario.seed if seed is None else seed
    ids = _replication_ids(scenario, replications, replication_ids)
    started = dt.datetime.now()
    with RunWriter(scenario, folder) as writer:
        done = 0
        for chunk in map_chunks(scenario, chunked(ids), seed, check, workers, client):
            writer.add(chunk.timeseries, chunk.loans, chunk.kpis)
            done += len(chunk.replications)
            if progress is not None:
                progress(done)
        writer.finish(manifest(scenario, seed, ids, started, dt.datetime.now(),
                               backend_name(workers, client), command, workers))
    return load_results(folder, lazy=True)
