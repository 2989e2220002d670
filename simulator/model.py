"""The SimPy model of the fund: applications, evaluation, commitment, waiting lists.

One call of :func:`simulate` runs one replication.  SimPy carries the
decisions, the events whose order matters: applications arriving and being
evaluated, commitments on the desk (*sportello*, first come first served) or
at the close of a call (*graduatoria*, ranked by score), the waiting list
served at each month end as money comes back, reallocations between lines.
Everything that follows a commitment (tranches, grant, instalments,
failure, default, prepayment, recovery) is known in closed form and booked
by the ledger (see ``loanbook``), so a replication costs about one SimPy
event per application, not one per instalment.

Draws (``draws``): every quantity of every application is drawn from its
own counter-based stream of the master seed, the replication number, the
line id (not its position) and the quantity. Each application carries its
fate from the moment it is drawn, so two scenarios run with the same seed see
the same applications with the same fates (common random numbers), whatever
they change in the instrument.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections import deque
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import simpy

from .draws import application_windows, draw_chunk
from .ledger import RETURN_KINDS, LineLedger
from .loanbook import Fate, Flows, Terms, project_flows, project_terms
from .scenario import Scenario, date_to_months, month_end
from .state_aid import Aid, AidRegister


@dataclass(slots=True)
class Application:
    """One application to a line, with every draw it will ever need."""

    project_id: str
    line_id: str
    arrival: float            # months since the start
    eligible_cost: int        # cents
    admitted: bool
    evaluation_months: float
    score: float
    fate: Fate
    decided: float = math.nan
    queued_at: float = math.nan
    terms: Terms | None = None   # computed once, on the first offer
    beneficiary: str | None = None   # a pipeline's name; None: the project is its own
    prior_aid: int = 0               # cents of de minimis aid already received (declared)


class Loan(NamedTuple):
    """A committed project as the loan table keeps it: plain numbers, flows seen by the run.

    The row is taken when the project is committed, and its flows, schedule and
    aid objects are let go: a large fund commits tens of thousands of projects
    per replication, and keeping them all alive until the end made Python's
    garbage collector sweep them over and over.
    """

    project_id: str
    line: str
    status: str                     # at the horizon (active if the project has not ended)
    arrival: float                  # months since the start
    decided: float
    commitment_date: dt.date
    first_disbursement_month: int
    completion_month: int
    end_month: int                  # -1 while active at the horizon
    eligible_cost: int              # cents, as all money below
    public_loan: int
    bank_loan: int
    grant: int
    loans_disbursed: int            # flows: what falls before the horizon
    grant_paid: int
    principal_repaid: int
    interest_paid: int
    written_off: int
    recovered: int
    grant_recovered: int
    esl: int                        # aid priced at commitment (state_aid.AidRegister)
    de_minimis_ceiling: int | None
    prior_aid: int
    over_ceiling: bool


def book_loan(app: Application, terms: Terms, flows: Flows, aid: Aid, commit_date: dt.date,
              horizon: int) -> Loan:
    """The loan table's row of a project committed now."""
    status = flows.status if 0 <= flows.end_month < horizon else "active"
    if flows.status == "failed" and flows.end_month < horizon:
        status = "failed"
    return Loan(
        app.project_id, app.line_id, status, app.arrival, app.decided, commit_date,
        flows.first_disbursement_month, flows.completion_month,
        flows.end_month if status != "active" else -1,
        terms.eligible_cost, terms.public_loan, terms.bank_loan, terms.grant,
        flows.loans_disbursed.total_before(horizon), flows.grants_paid.total_before(horizon),
        flows.principal_repaid.total_before(horizon),
        flows.interest_received.total_before(horizon),
        flows.principal_written_off.total_before(horizon),
        flows.recoveries.total_before(horizon), flows.grants_recovered.total_before(horizon),
        aid.esl, aid.ceiling, aid.prior, aid.over)


