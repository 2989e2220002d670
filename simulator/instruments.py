"""Loan schedules of the fund's instruments (French, Italian, bullet; grace period).

Conventions (the meaning of the schedule fields of a scenario's
``[lines.X.instrument]`` table):

* Time is counted in whole months from the **first disbursement** of the loan,
  which is month 0. A schedule lists the payments the borrower owes, each at a
  month offset ``> 0``; the model turns offsets into calendar dates.
* The **periodic rate** is the annual nominal rate divided by the number of
  periods in a year (``0.03`` quarterly -> ``0.0075`` per quarter), not the
  equivalent compound rate: that is how Italian loan contracts state rates.
* **Grace** (*preammortamento*) runs for ``grace_months`` from the first
  disbursement. During grace the borrower pays interest only, at the same
  frequency as the instalments (months p, 2p, ..., grace_months, where p is the
  period length). A zero-rate loan has nothing to pay during grace, so no rows
  at all are emitted for it (not zero-amount rows).
* **Amortisation** starts after grace: the first instalment falls one period
  after the end of grace, the last one ``term_months`` after the end of grace,
  so there are ``term_months / p`` instalments, all emitted even if a tiny loan
  makes some of them zero.
* Amounts are integer **cents**, rounded half away from zero
  (:mod:`simulator.money`). Interest of a period is the rounded product of the
  outstanding principal before the payment and the periodic rate. The
  principal parts always sum exactly to the principal: whatever rounding has
  accumulated is settled on the **last instalment**.
* Methods: ``french`` (constant instalment, the rounded annuity; its principal
  part is the instalment minus the interest), ``italian`` (constant principal
  part, decreasing instalments), ``bullet`` (interest only, the whole principal
  with the last instalment).

The simulation builds one schedule per financed project and replication (tens
of thousands per run), so :func:`loan_schedule` is a tight Python loop over
at most a few hundred periods behind a bounded cache: schedules are immutable
(read-only arrays), and a pipeline scenario replays the same loans in every
replication.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from numbers import Real

import numpy as np

__all__ = ["METHODS", "PERIOD_MONTHS", "Schedule", "loan_schedule", "periodic_rate"]

PERIOD_MONTHS: dict[str, int] = {"monthly": 1, "quarterly": 3, "semiannual": 6, "annual": 12}
METHODS = ("french", "italian", "bullet")

# Enough for the distinct loans of a large pipeline scenario (replayed in every
# replication); a 40-payment schedule takes about 1 kB, so the cache stays
# below ~10 MB per worker process.
_CACHE_SIZE = 8192


@dataclass(frozen=True, slots=True, eq=False)
class Schedule:
    """Payments of one loan; months are offsets from the first disbursement (month 0).

    Arrays are read-only ``int64`` and may be shared between loans (schedules
    are cached): never modify them in place.
    """

    months: np.ndarray  # strictly increasing month offsets (> 0), grace payments included
    principal: np.ndarray  # cents, principal part of each payment (0 during grace)
    interest: np.ndarray  # cents, interest part of each payment
    principal_amount: int  # the loan's principal in cents

    @property
    def instalments(self) -> np.ndarray:
        """Total paid at each payment (principal + interest), in cents."""
        return self.principal + self.interest

    @property
    def outstanding_after(self) -> np.ndarray:
        """Principal still owed right after each payment, in cents (ends at 0)."""
        return self.principal_amount - np.cumsum(self.principal, dtype=np.int64)

    @property
    def total_interest(self) -> int:
        """Interest paid over the life of the loan, in cents."""
        return int(self.interest.sum())

    @property
    def last_month(self) -> int:
        """Month offset of the last payment (0 for an empty schedule)."""
        return int(self.months[-1]) if len(self.months) else 0

    def __len__(self) -> int:
        return len(self.months)

    def outstanding_at(self, month_offset: int) -> int:
        """Principal owed at the end of ``month_offset``, after any payment due that month.

        Offsets before the first payment (including negative ones) give the
        whole principal; offsets from the last payment on give 0.
        """
        paid = int(np.searchsorted(self.months, month_offset, side="right"))
        if paid == 0:
            return self.principal_amount
        return self.principal_amount - int(self.principal[:paid].sum())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Schedule):
            return NotImplemented
        return (
            self.principal_amount == other.principal_amount
            and np.array_equal(self.months, other.months)
            and np.array_equal(self.principal, other.principal)
            and np.array_equal(self.interest, other.interest)
        )

    def __hash__(self) -> int:
        return hash((self.principal_amount, self.months.tobytes(), self.interest.tobytes()))


def periodic_rate(annual_rate: float, frequency: str) -> float:
    """Rate of one payment period: the annual nominal rate / periods per year.

    Code that computes interest outside a schedule (e.g. on a partly disbursed
    loan during grace) should use this rather than ``rate * months / 12``: the
    two differ in the last bit for about one rate in ten, which can move a cent
    on a rounding tie.
    """
    return annual_rate / (12 // PERIOD_MONTHS[frequency])


# --------------------------------------------------------------------------- validation


def _whole(name: str, value: object) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(
            f"{name} must be an integer, got {type(value).__name__} {value!r}"
        ) from None


def _check_principal(principal: object) -> int:
    cents = _whole("principal (cents)", principal)
    if cents < 0:
        raise ValueError(f"principal must be >= 0 cents, got {cents}")
    return cents


def _check_rate(annual_rate: object) -> float:
    if type(annual_rate) is float and 0.0 <= annual_rate < math.inf:
        return annual_rate  # the model's case, once per loan: no need for the ABC check
    if isinstance(annual_rate, bool) or not isinstance(annual_rate, Real):
        raise ValueError(f"annual_rate must be a number, got {annual_rate!r}")
    rate = float(annual_rate)
    if not (math.isfinite(rate) and rate >= 0):
        raise ValueError(f"annual_rate must be a finite number >= 0, got {annual_rate!r}")
    return rate


# --------------------------------------------------------------------------- amortisation
#
# The loops round with `i = int(x); if x - i >= 0.5: i += 1`: every product
# they round is >= 0, int() truncates (= floor there) and x - f is exact in
# binary floating point, so this is money.round_cents inlined. Inlining (and
# avoiding min()/max() calls) makes the French loop about 2.5 times faster.


def _round_pos(x: float) -> int:
    i = int(x)
    return i + 1 if x - i >= 0.5 else i


def _equal_parts(principal: int, n: int) -> list[int]:
    """n principal parts as equal as the cent allows, remainder on the last."""
    q = _round_pos(principal / n)
    if q * (n - 1) > principal:
        # Rounding up n-1 times would overshoot a tiny principal (7 cents over
        # 10 periods): fall back to the floor, which leaves a remainder >= 0.
        q = principal // n
    return [q] * (n - 1) + [principal - q * (n - 1)]


def _french(principal: int, r: float, n: int) -> tuple[list[int], list[int]]:
    if r == 0.0:
        return _equal_parts(principal, n), [0] * n
    # Annuity P * r / (1 - (1 + r)^-n), written with expm1/log1p so that very
    # small rates keep full precision.
    instalment = _round_pos(principal * r / -math.expm1(-n * math.log1p(r)))
    out = principal
    parts: list[int] = []
    interest: list[int] = []
    add_part = parts.append
    add_interest = interest.append
    for _ in range(n - 1):
        x = out * r
        i = int(x)
        if x - i >= 0.5:
            i += 1
        # instalment - i >= 0 always: the annuity exceeds principal * r, so its
        # rounding is >= the rounded interest on any outstanding <= principal.
        part = instalment - i
        if part > out:
            # A tiny loan (a few cents over many periods) can be paid off early
            # by rounding: stop there, the outstanding must not go negative.
            part = out
        add_part(part)
        add_interest(i)
        out -= part
    add_interest(_round_pos(out * r))
    add_part(out)  # the last instalment settles whatever rounding has left
    return parts, interest


def _italian(principal: int, r: float, n: int) -> tuple[list[int], list[int]]:
    parts = _equal_parts(principal, n)
    if r == 0.0:
        return parts, [0] * n
    interest: list[int] = []
    add_interest = interest.append
    out = principal
    for part in parts:
        x = out * r
        i = int(x)
        if x - i >= 0.5:
            i += 1
        add_interest(i)
        out -= part
    return parts, interest


def _bullet(principal: int, r: float, n: int) -> tuple[list[int], list[int]]:
    return [0] * (n - 1) + [principal], [_round_pos(principal * r)] * n


_AMORTISE = {"french": _french, "italian": _italian, "bullet": _bullet}


def _readonly(values: list[int]) -> np.ndarray:
    arr = np.array(values, dtype=np.int64)
    arr.flags.writeable = False
    return arr


@dataclass(frozen=True, slots=True)
class _Plan:
    """What a schedule's shape depends on: everything but principal and rate."""

    period: int
    periods_per_year: int
    n: int  # instalments
    g: int  # grace periods
    months_with_grace: np.ndarray  # payment months when grace interest is due
    months_no_grace: np.ndarray  # payment months at a zero rate (no grace rows)
    amortise: Callable[[int, float, int], tuple[list[int], list[int]]]


