"""The fund's ledger: monthly accounts of each line, to the cent, and their invariants.

Each line keeps integer-cent arrays indexed by simulation month, one per
flow of ``DESIGN.md`` (loans disbursed, grants paid, principal repaid, ...).
A committed project adds its closed-form flows to them (see ``loanbook``).

What depends on the path of cash, month by month, is computed by
:meth:`LineLedger.close_until`: returns enter the available cash (or the
legacy account after ``revolving_until``), management fees are charged and
paid, treasury interest is earned on idle cash, and (with phased payments)
the next tranche of the programme's contribution is paid in once enough of
the previous ones has been spent.  The model closes months lazily, just
before each decision, so a decision sees the cash of every completed month;
months close once and in order.

Available cash for a commitment (``free``) is cash minus what is already
committed but not yet paid: a commitment reserves the project's whole
exposure (loan + grant) at once, so commitments never exceed cash.  Fees
are paid out of free cash only; what cannot be paid waits as arrears.
Treasury interest is earned (or paid, at a negative rate) on free cash.

Fees (Delegated Reg. 480/2014 Art. 13, rates to be verified): the loan part
is ``base_rate`` per year of the contributions paid in plus
``performance_rate`` per year of the loans paid to final recipients, capped
over the life at ``cap`` x contributions; the grant part is ``grant_rate``
per year of the grants paid, capped at ``grant_cap`` x grants paid.

Identities checked by :func:`check_invariants` for every month and line:

    cash + legacy = contribution_paid_in + reallocated_in - reallocated_out
                    - loans_disbursed - grants_paid - fees_paid
                    + grants_recovered + principal_repaid + interest_received
                    + recoveries + treasury_interest
    loans_outstanding = loans_disbursed - principal_repaid - principal_written_off

``contribution_paid_in`` is the line's allocation from month 0 unless the
contribution is paid in tranches (``[fund.payments] phased = true``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from .loanbook import FLOW_KINDS, Flows
from .money import round_cents, round_half_away

RETURN_KINDS = ("principal_repaid", "interest_received", "recoveries", "grants_recovered")

# Column order of timeseries.parquet after replication, date and line; then one
# column per funding source (see ``source_columns``).
MONEY_COLUMNS = (
    "cash", "committed_undisbursed", "loans_outstanding", "legacy",
    "loans_disbursed", "grants_paid", "grants_recovered", "principal_repaid",
    "interest_received", "principal_written_off", "recoveries", "fees_paid",
    "fees_charged", "treasury_interest", "reallocated_in", "reallocated_out",
    "contribution_paid_in", "fees_grant_charged",
)
COUNT_COLUMNS = ("applications", "admitted", "committed", "rejected_no_funds", "waiting")
STOCK_COLUMNS = ("cash", "committed_undisbursed", "loans_outstanding", "legacy", "waiting")


def timeseries_columns(scenario) -> list[str]:
    """The value columns of timeseries.parquet for a scenario, in order."""
    return [*MONEY_COLUMNS, *source_columns(scenario.fund.funding.sources()), *COUNT_COLUMNS]


def source_columns(sources: list[str]) -> list[str]:
    """Timeseries columns of what each funding source paid out (cumulative cents)."""
    return [f"disbursed_{name.lower()}" for name in sources]


_VECTOR_SPAN = 24  # months: from here on numpy beats the plain loop


class InvariantError(AssertionError):
    """A ledger identity failed: names the month, the line and both sides."""


class LineLedger:
    """Accounts of one line over the horizon (all money in integer cents)."""

    def __init__(self, line_id: str, allocation: int, horizon: int, fees, treasury_rate: float,
                 legacy_from_month: int, payments=None, sources: list[str] | None = None,
                 funding_shares: np.ndarray | None = None):
        self.line_id = line_id
        self.allocation = allocation
        self.horizon = horizon
        self.fees = fees
        self.treasury_rate = treasury_rate
        self.legacy_from_month = legacy_from_month
        self.payments = payments if payments is not None and payments.phased else None
        # sources x months: the share of each funding source in force each month.
        self.funding_shares = funding_shares if funding_shares is not None else \
            np.ones((1, horizon))
        self.source_columns = source_columns(list(sources or ["public"]))
        zeros = lambda: np.zeros(horizon, dtype=np.int64)  # noqa: E731
        # Flows are plain lists during the run: commitments add to single months and
        # closing reads single months, where list indexing beats numpy's by far.
        self.flows = {kind: [0] * horizon for kind in FLOW_KINDS}
        self.committed_amount = [0] * horizon
        self.reallocated_in = zeros()
        self.reallocated_out = zeros()
        # Results of closing months.
        self.cash = zeros()
        self.legacy = zeros()
        self.fees_paid = zeros()
        self.fees_charged = zeros()
        self.fees_grant_charged = zeros()
        self.treasury_interest = zeros()
        self.contribution_paid_in = zeros()
        self.counts = {name: zeros() for name in COUNT_COLUMNS}
        # Running state.
        first = allocation
        if self.payments is not None:
            first = min(allocation, round_cents(allocation * self.payments.first_share))
        if horizon:
            self.contribution_paid_in[0] = first
        self.free = first
        self.closed = 0
        self._tranches_paid_in = 1
        self._paid_in = first
        self._spent = 0                      # paid to final recipients + fees paid
        self._undisbursed = 0
        self._legacy = 0
        self._loans_to_date = 0
        self._grants_to_date = 0
        self._resources = first              # contributions paid in +/- reallocations
        self._fees_charged_to_date = 0
        self._grant_fees_to_date = 0
        self._fee_arrears = 0

    # -- decisions ---------------------------------------------------------------
    def commit(self, month: int, exposure: int, flows: Flows) -> None:
        """Reserve a project's exposure now and book its future flows."""
        if exposure > self.free:
            raise InvariantError(f"line {self.line_id}, month {month}: commitment of {exposure} "
                                 f"cents exceeds free cash {self.free}")
        self.free -= exposure
        if month < self.horizon:
            self.committed_amount[month] += exposure
        for kind in FLOW_KINDS:
            pairs = getattr(flows, kind)
            if not pairs:
                continue
            array = self.flows[kind]
            for m, amount in pairs:
                if m < self.horizon:
                    array[m] += amount

    def move(self, month: int, amount: int, to: LineLedger) -> int:
        """Reallocate up to ``amount`` of free cash to another line; returns what moved."""
        amount = max(0, min(amount, self.free))
        self.free -= amount
        to.free += amount
        self._resources -= amount
        to._resources += amount
        if month < self.horizon:
            self.reallocated_out[month] += amount
            to.reallocated_in[month] += amount
        return amount

    def count(self, name: str, month: int, n: int = 1) -> None:
        if month < self.horizon:
            self.counts[name][month] += n

    def set_waiting(self, month: int, n: int) -> None:
        """Record the waiting list's length at the end of a month (a stock)."""
        if month < self.horizon:
            self.counts["waiting"][month] = n

    # -- closing months ----------------------------------------------------------
    def close_until(self, month: int) -> None:
        """Close every month before ``month``: returns, fees, treasury, contributions."""
        month = min(month, self.horizon)
        if month <= self.closed:
            return
        # Short spans (between two decisions) are cheaper in plain Python.
        if month - self.closed < _VECTOR_SPAN or not self._try_vectorised(month):
            self._close_loop(month)
        self.closed = month

    def _fee_due(self, loans_to_date, grants_to_date):
        """Monthly fee of each part before the caps (works on ints and arrays)."""
        fees = self.fees
        loan_part = fees.base_rate / 12.0 * self._resources + \
            fees.performance_rate / 12.0 * loans_to_date
        grant_part = fees.grant_rate / 12.0 * grants_to_date
        return loan_part, grant_part

    def _try_vectorised(self, month: int) -> bool:
        """Close months [closed, month) with numpy when no month needs the loop.

        The loop is needed when treasury interest is earned (it compounds on
        the path of free cash) and while contribution tranches are still to be
        paid in.
        """
        if self.treasury_rate or (self.payments is not None and
                                  self._paid_in < self.allocation):
            return False
        k0 = self.closed
        span = slice(k0, month)
        start = {"free": self.free, "undisbursed": self._undisbursed, "legacy": self._legacy,
                 "loans_to_date": self._loans_to_date, "grants_to_date": self._grants_to_date,
                 "charged_to_date": self._fees_charged_to_date,
                 "grant_fees_to_date": self._grant_fees_to_date, "arrears": self._fee_arrears}
        flows = {kind: np.array(values[span], dtype=np.int64)
                 for kind, values in self.flows.items()}
        closed = close_span({k: np.int64(v) for k, v in start.items()}, flows,
                            np.array(self.committed_amount[span], dtype=np.int64),
                            np.arange(k0, month) >= self.legacy_from_month, self.fees,
                            self._resources)
        if closed is None:
            return False
        monthly, end = closed
        for name in ("fees_charged", "fees_grant_charged", "fees_paid", "cash", "legacy"):
            getattr(self, name)[span] = monthly[name]
        self.free, self._undisbursed, self._legacy = (int(end[k]) for k in (
            "free", "undisbursed", "legacy"))
        self._loans_to_date, self._grants_to_date = (int(end[k]) for k in (
            "loans_to_date", "grants_to_date"))
        self._fees_charged_to_date = int(end["charged_to_date"])
        self._grant_fees_to_date = int(end["grant_fees_to_date"])
        self._fee_arrears = int(end["arrears"])
        self._spent += int((flows["loans_disbursed"] + flows["grants_paid"]).sum()
                           + monthly["fees_paid"].sum())
        return True

    def _close_loop(self, month: int) -> None:
        """Close months one by one (treasury interest, fee arrears, tranches, short spans)."""
        k0 = self.closed
        flows = self.flows
        principal, interest_in = flows["principal_repaid"], flows["interest_received"]
        recoveries, grants_back = flows["recoveries"], flows["grants_recovered"]
        released_all, loans_out, grants_out = (flows["released"], flows["loans_disbursed"],
                                               flows["grants_paid"])
        committed_all = self.committed_amount
        fees = self.fees
        rate = self.treasury_rate / 12.0
        free, legacy, undisbursed = self.free, self._legacy, self._undisbursed
        loans_to_date, grants_to_date = self._loans_to_date, self._grants_to_date
        charged_to_date, grant_fees_to_date = self._fees_charged_to_date, \
            self._grant_fees_to_date
        arrears, spent = self._fee_arrears, self._spent
        for k in range(k0, month):
            returns = principal[k] + interest_in[k] + recoveries[k] + grants_back[k]
            if k >= self.legacy_from_month:
                legacy += returns
            else:
                free += returns
            released = released_all[k]
            paid_out = loans_out[k] + grants_out[k]
            free += released
            loans_to_date += loans_out[k]
            grants_to_date += grants_out[k]
            undisbursed += committed_all[k] - paid_out - released
            spent += paid_out

            # Fees: each part charged monthly up to its lifetime cap; paid from free cash,
            # what cannot be paid waits in arrears.
            loan_part, grant_part = self._fee_due(loans_to_date, grants_to_date)
            cap = round_cents(fees.cap * self._resources)
            due = max(0, min(round_cents(loan_part), cap - charged_to_date))
            grant_due = max(0, min(round_cents(grant_part),
                                   round_cents(fees.grant_cap * grants_to_date)
                                   - grant_fees_to_date))
            charged_to_date += due
            grant_fees_to_date += grant_due
            self.fees_charged[k] = due + grant_due
            self.fees_grant_charged[k] = grant_due
            if fees.paid_from_fund:
                arrears += due + grant_due
                pay = min(arrears, free)
                arrears -= pay
                free -= pay
                spent += pay
                self.fees_paid[k] = pay

            if rate and free > 0:
                interest = round_cents(free * rate)
                free += interest
                self.treasury_interest[k] = interest

            tranche = self._next_tranche(spent)
            if tranche:
                free += tranche
                self.contribution_paid_in[k] += tranche
            self.cash[k] = free + undisbursed
            self.legacy[k] = legacy
        self.free, self._legacy, self._undisbursed = free, legacy, undisbursed
        self._loans_to_date, self._grants_to_date = loans_to_date, grants_to_date
        self._fees_charged_to_date, self._grant_fees_to_date = charged_to_date, \
            grant_fees_to_date
        self._fee_arrears, self._spent = arrears, spent

    def _next_tranche(self, spent: int) -> int:
        """The contribution tranche paid in at this month end, if its threshold is met."""
        payments = self.payments
        if payments is None or self._paid_in >= self.allocation:
            return 0
        threshold = payments.second_threshold if self._tranches_paid_in == 1 else \
            payments.later_threshold
        if spent < threshold * self._paid_in:
            return 0
        tranche = min(self.allocation - self._paid_in,
                      max(1, round_cents(self.allocation * payments.next_share)))
        self._paid_in += tranche
        self._resources += tranche
        self._tranches_paid_in += 1
        return tranche

    # -- results -----------------------------------------------------------------
    def series(self) -> dict[str, np.ndarray]:
        """The line's timeseries columns (flows cumulative, stocks end of month)."""
        flows = {kind: np.array(self.flows[kind], dtype=np.int64) for kind in FLOW_KINDS}
        return series_columns(
            flows, np.array(self.committed_amount, dtype=np.int64),
            {"cash": self.cash, "legacy": self.legacy, "fees_paid": self.fees_paid,
             "fees_charged": self.fees_charged, "treasury_interest": self.treasury_interest,
             "reallocated_in": self.reallocated_in, "reallocated_out": self.reallocated_out,
             "contribution_paid_in": self.contribution_paid_in,
             "fees_grant_charged": self.fees_grant_charged},
            self.counts, self.funding_shares, self.source_columns)


