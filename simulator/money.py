"""Money: integer euro cents, the rounding rule, and Italian/English formatting.

Conventions used throughout fesr-sim:

* Every amount held in the ledger or in the loan book is a Python ``int`` (or a
  numpy ``int64``) of **euro cents**. Integer arithmetic is exact, so the fund's
  accounting identities can be checked to the cent, replication after
  replication, without any tolerance.
* Floats appear only for rates and shares (``0.035`` = 3.5 %). When a rate is
  applied to an amount, the result is brought back to whole cents immediately
  with the rounding rule below.
* Rounding is **half away from zero** ("commercial rounding", the rule Italian
  banks apply on instalments and interest): 2.5 -> 3, -2.5 -> -3. Python's
  built-in ``round`` and numpy's ``np.round`` round half to even, and Babel
  quantises with the decimal context (also half-even), so neither is used on
  money; every value is rounded here before it is handed to Babel.
* Amounts enter from scenario files in euros; :func:`to_cents` converts them
  through their decimal text (``Decimal(str(x))``), so ``0.1`` euro is exactly
  10 cents and not ``9.999...``.

Formatting follows the conventions of the reports: Italian by default
(``1.234.567,89 €``, ``1,2 M€``, ``12,5 %``), English with ``lang="en"``
(``€1,234,567.89``, ``€1.2M``, ``12.5%``). Thousands and decimal separators
come from Babel (CLDR locales ``it_IT`` and ``en_GB``); the space before ``€``
is a plain ASCII space (Babel emits U+00A0) so that strings match what users
type and what tests search for in text extracted from PDFs.
"""

from __future__ import annotations

import math
import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cache
from numbers import Integral, Real

import numpy as np
from babel import Locale
from babel.numbers import format_currency, format_decimal

__all__ = [
    "cents_to_euros",
    "format_eur",
    "format_eur_compact",
    "format_keur",
    "format_meur",
    "format_number",
    "format_pct",
    "round_cents",
    "round_half_away",
    "to_cents",
]

_LOCALES: dict[str, str] = {"it": "it_IT", "en": "en_GB"}

_CENTS_PER_EURO = 100
_CENTS_PER_KEUR = 100_000
_CENTS_PER_MEUR = 100_000_000

# Characters Babel may put where users (and PDF text search) expect plain ASCII.
_NBSP = "\u00a0"
_NNBSP = "\u202f"
_MINUS = "\u2212"

# What a non-finite share or number (e.g. "month the desk ran dry" when it never
# did) prints as in a report: an empty cell would look like a bug.
_NOT_AVAILABLE: dict[str, str] = {"it": "n.d.", "en": "n/a"}


def _locale(lang: str) -> str:
    try:
        return _LOCALES[lang]
    except KeyError:
        allowed = ", ".join(sorted(_LOCALES))
        raise ValueError(f"unsupported language {lang!r}: expected one of {allowed}") from None


def _ascii(text: str) -> str:
    return text.replace(_NBSP, " ").replace(_NNBSP, " ").replace(_MINUS, "-")


def _quantize(value: Decimal, digits: int) -> Decimal:
    """Round ``value`` to ``digits`` decimals half away from zero, without ``-0``."""
    q = value.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    # A small negative amount rounds to zero; "-0 €" would read as a loss.
    return q.copy_abs() if q.is_zero() else q


def _check_digits(digits: int) -> int:
    if isinstance(digits, bool) or not isinstance(digits, Integral) or not 0 <= digits <= 12:
        raise ValueError(f"digits must be an integer between 0 and 12, got {digits!r}")
    return int(digits)


def _as_cents(cents: int) -> int:
    # Cents are whole numbers by convention; a float here means an amount was
    # not rounded where it was computed, which is a bug to surface, not to hide.
    if isinstance(cents, bool) or not isinstance(cents, Integral):
        raise TypeError(f"amounts are integer cents, got {type(cents).__name__} {cents!r}")
    return int(cents)


# --------------------------------------------------------------------------- conversion


