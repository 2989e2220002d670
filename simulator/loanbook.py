"""The loan book: what the fund pays and gets back for one financed project.

Once a project is committed, its whole life is known in closed form: its
draws (signing and implementation times, failure, default and prepayment
dates) were made when it applied, and the schedule of its loan follows from
the instrument.  So the model creates no SimPy event per tranche or
instalment: :func:`project_flows` returns every cash flow of the project as
``(month, amount)`` arrays, and the ledger adds them to the line's monthly
arrays.  This is the design choice that makes a replication cost a few
hundred events instead of thousands.

Rules (documented in the README, "How the model works"):

* tranches of the fund's loan at signing and/or completion; the grant at
  signing or completion;
* the schedule runs from the first disbursement; if the last tranche comes
  after the end of grace, grace is extended to the period that contains it;
  grace interest is charged on what has been disbursed at the start of each
  period;
* failure before completion (probability ``failure_rate``, at a uniform time
  between signing and completion): undisbursed tranches and an unpaid grant
  are released, a grant already paid is revoked and ``recovery_rate`` of it
  comes back after ``recovery_lag_months``; the disbursed loan is called:
  its outstanding is written off and ``recovery_rate`` of it is recovered
  after the lag;
* default and prepayment hazards run monthly from the month after
  completion while the loan is outstanding (annual rate ``a`` -> monthly
  ``1 - (1 - a)^(1/12)``); at default the outstanding is written off, at
  prepayment it is repaid in full; the earlier event wins, default on a tie.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .instruments import PERIOD_MONTHS, Schedule, loan_schedule, periodic_rate
from .money import round_cents

STATUSES = ("active", "repaid", "prepaid", "defaulted", "failed")


@dataclass(slots=True)
class Terms:
    """The money of one financed project, in cents (fixed at commitment)."""

    eligible_cost: int
    public_loan: int
    bank_loan: int
    grant: int

    @property
    def exposure(self) -> int:
        """What the fund reserves at commitment: its loan plus the grant."""
        return self.public_loan + self.grant

    @property
    def private_cofinancing(self) -> int:
        """Bank loan plus the recipient's own funds."""
        return self.eligible_cost - self.public_loan - self.grant


def project_terms(eligible_cost: int, instrument) -> Terms:
    """Split a project's eligible cost into fund loan, bank loan and grant (cents)."""
    financed = round_cents(eligible_cost * instrument.coverage)
    public_loan = round_cents(financed * instrument.public_loan_share)
    bank_loan = financed - public_loan
    if instrument.max_public_loan is not None:
        public_loan = min(public_loan, round_cents(instrument.max_public_loan * 100))
    base = eligible_cost if instrument.grant_base == "eligible_cost" else public_loan
    grant = round_cents(base * instrument.grant_share)
    if instrument.max_grant is not None:
        grant = min(grant, round_cents(instrument.max_grant * 100))
    # Support never exceeds the cost (the scenario checks forbid it; caps only lower it).
    grant = min(grant, eligible_cost - public_loan - bank_loan)
    return Terms(eligible_cost, public_loan, bank_loan, max(grant, 0))


@dataclass(slots=True)
class Fate:
    """Draws that decide a project's life, made when it applied (common random numbers)."""

    signing_months: float
    implementation_months: float
    fails: bool
    failure_fraction: float   # where in [signing, completion] the failure falls
    # Months from completion to default / prepayment: the hazard of a uniform draw
    # (``hazard_months``, computed with the draws).
    default_months: float
    prepayment_months: float


class DatedAmounts:
    """Amounts in cents falling due at whole months (increasing), e.g. a loan's instalments.

    Months and amounts are kept as two lists of plain ints rather than a list
    of ``(month, amount)`` pairs: a large fund books tens of thousands of
    loans per replication, and millions of small tuples alive at once make
    Python's garbage collector sweep them over and over. Iterating still
    gives ``(month, amount)`` pairs. Never modified once built.
    """

    __slots__ = ("amounts", "months")

    def __init__(self, months: list[int], amounts: list[int]):
        self.months = months
        self.amounts = amounts

    @classmethod
    def one(cls, month: int, amount: int) -> DatedAmounts:
        return cls([month], [amount])

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return zip(self.months, self.amounts, strict=True)

    def __len__(self) -> int:
        return len(self.months)

    def __repr__(self) -> str:
        return f"DatedAmounts({list(self)})"

    def total_before(self, month: int) -> int:
        """What falls due before ``month`` (the horizon, for what the run has seen)."""
        months = self.months
        if not months or months[-1] < month:
            return sum(self.amounts)
        return sum(self.amounts[:bisect_left(months, month)])


