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
freight, agriculture, fisheries) are not modelled. In a run, :class:`AidRegister`
prices every committed project at its commitment date (the scenario's rate
table and margin), adds the aid its beneficiary already had in the period and
flags, or in a strict run reduces or rejects, aid over the ceiling.
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
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
from .loanbook import Flows, Terms, schedule_of
from .money import round_cents

if TYPE_CHECKING:
    from .instruments import Schedule

__all__ = [
    "DEFAULT_RATES_FILE",
    "OVER_CEILING",
    "REGIMES",
    "Aid",
    "AidRegister",
    "RateTable",
    "de_minimis_ceiling",
    "esl_intensity",
    "file_digest",
    "grant_equivalent",
    "load_rate_table",
    "parse_rate_table",
    "project_esl",
    "resolve_regime",
    "window_start",
]

DEFAULT_RATES_FILE = Path(__file__).parent / "data" / "reference_rates.toml"

_DISCOUNT_MARGIN_BP = 100  # discount rate = base rate + 100 bp


# --------------------------------------------------------------------------- rate table


_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()   # datetime64[D] counts from it


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
    _floats: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_days", tuple(d.toordinal() for d in self.valid_from))
        object.__setattr__(self, "_floats", {})
        for name in ("named_margins_bp", "rating_margins_bp"):
            if not isinstance(getattr(self, name), MappingProxyType):
                object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))

    def __reduce__(self):
        # Scenarios travel to worker processes: mapping proxies do not pickle, dicts do.
        return (RateTable, (self.valid_from, self.base_pct, dict(self.named_margins_bp),
                            dict(self.rating_margins_bp), self.collateral,
                            self.default_margin, self.source))

    def rates_at(self, when: dt.date, margin_bp: int) -> tuple[float, float]:
        """``(reference rate, discount rate)`` on ``when`` for a margin, as fractions.

        The same values as :meth:`reference_rate_at` and :meth:`discount_rate_at`,
        computed once per table entry and margin (the model asks for every loan).
        """
        i = bisect.bisect_right(self._days, when.toordinal()) - 1
        key = (i, margin_bp)
        found = self._floats.get(key)
        if found is None:
            found = self._floats[key] = (self.reference_rate_at(when, margin_bp),
                                         self.discount_rate_at(when))
        return found

    def rates_on(self, days: np.ndarray, margin_bp: int) -> np.ndarray:
        """:meth:`rates_at` of many days (``datetime64[D]``): one row per day,
        ``(reference rate, discount rate)``; each table entry priced once."""
        ordinals = np.asarray(days, dtype="datetime64[D]").astype(np.int64) + _EPOCH_ORDINAL
        entry = np.searchsorted(np.array(self._days, dtype=np.int64), ordinals,
                                side="right") - 1
        found = np.empty((len(ordinals), 2))
        # Any day of an entry has its rates (the day decides only which entry is in force).
        entries, first_day = np.unique(entry, return_index=True)
        for i, k in zip(entries, first_day, strict=True):
            found[entry == i] = self.rates_at(dt.date.fromordinal(int(ordinals[k])), margin_bp)
        return found

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


def _read(path: Path, label: str | None = None) -> RateTable:
    label = str(path) if label is None else label
    try:
        content = Path(path).read_bytes()
    except OSError as exc:
        raise InputError([Problem(label, "", f"cannot read the rates file: {exc}")]) from exc
    return _parse_cached(content, label)


@lru_cache(maxsize=16)
def _parse_cached(content: bytes, source: str) -> RateTable:
    # Sweeps load many variants of one scenario: the same file is parsed once.
    return parse_rate_table(content, source)


def parse_rate_table(content: bytes, source: str) -> RateTable:
    """A rates file's table from its bytes (``source`` names it in messages).

    Raises:
        InputError: if the text is not TOML or an entry is malformed.
    """
    try:
        # Decimal keeps 4.11 as written: base + margin is exact before the
        # single conversion to float.
        data = tomllib.loads(content.decode("utf-8"), parse_float=Decimal)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError([Problem(source, "", f"cannot read the rates file: {exc}")]) from exc
    return _parse(data, source)


@cache
def _default_table() -> RateTable:
    return _read(DEFAULT_RATES_FILE)


def load_rate_table(path: Path | None = None, label: str | None = None) -> RateTable:
    """The rates file shipped with the tool (read once), or the one at ``path``.

    ``label`` names the file in messages (default: the path as given).

    Raises:
        InputError: if the file cannot be read or an entry is malformed.
    """
    return _default_table() if path is None else _read(Path(path), label)


@cache
def _default_digest() -> str:
    return hashlib.sha256(DEFAULT_RATES_FILE.read_bytes()).hexdigest()