def to_cents(euros: int | float | str | Decimal) -> int:
    """Convert an amount in euros to integer cents, rounding half away from zero.

    The value goes through its decimal text, so the result is what a person
    reading the number would expect: ``to_cents(0.1) == 10``,
    ``to_cents(1_234_567.895) == 123_456_790``, ``to_cents("12,5")`` is an
    error (use a dot as decimal separator in files).

    Raises:
        ValueError: for non-numeric strings, NaN or infinities.
        TypeError: for booleans and non-numeric types.
    """
    if isinstance(euros, bool):
        raise TypeError("to_cents() does not accept booleans")
    if isinstance(euros, Integral):
        return int(euros) * _CENTS_PER_EURO
    if isinstance(euros, Decimal):
        value = euros
    elif isinstance(euros, Real | str):
        # str() of a float is the shortest text that reads back to the same
        # float: it is the number the user wrote, not its binary approximation.
        text = str(float(euros)) if isinstance(euros, Real) else euros.strip()
        try:
            value = Decimal(text.replace("_", ""))
        except InvalidOperation:
            raise ValueError(f"not an amount in euros: {euros!r}") from None
    else:
        raise TypeError(f"to_cents() expects a number of euros, got {type(euros).__name__}")
    if not value.is_finite():
        raise ValueError(f"amount must be finite, got {euros!r}")
    return int(_quantize(value.scaleb(2), 0))


_FAST_LIMIT = 2.0**52  # below this, a float's fractional part is exact


def round_cents(x: float | Decimal) -> int:
    """Round a (possibly fractional) amount of cents to a whole cent, half away from zero.

    Floats are rounded on their exact binary value (``x - floor(x)`` is exact
    in floating point), so ``round_cents(0.49999999999999994) == 0``, which
    the ``floor(x + 0.5)`` shortcut gets wrong.
    """
    if type(x) is float and -_FAST_LIMIT < x < _FAST_LIMIT:
        # The hot path (the model rounds hundreds of thousands of floats per run);
        # the comparison is False for NaN, which falls through to the checks below.
        a = -x if x < 0 else x
        f = int(a)
        r = f + 1 if a - f >= 0.5 else f
        return -r if x < 0 else r
    if isinstance(x, Decimal):
        if not x.is_finite():
            raise ValueError(f"cannot round a non-finite amount: {x!r}")
        return int(_quantize(x, 0))
    if isinstance(x, Integral):
        return int(x)
    xf = float(x)
    if not math.isfinite(xf):
        raise ValueError(f"cannot round a non-finite amount: {x!r}")
    a = abs(xf)
    f = math.floor(a)
    r = f + 1 if a - f >= 0.5 else f
    return -r if xf < 0 else r


def round_half_away(a: np.ndarray) -> np.ndarray:
    """Vectorised :func:`round_cents`: round an array of cents to ``int64``.

    Integer arrays are returned as ``int64`` unchanged in value.

    Raises:
        ValueError: if the array holds NaN or infinities.
    """
    arr = np.asarray(a)
    if arr.dtype.kind in "iub":
        return arr.astype(np.int64)
    arr = arr.astype(np.float64, copy=False)
    if not np.isfinite(arr).all():
        raise ValueError("cannot round non-finite amounts")
    mag = np.abs(arr)
    floor = np.floor(mag)
    # The fractional part mag - floor is exact in binary floating point, so the
    # comparison with 0.5 decides ties exactly (unlike floor(mag + 0.5)).
    rounded = floor + (mag - floor >= 0.5)
    return np.copysign(rounded, arr).astype(np.int64)


def cents_to_euros(cents: int) -> Decimal:
    """Exact amount in euros of integer cents: ``123456`` -> ``Decimal('1234.56')``."""
    # Built from a tuple so no decimal context (precision, rounding) is involved.
    c = _as_cents(cents)
    digits = tuple(int(d) for d in str(abs(c)))
    return Decimal((1 if c < 0 else 0, digits, -2))


# --------------------------------------------------------------------------- formatting


@cache
def _currency_pattern(locale: str, decimals: bool) -> str:
    """The locale's euro pattern, with or without the cents part."""
    pattern = Locale.parse(locale).currency_formats["standard"].pattern
    # A pattern may carry a negative sub-pattern after ";": both keep their
    # layout; only the fraction digits are dropped for whole-euro output.
    return pattern if decimals else re.sub(r"\.0+", "", pattern)


def _number_pattern(digits: int) -> str:
    # Grouped integer part, exactly `digits` decimals. The separators themselves
    # come from the locale when Babel applies the pattern.
    return "#,##0" + ("." + "0" * digits if digits else "")


