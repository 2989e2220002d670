"""The batch engine: a chunk of replications simulated together, month by month.

The SimPy model (``model``) is the specification: one replication, one
event per decision, easy to read. It costs a few milliseconds per
replication, mostly Python work per application and per loan. This engine
runs the same model on all the replications of a chunk at once. Lines
meet only at reallocations (free cash moved between two lines of a
replication at a date), so each line in each replication (a *unit*) is a
ledger of its own; the state (free cash, waiting list, fees to date, ...) is one
numpy array over the units, the months are stepped in order, and in each
month every unit's decisions are taken together:

1. close the previous month (returns, legacy, fees, treasury interest,
   contribution tranches) as ``LineLedger._close_loop`` does, for every
   unit at once (``batch_closing``);
2. decisions that fall exactly on the month's first instant (a call ranked
   then), then the waiting list served at the month end (expired entries
   first), then the month's other decisions in time order. A waiting list is
   a contiguous run of a line's decisions (FIFO), so it is two pointers per
   unit; on the desk, the decisions of a month that fit are those whose
   running total of exposures fits the free cash; a reallocation falls
   between the decisions before it and those after, and the receiving
   line's waiting list is served at once;
3. the cash flows of the month's commitments are computed in closed form
   for all of them at once (``batch_flows``) and booked.

The numbers are the SimPy model's, to the cent and bit for bit (the tests
run both on random scenarios and compare every table). Scenarios with
features the engine does not cover (:func:`unsupported`) run on the SimPy
model.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from . import batch_flows as bf
from .batch_applications import DRAWN, TERMS, LineApplications
from .batch_closing import KIND, MonthClosing
from .batch_loans import beneficiary_codes, loan_table, same_instant_on_two_lines
from .batch_strict import redo_on_the_simpy_model, replications_to_redo
from .distributions import Fixed
from .draws import application_windows
from .ledger import (
    COUNT_COLUMNS,
    FLOW_KINDS,
    check_invariants,
    each_series_column,
    source_columns,
)
from .metrics import chunk_kpis
from .model import (
    eligibility_month,
    funding_shares,
    legacy_from_month,
    start_offset,
)
from .runner import frames
from .scenario import Scenario, date_to_months

# Positions after the head of a waiting list looked at before searching (``_fitted``):
# four, so that a list's four answers (one byte each) are one 32-bit word.
_LOOK_AHEAD = np.arange(1, 5)


def unsupported(scenario: Scenario) -> str | None:
    """Why a scenario must run on the SimPy model, or None if the batch engine covers it."""
    for line_id, line in scenario.lines.items():
        if line.applications.mode != "pipeline":
            continue
        tie = _shared_instant(scenario, line_id)
        if tie:
            return f"line {line_id} decides on the instant of {tie}"
    return None


def _shared_instant(scenario: Scenario, line_id: str) -> str | None:
    """What a pipeline desk's decision may share its exact instant with, if anything.

    Rows dated on a month's first day and evaluated in whole months (given in
    the file, or a fixed ``evaluation_months``) are decided exactly when the
    line's waiting list ticks, or when a reallocation is made on that date.
    The SimPy model then takes the events in the order it scheduled them,
    which depends on the line's earlier decisions; the batch engine takes
    them in a fixed order. Poisson arrivals and drawn evaluation times never
    meet an instant exactly.
    """
    line = scenario.lines[line_id]
    if line.procedure == "graduatoria":   # ranked when the run starts: before either
        return None
    rows = scenario.pipeline(line_id)
    dist = line.applications.evaluation_months
    given = rows["evaluation_months"].to_numpy(dtype=float)
    fixed = dist.from_uniform(np.zeros(len(rows))) if isinstance(dist, Fixed) else math.nan
    decided = rows["t"].to_numpy(dtype=float) + np.where(np.isnan(given), fixed, given)
    decided = decided[~np.isnan(decided)]
    calendar = Calendar(scenario)
    # As ChunkBatch._decisions finds the decisions on a month's first instant.
    on_month_start = decided == bf.month_of(decided, calendar.offset) - calendar.offset
    if line.when_dry == "waiting_list" and on_month_start.any():
        return "its waiting list's monthly tick"
    for realloc in scenario.fund.reallocations:
        if (decided == date_to_months(calendar.start, realloc.date)).any():
            return f"the reallocation of {realloc.date}"
    return None


def expected_applications(scenario: Scenario) -> float:
    """Mean number of applications of one replication (all lines)."""
    total = 0.0
    for line_id, line in scenario.lines.items():
        if line.applications.mode == "pipeline":
            total += len(scenario.pipeline(line_id))
            continue
        windows = application_windows(line, scenario)
        total += line.applications.per_month * sum(b - a for a, b in windows)
    return total


def stepped_months(scenario: Scenario) -> float:
    """Until when applications come in, in months since the start (any line): the
    months that :class:`ChunkBatch` steps one by one."""
    until = 0.0
    for line_id, line in scenario.lines.items():
        if line.applications.mode == "pipeline":
            until = max(until, float(scenario.pipeline(line_id)["t"].max()))
        else:
            until = max([until, *(end for _, end in application_windows(line, scenario))])
    return until


@dataclass(frozen=True)
class Reallocation:
    """A reallocation between lines (``[[fund.reallocations]]``) on the chunk's calendar."""

    time: float              # the model's time of its date
    month: int
    before_tick: bool        # at or before the month's first instant: before its tick
    source: int              # line numbers
    target: int
    amount: int | None       # cents; None: all the source's free cash


