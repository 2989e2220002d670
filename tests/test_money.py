"""Integer cents, half-away-from-zero rounding, Italian and English formatting."""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.money import (
    cents_to_euros,
    format_eur,
    format_eur_compact,
    format_keur,
    format_meur,
    format_number,
    format_pct,
    round_cents,
    round_half_away,
    to_cents,
)

# ---------------------------------------------------------------------------- conversion


@pytest.mark.parametrize(
    ("euros", "cents"),
    [
        (0.1, 10),
        (0.29, 29),  # 0.29 * 100 == 28.999999999999996 in binary floating point
        (1.005, 101),  # half up, although the float 1.005 is 1.00499999...
        (1_234_567.895, 123_456_790),
        (-1_234_567.895, -123_456_790),  # half away from zero
        (0.125, 13),
        (0.135, 14),  # not half-even
        (5_000_000, 500_000_000),
        (np.int64(7), 700),
        (np.float64(0.07), 7),
        ("1234.565", 123_457),
        ("1_000.50", 100_050),
        (Decimal("-0.005"), -1),
        (Decimal("0.0049"), 0),
        (-0.004, 0),
    ],
)
def test_to_cents(euros: object, cents: int) -> None:
    result = to_cents(euros)  # type: ignore[arg-type]
    assert result == cents and type(result) is int


@pytest.mark.parametrize("bad", ["12,5", "abc", "", float("nan"), float("inf"), "Infinity"])
def test_to_cents_rejects_non_amounts(bad: object) -> None:
    with pytest.raises(ValueError):
        to_cents(bad)  # type: ignore[arg-type]


def test_to_cents_rejects_booleans_and_objects() -> None:
    with pytest.raises(TypeError):
        to_cents(True)
    with pytest.raises(TypeError):
        to_cents(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("x", "expected"),
    [
        (2.5, 3),
        (-2.5, -3),
        (3.5, 4),
        (0.5, 1),
        (-0.5, -1),
        (0.49999999999999994, 0),  # floor(x + 0.5) would give 1
        (1.4999999999999998, 1),
        (-1.4999999999999998, -1),
        (123456.50000000001, 123457),
        (0.0, 0),
        (-0.0, 0),
        (Decimal("2.5"), 3),
        (Decimal("-2.5"), -3),
        (7, 7),
    ],
)
def test_round_cents(x: float, expected: int) -> None:
    assert round_cents(x) == expected
    assert round_half_away(np.array([x], dtype=float))[0] == expected


def test_round_half_away_vectorised() -> None:
    a = np.array([2.5, -2.5, 0.49999999999999994, 1.4999, -0.5, 1e12 + 0.5])
    out = round_half_away(a)
    assert out.dtype == np.int64
    assert out.tolist() == [3, -3, 0, 1, -1, 1_000_000_000_001]
    ints = round_half_away(np.array([1, -2, 3], dtype=np.int32))
    assert ints.dtype == np.int64 and ints.tolist() == [1, -2, 3]
    with pytest.raises(ValueError):
        round_half_away(np.array([1.0, np.nan]))
    with pytest.raises(ValueError):
        round_cents(math.inf)


@settings(max_examples=200, deadline=None)
@given(st.floats(-1e13, 1e13, allow_nan=False))
def test_round_cents_agrees_with_decimal(x: float) -> None:
    # Decimal(x) is the exact binary value: the reference for half-away rounding.
    exact = int(Decimal(x).quantize(Decimal(1), rounding="ROUND_HALF_UP"))
    assert round_cents(x) == exact
    assert round_half_away(np.array([x]))[0] == exact


def test_cents_to_euros_is_exact() -> None:
    assert cents_to_euros(123_456) == Decimal("1234.56")
    assert str(cents_to_euros(-5)) == "-0.05"
    assert cents_to_euros(0) == 0
    big = 10**30 + 1  # beyond the 28 digits of the default decimal context
    assert str(cents_to_euros(big)) == "10000000000000000000000000000.01"
    with pytest.raises(TypeError):
        cents_to_euros(1.5)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- formatting


@pytest.mark.parametrize(
    ("cents", "lang", "decimals", "text"),
    [
        (123_456_789, "it", True, "1.234.567,89 €"),
        (123_456_789, "it", False, "1.234.568 €"),
        (123_456_749, "it", False, "1.234.567 €"),
        (123_456_750, "it", False, "1.234.568 €"),
        (-123_456, "it", False, "-1.235 €"),
        (-123_400, "it", False, "-1.234 €"),
        (-123_456, "it", True, "-1.234,56 €"),
        (0, "it", True, "0,00 €"),
        (0, "it", False, "0 €"),
        (-40, "it", False, "0 €"),  # rounds to zero: no "-0 €"
        (-50, "it", False, "-1 €"),  # half away from zero
        (5, "it", True, "0,05 €"),
        (100_000, "it", False, "1.000 €"),
        (99_900, "it", False, "999 €"),
        (123_456_789, "en", True, "€1,234,567.89"),
        (123_456_789, "en", False, "€1,234,568"),
        (-123_456, "en", True, "-€1,234.56"),
        (0, "en", False, "€0"),
    ],
)
def test_format_eur(cents: int, lang: str, decimals: bool, text: str) -> None:
    assert format_eur(cents, lang=lang, decimals=decimals) == text


def test_format_eur_uses_ascii_space() -> None:
    text = format_eur(123_456_789)
    assert "\u00a0" not in text and "\u202f" not in text
    assert text.endswith(" €")