def draw_columns(scenario: Scenario, line_id: str, replication: int,
                 seed: int) -> dict[str, np.ndarray | list]:
    """Every draw of a line's applications in one replication, as columns in arrival order.

    ``ids`` and ``beneficiaries`` are lists (None: generated / own beneficiary);
    every other column is a numpy array (``draws.draw_chunk`` of one replication).
    """
    columns = draw_chunk(scenario, line_id, [replication], seed)
    del columns["counts"]
    return columns


def draw_applications(scenario: Scenario, line_id: str, replication: int,
                      seed: int) -> list[Application]:
    """Every application of a line in one replication, in arrival order."""
    c = draw_columns(scenario, line_id, replication, seed)
    n = len(c["arrival"])
    ids = c["ids"] or [f"{line_id}-{k:05d}" for k in range(1, n + 1)]
    beneficiaries = c["beneficiaries"] or [None] * n
    # Columns become Python numbers in one C call each (tolist): picking numpy
    # elements one by one costs more than building the applications.
    fates = map(Fate, c["signing_months"].tolist(), c["implementation_months"].tolist(),
                c["fails"].tolist(), c["failure_fraction"].tolist(),
                c["default_months"].tolist(), c["prepayment_months"].tolist())
    columns = zip(ids, c["arrival"].tolist(), c["eligible_cost"].tolist(),
                  c["admitted"].tolist(), c["evaluation_months"].tolist(), c["score"].tolist(),
                  fates, beneficiaries, c["prior_aid"].tolist(), strict=True)
    return [Application(project_id, line_id, t, cost_cents, is_admitted, months, points, fate,
                        beneficiary=beneficiary, prior_aid=prior_aid)
            for project_id, t, cost_cents, is_admitted, months, points, fate, beneficiary,
            prior_aid in columns]


