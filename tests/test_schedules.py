"""Loan schedules: against numpy-financial to the cent, and structural properties."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import numpy_financial as npf
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from simulator.instruments import (
    METHODS,
    PERIOD_MONTHS,
    Schedule,
    loan_schedule,
    periodic_rate,
)


def _eps(principal: int, r: float = 0.0) -> float:
    """Slack for the float64 evaluation of the oracle itself.

    npf computes (1+r)^n - 1 directly, so its relative error grows like
    machine epsilon / r: about 1e-5 cents on 5 M€ at 0.5 % a year, monthly.
    """
    return 1e-6 + 1e-15 * principal * (1 + (1 / r if r > 0 else 0))


PRINCIPALS = [100, 1_000_000, 123_456_789, 500_000_000]  # 1 €, 10,000 €, 1,234,567.89 €, 5 M€
RATES = [0.0, 0.005, 0.03, 0.08]
TERMS = [12, 60, 96, 120, 240]
GRACES = [0, 12, 24]


def _over_grid(
    check: Callable[[int, float, str, int, int], None], rate: float, frequency: str
) -> None:
    """Run `check` on every principal, term and grace of the grid, naming the failing case."""
    for principal, term, grace in itertools.product(PRINCIPALS, TERMS, GRACES):
        try:
            check(principal, rate, frequency, term, grace)
        except AssertionError as exc:
            case = f"principal={principal} rate={rate} {frequency} term={term} grace={grace}"
            raise AssertionError(f"{case}: {exc}") from exc


def _split(s: Schedule, rate: float, grace: int, period: int) -> tuple[slice, slice]:
    """Slices of the grace rows and of the amortisation rows."""
    g = grace // period if rate > 0 else 0
    return slice(0, g), slice(g, len(s))


# --------------------------------------------------------------------------- the oracle
#
# Error bounds of the French schedule against the exact (real-valued) annuity,
# for a loan of P cents, periodic rate r > 0, n instalments:
#
#   X   = exact annuity (npf.pmt), A = round(X) our instalment, d = A - X, |d| <= 1/2
#   B_k = exact outstanding after k payments: B_k = B_{k-1}(1+r) - X, B_0 = P
#   O_k = our outstanding: our interest is i_k = round(O_{k-1} r) = O_{k-1} r + e_k
#         with |e_k| <= 1/2, our principal part p_k = A - i_k, so
#         O_k = O_{k-1}(1+r) - A + e_k.
#   D_k = O_k - B_k = D_{k-1}(1+r) - d + e_k, D_0 = 0
#       = sum_{j<=k} (e_j - d)(1+r)^(k-j)
#   hence |D_k| <= (|d| + 1/2) S_k with S_k = ((1+r)^k - 1)/r  (S_k = k when r -> 0).
#
# For an instalment k < n:
#   i_k - ipmt_k = r D_{k-1} + e_k
#       |.| <= (|d| + 1/2)((1+r)^(k-1) - 1) + 1/2                            (I)
#   p_k - ppmt_k = d - r D_{k-1} - e_k = d (1+r)^(k-1) - r sum e_j(..) - e_k
#       |.| <= (|d| + 1/2)(1+r)^(k-1)                                        (P)
# The last instalment takes what is left, p_n = O_{n-1} against ppmt_n = B_{n-1}:
#       |p_n - ppmt_n| = |D_{n-1}| <= (|d| + 1/2) S_{n-1}                     (L)
# i.e. at most (n-1)/2 cents from the rounding of the instalment plus (n-1)/2
# from the rounding of interest, both compounded by (1+r).
#
# So "within 1 cent of npf" per part is a theorem only for the first periods:
# the rounded instalment A differs from X by d every period, and that
# overpayment (or underpayment) accumulates in the outstanding, which is the
# correct amortisation of the instalment actually charged. Measured against the
# exact amortisation of A itself (d = 0), both (I) and (P) become
# (1/2)(1+r)^(k-1): every part is within 1 cent whenever (1+r)^(n-1) <= 2,
# which covers the contracts the fund writes (e.g. 3 % quarterly over 8 years:
# 1.26; 8 % monthly over 8 years: 1.88). Both statements are asserted below.
#
# The bounds assume no early pay-off: a loan of a few cents, whose last exact
# principal part B_{n-1} is below the drift bound S_{n-1}, can reach zero
# before the last period (its later parts are then 0); that case is checked
# separately.


def _paid_off_early(s: Schedule, amort: slice) -> bool:
    return bool((s.outstanding_after[amort][:-1] == 0).any())


def _exact_amortisation(principal: float, r: float, n: int, instalment: float):
    """Real-valued interest and principal parts of a loan paying `instalment`."""
    k = np.arange(n)
    before = principal * (1 + r) ** k - instalment * ((1 + r) ** k - 1) / r
    interest = before * r
    return interest, instalment - interest


def _check_french(principal: int, rate: float, frequency: str, term: int, grace: int) -> None:
    period = PERIOD_MONTHS[frequency]
    r = rate * period / 12
    eps = _eps(principal, r)
    n = term // period
    s = loan_schedule(principal, rate, term, grace, frequency, "french")
    grace_rows, amort = _split(s, rate, grace, period)

    # Grace: interest only, the periodic interest on the whole principal.
    assert (s.principal[grace_rows] == 0).all()
    assert np.all(np.abs(s.interest[grace_rows] - principal * r) <= 0.5 + eps)

    interest = s.interest[amort].astype(float)
    part = s.principal[amort].astype(float)
    instalment = s.instalments[amort]
    if r == 0:
        # No interest, so no interest rounding: the parts are P/n rounded, the
        # last one carries the remainder of the n-1 roundings, at most
        # (n-1)/2 cents (a loan of a few cents is split by the floor instead,
        # see test_italian_against_closed_form).
        assert (interest == 0).all()
        assert abs(-npf.pmt(0.0, n, principal) - principal / n) <= eps
        assert np.array_equal(
            part, loan_schedule(principal, 0.0, term, 0, frequency, "italian").principal
        )
        if np.floor(principal / n + 0.5) * (n - 1) <= principal:
            assert np.all(np.abs(part - principal / n)[:-1] <= 0.5)
            assert abs(part[-1] - principal / n) <= (n - 1) / 2
        return

    per = np.arange(1, n + 1)
    x = float(-npf.pmt(r, n, principal))
    ipmt = -npf.ipmt(r, per, n, principal)
    ppmt = -npf.ppmt(r, per, n, principal)

    growth = (1 + r) ** np.arange(n)  # (1+r)^(k-1) for k = 1..n
    s_n1 = (growth[-1] - 1) / r  # S_{n-1}
    # The constant instalment A: every instalment before the last is A, or
    # less on the one that pays a tiny loan off early (see below).
    a = int(instalment[:-1].max()) if n > 1 else int(instalment[0])
    if _paid_off_early(s, amort):
        # Uncapped, the outstanding would have gone negative at some k < n:
        # D_k < -B_k, and as B decreases and the bound on |D| grows,
        # ppmt_n = B_{n-1} <= B_k < |D_k| <= (|d| + 1/2) S_{n-1} <= S_{n-1}.
        # Only a loan of a few cents gets there. Until then it pays A.
        assert ppmt[-1] < s_n1 + eps
        k0 = int(np.flatnonzero(s.outstanding_after[amort] == 0)[0])
        assert (instalment[:k0] == a).all() and instalment[k0] <= a
        assert (instalment[k0 + 1 :] == 0).all()
        assert a - x <= 0.5 + eps
        return
    assert (instalment[:-1] == a).all()
    # The constant instalment is the annuity rounded to the cent.
    assert abs(a - x) <= 0.5 + eps
    d = abs(a - x)

    head = slice(0, n - 1)
    # The oracle's own float error grows with the outstanding's drift, like (1+r)^(k-1)
    # (seen: 7.6e-4 cents at (1+r)^k = 1.5e6, 15 % a year over 107 years).
    slack = eps * growth
    # (I) and (P) against numpy-financial, every instalment but the last.
    assert np.all(np.abs(interest - ipmt)[head]
                  <= (d + 0.5) * (growth - 1)[head] + 0.5 + slack[head])
    assert np.all(np.abs(part - ppmt)[head] <= (d + 0.5) * growth[head] + slack[head])
    # (L): the last instalment absorbs the accumulated rounding.
    assert abs(part[-1] - ppmt[-1]) <= (d + 0.5) * s_n1 + slack[-1]
    assert abs(interest[-1] - ipmt[-1]) <= (d + 0.5) * (growth[-1] - 1) + 0.5 + slack[-1]
    # To the cent against the exact amortisation of the instalment charged.
    if growth[-1] <= 2:
        ex_i, ex_p = _exact_amortisation(principal, r, n, float(a))
        assert np.all(np.abs(interest - ex_i)[head] <= 1 + eps)
        assert np.all(np.abs(part - ex_p)[head] <= 1 + eps)


@pytest.mark.parametrize("frequency", list(PERIOD_MONTHS))
@pytest.mark.parametrize("rate", RATES)
def test_french_against_numpy_financial(rate: float, frequency: str) -> None:
    _over_grid(_check_french, rate, frequency)


@settings(max_examples=100, deadline=None)
@given(
    principal=st.integers(1, 10**10),
    # Rates from one basis point: below that the oracle's own float error
    # (~ principal * 1e-16 / r) is no longer small; loan_schedule is exact for
    # any rate (test_schedule_properties goes down to subnormal ones).
    rate=st.one_of(st.just(0.0), st.floats(1e-4, 0.15)),
    frequency=st.sampled_from(list(PERIOD_MONTHS)),
    periods=st.integers(1, 120),
    grace_periods=st.integers(0, 8),
)
# Found by Hypothesis in CI: the oracle's float error at (1+r)^k ~ 1e6.
@example(principal=20261070, rate=0.15, frequency="annual", periods=107, grace_periods=0)
def test_french_bounds_on_random_loans(
    principal: int, rate: float, frequency: str, periods: int, grace_periods: int
) -> None:
    period = PERIOD_MONTHS[frequency]
    _check_french(principal, rate, frequency, periods * period, grace_periods * period)


def _check_italian(principal: int, rate: float, frequency: str, term: int, grace: int) -> None:
    period = PERIOD_MONTHS[frequency]
    r = rate * period / 12
    eps = _eps(principal, r)
    n = term // period
    s = loan_schedule(principal, rate, term, grace, frequency, "italian")
    grace_rows, amort = _split(s, rate, grace, period)
    assert (s.principal[grace_rows] == 0).all()
    assert np.all(np.abs(s.interest[grace_rows] - principal * r) <= 0.5 + eps)

    # Exact: principal P/n every period, interest on the exact outstanding.
    k = np.arange(n)
    exact_part = np.full(n, principal / n)
    exact_interest = (principal - k * principal / n) * r
    part = s.principal[amort].astype(float)
    q = part[0]
    # Each part is P/n rounded (floored when n-1 rounded parts would exceed a
    # loan of a few cents), and the rounding of the n-1 parts lands on the last.
    rounded = np.floor(principal / n + 0.5)
    assert q == (rounded if rounded * (n - 1) <= principal else principal // n)
    assert abs(part[-1] - principal / n) <= (n - 1) * abs(q - principal / n) + eps
    # Interest: 1/2 for its own rounding plus r times the drift of the
    # outstanding, which is at most (k-1)|q - P/n| before instalment k.
    drift = k * abs(q - principal / n)
    assert np.all(np.abs(s.interest[amort] - exact_interest) <= 0.5 + r * drift + eps)
    assert np.all(np.abs(part - exact_part)[:-1] <= 1)


@pytest.mark.parametrize("frequency", list(PERIOD_MONTHS))
@pytest.mark.parametrize("rate", RATES)
def test_italian_against_closed_form(rate: float, frequency: str) -> None:
    _over_grid(_check_italian, rate, frequency)


def _check_bullet(principal: int, rate: float, frequency: str, term: int, grace: int) -> None:
    period = PERIOD_MONTHS[frequency]
    r = rate * period / 12
    eps = _eps(principal, r)
    s = loan_schedule(principal, rate, term, grace, frequency, "bullet")
    assert s.principal[-1] == principal
    assert (s.principal[:-1] == 0).all()
    assert np.all(np.abs(s.interest - principal * r) <= 0.5 + eps)
    assert len(s) == (grace // period if rate > 0 else 0) + term // period


@pytest.mark.parametrize("frequency", list(PERIOD_MONTHS))
@pytest.mark.parametrize("rate", RATES)
def test_bullet_against_closed_form(rate: float, frequency: str) -> None:
    _over_grid(_check_bullet, rate, frequency)


# --------------------------------------------------------------------------- examples


def test_typical_line_a_loan() -> None:
    # 1 M€ at 3 % quarterly, 24 months of grace, 96 months of amortisation.
    s = loan_schedule(100_000_000, 0.03, 96, 24, "quarterly", "french")
    assert len(s) == 8 + 32
    assert s.months[0] == 3 and s.months[7] == 24 and s.months[8] == 27 and s.months[-1] == 120
    assert (s.interest[:8] == 750_000).all()  # 1 M€ x 0.75 %
    assert s.instalments[8] == round(-npf.pmt(0.0075, 32, 100_000_000))  # 3,526,634 cents
    assert s.principal.sum() == 100_000_000
    assert s.outstanding_after[-1] == 0


def test_zero_rate_french_is_equal_parts_without_grace_rows() -> None:
    s = loan_schedule(1_000_000_01, 0.0, 96, 24, "quarterly")
    assert s.months[0] == 27 and len(s) == 32
    assert (s.interest == 0).all()
    assert (s.principal[:-1] == 3_125_000).all()  # 100,000,001 / 32 = 3,125,000.03
    assert s.principal[-1] == 1_000_000_01 - 31 * 3_125_000


def test_italian_equals_french_at_zero_rate() -> None:
    a = loan_schedule(987_654_321, 0.0, 60, 12, "semiannual", "french")
    b = loan_schedule(987_654_321, 0.0, 60, 12, "semiannual", "italian")
    assert a == b


def test_amounts_round_half_away_from_zero() -> None:
    # A periodic rate of exactly 0.5 (50 % a year, paid annually) makes every
    # interest amount on an odd number of cents an exact tie: 2.5 -> 3, not 2.
    for method in METHODS:
        s = loan_schedule(5, 0.5, 12, 12, "annual", method)
        assert s.interest[0] == 3
    # Equal parts: 3 cents over 2 periods is 1.5 -> 2, the last part takes 1.
    assert loan_schedule(3, 0.0, 2, 0, "monthly").principal.tolist() == [2, 1]


def test_periodic_rate_is_the_schedule_rate() -> None:
    assert periodic_rate(0.03, "quarterly") == 0.03 / 4
    assert periodic_rate(0.03, "annual") == 0.03
    for rate, frequency in itertools.product([0.0011, 0.0175, 0.03, 0.07], PERIOD_MONTHS):
        principal = 987_654_321
        s = loan_schedule(principal, rate, 12, 12, frequency, "bullet")
        x = principal * periodic_rate(rate, frequency)
        assert s.interest[0] == int(x) + (x - int(x) >= 0.5)


def test_tiny_loans_never_go_negative() -> None:
    for principal, method, rate in itertools.product([1, 7, 39, 40, 41, 99], METHODS, RATES):
        s = loan_schedule(principal, rate, 120, 12, "quarterly", method)
        assert s.principal.sum() == principal
        assert (s.principal >= 0).all() and (s.interest >= 0).all()
        assert (s.outstanding_after >= 0).all()


def test_zero_principal_is_empty() -> None:
    s = loan_schedule(0, 0.03, 96, 24)
    assert len(s) == 0 and s.months.dtype == np.int64
    assert s.outstanding_at(10) == 0 and s.total_interest == 0 and s.last_month == 0


def test_outstanding_at() -> None:
    s = loan_schedule(100_000_000, 0.03, 96, 24, "quarterly", "italian")
    assert s.outstanding_at(-1) == s.outstanding_at(0) == s.outstanding_at(26) == 100_000_000
    assert s.outstanding_at(27) == s.outstanding_at(29) == 100_000_000 - 3_125_000
    assert s.outstanding_at(120) == 0 and s.outstanding_at(500) == 0
    for i, m in enumerate(s.months):
        assert s.outstanding_at(int(m)) == s.outstanding_after[i]


def test_schedules_are_immutable_and_cached() -> None:
    a = loan_schedule(123_456_78, 0.02, 60, 12, "quarterly", "french")
    b = loan_schedule(np.int64(123_456_78), np.float64(0.02), 60, 12, "quarterly", "french")
    assert a == b and hash(a) == hash(b)
    assert isinstance(b.principal_amount, int)
    for arr in (a.months, a.principal, a.interest):
        assert arr.dtype == np.int64
        with pytest.raises(ValueError):
            arr[0] = 1
    with pytest.raises(AttributeError):
        a.principal_amount = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"principal": -1},
        {"principal": 100.0},
        {"principal": 100.5},
        {"principal": True},
        {"principal": "100"},
        {"annual_rate": -0.01},
        {"annual_rate": float("nan")},
        {"annual_rate": float("inf")},
        {"annual_rate": "0.03"},
        {"term_months": 0},
        {"term_months": -12},
        {"term_months": 95},
        {"term_months": 96.0},
        {"grace_months": -3},
        {"grace_months": 4},
        {"grace_months": 24.0},
        {"frequency": "weekly"},
        {"frequency": ["quarterly"]},
        {"method": "german"},
        {"frequency": "annual", "term_months": 18},
        {"frequency": "semiannual", "grace_months": 3},
    ],
)
def test_invalid_arguments_raise_value_error(kwargs: dict) -> None:
    args = {
        "principal": 100,
        "annual_rate": 0.03,
        "term_months": 96,
        "grace_months": 24,
        "frequency": "quarterly",
        "method": "french",
    }
    loan_schedule(**args)  # the defaults are valid, and now cached
    with pytest.raises(ValueError):
        loan_schedule(**(args | kwargs))


# --------------------------------------------------------------------------- properties


@st.composite
def loans(draw: st.DrawFn) -> tuple[int, float, int, int, str, str]:
    frequency = draw(st.sampled_from(list(PERIOD_MONTHS)))
    period = PERIOD_MONTHS[frequency]
    term = period * draw(st.integers(1, 360 // period))
    grace = period * draw(st.integers(0, 60 // period))
    principal = draw(
        st.one_of(st.integers(0, 1_000), st.integers(0, 10**9), st.integers(0, 10**12))
    )
    rate = draw(
        st.one_of(
            st.just(0.0),
            st.floats(0.0, 0.15, allow_nan=False),
            st.sampled_from([1e-12, 0.005, 0.03, 0.08]),
        )
    )
    method = draw(st.sampled_from(METHODS))
    return principal, rate, term, grace, frequency, method


@settings(max_examples=200, deadline=None)
@given(loans())
def test_schedule_properties(loan: tuple[int, float, int, int, str, str]) -> None:
    principal, rate, term, grace, frequency, method = loan
    period = PERIOD_MONTHS[frequency]
    s = loan_schedule(principal, rate, term, grace, frequency, method)

    if principal == 0:
        assert len(s) == 0
        return
    n, g = term // period, (grace // period if rate > 0 else 0)
    assert len(s) == g + n
    assert len(s.principal) == len(s.interest) == len(s.months)
    # Payment months: every period from the first due one to term after grace.
    assert s.months[-1] == grace + term
    assert (np.diff(s.months) == period).all()
    assert s.months[0] == (period if g else grace + period)

    # Exact repayment, nothing negative, outstanding decreasing to zero.
    assert int(s.principal.sum()) == principal == s.principal_amount
    assert (s.principal >= 0).all() and (s.interest >= 0).all()
    out = s.outstanding_after
    assert (np.diff(out) <= 0).all() and out[-1] == 0 and (out >= 0).all()

    # Grace rows: interest only, present only when there is interest to pay.
    assert (s.principal[:g] == 0).all()
    if rate == 0:
        assert (s.interest == 0).all()
    amort = slice(g, None)
    if method == "italian":
        assert len(set(s.principal[amort][:-1].tolist())) <= 1
    elif method == "bullet":
        assert np.count_nonzero(s.principal) == 1 and s.principal[-1] == principal
    elif method == "french" and rate > 0:
        inst = s.instalments[amort]
        live = out[amort] > 0
        # Constant instalment while the loan is alive (the last one settles).
        assert len(set(inst[:-1][live[:-1]].tolist())) <= 1


@settings(max_examples=100, deadline=None)
@given(loans(), st.integers(-5, 500))
def test_outstanding_at_matches_payments(
    loan: tuple[int, float, int, int, str, str], month: int
) -> None:
    s = loan_schedule(*loan)
    paid = int(s.principal[s.months <= month].sum())
    assert s.outstanding_at(month) == s.principal_amount - paid