def file_digest(path: Path | None = None) -> str:
    """SHA-256 of a rates file's content (the shipped file if ``path`` is None)."""
    if path is None:
        return _default_digest()
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


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
    return _grant_equivalent(schedule, soft, ref, d, grant, month)


def _grant_equivalent(schedule: Schedule, soft: float, ref: float, d: float, grant: int,
                      month: int) -> int:
    """:func:`grant_equivalent` of arguments already checked (the model prices every loan)."""
    pv = 0.0
    months = schedule.months
    if ref > soft and len(months):
        length = -(-int(months[-1]) // _CHUNK_MONTHS) * _CHUNK_MONTHS
        factors = _annuity_factors(d, length)
        # Summed in payment order, one product at a time: the batch engine sums the
        # same products in the same order over many loans and gets the same bits.
        present = 0.0
        for part, factor in zip(schedule.principal.tolist(), factors[months].tolist(),
                                strict=True):
            present += part * factor
        pv = (ref - soft) / 12.0 * present
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
OVER_CEILING = ("flag", "reduce", "reject")

_DE_MINIMIS_CENTS = {"de_minimis_2013": 20_000_000, "de_minimis_2023": 30_000_000}
_DE_MINIMIS_2023_FROM = dt.date(2024, 1, 1)


def resolve_regime(when: dt.date, regime: str = "auto") -> str:
    """The regime of aid granted on ``when``: ``"auto"`` becomes the regulation then in force.

    ``"auto"``: ``"de_minimis_2013"`` (Reg. 1407/2013) until 31 Dec 2023,
    ``"de_minimis_2023"`` (Reg. 2023/2831) from 1 Jan 2024; any other regime
    is returned as it is.
    """
    if regime not in REGIMES:
        raise ValueError(
            f"unknown state-aid regime {regime!r}: expected one of {', '.join(REGIMES)}"
        )
    if regime != "auto":
        return regime
    day = when.date() if isinstance(when, dt.datetime) else when
    return "de_minimis_2023" if day >= _DE_MINIMIS_2023_FROM else "de_minimis_2013"


def de_minimis_ceiling(when: dt.date, regime: str = "auto") -> int | None:
    """De minimis ceiling per undertaking over three years, in cents; ``None`` if none.

    ``"de_minimis_2013"``: 200,000 EUR (Reg. 1407/2013); ``"de_minimis_2023"``:
    300,000 EUR (Reg. 2023/2831); ``"auto"``: the regulation applicable to aid
    granted on ``when`` (2013 until 31 Dec 2023, 2023 from 1 Jan 2024);
    ``"gber"`` and ``"none"``: no ceiling.
    """
    return _DE_MINIMIS_CENTS.get(resolve_regime(when, regime))


def _years_before(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def window_start(when: dt.date, regime: str = "auto") -> dt.date | None:
    """First day of the period whose de minimis aid counts with aid granted on ``when``.

    Reg. 1407/2013: the fiscal year of the grant and the two previous ones
    (fiscal year = calendar year here); Reg. 2023/2831: any three years, i.e.
    the grant date and the three years before it (from the day after the same
    date three years earlier). ``None`` for ``"gber"`` and ``"none"``.
    """
    regime = resolve_regime(when, regime)
    day = when.date() if isinstance(when, dt.datetime) else when
    if regime == "de_minimis_2013":
        return dt.date(day.year - 2, 1, 1)
    if regime == "de_minimis_2023":
        return _years_before(day, 3) + dt.timedelta(days=1)
    return None


@dataclass(frozen=True, slots=True)
class Aid:
    """The state aid of one committed project, priced at its commitment date."""

    esl: int  # gross grant equivalent, cents
    ceiling: int | None  # de minimis ceiling in force, cents; None under "gber" and "none"
    prior: int  # de minimis aid the beneficiary already had in the period, cents
    over: bool  # esl + prior > ceiling


def project_esl(terms: Terms, flows: Flows, line, reference: float, discount: float) -> int:
    """Gross grant equivalent of a committed project's aid, in cents.

    The aid is valued as granted (the schedule from the first disbursement,
    the grant when it is due), not as it turned out after a failure or a
    default: the actual schedule (grace extended if the last tranche comes
    late); a loan that fails before its schedule begins is valued on the
    nominal one. The grant is discounted from its payment month when it is
    paid at completion, counted in full when paid at signing.
    """
    schedule = flows.schedule or schedule_of(terms, line)
    grant_month = 0
    if line.disbursement.grant_paid_at == "completion" and flows.first_disbursement_month >= 0:
        grant_month = max(0, flows.completion_month - flows.first_disbursement_month)
    # Rates come checked from the scenario and the rates file, cents and months from the model.
    return _grant_equivalent(schedule, line.instrument.public_rate, reference, discount,
                             terms.grant, grant_month)


def _largest(low: int, high: int, fits) -> int:
    """The largest ``x`` in ``[low, high]`` with ``fits(x)``, given ``fits(low)`` (bisection)."""
    while low < high:
        mid = (low + high + 1) // 2
        if fits(mid):
            low = mid
        else:
            high = mid - 1
    return low


class AidRegister:
    """The de minimis check of one replication: what each beneficiary has received.

    Each committed project is priced at its commitment date (:meth:`assess`):
    its ESL at the reference and discount rates then in force, the ceiling of
    the line's regime then in force, and the aid the beneficiary already had
    in the period: the ``prior_aid`` declared for it plus the de minimis aid of
    its earlier projects in the run whose commitment falls in the period
    (:func:`window_start`). A project is *over the ceiling* when
    ``esl + prior > ceiling``.

    Beneficiaries: each application is its own beneficiary unless a pipeline
    row names one (``beneficiary`` column): projects with the same name share
    the ceiling; the ``prior_aid`` drawn for the first of them counts for all.
    The declared aid is taken as received inside the period throughout the run.
    """

    def __init__(self, scenario):
        self.rates: RateTable = scenario.rate_table()
        self.margin_bp: int = scenario.reference_margin_bp()
        self.strict: bool = scenario.state_aid.strict
        self._declared: dict[object, int] = {}
        self._granted: dict[str, list[tuple[int, int]]] = {}  # name -> [(day, cents)]
        self.rejected = 0  # applications refused in a strict run
        self.reduced = 0  # projects committed with their aid reduced in a strict run

    def action(self, line) -> str:
        """What this run does with aid over the ceiling on ``line``: flag, reduce or reject."""
        return line.state_aid.over_ceiling if self.strict else "flag"

    def assess(self, app, terms: Terms, flows: Flows, line, when: dt.date) -> Aid:
        """Price a project's aid at ``when`` and check it against the ceiling."""
        reference, discount = self.rates.rates_at(when, self.margin_bp)
        esl = project_esl(terms, flows, line, reference, discount)
        regime = line.state_aid.regime
        if regime == "auto":  # resolve_regime(), inlined: the model asks for every loan
            regime = "de_minimis_2023" if when >= _DE_MINIMIS_2023_FROM else "de_minimis_2013"
        key = app.beneficiary or (app.line_id, app.project_id)
        prior = self._declared.get(key)
        if prior is None:
            prior = self._declared[key] = app.prior_aid
        ceiling = _DE_MINIMIS_CENTS.get(regime)
        if ceiling is None:
            return Aid(esl, None, prior, False)
        granted = self._granted.get(app.beneficiary) if app.beneficiary else None
        if granted:
            first = window_start(when, regime).toordinal()
            prior += sum(cents for day, cents in granted if day >= first)
        return Aid(esl, ceiling, prior, esl + prior > ceiling)

    def record(self, app, aid: Aid, when: dt.date) -> None:
        """Count a committed project's de minimis aid for its beneficiary's later projects."""
        if aid.ceiling is not None and app.beneficiary:
            self._granted.setdefault(app.beneficiary, []).append((when.toordinal(), aid.esl))

    def reduce(self, terms: Terms, flows: Flows, aid: Aid, line, when: dt.date,
               flows_of) -> tuple[Terms, Flows, Aid] | None:
        """The largest aid that fits the ceiling: lower the grant, then the fund's loan.

        The grant is lowered first (to 0 if need be), then the fund's loan; the
        bank loan does not change, and what the fund no longer finances is left
        to the recipient's own funds (private co-financing). Each amount is the
        largest whole cent that fits (bisection). ``flows_of(terms)`` gives the
        project's flows for other terms (``flows`` are those of ``terms``).
        ``None`` if nothing fits: no room left under the ceiling, or nothing
        left to grant.
        """
        room = aid.ceiling - aid.prior
        if room <= 0:
            return None
        reference, discount = self.rates.rates_at(when, self.margin_bp)

        def with_grant(grant: int) -> Terms:
            return Terms(terms.eligible_cost, terms.public_loan, terms.bank_loan, grant)

        def grant_fits(grant: int) -> bool:
            # The loan's schedule does not depend on the grant.
            return project_esl(with_grant(grant), flows, line, reference, discount) <= room

        if terms.grant and grant_fits(0):
            new = with_grant(_largest(0, terms.grant, grant_fits))
        else:
            def loan_fits(loan: int) -> bool:
                t = Terms(terms.eligible_cost, loan, terms.bank_loan, 0)
                return project_esl(t, flows_of(t), line, reference, discount) <= room

            new = Terms(terms.eligible_cost, _largest(0, terms.public_loan, loan_fits),
                        terms.bank_loan, 0)
        if new.exposure == 0:
            return None
        flows = flows_of(new)
        esl = project_esl(new, flows, line, reference, discount)
        return new, flows, Aid(esl, aid.ceiling, aid.prior, esl + aid.prior > aid.ceiling)