class FundModel:
    """The fund in one replication: lines, ledgers, queues and the loan book."""

    def __init__(self, scenario: Scenario, replication: int, seed: int):
        self.scenario = scenario
        self.replication = replication
        self.horizon = scenario.scenario.horizon_months
        start = scenario.scenario.start
        self.start = start
        self.offset = start_offset(start)
        fund = scenario.fund
        legacy_from = legacy_from_month(scenario, self.offset)
        sources = fund.funding.sources()
        shares = funding_shares(fund.funding, start, self.horizon, self.offset)
        self.ledgers = {
            line_id: LineLedger(line_id, round(line.allocation * 100), self.horizon, fund.fees,
                                fund.treasury_rate, legacy_from, fund.payments, sources,
                                shares)
            for line_id, line in scenario.lines.items()
        }
        self.applications = {
            line_id: draw_applications(scenario, line_id, replication, seed)
            for line_id in scenario.lines
        }
        self.queues: dict[str, deque[Application]] = {line_id: deque() for line_id in
                                                       scenario.lines}
        self._ticking: set[str] = set()
        self.loans: list[Loan] = []
        self.first_dry: float = math.nan
        self.aid = AidRegister(scenario)
        self.env = simpy.Environment(initial_time=0.0)
        # The time of the event being handled, as the model computed it: SimPy's clock
        # adds up the delays and may be a rounding error away from it.
        self.clock = 0.0

    def month_of(self, t: float) -> int:
        return math.floor(t + self.offset + 1e-9)

    # -- processes ---------------------------------------------------------------------
    def run(self) -> FundModel:
        env = self.env
        for line_id, line in self.scenario.lines.items():
            ledger = self.ledgers[line_id]
            for app in self.applications[line_id]:
                ledger.count("applications", self.month_of(app.arrival))
            if line.procedure == "graduatoria":
                for opens, closes in application_windows(line, self.scenario):
                    env.process(self._call(line_id, opens, closes))
            else:
                env.process(self._desk(line_id))
        for realloc in self.scenario.fund.reallocations:
            env.process(self._reallocation(realloc))
        env.run(until=self._end_time())
        for line_id, ledger in self.ledgers.items():
            ledger.close_until(self.horizon)
            # A month's waiting list is recorded at the next month's tick; the last
            # month has none, and a reallocation may have served its list since.
            if self.horizon:
                ledger.set_waiting(self.horizon - 1, len(self.queues[line_id]))
        return self

    def _end_time(self) -> float:
        return self.horizon - self.offset

    def _desk(self, line_id: str):
        """Sportello: each admitted application is decided when its evaluation ends."""
        env = self.env
        admitted = [a for a in self.applications[line_id] if a.admitted]
        admitted.sort(key=lambda a: a.arrival + a.evaluation_months)
        for app in admitted:
            when = app.arrival + app.evaluation_months
            if when >= self._end_time():
                break
            if when > env.now:
                yield env.timeout(when - env.now)
            self.clock = when
            self._admit(app)
            self._offer(app)

    def _call(self, line_id: str, opens: float, closes: float):
        """Graduatoria: the applications of a call are ranked once all are evaluated."""
        env = self.env
        entries = [a for a in self.applications[line_id] if opens <= a.arrival < closes]
        ranking_time = max([closes, *(a.arrival + a.evaluation_months for a in entries)])
        if ranking_time >= self._end_time():
            return
        yield env.timeout(max(0.0, ranking_time - env.now))
        self.clock = ranking_time
        admitted = [a for a in entries if a.admitted]
        admitted.sort(key=lambda a: (-a.score, a.arrival))
        for app in admitted:
            self._admit(app)
            self._offer(app)

    def _admit(self, app: Application) -> None:
        app.decided = self.clock
        self.ledgers[app.line_id].count("admitted", self.month_of(self.clock))

    def _offer(self, app: Application) -> None:
        """Commit if the line can cover the project; else reject or queue it."""
        line = self.scenario.lines[app.line_id]
        queue = self.queues[app.line_id]
        if not (line.when_dry == "waiting_list" and queue) and self._try_commit(app):
            return
        if math.isnan(self.first_dry):
            self.first_dry = self.clock
        month = self.month_of(self.clock)
        if line.when_dry == "reject":
            self.ledgers[app.line_id].count("rejected_no_funds", month)
            return
        app.queued_at = self.clock
        queue.append(app)
        if app.line_id not in self._ticking:
            self._ticking.add(app.line_id)
            self.env.process(self._serve_waiting_list(app.line_id, self.clock))

    def _try_commit(self, app: Application) -> bool:
        """Commit ``app`` if the line can cover it; True if it is settled (leaves any queue).

        The aid is priced at the commitment date and checked against the de
        minimis ceiling (``state_aid.AidRegister``). A strict run applies the
        line's ``over_ceiling`` rule: ``reject`` settles the application without
        committing it; ``reduce`` commits it with the largest aid that fits.
        """
        line = self.scenario.lines[app.line_id]
        ledger = self.ledgers[app.line_id]
        now = self.clock
        month = self.month_of(now)
        terms = app.terms
        if terms is None:
            terms = app.terms = project_terms(app.eligible_cost, line.instrument)
        action = self.aid.action(line)
        # A project that may be reduced is priced first: the reduced one may fit.
        may_reduce = action == "reduce"
        if not may_reduce and terms.exposure > ledger.free and \
                terms.exposure > free_cash_at_most(ledger, month):
            # It cannot fit whatever the months not yet closed bring: leave them for later
            # (a waiting list retries its head every month, and closing is the dear part).
            return False
        ledger.close_until(month)
        if terms.exposure > ledger.free and not may_reduce:
            return False
        flows = project_flows(terms, app.fate, now, self.month_of, line)
        when = self.date_of(now)
        aid = self.aid.assess(app, terms, flows, line, when)
        reduced = False
        if aid.over and action != "flag":
            priced = None
            if action == "reduce":
                priced = self.aid.reduce(
                    terms, flows, aid, line, when,
                    lambda t: project_flows(t, app.fate, now, self.month_of, line))
            if priced is None:  # rejected, or nothing left to grant under the ceiling
                if terms.exposure > ledger.free:
                    return False  # a matter of money first: queue or reject as usual
                self.aid.rejected += 1
                return True
            terms, flows, aid = priced
            reduced = True
        if terms.exposure > ledger.free:
            return False
        ledger.commit(month, terms.exposure, flows)
        ledger.count("committed", month)
        self.aid.record(app, aid, when)
        self.aid.reduced += reduced
        self.loans.append(book_loan(app, terms, flows, aid, when, self.horizon))
        return True

    def _serve_waiting_list(self, line_id: str, started: float):
        """At every month end, serve the queue in order while money allows."""
        env = self.env
        queue = self.queues[line_id]
        line = self.scenario.lines[line_id]
        ledger = self.ledgers[line_id]
        now = started
        while queue:
            month = self.month_of(now)
            next_month_start = month + 1 - self.offset
            ledger.set_waiting(month, len(queue))
            if next_month_start >= self._end_time():
                break
            yield env.timeout(next_month_start - env.now)
            self.clock = now = next_month_start
            ledger.set_waiting(month, len(queue))
            while queue and now - queue[0].queued_at > line.max_wait_months:
                queue.popleft()
                ledger.count("rejected_no_funds", month + 1)
            while queue and self._try_commit(queue[0]):
                queue.popleft()
        self._ticking.discard(line_id)

    def _reallocation(self, realloc):
        env = self.env
        when = date_to_months(self.start, realloc.date)
        if when >= self._end_time():
            return
        yield env.timeout(max(0.0, when - env.now))
        self.clock = when
        month = self.month_of(when)
        source, target = self.ledgers[realloc.from_], self.ledgers[realloc.to]
        source.close_until(month)
        target.close_until(month)
        wanted = source.free if realloc.amount == "all_uncommitted" else \
            round(realloc.amount * 100)
        source.move(month, wanted, target)
        queue = self.queues[realloc.to]
        while queue and self._try_commit(queue[0]):
            queue.popleft()

    # -- calendar ----------------------------------------------------------------------------
    def month_dates(self) -> tuple[dt.date, ...]:
        """The last day of every simulated month."""
        return month_dates(self.start, self.horizon)

    def date_of(self, t: float) -> dt.date:
        """Calendar date of simulation time ``t``."""
        month = self.month_of(t)
        dates = self.month_dates()
        last = dates[month] if 0 <= month < len(dates) else month_end(self.start, month)
        frac = min(max(t + self.offset - month, 0.0), 1.0 - 1e-12)
        # The day a date maps to comes back whole: (14/30) * 30 is 13.999..., not day 14.
        return last.replace(day=min(1 + int(frac * last.day + 1e-6), last.day))

    def dates_of(self, times: np.ndarray) -> np.ndarray:
        """:meth:`date_of` of many times at once (the same arithmetic), as date objects."""
        months = np.floor(times + self.offset + 1e-9).astype(np.int64)
        if len(months) and not (months.min() >= 0 and months.max() < self.horizon):
            return np.array([self.date_of(t) for t in times.tolist()], dtype=object)
        return days_of(self.start, self.horizon, self.offset, times).astype(object)

    def month_end_dates(self, months) -> np.ndarray:
        """The last day of each month index, NaT where it lies outside the horizon."""
        return month_end_dates(self.start, self.horizon, months)