def test_format_eur_rejects_floats_and_unknown_languages() -> None:
    with pytest.raises(TypeError):
        format_eur(1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="language"):
        format_eur(100, lang="fr")
    assert format_eur(np.int64(123_456_789)) == "1.234.567,89 €"


@pytest.mark.parametrize(
    ("func", "cents", "lang", "text"),
    [
        (format_meur, 123_456_789, "it", "1,2 M€"),
        (format_meur, 123_456_789, "en", "€1.2M"),
        (format_meur, 125_000_000, "it", "1,3 M€"),  # half away from zero, not to even
        (format_meur, -250_000_000, "it", "-2,5 M€"),
        (format_meur, -250_000_000, "en", "-€2.5M"),
        (format_meur, 123_456_789_000, "it", "1.234,6 M€"),
        (format_meur, -1, "it", "0,0 M€"),
        (format_keur, 85_000_000, "it", "850 k€"),
        (format_keur, 85_000_000, "en", "€850k"),
        (format_keur, 85_050_000, "it", "851 k€"),
        (format_keur, 123_456_789, "it", "1.235 k€"),
    ],
)
def test_format_compact_units(func: Callable[..., str], cents: int, lang: str, text: str) -> None:
    assert func(cents, lang=lang) == text


def test_format_meur_digits() -> None:
    assert format_meur(123_456_789, digits=2) == "1,23 M€"
    assert format_meur(123_456_789, digits=0) == "1 M€"
    with pytest.raises(ValueError):
        format_meur(1, digits=-1)


@pytest.mark.parametrize(
    ("cents", "it", "en"),
    [
        (250_000_000, "2,5 M€", "€2.5M"),
        (100_000_000, "1,0 M€", "€1.0M"),
        (99_996_000, "1,0 M€", "€1.0M"),  # 999,960 € would print as "1.000 k€"
        (95_000_000, "950 k€", "€950k"),
        (1_000_000, "10 k€", "€10k"),
        (999_900, "9.999 €", "€9,999"),
        (12_345, "123 €", "€123"),
        (0, "0 €", "€0"),
        (-250_000_000, "-2,5 M€", "-€2.5M"),
        (-5_000_000, "-50 k€", "-€50k"),
    ],
)
def test_format_eur_compact(cents: int, it: str, en: str) -> None:
    assert format_eur_compact(cents) == it
    assert format_eur_compact(cents, lang="en") == en


@pytest.mark.parametrize(
    ("share", "digits", "it", "en"),
    [
        (0.125, 1, "12,5 %", "12.5%"),
        (0.7, 0, "70 %", "70%"),
        (0.00125, 2, "0,13 %", "0.13%"),  # half away from zero on the written value
        (1.0, 1, "100,0 %", "100.0%"),
        (12.5, 0, "1.250 %", "1,250%"),
        (-0.035, 1, "-3,5 %", "-3.5%"),
        (float("nan"), 1, "n.d.", "n/a"),
    ],
)
def test_format_pct(share: float, digits: int, it: str, en: str) -> None:
    assert format_pct(share, digits=digits) == it
    assert format_pct(share, lang="en", digits=digits) == en


@pytest.mark.parametrize(
    ("x", "digits", "it", "en"),
    [
        (1234.5, 1, "1.234,5", "1,234.5"),
        (1234.5, 0, "1.235", "1,235"),
        (1_234_567, 0, "1.234.567", "1,234,567"),
        (-0.4, 0, "0", "0"),
        (0.1 + 0.2, 2, "0,30", "0.30"),
        (float("inf"), 0, "n.d.", "n/a"),
    ],
)
def test_format_number(x: float, digits: int, it: str, en: str) -> None:
    assert format_number(x, digits=digits) == it
    assert format_number(x, lang="en", digits=digits) == en


# ---------------------------------------------------------------------------- round trips


def _parse_it(text: str) -> Decimal:
    """What a reader does with an Italian amount: drop '.', ',' is the decimal point."""
    assert text.endswith(" €")
    return Decimal(text[:-2].replace(".", "").replace(",", "."))


def _parse_en(text: str) -> Decimal:
    return Decimal(text.replace("€", "").replace(",", ""))


@settings(max_examples=200, deadline=None)
@given(st.integers(-(10**14), 10**14))
def test_format_eur_round_trips(cents: int) -> None:
    assert _parse_it(format_eur(cents)) * 100 == cents
    assert _parse_en(format_eur(cents, lang="en")) * 100 == cents
    whole = _parse_it(format_eur(cents, decimals=False))
    assert whole == round_cents(Decimal(cents) / 100)


@settings(max_examples=200, deadline=None)
@given(st.integers(-(10**14), 10**14))
def test_format_eur_groups_thousands(cents: int) -> None:
    integer_part = format_eur(cents).removesuffix(" €").lstrip("-").split(",")[0]
    groups = integer_part.split(".")
    assert 1 <= len(groups[0]) <= 3 and all(len(g) == 3 for g in groups[1:])


@settings(max_examples=200, deadline=None)
@given(st.integers(-(10**14), 10**14), st.sampled_from(["it", "en"]))
def test_format_eur_compact_never_loses_the_sign(cents: int, lang: str) -> None:
    text = format_eur_compact(cents, lang=lang)
    shows_nonzero = any(c in "123456789" for c in text)
    assert text.startswith("-") == (cents < 0 and shows_nonzero)
    assert "\u00a0" not in text