NOTHING = DatedAmounts([], [])  # shared by every project without a flow of some kind


@dataclass(slots=True)
class Flows:
    """Every cash flow of one project, per kind (months may lie beyond the horizon)."""

    loans_disbursed: DatedAmounts = NOTHING
    grants_paid: DatedAmounts = NOTHING
    released: DatedAmounts = NOTHING
    principal_repaid: DatedAmounts = NOTHING
    interest_received: DatedAmounts = NOTHING
    principal_written_off: DatedAmounts = NOTHING
    recoveries: DatedAmounts = NOTHING
    grants_recovered: DatedAmounts = NOTHING
    # loan-level facts
    schedule: Schedule | None = None   # the fund loan's schedule as granted
    status: str = "active"
    first_disbursement_month: int = -1
    completion_month: int = -1
    end_month: int = -1


FLOW_KINDS = ("loans_disbursed", "grants_paid", "released", "principal_repaid",
              "interest_received", "principal_written_off", "recoveries", "grants_recovered")


def monthly_hazard_month(u: float, annual_rate: float) -> float:
    """Months (>= 1) until an event with annual probability ``annual_rate`` (inf if never).

    The monthly hazard ``h = 1 - (1 - a)^(1/12)`` gives a geometric number of
    months; inverting its CDF at ``u`` keeps the coupling monotone: a higher
    rate never makes the event later for the same draw.
    """
    if annual_rate <= 0:
        return math.inf
    if annual_rate >= 1:
        return 1.0
    log_survive = math.log1p(-annual_rate) / 12.0
    if log_survive == 0.0:
        return math.inf  # a rate too small to register in floating point
    if u <= 0:
        return 1.0
    months = math.log1p(-u) / log_survive
    # A vanishing rate puts the event beyond any horizon.
    return max(1.0, math.ceil(months)) if months < 1e9 else math.inf


def hazard_months(u: np.ndarray, annual_rate: float) -> np.ndarray:
    """:func:`monthly_hazard_month` of an array of draws (floats; inf for never)."""
    u = np.asarray(u, dtype=float)
    if annual_rate <= 0:
        return np.full(u.shape, math.inf)
    if annual_rate >= 1:
        return np.ones(u.shape)
    log_survive = math.log1p(-annual_rate) / 12.0
    if log_survive == 0.0:
        return np.full(u.shape, math.inf)
    with np.errstate(over="ignore"):  # a vanishing rate: the event is never (inf)
        months = np.log1p(-u) / log_survive
    out = np.where(months < 1e9, np.maximum(1.0, np.ceil(months)), math.inf)
    return np.where(u <= 0, 1.0, out)