def _fmt_decimal(value: Decimal, lang: str, digits: int) -> str:
    q = _quantize(value, digits)
    return _ascii(format_decimal(q, format=_number_pattern(digits), locale=_locale(lang)))


def format_eur(cents: int, lang: str = "it", decimals: bool = True) -> str:
    """Format an amount of cents in euros.

    >>> format_eur(123456789)
    '1.234.567,89 €'
    >>> format_eur(123456789, decimals=False)
    '1.234.568 €'
    >>> format_eur(-123456, lang="en")
    '-€1,234.56'

    With ``decimals=False`` the amount is rounded to whole euros half away from
    zero. Italian uses a plain ASCII space before ``€``.
    """
    value = cents_to_euros(cents)
    value = _quantize(value, 2 if decimals else 0)
    locale = _locale(lang)
    text = format_currency(
        value,
        "EUR",
        format=_currency_pattern(locale, decimals),
        locale=locale,
        currency_digits=False,
    )
    return _ascii(text)


def _format_scaled(
    cents: int, scale: int, lang: str, digits: int, it_unit: str, en_unit: str
) -> str:
    digits = _check_digits(digits)
    value = _quantize(Decimal(_as_cents(cents)) / scale, digits)
    number = _fmt_decimal(value.copy_abs(), lang, digits)
    sign = "-" if value < 0 else ""
    if lang == "it":
        return f"{sign}{number} {it_unit}"
    return f"{sign}€{number}{en_unit}"


def format_meur(cents: int, lang: str = "it", digits: int = 1) -> str:
    """Format an amount of cents in millions of euros: ``1,2 M€`` (it), ``€1.2M`` (en).

    Always shows exactly ``digits`` decimals (so axis labels line up),
    rounded half away from zero.
    """
    return _format_scaled(cents, _CENTS_PER_MEUR, lang, digits, "M€", "M")


def format_keur(cents: int, lang: str = "it", digits: int = 0) -> str:
    """Format an amount of cents in thousands of euros: ``850 k€`` (it), ``€850k`` (en)."""
    return _format_scaled(cents, _CENTS_PER_KEUR, lang, digits, "k€", "k")


def format_eur_compact(cents: int, lang: str = "it") -> str:
    """Short label for chart axes and tables: M€ from 1 M€, k€ from 10 k€, else whole euros.

    The unit is chosen on the rounded magnitude, so 999.960 € prints as
    ``1,0 M€`` rather than ``1.000 k€``.
    """
    c = abs(_as_cents(cents))
    # Thresholds compare the value as it would print in the smaller unit.
    if round_cents(Decimal(c) / _CENTS_PER_KEUR) >= 1000:
        return format_meur(cents, lang, digits=1)
    if round_cents(Decimal(c) / _CENTS_PER_EURO) >= 10_000:
        return format_keur(cents, lang, digits=0)
    return format_eur(cents, lang, decimals=False)


def _real_to_decimal(x: float) -> Decimal:
    # repr() of a float is the shortest decimal that round-trips: 0.125 stays
    # 0.125, so ties are decided on the number as written, not on its binary
    # neighbour.
    if isinstance(x, Decimal):
        return x
    if isinstance(x, Integral):
        return Decimal(int(x))
    return Decimal(repr(float(x)))


def format_pct(share: float, lang: str = "it", digits: int = 1) -> str:
    """Format a share (``0.125``) as a percentage: ``12,5 %`` (it), ``12.5%`` (en).

    NaN prints as ``n.d.`` (it) / ``n/a`` (en).
    """
    digits = _check_digits(digits)
    _locale(lang)
    if not math.isfinite(float(share)):
        return _NOT_AVAILABLE[lang]
    number = _fmt_decimal(_real_to_decimal(share).scaleb(2), lang, digits)
    return f"{number} %" if lang == "it" else f"{number}%"


def format_number(x: float, lang: str = "it", digits: int = 0) -> str:
    """Format a plain number with the locale's separators: ``1.234,5`` (it), ``1,234.5`` (en).

    NaN prints as ``n.d.`` (it) / ``n/a`` (en).
    """
    digits = _check_digits(digits)
    _locale(lang)
    if not math.isfinite(float(x)):
        return _NOT_AVAILABLE[lang]
    return _fmt_decimal(_real_to_decimal(x), lang, digits)
