"""The loan table of a chunk simulated by the batch engine.

One row per commitment: its terms, what the booked flows paid and repaid
before the horizon (recorded by ``batch.ChunkBatch`` as it books them), its
status and dates, and its aid (the gross grant equivalent at the reference
rate of its commitment date, against the de minimis ceiling of that date).
The same columns, values and order as the SimPy model's ``runner.loan_table``.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import batch_flows as bf
from .loanbook import FLOW_KINDS, STATUSES
from .model import days_of, month_end_dates
from .runner import LOAN_COLUMNS, ceiling_may_be_empty
from .scenario import Scenario
from .state_aid import _DE_MINIMIS_2023_FROM, _DE_MINIMIS_CENTS, window_start


def loan_table(scenario: Scenario, batch, replications: list[int]) -> dict[str, np.ndarray]:
    """``runner.loan_table`` of every replication of ``batch`` (``batch.ChunkBatch``),
    replication by replication."""
    booked = batch.booked_commitments()
    parts = [_line_rows(batch, i, booked, batch.beneficiaries[i])
             for i in range(len(batch.lines))]
    rows = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]
            if name != "has_ceiling"}
    has_ceiling = np.concatenate([np.full(len(p["rep"]), p["has_ceiling"]) for p in parts])
    regimes = [line.line.state_aid.regime for line in batch.lines]
    rows["prior_aid"] = _prior_aid(rows, has_ceiling, regimes)
    rows["over_ceiling"] = has_ceiling & (rows["esl"] + rows["prior_aid"] > rows["ceiling"])
    order = np.lexsort((rows["sequence"], rows["line"], rows["rep"]))
    rows = {name: values[order] for name, values in rows.items()}
    has_ceiling = has_ceiling[order]
    ids = np.array(replications, dtype=np.int64)
    line_ids = list(scenario.lines)
    calendar = batch.calendar
    start, horizon, offset = calendar.start, calendar.horizon, calendar.offset

    def month_ends(months: np.ndarray) -> np.ndarray:
        return month_end_dates(start, horizon, months)

    # Text with few values as codes into its values (``results.text_codes``).
    line_names = pa.DictionaryArray.from_arrays(rows["line"].astype(np.int32),
                                                pa.array(line_ids, type=pa.string()))
    project_ids = _project_ids(batch, rows["line"], rows["number"], line_ids)
    disbursed, repaid, written_off = (rows["loans_disbursed"], rows["principal_repaid"],
                                      rows["written_off"])
    ceilings = np.where(has_ceiling, rows["ceiling"], 0)
    if ceiling_may_be_empty(scenario):
        ceilings = np.where(has_ceiling, ceilings.astype(float), math.nan)
    out = {
        "replication": ids[rows["rep"]],
        "project_id": project_ids,
        "line": line_names,
        "status": pa.DictionaryArray.from_arrays(rows["status"].astype(np.int32),
                                                 pa.array(STATUSES, type=pa.string())),
        "application_date": days_of(start, horizon, offset, rows["arrival"]),
        "decision_date": days_of(start, horizon, offset, rows["decided"]),
        "commitment_date": rows["commit_day"],
        "first_disbursement_date": month_ends(rows["first_disbursement_month"]),
        "completion_date": month_ends(rows["completion_month"]),
        "end_date": month_ends(rows["end_month"]),
        "eligible_cost": rows["eligible_cost"],
        "public_loan": rows["public_loan"],
        "bank_loan": rows["bank_loan"],
        "grant": rows["grant"],
        "loans_disbursed": disbursed,
        "grant_paid": rows["grant_paid"],
        "principal_repaid": repaid,
        "interest_paid": rows["interest_paid"],
        "written_off": written_off,
        "recovered": rows["recovered"],
        "grant_recovered": rows["grant_recovered"],
        "outstanding_end": disbursed - repaid - written_off,
        "esl": rows["esl"],
        "esl_pct": 100.0 * rows["esl"] / rows["eligible_cost"],
        "de_minimis_ceiling": ceilings,
        "prior_aid": rows["prior_aid"],
        "over_ceiling": rows["over_ceiling"].astype(bool),
    }
    return {name: out[name] for name in LOAN_COLUMNS}


def _project_ids(batch, line: np.ndarray, number: np.ndarray,
                 line_ids: list[str]) -> pa.Array:
    """"A-00042": the line and the application's number from 1, five digits at least;
    on a line that reads a pipeline, the row's own id. ``line``: each row's line, as
    its position in ``line_ids``."""
    numbers = pc.utf8_lpad(pa.array(number + 1).cast(pa.string()), width=5, padding="0")
    # The lines' names taken by position: no string object per row to convert.
    names = pa.array(line_ids, type=pa.string()).take(pa.array(line))
    ids = pc.binary_join_element_wise(names, numbers, "-")
    pipelines = [(i, applications.pipeline) for i, applications in enumerate(batch.lines)
                 if applications.pipeline is not None]
    if not pipelines:
        return ids
    given = np.full(len(number), None, dtype=object)
    for i, rows in pipelines:
        mine = line == i
        given[mine] = rows["id"].astype(str).to_numpy(dtype=object)[number[mine]]
    return pc.coalesce(pa.array(given, type=pa.string()), ids)


def beneficiary_codes(lines: list) -> list[np.ndarray | None]:
    """For each line (``batch_applications.LineApplications``), the beneficiary of each
    row of its pipeline as a number shared by every line (-1: the project is its own
    beneficiary); None for a line without one (``batch.ChunkBatch.beneficiaries``)."""
    numbers: dict[str, int] = {}
    codes = []
    for applications in lines:
        pipeline = applications.pipeline
        if pipeline is None:
            codes.append(None)
            continue
        codes.append(np.array([-1 if not isinstance(name, str) or not name
                               else numbers.setdefault(name, len(numbers))
                               for name in pipeline["beneficiary"]], dtype=np.int64))
    return codes


def _line_rows(batch, line: int, booked, codes: np.ndarray | None) -> dict[str, np.ndarray]:
    """The loan table's facts of the commitments of line ``line`` among ``booked``
    (positions, times, sequence numbers: every commitment, joined); ``codes``: the
    beneficiary of each row of its pipeline (``batch.ChunkBatch.beneficiaries``)."""
    positions, times, sequence = booked
    mine = batch.dec_line[positions] == line
    positions, times, sequence = positions[mine], times[mine], sequence[mine]
    apps = batch.dec_app[positions]
    terms = batch.lines[line].line
    public, grant = batch.public_loan[apps], batch.grant[apps]
    facts = {name: values[positions] for name, values in batch.loan_months.items()}
    cal, horizon = batch.calendar, batch.horizon
    days = days_of(cal.start, horizon, cal.offset, times)
    found = batch.scenario.rate_table().rates_on(days, batch.scenario.reference_margin_bp())
    esl = bf.grant_equivalents(public, grant, terms, found[:, 0], found[:, 1],
                               batch.loan_grace[positions],
                               facts["first_disbursement_month"],
                               facts["completion_month"])
    regime = terms.state_aid.regime
    if regime == "auto":
        late = days >= np.datetime64(_DE_MINIMIS_2023_FROM, "D")
        ceiling = np.where(late, _DE_MINIMIS_CENTS["de_minimis_2023"],
                           _DE_MINIMIS_CENTS["de_minimis_2013"])
        has_ceiling = True
    else:
        has_ceiling = regime in _DE_MINIMIS_CENTS
        ceiling = np.full(len(apps), _DE_MINIMIS_CENTS.get(regime, 0), dtype=np.int64)
    end = facts["end_month"]
    ended = (end >= 0) & (end < horizon)
    kinds = ("loans_disbursed", "grants_paid", "principal_repaid", "interest_received",
             "principal_written_off", "recoveries", "grants_recovered")
    totals = {kind: batch.loan_totals[FLOW_KINDS.index(kind), positions] for kind in kinds}
    return {
        "rep": batch.app_rep[apps], "sequence": sequence, "time": times,
        "beneficiary": np.full(len(apps), -1) if codes is None else
        codes[batch.app_number[apps]], "declared": batch.prior_aid[apps],
        "line": np.full(len(apps), line), "has_ceiling": has_ceiling,
        "number": batch.app_number[apps], "arrival": batch.arrival[apps],
        "decided": batch.dec_time[positions], "commit_day": days,
        "status": np.where(ended, facts["status"], 0),
        "first_disbursement_month": facts["first_disbursement_month"],
        "completion_month": facts["completion_month"],
        "end_month": np.where(ended, end, -1),
        "eligible_cost": batch.eligible_cost[apps], "public_loan": public,
        "bank_loan": batch.bank_loan[apps], "grant": grant,
        "loans_disbursed": totals["loans_disbursed"], "grant_paid": totals["grants_paid"],
        "principal_repaid": totals["principal_repaid"],
        "interest_paid": totals["interest_received"],
        "written_off": totals["principal_written_off"],
        "recovered": totals["recoveries"], "grant_recovered": totals["grants_recovered"],
        "esl": esl, "ceiling": ceiling,
    }


def _prior_aid(rows: dict[str, np.ndarray], has_ceiling: np.ndarray,
               regimes: list[str]) -> np.ndarray:
    """The aid each project's beneficiary already had (``state_aid.AidRegister.assess``).

    A project is its own beneficiary (its ``declared`` prior aid), unless a
    pipeline row names one: then the aid declared for the beneficiary's first
    committed project, on any line, plus, on a line with a de minimis
    ceiling, the grant equivalents of its projects committed before on lines
    with one, on or after the start of the period of this commitment's date
    under its line's regime (``state_aid.window_start``). Commitments come in
    the order of their times, and of the engine's sequence within a line;
    two on different lines at one instant are in the SimPy model's order
    (:func:`same_instant_on_two_lines`: those replications are its own).
    """
    prior = rows["declared"].copy()
    code = rows["beneficiary"]
    shared = np.flatnonzero(code >= 0)
    if not len(shared):
        return prior
    rep = rows["rep"]
    order = shared[np.lexsort((rows["sequence"][shared], rows["time"][shared], code[shared],
                               rep[shared]))]
    position = np.arange(len(order))
    starts = np.r_[True, (rep[order][1:] != rep[order][:-1])
                   | (code[order][1:] != code[order][:-1])]
    first = np.maximum.accumulate(np.where(starts, position, 0))
    had = prior[order][first]
    counted = has_ceiling[order]
    day = rows["commit_day"][order]
    # Each commitment's period under its own line's regime (its own day where the
    # line has no ceiling: nothing is added to it).
    period_from = day.copy()
    line = rows["line"][order]
    for number, regime in enumerate(regimes):
        mine = (line == number) & counted
        if mine.any():
            unique, where = np.unique(day[mine], return_inverse=True)
            period_from[mine] = np.array([window_start(d, regime)
                                          for d in unique.astype(object)],
                                         dtype="datetime64[D]")[where]
    # A beneficiary's projects, in commitment order, have dates that never decrease:
    # those inside a project's period are the run just before it, found by one search
    # over (beneficiary, date) keys; their aid is a difference of running totals.
    floor = period_from.min()
    span = int((day.max() - floor).astype(np.int64)) + 1
    group = (np.cumsum(starts) - 1) * span
    keys = group + (day - floor).astype(np.int64)
    begin = np.searchsorted(keys, group + (period_from - floor).astype(np.int64))
    running = np.concatenate(([0], np.cumsum(np.where(counted, rows["esl"][order], 0))))
    prior[order] = np.where(counted, had + running[position] - running[begin], had)
    return prior


def same_instant_on_two_lines(batch) -> np.ndarray:
    """Positions of the chunk's replications where a beneficiary named on two lines had
    projects committed on both at one instant.

    The SimPy model takes them in the order it scheduled the two lines'
    events, which the batch engine does not follow: the aid of one counts
    for the other in an order of its own (``batch.simulate_chunk`` runs
    those replications on the SimPy model).
    """
    codes = batch.beneficiaries
    if sum(c is not None for c in codes) < 2:
        return np.zeros(0, dtype=np.int64)
    positions, times, _ = batch.booked_commitments()
    line = batch.dec_line[positions]
    apps = batch.dec_app[positions]
    code = np.full(len(positions), -1)
    for number, line_codes in enumerate(codes):
        if line_codes is not None:
            mine = line == number
            code[mine] = line_codes[batch.app_number[apps[mine]]]
    named = code >= 0
    rep = batch.app_rep[apps][named]
    code, times, line = code[named], times[named], line[named]
    order = np.lexsort((times, code, rep))
    rep, code, times, line = rep[order], code[order], times[order], line[order]
    tie = (rep[1:] == rep[:-1]) & (code[1:] == code[:-1]) & (times[1:] == times[:-1]) \
        & (line[1:] != line[:-1])
    return np.unique(rep[1:][tie])