def free_cash_at_most(ledger: LineLedger, month: int) -> float:
    """An upper bound of a line's free cash once the months before ``month`` are closed.

    Closing a month can raise free cash only by the returns that stay in the
    fund and by released commitments; fees and a negative treasury rate only
    lower it. A positive treasury rate or contribution tranches paid in as
    money is spent (phased payments) raise it too: no bound then (inf).
    Summing the flows booked for those months costs far less than closing them.
    """
    if ledger.treasury_rate > 0 or ledger.payments is not None:
        return math.inf
    start, end = ledger.closed, min(month, ledger.horizon)
    flows = ledger.flows
    bound = ledger.free + sum(flows["released"][start:end])
    revolving_end = min(end, ledger.legacy_from_month)  # later returns go to legacy
    for kind in RETURN_KINDS:
        bound += sum(flows[kind][start:revolving_end])
    return bound


def funding_shares(funding, start: dt.date, horizon: int, offset: float) -> np.ndarray:
    """Sources x months: the share of each funding source in force in each month.

    A switch applies from the month that contains its date.
    """
    sources = funding.sources()
    matrix = np.zeros((len(sources), horizon))
    periods = [(0, funding.shares)] + [
        (max(0, math.floor(date_to_months(start, sw.date) + offset)), sw.shares)
        for sw in funding.switches]
    for i, (first_month, shares) in enumerate(periods):
        last = periods[i + 1][0] if i + 1 < len(periods) else horizon
        for name, share in shares.items():
            matrix[sources.index(name), first_month:last] = share
    return matrix


