"""State aid: gross grant equivalent (ESL) of the aid, reference rates, de minimis.

**Concept.** A loan at a rate below the market rate is aid to the borrower
worth the interest it saves. EU state-aid rules measure every form of aid by
its *gross grant equivalent* (*equivalente sovvenzione lordo*, ESL): the
present value, at the date the aid is granted, of what the recipient gains.
For the fund's mix it is the interest saved on the soft loan plus the grant::

    ESL = sum_t (i_ref - i_soft) / 12 * outstanding_t * (1 + i_disc) ** (-t / 12)
          + grant * (1 + i_disc) ** (-grant_month / 12)

and the aid intensity is ``ESL / eligible cost``.

**Rates** (Commission communication on the revision of the method for setting
the reference and discount rates, OJ C 14, 19.1.2008, "2008/C 14/02"): the
Commission publishes a *base rate* per member state; the **reference rate**
(the market rate the loan is compared with) is the base rate plus a margin
between 60 and 1000 basis points by the borrower's rating and the loan's
collateral (+100 bp "normally", and for SMEs without a rating; at least
+400 bp for firms without a credit history); the **discount rate** is the
base rate + 100 bp. The value in force on the date the aid is granted (the
commitment) applies. Italy's values and the margin table are shipped in
``simulator/data/reference_rates.toml``, the file to update when new rates are
published (:func:`load_rate_table` reads another file on request).

**Convention of :func:`grant_equivalent`** (time in whole months from the
first disbursement, month 0, as in :mod:`simulator.instruments`):

* the whole loan is taken as disbursed at month 0 (the aid as granted;
  tranches are not modelled here) and the present value is at month 0;
* month ``t`` (``t = 1, 2, ...``) runs from offset ``t - 1`` to offset ``t``;
  the principal outstanding during month ``t`` is the principal minus the
  principal parts paid at months ``< t``: a part due at month ``m`` still
  saves interest during month ``m`` (interest in arrears), grace included;
* the saving of month ``t`` is the simple monthly interest difference
  ``(i_ref - i_soft) / 12 * outstanding_t`` (nominal annual rates, as for the
  schedules), accrued at the end of the month and discounted with
  ``(1 + i_disc) ** (-t / 12)``: annual compounding over fractional years, as
  the Commission discounts with an annual rate;
* a loan at or above the reference rate carries no aid: its part is 0, it
  does not offset the grant;
* the sum of both parts is rounded once to a whole cent, half away from zero.

Since ``outstanding_t`` is the sum of the parts due at months ``>= t``, the sum
over months is ``sum_j principal_j * A(m_j)`` with ``A(m) = sum_{t<=m} v**t``,
``v = (1 + i_disc) ** (-1/12)``: one dot product over the schedule's rows with
a cached vector of ``A``, fast enough for every financed loan of a run.

**De minimis**: at most 200,000 EUR of aid per undertaking over three fiscal
years under Reg. (EU) 1407/2013 (aid granted until 31 Dec 2023), 300,000 EUR
over any three years under Reg. (EU) 2023/2831 (from 1 Jan 2024). Aid under
the GBER (Reg. 651/2014) has no such ceiling here. Sector variants (road
freight, agriculture, fisheries) are not modelled.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache, lru_cache
from numbers import Integral, Real
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np

from .errors import InputError, Problem
from .money import round_cents

if TYPE_CHECKING:
    from .instruments import Schedule

__all__ = [
    "DEFAULT_RATES_FILE",
    "REGIMES",
    "RateTable",
    "de_minimis_ceiling",
    "esl_intensity",
    "grant_equivalent",
    "load_rate_table",
]

DEFAULT_RATES_FILE = Path(__file__).parent / "data" / "reference_rates.toml"

_DISCOUNT_MARGIN_BP = 100  # discount rate = base rate + 100 bp


# --------------------------------------------------------------------------- rate table


@dataclass(frozen=True)
class RateTable:
    """Base rates by date of application, and the margin table, of one rates file."""

    valid_from: tuple[dt.date, ...]  # strictly increasing
    base_pct: tuple[Decimal, ...]  # base rate in percent, as written in the file
    named_margins_bp: Mapping[str, int]  # e.g. sme_no_rating -> 100
    rating_margins_bp: Mapping[str, tuple[int, ...]]  # rating -> one margin per collateral
    collateral: tuple[str, ...]  # high, normal, low
    default_margin: str  # a key of named_margins_bp or rating_margins_bp
    source: str  # the file, for messages
    _days: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_days", tuple(d.toordinal() for d in self.valid_from))

    def _base_pct_at(self, when: dt.date) -> Decimal:
        # toordinal(): a datetime counts by its date (datetime < date raises).
        i = bisect.bisect_right(self._days, when.toordinal()) - 1
        if i < 0:
            raise ValueError(
                f"no EU base rate before {self.valid_from[0].isoformat()} in {self.source}: "
                f"cannot price aid granted on {when.isoformat()}; add the rate in force then"
            )
        return self.base_pct[i]

    def base_rate_at(self, when: dt.date) -> float:
        """Base rate (fraction) in force on ``when``: the latest entry on or before it."""
        return float(self._base_pct_at(when) / 100)

    def discount_rate_at(self, when: dt.date) -> float:
        """Discount rate on ``when``: base rate + 100 bp."""
        return float((self._base_pct_at(when) + Decimal(_DISCOUNT_MARGIN_BP) / 100) / 100)

    def reference_rate_at(self, when: dt.date, margin_bp: int | None = None) -> float:
        """Reference rate on ``when``: base rate + ``margin_bp`` (default: the file's default)."""
        margin = self.margin_bp() if margin_bp is None else _whole_bp(margin_bp)
        return float((self._base_pct_at(when) + Decimal(margin) / 100) / 100)

    def margin_bp(self, rating: str | None = None, collateral: str = "normal") -> int:
        """Margin in bp for a rating and collateral, or a named case (``sme_no_rating``).

        Without a rating, the file's default margin (100 bp for the shipped file).
        """
        name = self.default_margin if rating is None else rating
        if name in self.named_margins_bp:
            return self.named_margins_bp[name]
        if name not in self.rating_margins_bp:
            known = ", ".join([*self.named_margins_bp, *self.rating_margins_bp])
            raise ValueError(f"unknown rating {name!r}: expected one of {known}")
        if collateral not in self.collateral:
            known = ", ".join(self.collateral)
            raise ValueError(f"unknown collateral {collateral!r}: expected one of {known}")
        return self.rating_margins_bp[name][self.collateral.index(collateral)]


def _whole_bp(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"a margin is a whole number of basis points, got {value!r}")
    return int(value)


def _parse(data: dict, source: str) -> RateTable:
    problems: list[Problem] = []

    def bad(where: str, message: str) -> None:
        problems.append(Problem(source, where, message))

    entries: list[tuple[dt.date, Decimal]] = []
    rates = data.get("rates")
    if not isinstance(rates, list) or not rates:
        bad("rates", "expected at least one [[rates]] entry with valid_from and base_pct")
        rates = []
    for i, entry in enumerate(rates):
        where = f"rates[{i}]"
        when = entry.get("valid_from") if isinstance(entry, dict) else None
        base = entry.get("base_pct") if isinstance(entry, dict) else None
        if not isinstance(when, dt.date) or isinstance(when, dt.datetime):
            bad(f"{where}.valid_from", f"expected a date like 2024-01-01, got {when!r}")
        elif isinstance(base, bool) or not isinstance(base, Decimal | int):
            bad(f"{where}.base_pct", f"expected the base rate in percent, got {base!r}")
        elif not Decimal(base).is_finite() or not -10 < base < 50:
            bad(f"{where}.base_pct", f"expected a percentage between -10 and 50, got {base}")
        else:
            entries.append((when, Decimal(base)))
    entries.sort()
    for (a, _), (b, _) in itertools.pairwise(entries):
        if a == b:
            bad("rates", f"two entries are valid from {a.isoformat()}")

    def table(parent: dict, key: str, where: str) -> dict:
        value = parent.get(key, {})
        if not isinstance(value, dict):
            bad(where, f"expected a table, got {value!r}")
            return {}
        return value

    margins = table(data, "margins", "margins")
    named = table(margins, "named_bp", "margins.named_bp")
    by_rating = table(margins, "by_rating_bp", "margins.by_rating_bp")
    collateral = margins.get("collateral", [])
    default = margins.get("default")
    if not isinstance(collateral, list) or not all(isinstance(c, str) for c in collateral):
        bad("margins.collateral", f"expected a list of names, got {collateral!r}")
        collateral = []
    for name, bp in named.items():
        if isinstance(bp, bool) or not isinstance(bp, int) or bp < 0:
            bad(f"margins.named_bp.{name}", f"expected basis points >= 0, got {bp!r}")
    for name, row in by_rating.items():
        if not (
            isinstance(row, list)
            and len(row) == len(collateral)
            and all(isinstance(bp, int) and not isinstance(bp, bool) and bp >= 0 for bp in row)
        ):
            bad(
                f"margins.by_rating_bp.{name}",
                f"expected {len(collateral)} margins in bp >= 0 (one per collateral), got {row!r}",
            )
    if default not in named and default not in by_rating:
        bad("margins.default", f"expected a name from named_bp or by_rating_bp, got {default!r}")
    if problems:
        raise InputError(problems)
    return RateTable(
        valid_from=tuple(d for d, _ in entries),
        base_pct=tuple(b for _, b in entries),
        named_margins_bp=MappingProxyType(dict(named)),
        rating_margins_bp=MappingProxyType({k: tuple(v) for k, v in by_rating.items()}),
        collateral=tuple(collateral),
        default_margin=default,
        source=source,
    )


def _read(path: Path) -> RateTable:
    try:
        with open(path, "rb") as f:
            # Decimal keeps 4.11 as written: base + margin is exact before the
            # single conversion to float.
            data = tomllib.load(f, parse_float=Decimal)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InputError([Problem(str(path), "", f"cannot read the rates file: {exc}")]) from exc
    return _parse(data, str(path))


@cache
def _default_table() -> RateTable:
    return _read(DEFAULT_RATES_FILE)


def load_rate_table(path: Path | None = None) -> RateTable:
    """The rates file shipped with the tool (read once), or the one at ``path``.

    Raises:
        InputError: if the file cannot be read or an entry is malformed.
    """
    return _default_table() if path is None else _read(Path(path))


# --------------------------------------------------------------------------- ESL


def _rate(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _month(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 0:
        raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")
    return int(value)


# Lengths are rounded up to whole decades so that loans of different terms
# share one vector per discount rate.
_CHUNK_MONTHS = 120


@lru_cache(maxsize=256)
def _annuity_factors(discount_rate: float, months: int) -> np.ndarray:
    """``A[m] = sum_{t=1..m} (1 + d) ** (-t / 12)`` for ``m = 0..months`` (read-only)."""
    v = np.power(1.0 + discount_rate, -np.arange(months + 1) / 12.0)
    v[0] = 0.0
    a = np.cumsum(v)
    a.flags.writeable = False
    return a


def grant_equivalent(
    schedule: Schedule,
    soft_rate: float,
    reference_rate: float,
    discount_rate: float,
    grant_cents: int = 0,
    grant_month: int = 0,
) -> int:
    """Gross grant equivalent (ESL) of a soft loan and a grant, in cents at month 0.

    Args:
        schedule: the loan's schedule (months from the first disbursement);
            only its months and principal parts are used.
        soft_rate: the loan's annual rate (fraction, 0.0 for a zero-rate loan).
        reference_rate: annual reference rate (base rate + margin).
        discount_rate: annual discount rate (base rate + 100 bp), > -1.
        grant_cents: grant paid with the loan, in cents (>= 0).
        grant_month: month offset of the grant payment from the first
            disbursement (>= 0).

    Returns:
        ``sum_t max(0, i_ref - i_soft) / 12 * outstanding_t * (1 + d) ** (-t/12)
        + grant * (1 + d) ** (-grant_month/12)``, rounded once, half away from
        zero. ``outstanding_t`` is the principal outstanding during month ``t``
        (from offset ``t-1`` to ``t``): the principal minus the parts paid at
        months ``< t``. See the module docstring for the convention.
    """
    soft = _rate("soft_rate", soft_rate)
    ref = _rate("reference_rate", reference_rate)
    d = _rate("discount_rate", discount_rate)
    if d <= -1.0:
        raise ValueError(f"discount_rate must be > -1, got {discount_rate!r}")
    grant = _month("grant_cents", grant_cents)
    month = _month("grant_month", grant_month)
    pv = 0.0
    months = schedule.months
    if ref > soft and len(months):
        length = -(-int(months[-1]) // _CHUNK_MONTHS) * _CHUNK_MONTHS
        factors = _annuity_factors(d, length)
        pv = (ref - soft) / 12.0 * float(np.dot(schedule.principal, factors[months]))
    if grant:
        pv += grant * (1.0 + d) ** (-month / 12.0)
    return round_cents(pv)


def esl_intensity(esl_cents: int, eligible_cost_cents: int) -> float:
    """Aid intensity: ESL as a share of the eligible cost (0.05 = 5 %)."""
    if eligible_cost_cents <= 0:
        raise ValueError(f"eligible cost must be > 0 cents, got {eligible_cost_cents!r}")
    return esl_cents / eligible_cost_cents


# --------------------------------------------------------------------------- de minimis

REGIMES = ("auto", "de_minimis_2013", "de_minimis_2023", "gber", "none")

_DE_MINIMIS_CENTS = {"de_minimis_2013": 20_000_000, "de_minimis_2023": 30_000_000}
_DE_MINIMIS_2023_FROM = dt.date(2024, 1, 1)


def de_minimis_ceiling(when: dt.date, regime: str = "auto") -> int | None:
    """De minimis ceiling per undertaking over three years, in cents; ``None`` if none.

    ``"de_minimis_2013"``: 200,000 EUR (Reg. 1407/2013); ``"de_minimis_2023"``:
    300,000 EUR (Reg. 2023/2831); ``"auto"``: the regulation applicable to aid
    granted on ``when`` (2013 until 31 Dec 2023, 2023 from 1 Jan 2024);
    ``"gber"`` and ``"none"``: no ceiling.
    """
    if regime not in REGIMES:
        raise ValueError(
            f"unknown state-aid regime {regime!r}: expected one of {', '.join(REGIMES)}"
        )
    if regime in ("gber", "none"):
        return None
    if regime == "auto":
        day = when.date() if isinstance(when, dt.datetime) else when
        regime = "de_minimis_2023" if day >= _DE_MINIMIS_2023_FROM else "de_minimis_2013"
    return _DE_MINIMIS_CENTS[regime]