# typed=True: 96 and 96.0 hash alike, and the float must still be rejected.
@lru_cache(maxsize=256, typed=True)
def _plan(term_months: object, grace_months: object, frequency: object, method: object) -> _Plan:
    if not isinstance(frequency, str) or frequency not in PERIOD_MONTHS:
        raise ValueError(
            f"unknown frequency {frequency!r}: expected one of {', '.join(PERIOD_MONTHS)}"
        )
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"unknown method {method!r}: expected one of {', '.join(METHODS)}")
    period = PERIOD_MONTHS[frequency]  # type: ignore[index]
    term = _whole("term_months", term_months)
    grace = _whole("grace_months", grace_months)
    if term <= 0 or term % period:
        raise ValueError(
            f"term_months must be a positive multiple of {period} for {frequency} "
            f"payments, got {term}"
        )
    if grace < 0 or grace % period:
        raise ValueError(
            f"grace_months must be 0 or a positive multiple of {period} for {frequency} "
            f"payments, got {grace}"
        )
    end = grace + term
    with_grace = np.arange(period, end + 1, period, dtype=np.int64)
    no_grace = np.arange(grace + period, end + 1, period, dtype=np.int64)
    with_grace.flags.writeable = False
    no_grace.flags.writeable = False
    return _Plan(
        period=period,
        periods_per_year=12 // period,
        n=term // period,
        g=grace // period,
        months_with_grace=with_grace,
        months_no_grace=no_grace,
        amortise=_AMORTISE[method],  # type: ignore[index]
    )


