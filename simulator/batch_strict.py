"""Strict runs that reject or reduce aid over the de minimis ceiling, on the batch engine.

In a strict run (``state_aid.strict``), a line whose ``over_ceiling`` rule is
``reject`` settles an application without committing it when the aid of the
project would take its beneficiary over the ceiling; ``reduce`` commits it
with a smaller grant or loan (``FundModel._try_commit``). The batch engine
runs such a chunk as a run that only flags aid over the ceiling, and runs
again on the SimPy model the replications where the rule may have applied;
their tables replace the batch engine's (:func:`redo_on_the_simpy_model`).
Replications are independent, so the others keep the batch engine's
tables, and which are run again depends on each replication alone, never
on the chunk it is in.

* ``reject``: the SimPy model prices a project's aid only when the line can
  cover it, that is exactly when the flagging run commits it. So, event by
  event, the strict run and the flagging run of a replication stay the same
  until the first commitment that the flagging run marks as over the
  ceiling on a rejecting line: a replication without one is run again only
  if another of its lines asks for it.
* ``reduce``: the SimPy model also prices projects the line cannot cover (a
  reduced project may fit), at every instant it offers them: when decided,
  and at each month's tick (or reallocation) while they wait on the list.
  A replication is run again when a decision of a reducing line *could* be
  over the ceiling at any of those instants (:func:`may_go_over`: an upper
  bound of its aid over the rates in force from its decision to the end of
  its wait, the longest grace a late tranche can give and the grant
  undiscounted); otherwise no aid the SimPy model prices is over the
  ceiling, and its run is the flagging run.

A beneficiary named in a pipeline has one ceiling for all its projects, on
one line or two: the aid of its earlier projects counts, and the aid
declared for the first project it has priced counts for all
(``state_aid.AidRegister``). On a reducing line a replication is also run
again when a named beneficiary's projects could together go over the
ceiling (:func:`beneficiaries_may_go_over`: the bounds of all its
decisions, plus the most aid declared for any of them), or when they were
declared different amounts of earlier aid: the SimPy model takes the
amount of the first project it prices, offered or not, the flagging run
that of the first it commits (on one line without a waiting list, the
first decision is the first priced: only a difference between those two
counts).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from . import batch_flows as bf
from .instruments import PERIOD_MONTHS
from .metrics import is_text
from .model import days_of
from .scenario import Scenario
from .state_aid import _DE_MINIMIS_2023_FROM, _DE_MINIMIS_CENTS


def lines_that(scenario: Scenario, rule: str) -> list[str]:
    """The lines whose aid over the ceiling this run treats by ``rule`` (``reject``,
    ``reduce``): none unless the run is strict."""
    if not scenario.state_aid.strict:
        return []
    return [line_id for line_id, line in scenario.lines.items()
            if line.state_aid.over_ceiling == rule]


def replications_to_redo(scenario: Scenario, batch, loans: dict[str, np.ndarray],
                         replications: list[int]) -> list[int]:
    """Positions in ``replications`` of those the SimPy model must run again: whose
    flagging run committed a project over the ceiling on a rejecting line, or with
    a decision on a reducing line that could be over it (``batch``: the chunk's
    ``batch.ChunkBatch``; ``loans``: its loan table)."""
    redo: set[int] = set()
    rejecting = lines_that(scenario, "reject")
    if rejecting and len(loans["replication"]):
        over = np.asarray(loans["over_ceiling"], dtype=bool) & np.any(
            [is_text(loans["line"], line_id) for line_id in rejecting], axis=0)
        ids = set(np.asarray(loans["replication"])[over].tolist())
        redo.update(p for p, replication in enumerate(replications) if replication in ids)
    # Each line's bounds once, whichever reducing lines read them.
    bounds_of = functools.cache(functools.partial(aid_bounds, scenario, batch))
    for line_id in lines_that(scenario, "reduce"):
        line = list(scenario.lines).index(line_id)
        redo.update(may_go_over(batch, bounds_of(line)).tolist())
        redo.update(beneficiaries_may_go_over(batch, line, bounds_of).tolist())
    return sorted(redo)


def may_go_over(batch, bounds) -> np.ndarray:
    """Positions of the chunk's replications with a decision of a line whose aid could be
    over the ceiling at an instant the SimPy model offers it (``bounds``: the line's
    :func:`aid_bounds`)."""
    if bounds is None:
        return np.zeros(0, dtype=np.int64)
    apps, aid, ceiling = bounds
    over = aid + batch.prior_aid[apps] > ceiling
    return np.unique(batch.app_rep[apps][over])


# Above any ceiling: bounds are capped here before they are added up (no overflow).
_ABOVE_ANY_CEILING = 2**40
# A named beneficiary in a replication: replication * _KEY_SPAN + beneficiary number.
_KEY_SPAN = 2**31


def beneficiaries_may_go_over(batch, line: int, bounds_of: Callable[[int], Any]
                              ) -> np.ndarray:
    """Positions of the chunk's replications where a beneficiary named in line ``line``'s
    pipeline could go over the ceiling, or may count other aid declared before than the
    flagging run counted (module docstring).

    A named beneficiary's aid at any instant is the aid declared for one of
    its projects plus that of its projects committed before, on any line: at
    most the most declared for any of them plus the bounds
    (:func:`aid_bounds`) of all its decisions on lines with a ceiling; never
    over the ceiling if that sum is within the lowest ceiling any of them
    meets. ``bounds_of``: each line's :func:`aid_bounds`, by line number.
    """
    codes = batch.beneficiaries
    if codes[line] is None:
        return np.zeros(0, dtype=np.int64)
    decisions = [_named_decisions(batch, number, line_codes, bounds_of(number))
                 for number, line_codes in enumerate(codes) if line_codes is not None]
    key, declared, aid, ceiling, on_line = (np.concatenate([d[i] for d in decisions])
                                            for i in range(5))
    if not (on_line == line).any():
        return np.zeros(0, dtype=np.int64)
    # Decisions in the model's order within a replication, line after line: a group's
    # first occurrence is its beneficiary's first decision when it has one line.
    keys, first, group = np.unique(key, return_index=True, return_inverse=True)
    most = np.full(len(keys), -1, dtype=np.int64)
    np.maximum.at(most, group, declared)
    least = np.full(len(keys), 2**62, dtype=np.int64)
    np.minimum.at(least, group, declared)
    lines_of = np.zeros(len(keys), dtype=np.int64)
    np.bitwise_or.at(lines_of, group, 1 << on_line)
    redo = least != most
    if batch.lines[line].line.when_dry != "waiting_list":
        # Each decision of this line is priced when it is made: for a beneficiary of
        # this line only, the first priced is its first decision.
        one_line = lines_of == (1 << line)
        redo[one_line] = _first_committed_declared_otherwise(
            batch, line, keys, declared[first])[one_line]
    total = most.copy()
    np.add.at(total, group, np.minimum(aid, _ABOVE_ANY_CEILING))
    lowest = np.full(len(keys), 2**62, dtype=np.int64)
    np.minimum.at(lowest, group, ceiling)
    redo |= total > lowest
    redo &= (lines_of & (1 << line)) > 0   # beneficiaries with a decision on this line
    return np.unique(keys[redo] // _KEY_SPAN)


def _named_decisions(batch, line: int, codes: np.ndarray, bounds):
    """The decisions of line ``line`` whose project names its beneficiary: their group
    keys, declared aid, aid bounds (``bounds``, the line's :func:`aid_bounds`; 0 on a
    line without a ceiling) and lowest ceilings (very high without one), and the line."""
    positions = np.flatnonzero(batch.dec_line == line)
    apps = batch.dec_app[positions]
    code = codes[batch.app_number[apps]]
    named = np.flatnonzero(code >= 0)
    if bounds is None:
        aid = np.zeros(len(named), dtype=np.int64)
        ceiling = np.full(len(named), 2**62, dtype=np.int64)
    else:
        aid = bounds[1][named]
        ceiling = np.broadcast_to(bounds[2], len(apps))[named]
    apps = apps[named]
    return (batch.app_rep[apps] * _KEY_SPAN + code[named],
            batch.prior_aid[apps], aid, ceiling, np.full(len(named), line))


def _first_committed_declared_otherwise(batch, line: int, keys: np.ndarray,
                                        declared_first: np.ndarray) -> np.ndarray:
    """Which beneficiaries (``keys``) had aid declared for their first project committed
    on line ``line`` other than ``declared_first``, that for their first decision.

    The SimPy model counts the aid declared for the first of a beneficiary's
    projects it prices, the flagging run that of the first it commits.
    """
    committed, _, sequence = batch.booked_commitments()
    mine = batch.dec_line[committed] == line
    committed, sequence = committed[mine], sequence[mine]
    apps = batch.dec_app[committed]
    code = batch.beneficiaries[line][batch.app_number[apps]]
    named = code >= 0
    order = np.argsort(sequence[named], kind="stable")
    apps, code = apps[named][order], code[named][order]
    committed_keys, first_committed = np.unique(batch.app_rep[apps] * _KEY_SPAN + code,
                                                return_index=True)
    differs = np.zeros(len(keys), dtype=bool)
    which = np.searchsorted(keys, committed_keys)
    differs[which] = batch.prior_aid[apps[first_committed]] != declared_first[which]
    return differs


def aid_bounds(scenario: Scenario, batch, line: int):
    """For each decision of line ``line``: its application, an upper bound of its
    project's aid (cents) and the lowest ceiling (cents) at any instant the SimPy model
    could offer it; None where the line has no ceiling or no decision.

    An upper bound of the project's aid: its loan's ESL at the highest reference
    rate and the lowest discount rate in force from its decision to the end of
    the longest wait (``max_wait_months``, and two months' slack), with the
    longest grace its tranches can give (the instrument's, or the months from
    signing to completion rounded up to whole periods, plus one) and its grant
    not discounted (or discounted at a negative rate over those months), plus
    a cent for each rounding; against the lowest ceiling in force then, after
    the aid declared for it. The ESL grows with the reference rate and the
    grace and falls with the discount rate (``state_aid.project_esl``).
    """
    spec = batch.lines[line].line
    regime = spec.state_aid.regime
    positions = np.flatnonzero(batch.dec_line == line)
    if regime in ("gber", "none") or not len(positions):
        return None
    apps = batch.dec_app[positions]
    calendar = batch.calendar
    first = days_of(calendar.start, batch.horizon, calendar.offset, batch.dec_time[positions])
    waits = spec.max_wait_months + 2 if spec.when_dry == "waiting_list" else 1
    last = first + np.timedelta64(31 * waits, "D")
    table, margin = scenario.rate_table(), scenario.reference_margin_bp()
    try:
        found = table.rates_on(first, margin)
        reference, discount = found[:, 0].copy(), found[:, 1].copy()
        for change in table.valid_from:
            day = np.datetime64(change, "D")
            later = (first < day) & (day <= last)
            if later.any():
                rates = table.rates_at(change, margin)
                reference[later] = np.maximum(reference[later], rates[0])
                discount[later] = np.minimum(discount[later], rates[1])
    except ValueError:   # a day before the rates file's first rate: no bound
        return apps, np.full(len(apps), np.iinfo(np.int64).max // 2), 0
    instrument = spec.instrument
    period = PERIOD_MONTHS[instrument.frequency]
    spread = np.ceil(batch.implementation_months[apps]).astype(np.int64) + 1
    grace = np.maximum(instrument.grace_months, -(-spread // period) * period)
    none = np.zeros(len(apps), dtype=np.int64)
    loan = bf.grant_equivalents(batch.public_loan[apps], none, spec, reference, discount,
                                grace, none - 1, none)
    grant = np.ceil(batch.grant[apps] * np.maximum(1.0, (1.0 + discount) ** (-spread / 12.0)))
    aid = loan + grant.astype(np.int64) + 1
    if regime == "auto":   # the lower ceiling is the earlier one
        ceiling = np.where(first >= np.datetime64(_DE_MINIMIS_2023_FROM, "D"),
                           _DE_MINIMIS_CENTS["de_minimis_2023"],
                           _DE_MINIMIS_CENTS["de_minimis_2013"])
    else:
        ceiling = _DE_MINIMIS_CENTS[regime]
    return apps, aid, ceiling


def redo_on_the_simpy_model(scenario: Scenario, replications: list[int], seed: int,
                            check: bool, redo: list[int],
                            series: dict[str, np.ndarray] | None,
                            loans: dict[str, np.ndarray], kpis: dict[str, np.ndarray]):
    """The chunk's tables with the replications at positions ``redo`` run on the SimPy model.

    ``series`` (column -> replications x lines and total x months, or None),
    ``loans`` (the loan table's columns, replication by replication) and
    ``kpis`` (column -> one value per replication) as ``batch.simulate_chunk``
    has them; returns them with those replications' rows replaced, the
    loans as Arrow arrays of the run folder's types.
    """
    from .results import loans_schema
    from .runner import LOAN_COLUMNS, arrow_table, run_replication

    tables = [run_replication(scenario, replications[p], seed, check) for p in redo]
    names = [*scenario.lines, "total"]
    if series is not None:
        for column, cube in series.items():
            for p, table in zip(redo, tables, strict=True):
                cube[p] = [table.series[name][column] for name in names]
    for column, values in kpis.items():
        if column != "replication":
            for p, table in zip(redo, tables, strict=True):
                values[p] = table.kpis[column]
    schema = loans_schema()
    redone = np.isin(np.asarray(loans["replication"]), [replications[p] for p in redo])
    joined = pa.concat_tables([
        arrow_table(loans, schema).filter(pa.array(~redone)),
        arrow_table({c: np.concatenate([t.loans[c] for t in tables]) for c in LOAN_COLUMNS},
                     schema)])
    # Back in replication order (each replication's rows keep theirs).
    position = {replication: p for p, replication in enumerate(replications)}
    order = np.argsort([position[r] for r in joined["replication"].to_pylist()], kind="stable")
    joined = joined.take(pa.array(order))
    return series, {c: joined[c].combine_chunks() for c in schema.names}, kpis