def series_columns(flows: dict[str, np.ndarray], committed_amount: np.ndarray,
                   monthly: dict[str, np.ndarray], counts: dict[str, np.ndarray],
                   funding_shares: np.ndarray, columns_of_sources: list[str]
                   ) -> dict[str, np.ndarray]:
    """Timeseries columns from monthly arrays (months on the last axis; any leading axes).

    ``flows`` per kind and ``committed_amount`` are booked per month; ``monthly``
    holds what closing the months gave (``cash`` and ``legacy`` are stocks,
    the rest flows); ``counts`` are per month except the ``waiting`` stock.
    """
    return dict(each_series_column(flows, committed_amount, monthly, counts, funding_shares,
                                   columns_of_sources))


def each_series_column(flows: dict[str, np.ndarray], committed_amount: np.ndarray,
                       monthly: dict[str, np.ndarray], counts: dict[str, np.ndarray],
                       funding_shares: np.ndarray, columns_of_sources: list[str],
                       out: Callable[[str], np.ndarray] | None = None,
                       ) -> Iterator[tuple[str, np.ndarray]]:
    """:func:`series_columns` one column at a time, in the same order.

    A caller that lays each column out before asking for the next holds one
    column's temporaries at a time instead of every column's (the batch
    engine: tens of megabytes less for a chunk, each a page fault to fill).
    ``out(name)``, if given, is where column ``name`` goes (an array of the
    monthly arrays' shape, a view into the caller's table say): each column
    is computed there and yielded as that array, which saves a copy of every
    column.
    """
    def place(name: str) -> np.ndarray | None:
        return None if out is None else out(name)

    def cumulative(values: np.ndarray, name: str | None = None) -> np.ndarray:
        return np.cumsum(values, axis=-1, out=None if name is None else place(name))

    def copied(values: np.ndarray, name: str) -> np.ndarray:
        into = place(name)
        if into is None:
            return values.copy()
        into[...] = values
        return into

    # The flows the table shows are computed where they go; the others are temporaries.
    shown = ("loans_disbursed", "grants_paid", "grants_recovered", "principal_repaid",
             "interest_received", "principal_written_off", "recoveries")
    f = {kind: cumulative(flows[kind], kind if kind in shown else None) for kind in FLOW_KINDS}
    paid = f["loans_disbursed"] + f["grants_paid"]
    yield "cash", copied(monthly["cash"], "cash")
    undisbursed = cumulative(committed_amount, "committed_undisbursed")
    undisbursed -= paid
    undisbursed -= f["released"]
    yield "committed_undisbursed", undisbursed
    outstanding = np.subtract(f["loans_disbursed"], f["principal_repaid"],
                              out=place("loans_outstanding"))
    outstanding -= f["principal_written_off"]
    yield "loans_outstanding", outstanding
    yield "legacy", copied(monthly["legacy"], "legacy")
    for kind in shown:
        yield kind, f[kind]
    for name in ("fees_paid", "fees_charged", "treasury_interest", "reallocated_in",
                 "reallocated_out", "contribution_paid_in", "fees_grant_charged"):
        yield name, cumulative(monthly[name], name)
    paid_by_source = split_by_shares(np.diff(paid, prepend=0, axis=-1), funding_shares)
    for i, column in enumerate(columns_of_sources):
        yield column, cumulative(paid_by_source[..., i, :], column)
    del paid_by_source
    for name in COUNT_COLUMNS:
        values = counts[name]
        yield name, copied(values, name) if name == "waiting" else cumulative(values, name)


