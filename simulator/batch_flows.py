"""The loan book of many projects at once: :func:`loanbook.project_flows` over arrays.

The batch engine (``batch``) commits hundreds of projects per month across
the replications of a chunk; pricing them one by one in Python would cost
more than everything else. This module computes the same cash flows, cent
for cent, with numpy over arrays of projects of one line: the same rules,
the same float operations and the same rounding as ``loanbook`` and
``instruments`` (tests compare the two on random projects).

Each kind of flow comes back as three aligned arrays ``(project, month,
amount)``; a month may lie beyond the horizon (the caller drops it). The
instalments of an interest-free loan come back as runs instead (equal
amounts every period: ``FlowBatch.runs``), which the batch engine books by
their two ends.
The months to default and prepayment are computed once from the draws
(``loanbook.hazard_months``) and read by both engines; ``pow`` is evaluated
with Python floats, as ``state_aid`` does: numpy's vectorised version may
differ from the C library in the last bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np

from .instruments import PERIOD_MONTHS
from .loanbook import STATUSES
from .money import round_half_away
from .state_aid import _CHUNK_MONTHS, _annuity_factors

# A loan's status as its position in ``loanbook.STATUSES`` (0: active).
REPAID, PREPAID, DEFAULTED, FAILED = (STATUSES.index(name) for name in (
    "repaid", "prepaid", "defaulted", "failed"))


def round_pos(x: np.ndarray) -> np.ndarray:
    """Round non-negative cents half up (``instruments._round_pos`` over an array)."""
    floor = np.floor(x)
    return (floor + (x - floor >= 0.5)).astype(np.int64)


def month_of(times: np.ndarray, offset: float) -> np.ndarray:
    """``FundModel.month_of`` of an array of times."""
    return np.floor(times + offset + 1e-9).astype(np.int64)


# ------------------------------------------------------------------------------ schedules

def _equal_parts(principal: np.ndarray, n: int) -> np.ndarray:
    q = _equal_instalment(principal, n)
    parts = np.repeat(q[:, None], n, axis=1)
    parts[:, -1] = principal - q * (n - 1)
    return parts


def _amortise(principal: np.ndarray, r: float, n: int, method: str):
    """Principal parts and interest (projects x n instalments), as ``instruments``."""
    size = len(principal)
    if method == "bullet":
        parts = np.zeros((size, n), dtype=np.int64)
        parts[:, -1] = principal
        return parts, np.repeat(round_pos(principal * r)[:, None], n, axis=1)
    if r == 0.0:
        return _equal_parts(principal, n), np.zeros((size, n), dtype=np.int64)
    interest = np.empty((size, n), dtype=np.int64)
    out = principal.copy()
    if method == "italian":
        parts = _equal_parts(principal, n)
        for k in range(n):
            interest[:, k] = round_pos(out * r)
            out -= parts[:, k]
        return parts, interest
    parts = np.empty((size, n), dtype=np.int64)
    instalment = round_pos(principal * r / -math.expm1(-n * math.log1p(r)))
    for k in range(n - 1):
        due = round_pos(out * r)
        part = np.minimum(instalment - due, out)
        parts[:, k] = part
        interest[:, k] = due
        out -= part
    interest[:, -1] = round_pos(out * r)
    parts[:, -1] = out
    return parts, interest


@dataclass
class Schedules:
    """Loan schedules of many projects, padded to the longest (``length`` columns each)."""

    months: np.ndarray      # offsets from the first disbursement; padding: a huge month
    principal: np.ndarray
    interest: np.ndarray
    length: np.ndarray
    valid: np.ndarray | None = None   # column < length: the rows in use, when known


_PAD = np.int64(2**40)
_BIG = np.iinfo(np.int64).max
_NONE = np.zeros(0, dtype=np.int64)


def schedules(principal: np.ndarray, instrument, grace: np.ndarray) -> Schedules:
    """``instruments.loan_schedule`` of each principal with its own grace (months)."""
    period = PERIOD_MONTHS[instrument.frequency]
    n = instrument.term_months // period
    rate = instrument.public_rate
    r = rate / (12 // period)
    size = len(principal)
    parts, interest = _amortise(principal, r, n, instrument.method)
    grace_periods = grace // period if rate > 0.0 else np.zeros(size, dtype=np.int64)
    width = n + (int(grace_periods.max()) if size else 0)
    column = np.arange(width)[None, :]
    length = np.where(principal > 0, n + grace_periods, 0)
    valid = column < length[:, None]
    grace_interest = round_pos(principal * r)[:, None]
    if size and width == n:
        # No grace rows (always so at a zero rate): the instalments as they are.
        out_parts, out_interest = parts, interest
    elif size and (grace_periods == width - n).all():
        # Every schedule has the same grace rows: the instalments follow them as
        # they are. A zero principal has zero rows.
        out_parts = np.zeros((size, width), dtype=np.int64)
        out_parts[:, width - n:] = parts
        if r == 0.0:
            out_interest = np.zeros((size, width), dtype=np.int64)   # no interest to copy
        else:
            out_interest = np.empty((size, width), dtype=np.int64)
            out_interest[:, :width - n] = grace_interest
            out_interest[:, width - n:] = interest
    else:
        g = grace_periods[:, None]
        in_grace = column < g
        amort = np.clip(column - g, 0, n - 1)
        rows = np.arange(size)[:, None]
        out_parts = np.where(valid, np.where(in_grace, 0, parts[rows, amort]), 0)
        out_interest = np.where(valid, np.where(in_grace, grace_interest,
                                                interest[rows, amort]), 0)
    # Without grace rows the first instalment falls one period after the end of grace.
    first = np.where(grace_periods > 0, period, grace + period)[:, None]
    months = np.where(valid, first + period * column, _PAD)
    return Schedules(months, out_parts, out_interest, length, valid)


# ------------------------------------------------------------------------------ flows

@dataclass
class FlowBatch:
    """Every cash flow of a batch of projects, and their loan-level facts."""

    size: int
    # Kind -> (projects, months, amounts) batches; a kind with no flow has no entry.
    entries: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = field(
        default_factory=dict)
    status: np.ndarray = None
    first_disbursement_month: np.ndarray = None
    completion_month: np.ndarray = None
    end_month: np.ndarray = None
    schedule_rows: np.ndarray | None = None   # the projects with a repayment schedule
    schedule_grace: np.ndarray | None = None  # its grace, longer than the instrument's
                                              # when a tranche comes late
    repayments_from: float = math.inf         # (early_flows) when repayments can begin
    # Kind -> runs of equal flows (projects, first months, counts, amounts, stride): project
    # i gets amounts[i] in months first[i], first[i] + stride, ... (counts[i] of them).
    # Instalments of a loan without interest are two runs: written cell by cell they
    # were most of the cost of pricing a revolving fund's repayments.
    runs: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]]] = field(
        default_factory=dict)

    def add(self, kind: str, projects: np.ndarray, months: np.ndarray,
            amounts: np.ndarray) -> None:
        if len(projects):
            self.entries.setdefault(kind, []).append((projects, months, amounts))

    def add_run(self, kind: str, projects: np.ndarray, first: np.ndarray, counts: np.ndarray,
                amounts: np.ndarray, stride: int) -> None:
        keep = (counts > 0) & (amounts != 0)   # a run of nothing, or of zeros, books nothing
        if keep.any():
            self.runs.setdefault(kind, []).append(
                (projects[keep], first[keep], counts[keep], amounts[keep], stride))

    def flat(self, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every flow of ``kind`` as (projects, months, amounts), runs one month at a time."""
        parts = list(self.entries.get(kind, []))
        for projects, first, counts, amounts, stride in self.runs.get(kind, []):
            start = np.cumsum(counts) - counts
            step = np.arange(int(counts.sum())) - np.repeat(start, counts)
            parts.append((np.repeat(projects, counts), np.repeat(first, counts) + stride * step,
                          np.repeat(amounts, counts)))
        if not parts:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty
        return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))