_EMPTY = Schedule(_readonly([]), _readonly([]), _readonly([]), 0)


# typed=True so that an invalid type equal to a valid value (100.0 == 100) is
# validated rather than served from the cache.
@lru_cache(maxsize=_CACHE_SIZE, typed=True)
def _schedule(
    principal: object,
    annual_rate: object,
    term_months: object,
    grace_months: object,
    frequency: object,
    method: object,
) -> Schedule:
    plan = _plan(term_months, grace_months, frequency, method)
    p = _check_principal(principal)
    rate = _check_rate(annual_rate)
    if p == 0:
        return _EMPTY
    r = rate / plan.periods_per_year  # = periodic_rate(rate, frequency)
    parts, interest = plan.amortise(p, r, plan.n)
    # Grace rows exist for any positive contractual rate, even one so small that
    # the periodic rate underflows or the interest rounds to 0 cents.
    if rate > 0.0 and plan.g:
        parts = [0] * plan.g + parts
        interest = [_round_pos(p * r)] * plan.g + interest
        months = plan.months_with_grace
    else:
        months = plan.months_no_grace
    return Schedule(months, _readonly(parts), _readonly(interest), p)


def loan_schedule(
    principal: int,
    annual_rate: float,
    term_months: int,
    grace_months: int,
    frequency: str = "quarterly",
    method: str = "french",
) -> Schedule:
    """Payment schedule of a loan of ``principal`` cents.

    Args:
        principal: amount lent, in integer cents (>= 0; 0 gives an empty schedule).
        annual_rate: nominal annual rate as a fraction (0.03 = 3 %), >= 0.
        term_months: months from the end of grace to the last instalment; a
            positive multiple of the period.
        grace_months: interest-only months from the first disbursement; 0 or a
            multiple of the period.
        frequency: one of :data:`PERIOD_MONTHS` (``"quarterly"`` by default).
        method: one of :data:`METHODS` (``"french"`` by default).

    Returns:
        An immutable :class:`Schedule`; equal arguments may return the same object.

    Raises:
        ValueError: if an argument is out of range or of the wrong kind.
    """
    try:
        return _schedule(principal, annual_rate, term_months, grace_months, frequency, method)
    except TypeError:
        # An unhashable argument (a list, say) cannot reach the cache; report
        # it as the invalid value it is.
        _plan.__wrapped__(term_months, grace_months, frequency, method)
        _check_principal(principal)
        _check_rate(annual_rate)
        raise
