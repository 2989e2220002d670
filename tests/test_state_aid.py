"""State aid: ESL against a month-by-month oracle, rate table, de minimis ceilings."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

import numpy as np
import pytest

from simulator.errors import InputError
from simulator.instruments import PERIOD_MONTHS, Schedule, loan_schedule
from simulator.money import round_cents
from simulator.state_aid import (
    DEFAULT_RATES_FILE,
    de_minimis_ceiling,
    esl_intensity,
    grant_equivalent,
    load_rate_table,
)

# --------------------------------------------------------------------------- oracle


def oracle_pv(
    months: list[int],
    parts: list[int],
    principal: int,
    rate_gap: float,
    discount: float,
    grant: int = 0,
    grant_month: int = 0,
) -> float:
    """The ESL formula, month by month over a balance built from the schedule's amounts.

    Month t runs from offset t-1 to t; the saving of month t is accrued on the
    balance left after the payments of months < t and discounted from offset t.
    """
    paid_at = dict(zip(months, parts, strict=True))
    balance = principal
    pv = 0.0
    for t in range(1, (months[-1] if months else 0) + 1):
        pv += max(rate_gap, 0.0) / 12 * balance / (1 + discount) ** (t / 12)
        balance -= paid_at.get(t, 0)
    assert balance == 0
    return pv + grant / (1 + discount) ** (grant_month / 12)


def assert_rounds_to(esl: int, pv: float) -> None:
    # The module rounds its own float sum: it must be the oracle to the cent,
    # up to float noise on an exact tie.
    assert abs(esl - pv) <= 0.5 + 1e-9 * max(1.0, abs(pv)), (esl, pv)


def _amounts(s: Schedule) -> tuple[list[int], list[int]]:
    return [int(m) for m in s.months], [int(p) for p in s.principal]


PRINCIPALS = [1, 99_999, 10_000_000, 123_456_789]  # 1 cent ... 1.2 M€
REFERENCES = [0.0067, 0.0511, 0.12]
DISCOUNTS = [-0.0031, 0.0, 0.0167, 0.0445]


@pytest.mark.parametrize("frequency", list(PERIOD_MONTHS))
@pytest.mark.parametrize("method", ["french", "italian", "bullet"])
def test_zero_rate_loan_matches_oracle(frequency: str, method: str) -> None:
    for principal, term, grace, ref, disc in itertools.product(
        PRINCIPALS, [12, 60, 120], [0, 12, 24], REFERENCES, DISCOUNTS
    ):
        s = loan_schedule(principal, 0.0, term, grace, frequency, method)
        months, parts = _amounts(s)
        esl = grant_equivalent(s, 0.0, ref, disc)
        assert_rounds_to(esl, oracle_pv(months, parts, principal, ref, disc))


@pytest.mark.parametrize(("soft", "ref"), [(0.005, 0.0511), (0.01, 0.0167), (0.03, 0.12)])
def test_soft_rate_loan_and_grant_match_oracle(soft: float, ref: float) -> None:
    # Grace rows (interest only, principal 0) do not change the balance.
    for principal, grace, grant, grant_month in itertools.product(
        [99_999, 50_000_000], [0, 12], [0, 1_234_567], [0, 7, 30]
    ):
        s = loan_schedule(principal, soft, 60, grace, "quarterly", "french")
        months, parts = _amounts(s)
        esl = grant_equivalent(s, soft, ref, 0.0445, grant, grant_month)
        pv = oracle_pv(months, parts, principal, ref - soft, 0.0445, grant, grant_month)
        assert_rounds_to(esl, pv)


def test_irregular_hand_made_schedule() -> None:
    # Not from loan_schedule: uneven gaps and parts, a payment in month 1.
    months, parts = [1, 5, 6, 20, 37], [100, 0, 2_500_000, 7, 1_499_893]
    s = Schedule(
        np.array(months, dtype=np.int64),
        np.array(parts, dtype=np.int64),
        np.zeros(5, dtype=np.int64),
        4_000_000,
    )
    esl = grant_equivalent(s, 0.0, 0.09, 0.05, grant_cents=333, grant_month=3)
    assert_rounds_to(esl, oracle_pv(months, parts, 4_000_000, 0.09, 0.05, 333, 3))


def test_long_loan_beyond_cached_chunk() -> None:
    s = loan_schedule(10_000_000, 0.0, 360, 24, "monthly", "french")
    months, parts = _amounts(s)
    assert_rounds_to(
        grant_equivalent(s, 0.0, 0.0511, 0.0445),
        oracle_pv(months, parts, 10_000_000, 0.0511, 0.0445),
    )


def test_grant_only_is_the_discounted_grant() -> None:
    empty = loan_schedule(0, 0.0, 60, 12)
    # 10,000 € paid 18 months after the first disbursement at 1.67 %:
    # 1,000,000 / 1.0167^1.5 = 975,462.92 cents.
    assert grant_equivalent(empty, 0.0, 0.0511, 0.0167, 1_000_000, 18) == 975_463
    assert grant_equivalent(empty, 0.0, 0.0511, 0.0167, 1_000_000, 0) == 1_000_000
    assert grant_equivalent(empty, 0.0, 0.0511, 0.0167) == 0


@pytest.mark.parametrize("rate", [0.0, 0.0167, 0.05])
def test_loan_at_or_above_reference_adds_nothing(rate: float) -> None:
    s = loan_schedule(10_000_000, rate, 60, 12)
    grant = round_cents(1_000_000 / 1.0445 ** (12 / 12))
    assert grant_equivalent(s, rate, rate, 0.0445, 1_000_000, 12) == grant
    # Above the reference: no aid from the loan, and no offset of the grant.
    assert grant_equivalent(s, rate + 0.01, rate, 0.0445, 1_000_000, 12) == grant


def test_worked_example() -> None:
    # 100,000 € at 0 %, 5 years of which 1 year grace, then 16 quarterly French
    # instalments (loan_schedule(..., term_months=48, grace_months=12)): at 0 %
    # the parts are equal, 6,250 € at months 15, 18, ..., 60.
    # Reference rate a = 1.67 %, discount rate 1.67 %, v = 1.0167^(-1/12)
    # = 0.998620777977...
    #
    # Undiscounted: the balance is 100,000 € in months 1-15, then 93,750 € in
    # months 16-18, ..., 6,250 € in months 58-60, i.e. 3,750,000 €-months;
    # times a/12: 5,218.75 €.
    #
    # Discounted: each 6,250 € part due at month m saves a/12 * 6,250 € in
    # each month t = 1..m, worth A(m) = sum_{t<=m} v^t = v (1 - v^m) / (1 - v):
    #   sum_j v^(m_j) = v^15 (1 - v^48) / (1 - v^3)            = 15.195728123
    #   sum_j A(m_j)  = v / (1 - v) * (16 - 15.195728123)
    #                 = 724.046427253 * 0.804271877             = 582.330179215
    #   ESL = 0.0167 / 12 * 6,250 € * 582.330179215             = 5,065.0593713 €
    # i.e. 5,065.06 € (506,506 cents), an intensity of 5.07 % of 100,000 €.
    s = loan_schedule(10_000_000, 0.0, 48, 12, "quarterly", "french")
    assert list(s.months) == list(range(15, 61, 3))
    assert set(s.principal.tolist()) == {625_000}
    esl = grant_equivalent(s, 0.0, 0.0167, 0.0167)
    assert esl == 506_506
    assert esl_intensity(esl, 10_000_000) == pytest.approx(0.0506506)
    # Undiscounted (discount 0): exactly 5,218.75 €.
    assert grant_equivalent(s, 0.0, 0.0167, 0.0) == 521_875


def test_invalid_arguments() -> None:
    s = loan_schedule(1_000_000, 0.0, 12, 0)
    with pytest.raises(ValueError, match="discount_rate"):
        grant_equivalent(s, 0.0, 0.05, -1.0)
    with pytest.raises(ValueError, match="reference_rate"):
        grant_equivalent(s, 0.0, float("nan"), 0.01)
    with pytest.raises(ValueError, match="grant_cents"):
        grant_equivalent(s, 0.0, 0.05, 0.01, grant_cents=-1)
    with pytest.raises(ValueError, match="grant_month"):
        grant_equivalent(s, 0.0, 0.05, 0.01, grant_cents=1, grant_month=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="eligible cost"):
        esl_intensity(100, 0)


# --------------------------------------------------------------------------- rate table


def test_shipped_table_lookups() -> None:
    table = load_rate_table()
    assert table is load_rate_table()  # read once
    d = dt.date
    # On a date of application, the day before, and between two dates.
    assert table.discount_rate_at(d(2024, 1, 1)) == 0.0511
    assert table.base_rate_at(d(2024, 1, 1)) == 0.0411
    assert table.discount_rate_at(d(2023, 12, 31)) == 0.0304
    assert table.discount_rate_at(d(2018, 10, 15)) == 0.0095
    assert table.base_rate_at(d(2018, 10, 15)) == -0.0005
    assert table.discount_rate_at(d(2022, 6, 30)) == 0.0065
    assert table.discount_rate_at(dt.datetime(2024, 10, 1, 9, 30)) == 0.0445
    assert table.discount_rate_at(d(2040, 1, 1)) == table.discount_rate_at(table.valid_from[-1])
    # Reference rate: base + the default margin (SMEs without a rating, 100 bp).
    assert table.margin_bp() == 100
    assert table.reference_rate_at(d(2019, 11, 1)) == 0.0067
    assert table.reference_rate_at(d(2019, 11, 1), margin_bp=400) == 0.0367
    assert table.reference_rate_at(d(2019, 11, 1), table.margin_bp("weak", "low")) == 0.0617


def test_before_first_date_is_an_error() -> None:
    table = load_rate_table()
    with pytest.raises(ValueError, match="no EU base rate before 2016-11-01"):
        table.base_rate_at(dt.date(2016, 10, 31))


def test_margin_table() -> None:
    table = load_rate_table()
    expected = {
        "strong": (60, 75, 100),
        "good": (75, 100, 220),
        "satisfactory": (100, 220, 400),
        "weak": (220, 400, 650),
        "bad": (400, 650, 1000),
    }
    for rating, row in expected.items():
        assert tuple(table.margin_bp(rating, c) for c in ("high", "normal", "low")) == row
    assert table.margin_bp("no_credit_history") == 400
    with pytest.raises(ValueError, match="unknown rating"):
        table.margin_bp("AAA")
    with pytest.raises(ValueError, match="unknown collateral"):
        table.margin_bp("good", "none")


MINIMAL = """
[[rates]]
valid_from = 2030-01-01
base_pct = 2.5
[[rates]]
valid_from = 2020-01-01
base_pct = 1
[margins]
default = "flat"
collateral = ["any"]
[margins.named_bp]
flat = 250
[margins.by_rating_bp]
"""


def test_other_file(tmp_path: Path) -> None:
    path = tmp_path / "rates.toml"
    path.write_text(MINIMAL)
    table = load_rate_table(path)
    assert table.valid_from == (dt.date(2020, 1, 1), dt.date(2030, 1, 1))  # sorted
    assert table.discount_rate_at(dt.date(2029, 12, 31)) == 0.02
    assert table.reference_rate_at(dt.date(2030, 1, 1)) == 0.05
    assert load_rate_table() is load_rate_table(None)
    assert load_rate_table(DEFAULT_RATES_FILE) == load_rate_table()


def test_bad_file_names_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "rates.toml"
    path.write_text(MINIMAL.replace("base_pct = 1\n", 'base_pct = "1 %"\n'))
    with pytest.raises(InputError, match=r"rates\.toml: rates\[1\]\.base_pct"):
        load_rate_table(path)
    path.write_text(MINIMAL.replace("2030-01-01", "2020-01-01"))
    with pytest.raises(InputError, match="two entries are valid from 2020-01-01"):
        load_rate_table(path)
    with pytest.raises(InputError, match="cannot read"):
        load_rate_table(tmp_path / "missing.toml")


# --------------------------------------------------------------------------- de minimis


def test_de_minimis_ceilings() -> None:
    last_2013, first_2023 = dt.date(2023, 12, 31), dt.date(2024, 1, 1)
    assert de_minimis_ceiling(last_2013) == 20_000_000  # 200,000 €
    assert de_minimis_ceiling(first_2023) == 30_000_000  # 300,000 €
    assert de_minimis_ceiling(dt.datetime(2023, 12, 31, 23, 59)) == 20_000_000
    assert de_minimis_ceiling(first_2023, "de_minimis_2013") == 20_000_000
    assert de_minimis_ceiling(last_2013, "de_minimis_2023") == 30_000_000
    assert de_minimis_ceiling(first_2023, "gber") is None
    assert de_minimis_ceiling(last_2013, "none") is None
    with pytest.raises(ValueError, match="unknown state-aid regime"):
        de_minimis_ceiling(first_2023, "de_minimis")


def test_rates_of_many_days_are_the_rates_of_each_day():
    table = load_rate_table()
    first = table.valid_from[0]
    rng = np.random.default_rng(7)
    offsets = rng.integers(0, (dt.date(2035, 12, 31) - first).days, 400)
    days = np.datetime64(first, "D") + offsets
    # the first day of every table entry, and the day before the next one
    edges = [np.datetime64(d, "D") + k for d in table.valid_from[1:] for k in (-1, 0)]
    days = np.concatenate([days, np.array(edges, dtype="datetime64[D]")])
    for margin in (0, 100, 400):
        many = table.rates_on(days, margin)
        one_by_one = [table.rates_at(d.astype(dt.date), margin) for d in days]
        assert many.tolist() == [list(r) for r in one_by_one]


def test_rates_of_many_days_refuse_a_day_before_the_table():
    table = load_rate_table()
    before = np.array([np.datetime64(table.valid_from[0], "D") - 1], dtype="datetime64[D]")
    with pytest.raises(ValueError, match="no EU base rate before"):
        table.rates_on(before, 100)