def split_by_shares(amounts: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """Split each month's cents among sources (rows of ``shares``) exactly.

    Largest-remainder rounding: each source gets the whole cents of its share,
    and the cents left over go to the largest fractional parts (ties to the
    first source), so every month's parts sum to its amount to the cent.
    ``amounts`` has months on its last axis (any leading axes); ``shares``
    is sources x months (or x 1); the result has the sources on the axis
    before the months. Only months with an amount are split (most have none).
    """
    sources, months = shares.shape[0], amounts.shape[-1]
    paid = np.nonzero(amounts)
    out = np.zeros((sources, *amounts.shape), dtype=np.int64)
    if len(paid[0]):
        out[(slice(None), *paid)] = _largest_remainders(
            amounts[paid], np.broadcast_to(shares, (sources, months))[:, paid[-1]])
    return np.moveaxis(out, 0, -2)


def _largest_remainders(amounts: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """:func:`split_by_shares` of ``amounts`` (n), with ``shares`` sources x n."""
    raw = shares * amounts
    parts = np.floor(raw).astype(np.int64)
    missing = amounts - parts.sum(axis=0)
    remainder = raw - parts
    # Each source's place in the order of remainders, largest first, ties to the first
    # source: the sources with a larger remainder, and the earlier ones with the same.
    # A few sources: a few comparisons, cheaper than sorting along the sources' axis.
    rank = np.zeros(remainder.shape, dtype=np.int64)
    for j in range(len(shares)):
        rank += remainder[j] > remainder
        rank[j + 1:] += remainder[j] == remainder[j + 1:]
    return parts + (rank < missing)


def close_span(start: dict[str, np.ndarray], flows: dict[str, np.ndarray],
               committed: np.ndarray, to_legacy: np.ndarray, fees,
               resources: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | None:
    """Close a span of months at once, without treasury interest.

    ``start``: the running state before the span (``free``, ``undisbursed``,
    ``legacy``, ``loans_to_date``, ``grants_to_date``, ``charged_to_date``,
    ``grant_fees_to_date``, ``arrears``), each an array of any shape S;
    ``flows`` and ``committed``: the span's booked flows, shape S x months;
    ``to_legacy``: which months' returns go to the legacy account. Returns
    the months' ``fees_charged``, ``fees_grant_charged``, ``fees_paid``,
    ``cash`` and ``legacy`` and the state after the span; or None if the
    loop is needed (grant fees above their cap at the start).

    Without interest every quantity is a running total:

    * loan-part fees to date: ``min(charged0 + cumsum(due), cap)`` (dues >= 0);
    * grant-part fees to date ``t`` with a cap ``c`` that never falls:
      ``t_j = min(t_(j-1) + d_j, c_j)`` solves to
      ``t_j = D_j + min(t0, min_(i<=j) (c_i - D_i))`` with ``D = cumsum(d)``;
    * fees paid from the fund: each month pays ``min(arrears + due, free)``,
      so the fees paid to date are ``P_j = min(arrears0 + F_j, free0 + I_j)``
      (``F``: fees charged to date in the span, ``I``: cash come in to date);
    * free cash: ``free0 + I_j - P_j``.

    The float operations and roundings are the month-by-month loop's, so the
    numbers are the same to the cent.
    """
    if committed.shape[-1] == 0:
        return None   # nothing to close: the caller's loop does nothing either

    def running(start_value, values):
        return start_value[..., None] + np.cumsum(values, axis=-1)

    returns = (flows["principal_repaid"] + flows["interest_received"]
               + flows["recoveries"] + flows["grants_recovered"])
    released = flows["released"]
    loans_to_date = running(start["loans_to_date"], flows["loans_disbursed"])
    grants_to_date = running(start["grants_to_date"], flows["grants_paid"])
    loan_part = fees.base_rate / 12.0 * resources + fees.performance_rate / 12.0 * loans_to_date
    grant_part = fees.grant_rate / 12.0 * grants_to_date
    charged0, grant0 = start["charged_to_date"], start["grant_fees_to_date"]
    cap = round_cents(fees.cap * resources)
    charged_to_date = np.minimum(running(charged0, np.maximum(round_half_away(loan_part), 0)),
                                 np.maximum(cap, charged0)[..., None])
    grant_cap = round_half_away(fees.grant_cap * grants_to_date)
    if grant_cap.size and np.any(grant0 > grant_cap[..., 0]):
        return None
    grant_dues = np.cumsum(np.maximum(round_half_away(grant_part), 0), axis=-1)
    grant_to_date = grant_dues + np.minimum(
        grant0[..., None], np.minimum.accumulate(grant_cap - grant_dues, axis=-1))
    grant_charged = np.diff(grant_to_date, axis=-1, prepend=grant0[..., None])
    charged = np.diff(charged_to_date, axis=-1, prepend=charged0[..., None]) + grant_charged
    came_in = running(start["free"], np.where(to_legacy, 0, returns) + released)
    arrears0 = start["arrears"]
    if fees.paid_from_fund:
        owed = running(arrears0, charged)
        paid_to_date = np.minimum(owed, came_in)
        fee_out = np.diff(paid_to_date, axis=-1, prepend=np.zeros_like(arrears0)[..., None])
        arrears = owed - paid_to_date
    else:
        paid_to_date = fee_out = np.zeros_like(charged)
        arrears = np.broadcast_to(arrears0[..., None], charged.shape)
    free = came_in - paid_to_date
    undisbursed = running(start["undisbursed"], committed - flows["loans_disbursed"]
                          - flows["grants_paid"] - released)
    legacy = running(start["legacy"], np.where(to_legacy, returns, 0))
    monthly = {"fees_charged": charged, "fees_grant_charged": grant_charged,
               "fees_paid": fee_out, "cash": free + undisbursed, "legacy": legacy}
    end = {"free": free, "undisbursed": undisbursed, "legacy": legacy, "arrears": arrears,
           "loans_to_date": loans_to_date, "grants_to_date": grants_to_date,
           "charged_to_date": charged_to_date, "grant_fees_to_date": grant_to_date}
    return monthly, {name: values[..., -1] for name, values in end.items()}


def total_series(per_line: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The ``total`` line: every column summed over the lines."""
    return {name: np.sum([s[name] for s in per_line], axis=0) for name in per_line[0]}


def check_invariants(series: dict[str, np.ndarray], allocation: int, line: str,
                     dates: list) -> None:
    """Assert the ledger identities for every month; raise :class:`InvariantError`."""
    s = series
    paid_in = s["contribution_paid_in"]
    _first_failure(paid_in > allocation, "contribution_paid_in", paid_in, "allocation",
                   np.full_like(paid_in, allocation), line, dates)
    lhs = s["cash"] + s["legacy"]
    rhs = (paid_in + s["reallocated_in"] - s["reallocated_out"] - s["loans_disbursed"]
           - s["grants_paid"] - s["fees_paid"] + s["grants_recovered"] + s["principal_repaid"]
           + s["interest_received"] + s["recoveries"] + s["treasury_interest"])
    _first_failure(lhs != rhs, "cash + legacy", lhs, "sources - uses", rhs, line, dates)
    outstanding = s["loans_disbursed"] - s["principal_repaid"] - s["principal_written_off"]
    _first_failure(s["loans_outstanding"] != outstanding, "loans_outstanding",
                   s["loans_outstanding"], "disbursed - repaid - written off", outstanding,
                   line, dates)
    _first_failure(s["committed_undisbursed"] > s["cash"], "committed_undisbursed",
                   s["committed_undisbursed"], "cash", s["cash"], line, dates)
    paid = s["loans_disbursed"] + s["grants_paid"]
    by_source = sum(s[c] for c in s if c.startswith("disbursed_"))
    _first_failure(by_source != paid, "sum over funding sources", by_source,
                   "loans disbursed + grants paid", paid, line, dates)
    for name in MONEY_COLUMNS:
        if name in ("treasury_interest",):
            continue  # negative rates make it negative on purpose
        values = s[name]
        _first_failure(values < 0, name, values, "zero", np.zeros_like(values), line, dates)


def _first_failure(bad: np.ndarray, left: str, lhs: np.ndarray, right: str, rhs: np.ndarray,
                   line: str, dates: list) -> None:
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise InvariantError(
            f"invariant broken in {dates[k]:%Y-%m} (month {k}), line {line}: "
            f"{left} = {int(lhs[k])} cents, {right} = {int(rhs[k])} cents")