def reallocations(scenario: Scenario, calendar: Calendar) -> list[Reallocation]:
    """The scenario's reallocations inside the run, in the order the model makes them
    (by time; at the same time, as listed)."""
    lines = list(scenario.lines)
    found = []
    for realloc in scenario.fund.reallocations:
        time = date_to_months(calendar.start, realloc.date)
        if time >= calendar.end_time:
            continue
        month = int(bf.month_of(np.array(time), calendar.offset))
        amount = None if realloc.amount == "all_uncommitted" else round(realloc.amount * 100)
        found.append(Reallocation(time, month, time <= calendar.month_start(month),
                                  lines.index(realloc.from_), lines.index(realloc.to), amount))
    return sorted(found, key=lambda r: r.time)


class Calendar:
    """Time of a scenario: months, the offset of the start date, the end of the run."""

    def __init__(self, scenario: Scenario):
        self.start = scenario.scenario.start
        self.horizon = scenario.scenario.horizon_months
        self.offset = start_offset(self.start)
        self.end_time = self.horizon - self.offset

    def month_start(self, month: int) -> float:
        """The time at which month ``month`` begins (the model's month-end ticks)."""
        return month - self.offset


class ChunkBatch(MonthClosing):
    """Every line of the fund in every replication of a chunk, stacked.

    Lines meet only at reallocations (:meth:`_reallocate`), so a line in a
    replication, a *unit*, is stepped like a fund of its own: unit ``u`` is
    line ``u // replications`` in replication ``u % replications``. All the
    units of a chunk go through one month loop, so each month costs the
    same numpy calls whatever the number of lines. What differs between
    lines is per unit (allocation, fees' base and cap, waiting list or not)
    or per line (pricing: ``batch_flows`` takes one line's instrument).
    Closing months: :class:`batch_closing.MonthClosing`.
    """

    def __init__(self, scenario: Scenario, replications: list[int], seed: int,
                 calendar: Calendar, legacy_from: int):
        self.scenario, self.calendar = scenario, calendar
        self.lines = [LineApplications(scenario, line_id, replications, seed,
                                       calendar.end_time) for line_id in scenario.lines]
        self.replications = reps = len(replications)
        size = self.size = reps * len(self.lines)
        horizon = self.horizon = calendar.horizon
        fund = scenario.fund
        self.legacy_from = legacy_from
        self.fees, self.treasury_rate = fund.fees, fund.treasury_rate
        self.allocations = [round(line.line.allocation * 100) for line in self.lines]
        self.allocation = np.repeat(np.array(self.allocations, dtype=np.int64), reps)
        self._contributions(reps)
        self.reallocations = reallocations(scenario, calendar)
        self.shares = funding_shares(fund.funding, calendar.start, horizon, calendar.offset)
        self.sources = source_columns(fund.funding.sources())

        self._stack_applications()
        self._decisions()
        # How each application's money goes out, by its line's rules.
        self.payouts = bf.StackedPayouts.of_lines([line.line for line in self.lines],
                                                  [line.public_loan for line in self.lines])
        for line in self.lines:
            line.release_arrays()   # stacked above: the chunk's largest arrays, held once
        # Each pipeline row's beneficiary, numbered across lines (-1: its own).
        self.beneficiaries = beneficiary_codes(self.lines)

        def zeros():
            return np.zeros((size, horizon), dtype=np.int64)

        # Booked flows get one spare month: whatever falls at or after the horizon.
        # One array for all kinds, so that a batch of flows is booked in one call; month
        # before unit, so that closing a month reads contiguous rows.
        self.flow_array = np.zeros((len(FLOW_KINDS), horizon + 1, size), dtype=np.int64)
        # Per kind, units x months (transposed views).
        self.flows = {kind: self.flow_array[i].T for i, kind in enumerate(FLOW_KINDS)}
        self.committed_amount = zeros()
        self.monthly = {name: zeros() for name in (
            "cash", "legacy", "fees_paid", "fees_charged", "treasury_interest",
            "reallocated_in", "reallocated_out", "contribution_paid_in", "fees_grant_charged")}
        if horizon:
            self.monthly["contribution_paid_in"][:, 0] = self.paid_in
        self.counts = {name: zeros() for name in COUNT_COLUMNS}
        # Every decision offered is counted as admitted in its month.
        _add_at(self.counts["admitted"], self.order_unit, self.dec_month[self.by_month[
            :len(self.order_unit)]], 1)
        arrival_month = bf.month_of(self.arrival, calendar.offset)
        seen = arrival_month < horizon
        _add_at(self.counts["applications"], self.app_unit[seen], arrival_month[seen], 1)
        # Running state, one value per unit.
        self.free = self.paid_in.copy()
        self.undisbursed = np.zeros(size, dtype=np.int64)
        self.legacy = np.zeros(size, dtype=np.int64)
        self.to_date = np.zeros((2, size), dtype=np.int64)
        self.fees_to_date = np.zeros((2, size), dtype=np.int64)
        self._fee_terms()
        self.arrears = np.zeros(size, dtype=np.int64)
        self.first_dry = np.full(size, math.nan)
        # The waiting list of unit u: decisions head[u] .. tail[u] - 1.
        self.head = self.unit_first.copy()
        self.tail = self.unit_first.copy()
        if self.any_queue:
            self._waiting_list_keys()
        # Commitments as (decision positions, commitment times, commitment sequence):
        # those whose flows are not booked yet, and every one so far. A project's
        # first flow falls at its signing, so booking waits until the earliest
        # signing month among the unbooked ones is closed: one pricing for
        # several months of commitments.
        self.commits: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.first_flow_month = math.inf
        # Booked commitments whose repayments are not booked yet, and when they can start.
        self.repaying: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.repayments_from = math.inf
        self.booked: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        # Runs of equal flows (interest-free instalments, ``FlowBatch.runs``) are booked
        # as their ends: per (kind, months between flows), +amount where a run starts
        # and -amount where it stops, months x units. Month by month as months close,
        # each row becomes the sum of its own and the row ``stride`` months before
        # (:meth:`_runs_into_flows`): the month's flows of every run, added to the flow
        # array. Months before ``runs_through`` are done.
        self.run_ends: dict[tuple[int, int], np.ndarray] = {}
        self.runs_through = 0
        self.sequence = 0
        # What the loan table says of each commitment, by decision position, recorded
        # as its flows are booked: totals of each kind of flow before the horizon,
        # status and months, and the grace of its schedule (for its aid).
        decisions = len(self.dec_app)
        self.loan_totals = np.zeros((len(FLOW_KINDS), decisions), dtype=np.int64)
        self.loan_months = {name: np.full(decisions, -1, dtype=np.int64) for name in (
            "status", "first_disbursement_month", "completion_month", "end_month")}
        self.loan_grace = np.repeat([line.line.instrument.grace_months
                                     for line in self.lines], self.line_decisions)

    # -- applications and decisions ------------------------------------------------------
    def _stack_applications(self) -> None:
        """The lines' applications one after the other, each with its unit."""
        reps, lines = self.replications, self.lines
        for name in ("app_rep", "app_number", *DRAWN, *TERMS):
            setattr(self, name, np.concatenate([getattr(line, name) for line in lines]))
        self.app_unit = np.concatenate([line.app_rep + i * reps
                                        for i, line in enumerate(lines)])
        apps_before = np.cumsum([0] + [len(line.app_rep) for line in lines])
        self.dec_app = np.concatenate([line.dec_app + apps_before[i]
                                       for i, line in enumerate(lines)])
        self.dec_time = np.concatenate([line.dec_time for line in lines])
        self.line_decisions = [len(line.dec_app) for line in lines]
        # Position ranges of the lines' decisions.
        self.decisions_before = np.cumsum([0, *self.line_decisions])
        self.dec_line = np.repeat(np.arange(len(lines)), self.line_decisions)

    def _decisions(self) -> None:
        """Decisions by unit and month, in the groups the month loop offers them in."""
        cal, horizon = self.calendar, self.horizon
        self.dec_unit = self.app_unit[self.dec_app]   # sorted: line, replication, order
        self.dec_exposure = self.exposure[self.dec_app]
        self.dec_month = bf.month_of(self.dec_time, cal.offset)
        self.unit_first = np.searchsorted(self.dec_unit, np.arange(self.size)).astype(np.int64)
        self.last_decision_month = int(self.dec_month.max()) if len(self.dec_month) else -1
        # Waiting list or not, per unit; lines next to each other that do the same
        # form a block, whose decisions are taken by the same calls.
        queues = [line.line.when_dry == "waiting_list" for line in self.lines]
        self.any_queue = any(queues)
        self.block_queues = [q for q, _ in itertools.groupby(queues)]
        block_of_line = np.cumsum([0] + [q != p for p, q in itertools.pairwise(queues)])
        on_boundary = self.dec_time == self.dec_month - cal.offset
        # Decisions of each block and month, in groups: on the month's first instant
        # (before the month-end tick), and after; each split where reallocations fall
        # (:meth:`_reallocations_before`). A decision that would fall in month
        # ``horizon`` (a time within 1e-9 of the end) sorts after every group: it is
        # never offered.
        self.slots = 2 * (len(self.reallocations) + 1)
        groups = self.slots * horizon
        blocks = len(self.block_queues)
        slot = (~on_boundary) * (len(self.reallocations) + 1) + self._reallocations_before()
        key = np.where(self.dec_month < horizon,
                       block_of_line[self.dec_line] * groups + self.dec_month * self.slots
                       + slot, blocks * groups)
        self.groups = groups
        self.by_month = np.argsort(key, kind="stable")
        self.group_bounds = np.searchsorted(key[self.by_month], np.arange(blocks * groups + 1))
        self._group_segments(key)

    def _reallocations_before(self) -> np.ndarray:
        """How many of its month's reallocations the model makes before each decision.

        Before a decision at a later time; at the same time, before it unless the
        decision's event was scheduled first: a call's ranking, and a desk's first
        decision, are scheduled when the run starts, before any reallocation.
        """
        count = np.zeros(len(self.dec_time), dtype=np.int64)
        if not self.reallocations or not len(count):
            return count
        desk = np.array([line.line.procedure != "graduatoria" for line in self.lines])
        first_time = self.dec_time[np.minimum(self.unit_first, len(self.dec_time) - 1)]
        scheduled_first = ~desk[self.dec_line] | (self.dec_time == first_time[self.dec_unit])
        for realloc in self.reallocations:
            count += (self.dec_month == realloc.month) & (
                (realloc.time < self.dec_time)
                | ((realloc.time == self.dec_time) & ~scheduled_first))
        return count

    def _group_segments(self, key: np.ndarray) -> None:
        """What ``_decide`` needs of each group that does not depend on the running state.

        Computed for all groups at once, in ``by_month`` order, and sliced per
        group: a group's decisions (``order``), their units and times, the
        month of their signing, the group's segments (one per unit: start
        within the group, unit, length, position after its last decision) and
        the running total of exposures within each segment.
        """
        order = self.by_month[:self.group_bounds[-1]]
        unit = self.order_unit = self.dec_unit[order]
        self.order_time = self.dec_time[order]
        self.order_signing = bf.month_of(self.order_time + self.signing_months[
            self.dec_app[order]], self.calendar.offset)
        group = key[order]
        starts = np.flatnonzero(np.concatenate(([True], (unit[1:] != unit[:-1])
                                                | (group[1:] != group[:-1])))) \
            if len(order) else np.zeros(0, dtype=np.int64)
        lengths = np.diff(np.append(starts, len(order)))
        exposure = self.dec_exposure[order]
        running = np.cumsum(exposure)
        self.order_running = running - np.repeat(running[starts] - exposure[starts], lengths)
        self.segment_bounds = np.searchsorted(starts, self.group_bounds)
        self.segment_first = starts - self.group_bounds[group[starts]]
        self.segment_unit = unit[starts]
        self.segment_length = lengths
        last = starts + lengths - 1
        self.segment_total = self.order_running[last]
        self.segment_tail = order[last] + 1

    # -- one month --------------------------------------------------------------------------
    def step(self, month: int) -> None:
        """Close the previous month, take this month's decisions, book their flows.

        The decisions on the month's first instant, the waiting lists' tick,
        then the month's other decisions; reallocations where they fall
        among them (:meth:`_reallocations_before`).
        """
        if month > 0:
            self.close(month - 1)
        alive = self.head < self.tail
        made = [r for r in self.reallocations if r.month == month]
        before_tick = sum(r.before_tick for r in made)
        first = month * self.slots
        self._decide_until(first, made, 0, before_tick, month)
        if self.any_queue:
            if month > 0:
                self.counts["waiting"][:, month - 1] = np.where(alive, self.tail - self.head, 0)
            self._serve(alive, month)
        self._decide_until(first + self.slots // 2, made, before_tick, len(made), month)
        if self.any_queue:
            self.counts["waiting"][:, month] = self.tail - self.head

    def _decide_until(self, first: int, made: list[Reallocation], done: int, until: int,
                      month: int) -> None:
        """Offer the groups of decisions from ``first + done`` on, making reallocations
        ``done .. until - 1`` of the month between them."""
        for position in range(done, until):
            self._decide_all(first + position, month)
            self._reallocate(made[position], month)
        self._decide_all(first + until, month)

    def quiet_from(self, month: int) -> bool:
        """No decision and no reallocation left from ``month`` on, every waiting list empty."""
        return (month > self.last_decision_month
                and all(r.month < month for r in self.reallocations)
                and not (self.head < self.tail).any())

    def _reallocate(self, realloc: Reallocation, month: int) -> None:
        """``FundModel._reallocation``: move free cash between the lines of every
        replication, then serve the receiving line's waiting list at once (no
        entry expires before the month's tick)."""
        source, target = self._units(realloc.source), self._units(realloc.target)
        available = self.free[source]
        wanted = available if realloc.amount is None else realloc.amount
        amount = np.maximum(0, np.minimum(wanted, available))
        self.free[source] -= amount
        self.free[target] += amount
        self._move_resources(source, target, amount)
        self.monthly["reallocated_out"][source, month] += amount
        self.monthly["reallocated_in"][target, month] += amount
        units = np.arange(self.size)[target]
        units = units[self.head[units] < self.tail[units]]
        if len(units):
            self._commit_heads(units, self.head[units], realloc.time, month)

    def _serve(self, alive: np.ndarray, month: int) -> None:
        """The month-end tick of the waiting list: drop expired entries, commit the head.

        A list is its unit's decisions ``head .. tail - 1`` in time order, so
        the expired entries are a prefix, and the heads committed one by one
        while they fit are the next prefix whose running total of exposures
        fits the free cash. Both prefixes are found in arrays prepared once
        (:meth:`_waiting_list_keys`, :meth:`_fitted`), for every list at
        once: a fixed number of numpy calls a month.
        """
        units = np.flatnonzero(alive & (self.head < self.tail))
        if not len(units):
            return
        head, tail = self.head[units], self.tail[units]
        # The first entry of each list not expired at this month's tick.
        kept = np.minimum(np.maximum(self.unexpired[month][units], head), tail)
        self.counts["rejected_no_funds"][:, month][units] += kept - head
        self._commit_heads(units, kept, self.calendar.month_start(month), month)

    def _commit_heads(self, units: np.ndarray, first: np.ndarray, time: float,
                      month: int) -> None:
        """Commit the lists of ``units`` from ``first`` on, in order, while they fit."""
        fitted = self._fitted(first, self.tail[units], self.cum_exposure[first] + self.free[units])
        self.head[units] = fitted
        lengths = fitted - first
        count = int(lengths.sum())
        if count:
            starts = np.cumsum(lengths) - lengths
            positions = np.arange(count) + np.repeat(first - starts, lengths)
            self._commit(positions, np.full(count, time), month)

    def _fitted(self, kept: np.ndarray, tail: np.ndarray, budget: np.ndarray) -> np.ndarray:
        """The last position p <= tail with ``cum_exposure[p] <= budget``, for each list.

        A month serves few entries of a list: the next :data:`_LOOK_AHEAD`
        positions are compared at once, and only the lists where all of them
        fit are searched (exposures are >= 0: the positions that fit are a
        prefix).
        """
        candidates = kept[:, None] + _LOOK_AHEAD
        fits = (candidates <= tail[:, None]) & (
            self.cum_exposure[np.minimum(candidates, tail[:, None])] <= budget[:, None])
        # The number of true answers in each row: the bits set in its word (~1 us for
        # a thousand lists, where np.count_nonzero along the rows took ~15).
        fitted = kept + np.bitwise_count(fits.view(np.uint32)[:, 0])
        further = np.flatnonzero(fits[:, -1])
        if len(further):
            fitted[further] = np.minimum(np.searchsorted(
                self.cum_exposure, budget[further], side="right") - 1, tail[further])
        return fitted

    def _waiting_list_keys(self) -> None:
        """What :meth:`_serve` searches: running exposures and expiry months of decisions.

        ``cum_exposure[p]`` is the total exposure of decisions ``0 .. p - 1``
        (exposures are >= 0: it never decreases). An entry queued at time t
        has expired at the tick of month m when ``(m - offset) - t >
        max_wait_months``, the model's test: the first such m of each
        decision is found with that very float expression, capped at
        ``horizon + 1`` (never; so are the decisions of a line without a
        waiting list). Within a unit decisions are in time order, so
        ``unit * stride + month`` (stride ``horizon + 2``) never decreases
        along the decisions either: one search gives, for every month and
        unit, where the unexpired decisions begin.
        """
        self.cum_exposure = np.concatenate(([0], np.cumsum(self.dec_exposure)))
        offset, horizon = self.calendar.offset, self.horizon
        expiry = np.full(len(self.dec_time), horizon + 1, dtype=np.int64)
        for i, line in enumerate(self.lines):
            if line.line.when_dry != "waiting_list":
                continue
            wait = line.line.max_wait_months
            decisions = slice(self.decisions_before[i], self.decisions_before[i + 1])
            time = self.dec_time[decisions]
            month = np.maximum(np.floor(time + offset + wait).astype(np.int64) - 2, 0)
            while True:
                late = ~((month.astype(float) - offset) - time > wait) & (month <= horizon)
                if not late.any():
                    break
                month += late
            # Past the horizon is never: a key must stay inside its unit's stride.
            expiry[decisions] = np.minimum(month, horizon + 1)
        stride = horizon + 2
        key = self.dec_unit * stride + expiry
        # unexpired[m, u]: the first decision of unit u not expired at month m's tick.
        # Searched in the keys' order (unit by unit), which numpy's search follows from
        # one key to the next: several times faster than month by month.
        self.unexpired = np.ascontiguousarray(np.searchsorted(
            key, np.arange(self.size)[:, None] * stride + np.arange(horizon)[None, :],
            side="right").T)

    def _decide_all(self, g: int, month: int) -> None:
        """Offer group ``g`` (``month * slots + slot``) of decisions of every block."""
        for block, queues in enumerate(self.block_queues):
            self._decide(block * self.groups + g, month, queues)

    def _decide(self, g: int, month: int, queues: bool) -> None:
        """Offer group ``g`` of decisions (sorted by unit, then in order)."""
        a, b = self.group_bounds[g], self.group_bounds[g + 1]
        if a == b:
            return
        group, unit, times = self.by_month[a:b], self.order_unit[a:b], self.order_time[a:b]
        signing, running = self.order_signing[a:b], self.order_running[a:b]
        s0, s1 = self.segment_bounds[g], self.segment_bounds[g + 1]
        first, seg_unit = self.segment_first[s0:s1], self.segment_unit[s0:s1]
        lengths = self.segment_length[s0:s1]
        if queues:
            was_empty = self.head[seg_unit] == self.tail[seg_unit]
            fits = np.repeat(was_empty, lengths) & (running <= self.free[unit])  # a prefix
            self._commit(group[fits], times[fits], month, signing[fits])
            fitted = np.add.reduceat(fits, first)
            tail = self.segment_tail[s0:s1]
            runs_dry = was_empty & (fitted < lengths)
            if runs_dry.any():
                first_queued = group[np.minimum(first + fitted, len(group) - 1)]
                self._dry(seg_unit[runs_dry], self.dec_time[first_queued[runs_dry]])
                self.head[seg_unit] = np.where(was_empty, np.where(runs_dry, first_queued,
                                                                   tail),
                                               self.head[seg_unit])
            else:
                self.head[seg_unit] = np.where(was_empty, tail, self.head[seg_unit])
            self.tail[seg_unit] = tail
            return
        segment_fits = self.segment_total[s0:s1] <= self.free[seg_unit]
        if segment_fits.all():
            self._commit(group, times, month, signing)
            return
        total_fits = np.repeat(segment_fits, lengths)
        self._commit(group[total_fits], times[total_fits], month, signing[total_fits])
        hard = group[~total_fits]
        for position in hard.tolist():   # units that run dry this month: in order
            u = self.dec_unit[position]
            if self.dec_exposure[position] <= self.free[u]:
                self._commit(np.array([position]), self.dec_time[[position]], month)
            else:
                self._dry(np.array([u]), self.dec_time[[position]])
                self.counts["rejected_no_funds"][u, month] += 1

    def _dry(self, units: np.ndarray, times: np.ndarray) -> None:
        first = self.first_dry[units]
        self.first_dry[units] = np.where(np.isnan(first), times, first)

    def _commit(self, positions: np.ndarray, times: np.ndarray, month: int,
                signing: np.ndarray | None = None) -> None:
        """Commit decisions at ``times``; ``signing``: their signing months, if known."""
        if not len(positions):
            return
        unit, exposure = self.dec_unit[positions], self.dec_exposure[positions]
        spent = np.bincount(unit, weights=exposure, minlength=self.size).astype(np.int64)
        self.free -= spent
        self.committed_amount[:, month] += spent
        self.counts["committed"][:, month] += np.bincount(unit, minlength=self.size)
        sequence = self.sequence + np.arange(len(positions))
        self.sequence += len(positions)
        self.commits.append((positions, times, sequence))
        if signing is None:
            signing = bf.month_of(times + self.signing_months[self.dec_app[positions]],
                                  self.calendar.offset)
        self.first_flow_month = min(self.first_flow_month, int(signing.min()))

    # -- booking and closing ---------------------------------------------------------------
    def booked_commitments(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every commitment booked: decision positions, times, sequence numbers."""
        return _joined(self.booked)

    def _by_line(self, positions: np.ndarray) -> list[tuple[int, np.ndarray | slice]]:
        """Which of ``positions`` (of decisions) are of each line: (line number, indices)."""
        if len(self.lines) == 1:
            return [(0, slice(None))]
        line = self.dec_line[positions]
        return [(i, np.flatnonzero(line == i)) for i in range(len(self.lines))]

    def _fate(self, apps: np.ndarray) -> dict[str, np.ndarray]:
        return {name: getattr(self, name)[apps] for name in (
            "signing_months", "implementation_months", "fails", "failure_fraction",
            "default_months", "prepayment_months")}

    def _book(self, month: float = math.inf) -> None:
        """Book the flows of unbooked commitments when one of them falls due by ``month``.

        Two stages: tranches, grants and failures from the first signing on;
        repayments, which begin a grace period later, when the first of them
        can fall due, for every commitment waiting for them.
        """
        if self.commits and self.first_flow_month <= month:
            positions, times, sequence = _joined(self.commits)
            self.commits = []
            self.first_flow_month = math.inf
            due = self._add_flows(positions, times, "early")
            self.booked.append((positions, times, sequence))
            if due < math.inf:
                self.repaying.append((positions, times, sequence))
                self.repayments_from = min(self.repayments_from, due)
        if self.repaying and self.repayments_from <= month:
            positions, times, _ = _joined(self.repaying)
            self.repaying = []
            self.repayments_from = math.inf
            self._add_flows(positions, times, "repayments")
        self._runs_into_flows(int(min(month + 1, self.horizon)))

    def _add_flows(self, positions: np.ndarray, times: np.ndarray, parts: str) -> float:
        """Price and book ``parts`` of the commitments at ``positions``.

        The first stage prices every line at once; repayments, line by line
        (a schedule is its instrument's). Returns, for the first stage, the
        earliest month their repayments can fall due.
        """
        offset = self.calendar.offset
        if parts == "early":
            apps = self.dec_app[positions]
            flows = bf.early_flows(self.public_loan[apps], self.grant[apps], times,
                                   self._fate(apps), self.payouts.take(apps), offset)
            priced = [(positions, flows)]
        else:
            priced = []
            for line, which in self._by_line(positions):
                chosen = positions[which]
                if len(chosen):
                    apps = self.dec_app[chosen]
                    priced.append((chosen, bf.project_flows(
                        self.public_loan[apps], self.grant[apps], times[which],
                        self._fate(apps), self.lines[line].line, offset, parts,
                        self.payouts.take(apps))))
        booked = []
        for chosen, flows in priced:
            self._record(chosen, flows, parts)
            booked.extend((KIND[kind], chosen[part[0]], part[1], part[2])
                          for kind, batches in flows.entries.items() for part in batches)
            for kind, runs in flows.runs.items():
                for rows, first, counts, amounts, stride in runs:
                    self._add_runs(KIND[kind], chosen[rows], first, counts, amounts, stride)
        due = priced[0][1].repayments_from if parts == "early" else math.inf
        if not booked:
            return due
        flowing = np.concatenate([b[1] for b in booked])
        months = np.concatenate([b[2] for b in booked])
        amounts = np.concatenate([b[3] for b in booked])
        kinds = np.repeat([b[0] for b in booked], [len(b[1]) for b in booked])
        # Cell (kind, month, unit) of the flat flow array; months from the horizon
        # on go to its spare month.
        horizon = self.horizon
        cells = ((kinds * (horizon + 1) + np.minimum(months, horizon)) * self.size
                 + self.dec_unit[flowing])
        np.add.at(self.flow_array.reshape(-1), cells, amounts)
        seen = months < horizon
        np.add.at(self.loan_totals.reshape(-1),
                  kinds[seen] * len(self.dec_app) + flowing[seen], amounts[seen])
        return due

    def _add_runs(self, kind: int, flowing: np.ndarray, first: np.ndarray, counts: np.ndarray,
                  amounts: np.ndarray, stride: int) -> None:
        """Book runs of equal flows (``FlowBatch.runs``) of the decisions ``flowing``.

        What falls before the horizon goes to the run ends (:attr:`run_ends`)
        and to the loan totals; the rest to the flow array's spare month.
        """
        horizon, size = self.horizon, self.size
        if len(first) and int(first.min()) < self.runs_through:
            raise RuntimeError("a run of flows starts in a month already closed")
        seen = np.clip(-((first - horizon) // stride), 0, counts)   # months < horizon
        unit = self.dec_unit[flowing]
        np.add.at(self.loan_totals[kind], flowing, amounts * seen)
        np.add.at(self.flow_array[kind, horizon], unit, amounts * (counts - seen))
        ends = self.run_ends.get((kind, stride))
        if ends is None:
            ends = self.run_ends[kind, stride] = np.zeros((horizon, size), dtype=np.int64)
        starts = first < horizon
        np.add.at(ends.reshape(-1), first[starts] * size + unit[starts], amounts[starts])
        stop = first + stride * counts
        stops = stop < horizon
        np.add.at(ends.reshape(-1), stop[stops] * size + unit[stops], -amounts[stops])

    def _runs_into_flows(self, until: int) -> None:
        """Add the flows of the booked runs of months ``runs_through .. until - 1`` to the
        flow array (see :attr:`run_ends`)."""
        for month in range(self.runs_through, until):
            for (kind, stride), ends in self.run_ends.items():
                if month >= stride:
                    ends[month] += ends[month - stride]
                self.flow_array[kind, month] += ends[month]
        self.runs_through = max(self.runs_through, until)

    def _record(self, positions: np.ndarray, flows: bf.FlowBatch, parts: str) -> None:
        """Keep the loan facts a booking settles: all of them at the first stage, those
        of loans that repay at the second (:meth:`_book`)."""
        rows = slice(None) if parts == "early" else flows.schedule_rows
        if rows is None:
            return
        for name, values in self.loan_months.items():
            values[positions[rows]] = getattr(flows, name)[rows]
        if flows.schedule_rows is not None:
            self.loan_grace[positions[flows.schedule_rows]] = flows.schedule_grace

    def series(self) -> dict[str, np.ndarray]:
        """The timeseries columns, replications x lines and total x months (``runner.frames``).

        Computed for every unit at once, each column straight into its place
        in the table's order (``each_series_column(out=...)``), then the total
        of the lines.
        """
        lines, reps, horizon = len(self.lines), self.replications, self.horizon
        out: dict[str, np.ndarray] = {}

        def place(name: str) -> np.ndarray:   # lines x replications x months, as computed
            laid_out = out[name] = np.empty((reps, lines + 1, horizon), dtype=np.int64)
            return laid_out[:, :lines].transpose(1, 0, 2)

        for name, _ in self._series_columns(place):
            laid_out = out[name]
            total = laid_out[:, lines]
            # Line by line: quicker than a sum along the lines' axis (a short one).
            if lines == 1:
                total[...] = laid_out[:, 0]
            else:
                np.add(laid_out[:, 0], laid_out[:, 1], out=total)
            for line in range(2, lines):
                total += laid_out[:, line]
        return out

    def totals(self) -> dict[str, np.ndarray]:
        """The fund's total of each timeseries column, replications x months: what the
        KPIs read (:meth:`series` without the lines)."""
        return {name: values.sum(axis=0) for name, values in self._series_columns()}

    def _series_columns(self, out=None):
        """``ledger.each_series_column`` of every unit, lines x replications x months
        (``out``: where each column goes, as there)."""
        lines, reps, horizon = len(self.lines), self.replications, self.horizon

        def by_line(values: np.ndarray) -> np.ndarray:
            return values.reshape(lines, reps, horizon)

        # Each flow is read once, by a cumulative sum that writes a new array: views.
        flows = {kind: by_line(values[:, :horizon]) for kind, values in self.flows.items()}
        return each_series_column(flows, by_line(self.committed_amount),
                                  {name: by_line(v) for name, v in self.monthly.items()},
                                  {name: by_line(v) for name, v in self.counts.items()},
                                  self.shares, self.sources, out)


def simulate_chunk(scenario: Scenario, replications: list[int], seed: int,
                   check: bool = False, kpis_only: bool = False):
    """Run a chunk of replications together; return its tables (``executors.ChunkFrames``;
    ``kpis_only``: the KPI table only, see ``executors.run_chunk``)."""
    from .executors import ChunkFrames
    from .runner import kpi_frame

    calendar = Calendar(scenario)
    horizon = calendar.horizon
    legacy_from = legacy_from_month(scenario, calendar.offset)
    batch = ChunkBatch(scenario, replications, seed, calendar, legacy_from)
    # Once no decision is left, the remaining months close in one go.
    for month in range(horizon):
        if batch.quiet_from(month):
            batch.close_rest(max(month - 1, 0))
            break
        batch.step(month)
    else:
        if horizon:
            batch.close(horizon - 1)
    batch._book()   # commitments whose flows all fall after the horizon

    # The loan table first: its temporaries are gone before the timeseries, the
    # chunk's largest arrays, are laid out (fewer fresh pages for a process's
    # first chunk).
    loans = loan_table(scenario, batch, replications)
    if kpis_only and not check:
        series = None
        total = batch.totals()
    else:
        series = batch.series()
        total = {name: values[:, -1] for name, values in series.items()}
    if check:
        _check(scenario, batch, series, replications)
    first_dry = np.fmin.reduce(batch.first_dry.reshape(len(batch.lines), -1), axis=0)
    deadline = eligibility_month(scenario, calendar.offset)
    # Each loan's replication as its position in ``replications`` (in any order).
    ids = np.asarray(replications, dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    position = order[np.searchsorted(ids[order], loans["replication"])]
    no_aid_decision = np.zeros(len(replications), dtype=np.int64)
    kpis = {"replication": np.asarray(replications),
            **chunk_kpis(scenario, total, loans, position, first_dry, deadline,
                         no_aid_decision, no_aid_decision)}
    # Where a strict run's rule may apply (batch_strict), or the order of two lines'
    # commitments of one beneficiary at one instant is the SimPy model's.
    redo = sorted(set(replications_to_redo(scenario, batch, loans, replications))
                  | set(same_instant_on_two_lines(batch).tolist()))
    if redo:
        series, loans, kpis = redo_on_the_simpy_model(scenario, replications, seed, check,
                                                      redo, series, loans, kpis)
    if kpis_only:
        return ChunkFrames(replications, None, None, kpi_frame(kpis))
    return ChunkFrames(replications, *frames(scenario, replications, series, loans, kpis))


def _check(scenario, batch: ChunkBatch, series: dict[str, np.ndarray],
           replications) -> None:
    from .model import month_dates

    dates = month_dates(scenario.scenario.start, scenario.scenario.horizon_months)
    limits = [*zip(batch.allocations, (line.line_id for line in batch.lines), strict=True),
              (round(scenario.fund.endowment * 100), "total")]
    for r in range(len(replications)):
        for i, (allocation, name) in enumerate(limits):
            check_invariants({k: v[r, i] for k, v in series.items()}, allocation, name, dates)


def _add_at(matrix: np.ndarray, rows: np.ndarray, columns: np.ndarray, values) -> None:
    """``matrix[rows, columns] += values`` with repeated cells summed (``np.add.at``).

    Through the flat index: numpy's fast path for one index array, several
    times quicker than a pair of index arrays.
    """
    np.add.at(matrix.reshape(-1), rows * matrix.shape[1] + columns, values)


def _joined(commits: list[tuple[np.ndarray, np.ndarray, np.ndarray]]):
    """Positions, times and sequence numbers of a list of commitment batches, joined."""
    if not commits:
        return (np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0, dtype=np.int64))
    return tuple(np.concatenate([c[i] for c in commits]) for i in range(3))