def project_flows(terms: Terms, fate: Fate, commit_time: float, month_of, line) -> Flows:
    """All cash flows of a committed project (months may lie beyond the horizon)."""
    instrument, disbursement, risk = line.instrument, line.disbursement, line.risk
    flows = Flows()
    signing = commit_time + fate.signing_months
    completion = signing + fate.implementation_months
    m_sign, m_done = month_of(signing), month_of(completion)
    flows.completion_month = m_done
    failure_month = None
    if fate.fails:
        failure_month = month_of(signing + fate.failure_fraction * fate.implementation_months)

    # Tranches of the fund's loan; the rounding remainder goes on the last one.
    tranche_amounts = _split(terms.public_loan, [t.share for t in disbursement.tranches])
    tranches = sorted(((m_sign if t.at == "signing" else m_done), amount)
                      for t, amount in zip(disbursement.tranches, tranche_amounts, strict=True))
    grant_month = m_sign if disbursement.grant_paid_at == "signing" else m_done

    lag = risk.recovery_lag_months
    if failure_month is not None:
        # Completion never comes: what is due then is released, the rest called.
        paid = [(m, a) for m, a in tranches if m < m_done and a > 0]
        unpaid = sum(a for m, a in tranches if m >= m_done)
        flows.loans_disbursed = _dated(paid)
        if terms.grant and grant_month < m_done:
            flows.grants_paid = DatedAmounts.one(grant_month, terms.grant)
            recovered = round_cents(terms.grant * risk.recovery_rate)
            if recovered:
                flows.grants_recovered = DatedAmounts.one(failure_month + lag, recovered)
        else:
            unpaid += terms.grant
        if unpaid:
            flows.released = DatedAmounts.one(failure_month, unpaid)
        disbursed = sum(a for _, a in paid)
        if paid:
            flows.first_disbursement_month = paid[0][0]
            flows.interest_received = _grace_interest(paid, instrument, paid[0][0],
                                                      failure_month)
        if disbursed:
            flows.principal_written_off = DatedAmounts.one(failure_month, disbursed)
            recovered = round_cents(disbursed * risk.recovery_rate)
            if recovered:
                flows.recoveries = DatedAmounts.one(failure_month + lag, recovered)
        flows.status = "failed"
        flows.end_month = failure_month
        return flows

    disbursed = [(m, a) for m, a in tranches if a > 0]
    flows.loans_disbursed = _dated(disbursed)
    if terms.grant:
        flows.grants_paid = DatedAmounts.one(grant_month, terms.grant)
    if terms.public_loan == 0:
        flows.status = "repaid"
        flows.end_month = max(m_done, grant_month)
        return flows

    m0 = disbursed[0][0]
    flows.first_disbursement_month = m0
    period = PERIOD_MONTHS[instrument.frequency]
    last_tranche = disbursed[-1][0]
    grace = max(instrument.grace_months, -(-(last_tranche - m0) // period) * period)
    schedule = loan_schedule(terms.public_loan, instrument.public_rate, instrument.term_months,
                             grace, instrument.frequency, instrument.method)
    flows.schedule = schedule
    months = schedule.months + m0
    principal = schedule.principal
    interest = schedule.interest
    if len(disbursed) > 1 and instrument.public_rate > 0:
        rate = periodic_rate(instrument.public_rate, instrument.frequency)
        interest = interest.copy()
        in_grace = principal == 0
        for i in np.flatnonzero(in_grace):
            period_start = months[i] - period
            owed = sum(a for m, a in disbursed if m <= period_start)
            interest[i] = round_cents(owed * rate)
    # tolist() turns numpy scalars into Python ints in one C call.
    months, principal, interest = months.tolist(), principal.tolist(), interest.tolist()
    # A zero-rate loan pays no interest: no rows of zeros for the ledger to add up.
    pays_interest = instrument.public_rate > 0

    # Default and prepayment: hazards from the month after completion.
    default_at = m_done + fate.default_months
    prepay_at = m_done + fate.prepayment_months
    last_payment = months[-1]
    stop = min(default_at, prepay_at)
    if stop <= last_payment:
        stop = int(stop)
        paid_before = bisect_left(months, stop)   # the payments due before the stop
        months, principal = months[:paid_before], principal[:paid_before]
        if pays_interest:
            flows.interest_received = DatedAmounts(months, interest[:paid_before])
        outstanding = terms.public_loan - sum(principal)
        if default_at <= prepay_at:
            flows.principal_repaid = DatedAmounts(months, principal)
            flows.principal_written_off = DatedAmounts.one(stop, outstanding)
            recovered = round_cents(outstanding * risk.recovery_rate)
            if recovered:
                flows.recoveries = DatedAmounts.one(stop + lag, recovered)
            flows.status = "defaulted"
        else:
            flows.principal_repaid = DatedAmounts([*months, stop], [*principal, outstanding])
            flows.status = "prepaid"
        flows.end_month = stop
    else:
        flows.principal_repaid = DatedAmounts(months, principal)
        if pays_interest:
            flows.interest_received = DatedAmounts(months, interest)
        flows.status = "repaid"
        flows.end_month = last_payment
    return flows


def _grace_interest(paid: list[tuple[int, int]], instrument, m0: int,
                    until: int) -> DatedAmounts:
    """Interest-only payments of a loan that fails before its first instalment."""
    if instrument.public_rate <= 0:
        return NOTHING
    period = PERIOD_MONTHS[instrument.frequency]
    rate = periodic_rate(instrument.public_rate, instrument.frequency)
    out = []
    month = m0 + period
    while month < until:
        owed = sum(a for m, a in paid if m <= month - period)
        if owed:
            out.append((month, round_cents(owed * rate)))
        month += period
    return _dated(out)


def _dated(pairs: list[tuple[int, int]]) -> DatedAmounts:
    """``(month, amount)`` pairs (a few at most) as :class:`DatedAmounts`."""
    if not pairs:
        return NOTHING
    return DatedAmounts([m for m, _ in pairs], [a for _, a in pairs])


def _split(total: int, shares: list[float]) -> list[int]:
    """Split cents by shares; the rounding remainder goes on the last part."""
    parts = [round_cents(total * s) for s in shares[:-1]]
    return [*parts, total - sum(parts)]


def schedule_of(terms: Terms, line) -> Schedule:
    """The nominal schedule of a project's fund loan (no default, single tranche)."""
    i = line.instrument
    return loan_schedule(terms.public_loan, i.public_rate, i.term_months, i.grace_months,
                         i.frequency, i.method)