def start_offset(start: dt.date) -> float:
    """Time t lies in month floor(t + offset): the start date falls inside month 0."""
    return -date_to_months(start, start.replace(day=1))


def legacy_from_month(scenario: Scenario, offset: float) -> int:
    """The first month whose returns go to the legacy account (the horizon if none)."""
    horizon = scenario.scenario.horizon_months
    until = scenario.fund.revolving_until
    if until is None:
        return horizon
    cut = math.floor(date_to_months(scenario.scenario.start, until) + offset)
    # Returns of the month that contains the cut-off date still revolve.
    return min(max(cut + 1, 0), horizon)


def eligibility_month(scenario: Scenario, offset: float) -> int:
    """The month that contains the eligibility deadline (may lie outside the horizon)."""
    return math.floor(
        date_to_months(scenario.scenario.start, scenario.fund.eligibility_end) + offset)


def month_end_dates(start: dt.date, horizon: int, months) -> np.ndarray:
    """The last day of each month index (``datetime64[D]``), NaT outside the horizon."""
    months = np.asarray(months, dtype=np.int64)
    inside = (months >= 0) & (months < horizon)
    ends = np.full(len(months), np.datetime64("NaT"), dtype="datetime64[D]")
    ends[inside] = month_calendar(start, horizon)[0][months[inside]]
    return ends


def days_of(start: dt.date, horizon: int, offset: float, times: np.ndarray) -> np.ndarray:
    """``FundModel.date_of`` of times inside the horizon, as ``datetime64[D]``."""
    months = np.floor(times + offset + 1e-9).astype(np.int64)
    ends, lengths = month_calendar(start, horizon)
    ends, lengths = ends[months], lengths[months]
    frac = np.clip(times + offset - months, 0.0, 1.0 - 1e-12)
    day = np.minimum(1 + (frac * lengths + 1e-6).astype(np.int64), lengths)
    return ends - (lengths - day)


@functools.lru_cache(maxsize=64)
def month_dates(start: dt.date, horizon: int) -> tuple[dt.date, ...]:
    """The last day of each of ``horizon`` months from ``start`` (shared by replications)."""
    return tuple(month_end(start, m) for m in range(horizon))


@functools.lru_cache(maxsize=64)
def month_calendar(start: dt.date, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Month ends as ``datetime64[D]`` and the number of days of each month (read-only)."""
    dates = month_dates(start, horizon)
    ends = np.array(dates, dtype="datetime64[D]")
    lengths = np.array([d.day for d in dates], dtype=np.int64)
    ends.flags.writeable = lengths.flags.writeable = False
    return ends, lengths


def simulate(scenario: Scenario, replication: int, seed: int | None = None) -> FundModel:
    """Run one replication and return the finished model (ledgers and loan book)."""
    seed = scenario.scenario.seed if seed is None else seed
    return FundModel(scenario, replication, seed).run()
