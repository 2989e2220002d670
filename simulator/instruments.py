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
from dataclasses import dataclass
from functools import lru_cache
from numbers import Real

import numpy as np

__all__ = ["METHODS", "PERIOD_MONTHS", "Schedule", "loan_schedule"]

PERIOD_MONTHS: dict[str, int] = {"monthly": 1, "quarterly": 3, "semiannual": 6, "annual": 12}
METHODS = ("french", "italian", "bullet")

# Enough for every distinct loan of a large pipeline scenario; about 1-2 kB per
# schedule, so the cache stays in the tens of MB per worker process.
_CACHE_SIZE = 8192


def _readonly(values: list[int]) -> np.ndarray:
    arr = np.array(values, dtype=np.int64)
    arr.flags.writeable = False
    return arr


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


def _validate(
    principal: object,
    annual_rate: object,
    term_months: object,
    grace_months: object,
    frequency: object,
    method: object,
) -> tuple[int, float, int, int, int, str]:
    p_cents = _whole("principal (cents)", principal)
    if p_cents < 0:
        raise ValueError(f"principal must be >= 0 cents, got {p_cents}")
    if isinstance(annual_rate, bool) or not isinstance(annual_rate, Real):
        raise ValueError(f"annual_rate must be a number, got {annual_rate!r}")
    rate = float(annual_rate)
    if not (math.isfinite(rate) and rate >= 0):
        raise ValueError(f"annual_rate must be a finite number >= 0, got {annual_rate!r}")
    if frequency not in PERIOD_MONTHS:
        allowed = ", ".join(PERIOD_MONTHS)
        raise ValueError(f"unknown frequency {frequency!r}: expected one of {allowed}")
    if method not in METHODS:
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
    return p_cents, rate, term, grace, period, method  # type: ignore[return-value]


# --------------------------------------------------------------------------- amortisation
#
# The loops below round with `f = int(x); f + (x - f >= 0.5)`: every product
# they round is >= 0, int() truncates (= floor there) and x - f is exact in
# binary floating point, so this is money.round_cents without the call overhead.


def _equal_parts(principal: int, n: int) -> list[int]:
    """n principal parts as equal as the cent allows, remainder on the last."""
    x = principal / n
    q = int(x)
    q += x - q >= 0.5
    if q * (n - 1) > principal:
        # Rounding up n-1 times would overshoot a tiny principal (7 cents over
        # 10 periods): fall back to the floor, which leaves a remainder >= 0.
        q = principal // n
    return [q] * (n - 1) + [principal - q * (n - 1)]


def _interest_on(parts: list[int], principal: int, r: float) -> list[int]:
    """Interest of each period on the outstanding before that period's payment."""
    out = principal
    interest = []
    for part in parts:
        x = out * r
        i = int(x)
        interest.append(i + (x - i >= 0.5))
        out -= part
    return interest


def _french(principal: int, r: float, n: int) -> tuple[list[int], list[int]]:
    if r == 0.0:
        return _equal_parts(principal, n), [0] * n
    # Annuity P * r / (1 - (1 + r)^-n), written with expm1/log1p so that very
    # small rates keep full precision.
    pmt = principal * r / -math.expm1(-n * math.log1p(r))
    instalment = int(pmt)
    instalment += pmt - instalment >= 0.5
    out = principal
    parts: list[int] = []
    interest: list[int] = []
    for _ in range(n - 1):
        x = out * r
        i = int(x)
        i += x - i >= 0.5
        # Never negative (the rounded annuity covers the rounded interest on any
        # outstanding <= principal), but a tiny loan can pay off early through
        # rounding: cap so the outstanding never goes below zero.
        part = min(max(instalment - i, 0), out)
        parts.append(part)
        interest.append(i)
        out -= part
    x = out * r
    i = int(x)
    interest.append(i + (x - i >= 0.5))
    parts.append(out)  # the last instalment settles whatever is left
    return parts, interest


def _italian(principal: int, r: float, n: int) -> tuple[list[int], list[int]]:
    parts = _equal_parts(principal, n)
    return parts, _interest_on(parts, principal, r)


def _bullet(principal: int, r: float, n: int) -> tuple[list[int], list[int]]:
    x = principal * r
    i = int(x)
    i += x - i >= 0.5
    return [0] * (n - 1) + [principal], [i] * n


_METHODS = {"french": _french, "italian": _italian, "bullet": _bullet}

_EMPTY = Schedule(_readonly([]), _readonly([]), _readonly([]), 0)


@lru_cache(maxsize=_CACHE_SIZE)
def _build(principal: int, annual_rate: float, term: int, grace: int, period: int, method: str) -> Schedule:
    if principal == 0:
        return _EMPTY
    r = annual_rate * period / 12
    n = term // period
    parts, interest = _METHODS[method](principal, r, n)
    if r > 0.0 and grace:
        g = grace // period
        x = principal * r
        i = int(x)
        i += x - i >= 0.5
        parts = [0] * g + parts
        interest = [i] * g + interest
        first = period
    else:
        first = grace + period
    months = np.arange(first, grace + term + 1, period, dtype=np.int64)
    months.flags.writeable = False
    return Schedule(months, _readonly(parts), _readonly(interest), principal)


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
    return _build(*_validate(principal, annual_rate, term_months, grace_months, frequency, method))
