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
from dataclasses import dataclass, field

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
    default_u: float          # uniform draw turned into a default month by the hazard
    prepayment_u: float


@dataclass(slots=True)
class Flows:
    """Every cash flow of one project: month index -> cents, per kind."""

    loans_disbursed: list[tuple[int, int]] = field(default_factory=list)
    grants_paid: list[tuple[int, int]] = field(default_factory=list)
    released: list[tuple[int, int]] = field(default_factory=list)
    principal_repaid: list[tuple[int, int]] = field(default_factory=list)
    interest_received: list[tuple[int, int]] = field(default_factory=list)
    principal_written_off: list[tuple[int, int]] = field(default_factory=list)
    recoveries: list[tuple[int, int]] = field(default_factory=list)
    grants_recovered: list[tuple[int, int]] = field(default_factory=list)
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
        flows.loans_disbursed = paid
        if terms.grant and grant_month < m_done:
            flows.grants_paid = [(grant_month, terms.grant)]
            recovered = round_cents(terms.grant * risk.recovery_rate)
            if recovered:
                flows.grants_recovered = [(failure_month + lag, recovered)]
        else:
            unpaid += terms.grant
        if unpaid:
            flows.released = [(failure_month, unpaid)]
        disbursed = sum(a for _, a in paid)
        if paid:
            flows.first_disbursement_month = paid[0][0]
            interest = _grace_interest(paid, instrument, paid[0][0], failure_month)
            flows.interest_received = interest
        if disbursed:
            flows.principal_written_off = [(failure_month, disbursed)]
            recovered = round_cents(disbursed * risk.recovery_rate)
            if recovered:
                flows.recoveries = [(failure_month + lag, recovered)]
        flows.status = "failed"
        flows.end_month = failure_month
        return flows

    flows.loans_disbursed = [(m, a) for m, a in tranches if a > 0]
    if terms.grant:
        flows.grants_paid = [(grant_month, terms.grant)]
    if terms.public_loan == 0:
        flows.status = "repaid"
        flows.end_month = max(m_done, grant_month)
        return flows

    m0 = flows.loans_disbursed[0][0]
    flows.first_disbursement_month = m0
    period = PERIOD_MONTHS[instrument.frequency]
    last_tranche = flows.loans_disbursed[-1][0]
    grace = max(instrument.grace_months, -(-(last_tranche - m0) // period) * period)
    schedule = loan_schedule(terms.public_loan, instrument.public_rate, instrument.term_months,
                             grace, instrument.frequency, instrument.method)
    flows.schedule = schedule
    months = schedule.months + m0
    principal = schedule.principal
    interest = schedule.interest
    if len(flows.loans_disbursed) > 1 and instrument.public_rate > 0:
        rate = periodic_rate(instrument.public_rate, instrument.frequency)
        interest = interest.copy()
        in_grace = principal == 0
        for i in np.flatnonzero(in_grace):
            period_start = months[i] - period
            owed = sum(a for m, a in flows.loans_disbursed if m <= period_start)
            interest[i] = round_cents(owed * rate)

    # Default and prepayment: hazards from the month after completion.
    default_at = m_done + monthly_hazard_month(fate.default_u, risk.default_rate)
    prepay_at = m_done + monthly_hazard_month(fate.prepayment_u, risk.prepayment_rate)
    last_payment = int(months[-1])
    stop = min(default_at, prepay_at)
    if stop <= last_payment:
        stop = int(stop)
        before = months < stop
        flows.principal_repaid = _pairs(months[before], principal[before])
        flows.interest_received = _pairs(months[before], interest[before])
        outstanding = terms.public_loan - int(principal[before].sum())
        if default_at <= prepay_at:
            flows.principal_written_off = [(stop, outstanding)]
            recovered = round_cents(outstanding * risk.recovery_rate)
            if recovered:
                flows.recoveries = [(stop + lag, recovered)]
            flows.status = "defaulted"
        else:
            flows.principal_repaid.append((stop, outstanding))
            flows.status = "prepaid"
        flows.end_month = stop
    else:
        flows.principal_repaid = _pairs(months, principal)
        flows.interest_received = _pairs(months, interest)
        flows.status = "repaid"
        flows.end_month = last_payment
    return flows


def _grace_interest(paid: list[tuple[int, int]], instrument, m0: int,
                    until: int) -> list[tuple[int, int]]:
    """Interest-only payments of a loan that fails before its first instalment."""
    if instrument.public_rate <= 0:
        return []
    period = PERIOD_MONTHS[instrument.frequency]
    rate = periodic_rate(instrument.public_rate, instrument.frequency)
    out = []
    month = m0 + period
    while month < until:
        owed = sum(a for m, a in paid if m <= month - period)
        if owed:
            out.append((month, round_cents(owed * rate)))
        month += period
    return out


def _pairs(months: np.ndarray, amounts: np.ndarray) -> list[tuple[int, int]]:
    # tolist() turns numpy scalars into Python ints in one C call.
    return list(zip(months.tolist(), amounts.tolist(), strict=True))


def _split(total: int, shares: list[float]) -> list[int]:
    """Split cents by shares; the rounding remainder goes on the last part."""
    parts = [round_cents(total * s) for s in shares[:-1]]
    return [*parts, total - sum(parts)]


def schedule_of(terms: Terms, line) -> Schedule:
    """The nominal schedule of a project's fund loan (no default, single tranche)."""
    i = line.instrument
    return loan_schedule(terms.public_loan, i.public_rate, i.term_months, i.grace_months,
                         i.frequency, i.method)