def _split(total: np.ndarray, shares: list[float]) -> list[np.ndarray]:
    """``total`` (cents >= 0) in parts by ``shares``, the last part taking the rest."""
    if len(shares) == 1:
        return [total]
    parts = [round_pos(total * s) for s in shares[:-1]]
    return [*parts, total - sum(parts[1:], parts[0])]


@dataclass
class Payouts:
    """How each project's money goes out and comes back, per project.

    A line's rules (tranches, when the grant is paid, recoveries, the
    instalment period and rate) spelled out for each of its projects, so
    that the first stage of pricing (:func:`early_flows`) takes projects of
    several lines in one call. A line with fewer tranches than another has
    zero tranches at the end.
    """

    tranches: np.ndarray             # projects x tranches, cents
    tranche_at_signing: np.ndarray   # projects x tranches; else at completion
    grant_at_signing: np.ndarray     # else at completion
    recovery_rate: np.ndarray
    recovery_lag: np.ndarray         # months
    period: np.ndarray               # months between instalments
    period_rate: np.ndarray          # the public rate per period (0.0: no interest)
    first_instalment: np.ndarray     # earliest instalment, months after the first tranche

    @classmethod
    def of_line(cls, line, public_loan: np.ndarray) -> Payouts:
        instrument, disbursement, risk = line.instrument, line.disbursement, line.risk
        size = len(public_loan)
        tranches = disbursement.tranches
        period = PERIOD_MONTHS[instrument.frequency]
        rate = instrument.public_rate

        def each(value, dtype):
            return np.full(size, value, dtype=dtype)

        return cls(
            _tranches(line, public_loan),
            np.repeat([[t.at == "signing" for t in tranches]], size, axis=0),
            each(disbursement.grant_paid_at == "signing", bool),
            each(risk.recovery_rate, float), each(risk.recovery_lag_months, np.int64),
            each(period, np.int64), each(rate / (12 // period), float),
            # Without interest no payment comes before the end of grace.
            each(period if rate > 0 else instrument.grace_months + period, np.int64))


def _tranches(line, public_loan: np.ndarray) -> np.ndarray:
    """Projects x tranches: each project's public loan split by its line's tranches."""
    return np.stack(_split(public_loan, [t.share for t in line.disbursement.tranches]), axis=1)


@dataclass
class StackedPayouts:
    """The payouts of the projects of several lines, one after the other.

    Only the tranches are the project's own; the rest is its line's, kept
    once per line: taking the payouts of some projects reads one row per
    project and tiny tables, not a long array per rule (most of the cost of
    a booking was reading those).
    """

    tranches: np.ndarray    # projects x tranches (of the line with most), cents
    line: np.ndarray        # each project's line: its row of ``rules``
    rules: Payouts          # one row per line

    @classmethod
    def of_lines(cls, lines: list, public_loans: list[np.ndarray]) -> StackedPayouts:
        width = max(len(line.disbursement.tranches) for line in lines)

        def widened(matrix: np.ndarray) -> np.ndarray:
            return np.pad(matrix, ((0, 0), (0, width - matrix.shape[1])))

        rules = [Payouts.of_line(line, np.zeros(1, dtype=np.int64)) for line in lines]
        return cls(
            np.concatenate([widened(_tranches(line, public))
                            for line, public in zip(lines, public_loans, strict=True)]),
            np.repeat(np.arange(len(lines)), [len(public) for public in public_loans]),
            Payouts(np.concatenate([widened(r.tranches) for r in rules]),
                    np.concatenate([widened(r.tranche_at_signing) for r in rules]),
                    *(np.concatenate([getattr(r, name) for r in rules]) for name in _RULES)))

    def take(self, rows: np.ndarray) -> Payouts:
        """The payouts of projects ``rows``."""
        line = self.line[rows]
        # np.take along the rows: several times quicker than indexing a 2-D array.
        return Payouts(np.take(self.tranches, rows, axis=0),
                       np.take(self.rules.tranche_at_signing, line, axis=0),
                       *(getattr(self.rules, name)[line] for name in _RULES))


# The rules of a line, one value each.
_RULES = ("grant_at_signing", "recovery_rate", "recovery_lag", "period", "period_rate",
          "first_instalment")


@dataclass
class _Timing:
    """When the events of each project fall, in months."""

    signing: np.ndarray
    completion: np.ndarray
    failure: np.ndarray
    tranches: list[np.ndarray]     # the month of each tranche
    grant: np.ndarray              # the month the grant is paid


def _timing(commit_time: np.ndarray, fate: dict[str, np.ndarray], payouts: Payouts,
            offset: float) -> _Timing:
    signing = commit_time + fate["signing_months"]
    implementation = fate["implementation_months"]
    m_sign = month_of(signing, offset)
    m_done = month_of(signing + implementation, offset)
    failure = month_of(signing + fate["failure_fraction"] * implementation, offset)
    at_signing = payouts.tranche_at_signing
    tranches = [np.where(at_signing[:, k], m_sign, m_done) for k in range(at_signing.shape[1])]
    return _Timing(m_sign, m_done, failure, tranches,
                   np.where(payouts.grant_at_signing, m_sign, m_done))


def _new_batch(size: int, timing: _Timing) -> FlowBatch:
    batch = FlowBatch(size)
    batch.completion_month = timing.completion
    batch.status = np.zeros(size, dtype=np.int64)
    batch.first_disbursement_month = np.full(size, -1, dtype=np.int64)
    batch.end_month = np.full(size, -1, dtype=np.int64)
    return batch


def project_flows(public_loan: np.ndarray, grant: np.ndarray, commit_time: np.ndarray,
                  fate: dict[str, np.ndarray], line, offset: float,
                  parts: str = "all", payouts: Payouts | None = None) -> FlowBatch:
    """:func:`loanbook.project_flows` of many projects of one line.

    ``parts``: ``"all"``; ``"early"``, every flow but the repayments of loans
    that complete (tranches, grants, failures: :func:`early_flows`); or
    ``"repayments"``, those only (instalments, prepayments, defaults).
    Repayments start after the grace period, so the batch engine can price
    them later, for many months of commitments at once
    (``FlowBatch.repayments_from``). ``payouts``: ``Payouts.of_line`` of
    these projects, when the caller has it.
    """
    if payouts is None:
        payouts = Payouts.of_line(line, public_loan)
    timing = _timing(commit_time, fate, payouts, offset)
    batch = _new_batch(len(public_loan), timing)
    if parts != "repayments":
        _early(batch, public_loan, grant, fate["fails"], payouts, timing)
    if parts != "early":
        lent = np.flatnonzero(~fate["fails"] & (public_loan > 0))
        if len(lent):
            _repayments(batch, lent, public_loan[lent],
                        [(payouts.tranches[lent, k], month[lent])
                         for k, month in enumerate(timing.tranches)],
                        timing.completion[lent], fate, line)
    return batch


def early_flows(public_loan: np.ndarray, grant: np.ndarray, commit_time: np.ndarray,
                fate: dict[str, np.ndarray], payouts: Payouts, offset: float) -> FlowBatch:
    """The first stage of :func:`project_flows` of projects of any lines.

    Tranches, grants and failures; and the month from which repayments of
    these loans can fall due (``FlowBatch.repayments_from``).
    """
    timing = _timing(commit_time, fate, payouts, offset)
    batch = _new_batch(len(public_loan), timing)
    _early(batch, public_loan, grant, fate["fails"], payouts, timing)
    batch.repayments_from = _repayments_from(timing, payouts, ~fate["fails"] & (public_loan > 0))
    return batch


def _repayments_from(timing: _Timing, payouts: Payouts, lent: np.ndarray) -> float:
    """No instalment comes before the first disbursement (at signing or later)
    plus one period, or, at a zero rate, plus the grace period and one
    period; no default or prepayment before the month after completion."""
    if not lent.any():
        return math.inf
    return float(np.minimum(timing.signing + payouts.first_instalment,
                            timing.completion + 1)[lent].min())


def _early(batch: FlowBatch, public_loan: np.ndarray, grant: np.ndarray, fails: np.ndarray,
           payouts: Payouts, timing: _Timing) -> None:
    m_done, grant_month = timing.completion, timing.grant
    tranches = [(payouts.tranches[:, k], month) for k, month in enumerate(timing.tranches)]

    # -- projects that fail before completion
    f = np.flatnonzero(fails)
    if len(f):
        fm, done = timing.failure[f], m_done[f]
        recovery_rate, lag = payouts.recovery_rate[f], payouts.recovery_lag[f]
        unpaid = np.zeros(len(f), dtype=np.int64)
        disbursed = np.zeros(len(f), dtype=np.int64)
        first = np.full(len(f), _BIG)
        paid_tranches = []
        for amount, month in tranches:
            a, m = amount[f], month[f]
            paid = (m < done) & (a > 0)
            unpaid += np.where(m >= done, a, 0)
            disbursed += np.where(paid, a, 0)
            first = np.where(paid, np.minimum(first, m), first)
            batch.add("loans_disbursed", f[paid], m[paid], a[paid])
            paid_tranches.append((np.where(paid, a, 0), m))
        g, gm = grant[f], grant_month[f]
        grant_paid = (g > 0) & (gm < done)
        batch.add("grants_paid", f[grant_paid], gm[grant_paid], g[grant_paid])
        back = round_pos(g * recovery_rate)   # amounts and rates >= 0
        keep = grant_paid & (back > 0)
        batch.add("grants_recovered", f[keep], fm[keep] + lag[keep], back[keep])
        unpaid += np.where(grant_paid, 0, g)
        keep = unpaid > 0
        batch.add("released", f[keep], fm[keep], unpaid[keep])
        any_paid = first < _BIG
        batch.first_disbursement_month[f] = np.where(any_paid, first, -1)
        rate = payouts.period_rate[f]
        with_interest = any_paid & (rate > 0)
        if with_interest.any():
            _grace_interest(batch, f, paid_tranches, np.where(any_paid, first, 0), fm,
                            with_interest, payouts.period[f], rate)
        keep = disbursed > 0
        batch.add("principal_written_off", f[keep], fm[keep], disbursed[keep])
        back = round_pos(disbursed * recovery_rate)
        keep = back > 0
        batch.add("recoveries", f[keep], fm[keep] + lag[keep], back[keep])
        batch.status[f] = FAILED
        batch.end_month[f] = fm

    # -- projects that complete
    ok = np.flatnonzero(~fails)
    if not len(ok):
        return
    for amount, month in tranches:
        a = amount[ok]
        keep = a > 0
        batch.add("loans_disbursed", ok[keep], month[ok][keep], a[keep])
    g = grant[ok]
    keep = g > 0
    batch.add("grants_paid", ok[keep], grant_month[ok][keep], g[keep])
    no_loan = ok[public_loan[ok] == 0]
    batch.status[no_loan] = REPAID
    batch.end_month[no_loan] = np.maximum(m_done[no_loan], grant_month[no_loan])


def _grace_interest(batch: FlowBatch, f: np.ndarray, paid_tranches, m0: np.ndarray,
                    until: np.ndarray, any_paid: np.ndarray, period: np.ndarray,
                    rate: np.ndarray) -> None:
    """Interest-only payments of loans that fail before their first instalment."""
    step = 1
    while True:
        month = m0 + step * period
        live = any_paid & (month < until)
        if not live.any():
            return
        owed = sum((np.where(m <= month - period, a, 0) for a, m in paid_tranches),
                   np.zeros(len(f), dtype=np.int64))
        keep = live & (owed > 0)
        batch.add("interest_received", f[keep], month[keep], round_pos(owed[keep] * rate[keep]))
        step += 1


def _repayments(batch: FlowBatch, lent: np.ndarray, principal: np.ndarray, positive,
                m_done: np.ndarray, fate, line) -> None:
    """Schedules, defaults and prepayments of loans that complete.

    ``positive``: (amount, month) of each tranche of these loans.
    """
    instrument, risk = line.instrument, line.risk
    period = PERIOD_MONTHS[instrument.frequency]
    m0 = np.full(len(lent), _BIG)
    last = np.full(len(lent), -_BIG)
    count = np.zeros(len(lent), dtype=np.int64)
    for a, m in positive:
        m0 = np.where(a > 0, np.minimum(m0, m), m0)
        last = np.where(a > 0, np.maximum(last, m), last)
        count += a > 0
    batch.first_disbursement_month[lent] = m0
    grace = np.maximum(instrument.grace_months, -(-(last - m0) // period) * period)
    batch.schedule_rows, batch.schedule_grace = lent, grace
    if instrument.public_rate == 0.0:
        _interest_free_repayments(batch, lent, principal, m0, grace, m_done, fate, line)
        return
    sched = schedules(principal, instrument, grace)
    valid = sched.valid
    # Only cells in use are read (every mask below is within ``valid``): padding stays
    # a huge month, shifted.
    pay_months = sched.months + m0[:, None]
    parts, interest = sched.principal, sched.interest
    rate = instrument.public_rate
    if rate > 0 and (count > 1).any():
        r = rate / (12 // period)
        owed = sum((np.where(m[:, None] <= pay_months - period, a[:, None], 0)
                    for a, m in positive), np.zeros(pay_months.shape, dtype=np.int64))
        fix = valid & (parts == 0) & (count > 1)[:, None]
        interest = np.where(fix, round_pos(owed * r), interest)

    rows = np.arange(len(lent))
    last_payment = pay_months[rows, sched.length - 1]
    stopped, stop_month, defaults = _stops(lent, m_done, fate, last_payment)
    paid = valid & ~(stopped[:, None] & (pay_months >= stop_month[:, None]))
    # Boolean indexing reads the paid cells row by row, as np.nonzero lists them.
    paid_rows = lent[np.repeat(rows, np.count_nonzero(paid, axis=1))]
    paid_months = pay_months[paid]
    batch.add("principal_repaid", paid_rows, paid_months, parts[paid])
    if rate > 0:
        batch.add("interest_received", paid_rows, paid_months, interest[paid])
    outstanding = principal - parts.sum(axis=1, where=paid)
    _book_stops(batch, lent, outstanding, stopped, stop_month, defaults, last_payment, risk)


def _stops(lent: np.ndarray, m_done: np.ndarray, fate, last_payment: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which loans stop by their last instalment, the month they stop in (0 if they do
    not), and which of those default (the others are prepaid)."""
    default_at = m_done + fate["default_months"][lent]
    prepay_at = m_done + fate["prepayment_months"][lent]
    stop = np.minimum(default_at, prepay_at)
    stopped = stop <= last_payment
    stop_month = np.where(stopped, stop, 0).astype(np.int64)
    return stopped, stop_month, stopped & (default_at <= prepay_at)


def _book_stops(batch: FlowBatch, lent: np.ndarray, outstanding: np.ndarray,
                stopped: np.ndarray, stop_month: np.ndarray, defaults: np.ndarray,
                last_payment: np.ndarray, risk) -> None:
    """What is left of stopped loans (prepaid, or written off and partly recovered), and
    every loan's status and end."""
    prepays = stopped & ~defaults
    batch.add("principal_repaid", lent[prepays], stop_month[prepays], outstanding[prepays])
    batch.add("principal_written_off", lent[defaults], stop_month[defaults],
              outstanding[defaults])
    back = round_half_away(outstanding * risk.recovery_rate)
    keep = defaults & (back > 0)
    batch.add("recoveries", lent[keep], stop_month[keep] + risk.recovery_lag_months,
              back[keep])
    batch.status[lent] = np.where(defaults, DEFAULTED, np.where(prepays, PREPAID, REPAID))
    batch.end_month[lent] = np.where(stopped, stop_month, last_payment)


def _interest_free_repayments(batch: FlowBatch, lent: np.ndarray, principal: np.ndarray,
                              m0: np.ndarray, grace: np.ndarray, m_done: np.ndarray, fate,
                              line) -> None:
    """:func:`_repayments` of loans without interest, in closed form.

    Without interest there is no grace row in a schedule (``schedules``):
    instalment k (0 .. n - 1) falls ``grace + period * (k + 1)`` months after
    the first disbursement, and every instalment but the last is the same
    amount (``_equal_parts``; nothing before the last for a bullet loan). So
    the instalments paid before a default or a prepayment are a run of equal
    amounts, and maybe the last one: booked as runs (``FlowBatch.add_run``),
    not cell by cell.
    """
    instrument = line.instrument
    period = PERIOD_MONTHS[instrument.frequency]
    equal, final, n = _interest_free_instalments(principal, instrument)
    first_payment = m0 + grace + period
    last_payment = first_payment + period * (n - 1)
    stopped, stop_month, defaults = _stops(lent, m_done, fate, last_payment)
    # Instalments paid: those before the month the loan stops in, all if it does not.
    paid = np.where(stopped, np.clip(-((first_payment - stop_month) // period), 0, n), n)
    before_last = np.minimum(paid, n - 1)
    batch.add_run("principal_repaid", lent, first_payment, before_last, equal, period)
    whole = paid == n
    batch.add("principal_repaid", lent[whole], last_payment[whole], final[whole])
    outstanding = principal - equal * before_last - np.where(whole, final, 0)
    _book_stops(batch, lent, outstanding, stopped, stop_month, defaults, last_payment,
                line.risk)


def _interest_free_instalments(principal: np.ndarray, instrument
                               ) -> tuple[np.ndarray, np.ndarray, int]:
    """Loans without interest: the instalment repeated before the last, the last, and
    their number (``_amortise`` at a zero rate: equal parts, or all at the end)."""
    n = instrument.term_months // PERIOD_MONTHS[instrument.frequency]
    if instrument.method == "bullet":
        return np.zeros(len(principal), dtype=np.int64), principal, n
    equal = _equal_instalment(principal, n)
    return equal, principal - equal * (n - 1), n


def _equal_instalment(principal: np.ndarray, n: int) -> np.ndarray:
    """The instalment that :func:`_equal_parts` repeats before the last."""
    q = round_pos(principal / n)
    return np.where(q * (n - 1) > principal, principal // n, q)


# ------------------------------------------------------------------------------ aid

def grant_equivalents(public_loan: np.ndarray, grant: np.ndarray, line,
                      reference: np.ndarray, discount: np.ndarray, grace: np.ndarray,
                      first_disbursement_month: np.ndarray,
                      completion_month: np.ndarray) -> np.ndarray:
    """``state_aid.project_esl`` of each project at its reference and discount rates.

    ``grace``: the grace of each loan's schedule, in months: the
    instrument's, or the longer one a loan that ran got for a late tranche
    (:attr:`FlowBatch.schedule_grace`). The present value of the interest
    saved is summed payment by payment, in the order ``state_aid`` sums it,
    so every project gets the same bits.
    """
    instrument = line.instrument
    size = len(public_loan)
    soft = instrument.public_rate
    if soft == 0.0:
        # Interest-free: the schedule in closed form (_interest_free_repayments).
        period = PERIOD_MONTHS[instrument.frequency]
        equal, final, n = _interest_free_instalments(public_loan, instrument)
        length = np.where(public_loan > 0, n, 0)
        first_payment = grace + period
        last = np.where(length > 0, first_payment + period * (n - 1), 0)
    else:
        schedule = schedules(public_loan, instrument, grace)
        months, principal, length = schedule.months, schedule.principal, schedule.length
        valid = np.arange(months.shape[1])[None, :] < length[:, None]
        last = np.where(length > 0, np.take_along_axis(
            months, np.maximum(length - 1, 0)[:, None], axis=1)[:, 0], 0)
    present = np.zeros(size)
    # Each loan reads the factor table state_aid would build for it (same length).
    span = -(-last // _CHUNK_MONTHS) * _CHUNK_MONTHS
    priced = np.flatnonzero((reference > soft) & (length > 0))
    # Loans grouped by (discount rate, table length), each group a run of ``by_table``.
    by_table = priced[np.lexsort((span[priced], discount[priced]))]
    d_sorted, span_sorted = discount[by_table], span[by_table]
    new_group = (d_sorted[1:] != d_sorted[:-1]) | (span_sorted[1:] != span_sorted[:-1])
    bounds = np.flatnonzero(np.r_[True, new_group, True]).tolist() if len(by_table) else [0]
    for start, end in pairwise(bounds):
        rows = by_table[start:end]
        factors = _annuity_factors(float(d_sorted[start]), int(span_sorted[start]))
        total = np.zeros(len(rows))
        if soft == 0.0:
            # Every loan here has its n instalments: the same terms in the same order.
            month, amount, closing = first_payment[rows], equal[rows], final[rows]
            for k in range(n):
                total += (amount if k < n - 1 else closing) * factors[month + period * k]
            present[rows] = total
            continue
        # Payments x loans, so that each payment's terms lie together in memory.
        at = np.ascontiguousarray(np.where(valid[rows], months[rows], 0).T)
        terms = np.ascontiguousarray(principal[rows].T) * factors[at]
        for payment in terms:
            total += payment    # padding adds 0.0: no change
        present[rows] = total
    pv = np.where((reference > soft) & (length > 0), (reference - soft) / 12.0 * present, 0.0)
    at_completion = line.disbursement.grant_paid_at == "completion"
    first = first_disbursement_month
    grant_month = np.where(at_completion & (first >= 0),
                           np.maximum(0, completion_month - first), 0)
    paid = np.flatnonzero(grant != 0)
    if len(paid):
        pairs = list(zip(discount[paid].tolist(), grant_month[paid].tolist(), strict=True))
        factor = {pair: (1.0 + pair[0]) ** (-pair[1] / 12.0) for pair in set(pairs)}
        pv[paid] = pv[paid] + grant[paid] * np.array([factor[p] for p in pairs])
    return round_half_away(pv)
