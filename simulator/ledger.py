"""The fund's ledger: monthly accounts of each line, to the cent, and their invariants.

Each line keeps integer-cent arrays indexed by simulation month, one per
flow of ``DESIGN.md`` (loans disbursed, grants paid, principal repaid, ...).
A committed project adds its closed-form flows to them (see ``loanbook``).

What depends on the path of cash, month by month, is computed by
:meth:`LineLedger.close_until`: returns enter the available cash (or the
legacy account after ``revolving_until``), management fees are charged and
paid, treasury interest is earned on idle cash.  The model closes months
lazily, just before each decision, so a decision sees the cash of every
completed month; months close once and in order.

Available cash for a commitment (``free``) is cash minus what is already
committed but not yet paid: a commitment reserves the project's whole
exposure (loan + grant) at once, so commitments never exceed cash.  Fees
are paid out of free cash only; what cannot be paid waits as arrears.
Treasury interest is earned (or paid, at a negative rate) on free cash.

Identities checked by :func:`check_invariants` for every month and line:

    cash + legacy = allocation + reallocated_in - reallocated_out
                    - loans_disbursed - grants_paid - fees_paid
                    + grants_recovered + principal_repaid + interest_received
                    + recoveries + treasury_interest
    loans_outstanding = loans_disbursed - principal_repaid - principal_written_off
"""

from __future__ import annotations

import numpy as np

from .loanbook import FLOW_KINDS, Flows
from .money import round_cents

RETURN_KINDS = ("principal_repaid", "interest_received", "recoveries", "grants_recovered")

# Column order of timeseries.parquet after replication, date and line.
MONEY_COLUMNS = (
    "cash", "committed_undisbursed", "loans_outstanding", "legacy",
    "loans_disbursed", "grants_paid", "grants_recovered", "principal_repaid",
    "interest_received", "principal_written_off", "recoveries", "fees_paid",
    "fees_charged", "treasury_interest", "reallocated_in", "reallocated_out",
)
COUNT_COLUMNS = ("applications", "admitted", "committed", "rejected_no_funds", "waiting")
STOCK_COLUMNS = ("cash", "committed_undisbursed", "loans_outstanding", "legacy", "waiting")


class InvariantError(AssertionError):
    """A ledger identity failed: names the month, the line and both sides."""


class LineLedger:
    """Accounts of one line over the horizon (all money in integer cents)."""

    def __init__(self, line_id: str, allocation: int, horizon: int, fees, treasury_rate: float,
                 legacy_from_month: int):
        self.line_id = line_id
        self.allocation = allocation
        self.horizon = horizon
        self.fees = fees
        self.treasury_rate = treasury_rate
        self.legacy_from_month = legacy_from_month
        zeros = lambda: np.zeros(horizon, dtype=np.int64)  # noqa: E731
        self.flows = {kind: zeros() for kind in FLOW_KINDS}
        self.committed_amount = zeros()
        self.reallocated_in = zeros()
        self.reallocated_out = zeros()
        # Results of closing months.
        self.cash = zeros()
        self.legacy = zeros()
        self.fees_paid = zeros()
        self.fees_charged = zeros()
        self.treasury_interest = zeros()
        self.counts = {name: zeros() for name in COUNT_COLUMNS}
        # Running state.
        self.free = allocation
        self.closed = 0
        self._undisbursed = 0
        self._legacy = 0
        self._disbursed_to_date = 0
        self._resources = allocation
        self._fees_charged_to_date = 0
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
        """Close every month before ``month``: returns, fees, treasury interest."""
        month = min(month, self.horizon)
        flows = self.flows
        fees = self.fees
        cap_share = fees.cap
        monthly_base = fees.base_rate / 12.0
        monthly_perf = fees.performance_rate / 12.0
        rate = self.treasury_rate / 12.0
        for k in range(self.closed, month):
            returns = (flows["principal_repaid"][k] + flows["interest_received"][k]
                       + flows["recoveries"][k] + flows["grants_recovered"][k])
            if k >= self.legacy_from_month:
                self._legacy += int(returns)
            else:
                self.free += int(returns)
            released = int(flows["released"][k])
            self.free += released
            paid_out = int(flows["loans_disbursed"][k] + flows["grants_paid"][k])
            self._disbursed_to_date += paid_out
            self._undisbursed += int(self.committed_amount[k]) - paid_out - released

            # Fees: base on the resources paid in, performance on what reached recipients,
            # never past the lifetime cap; paid from free cash, the rest in arrears.
            cap = round_cents(cap_share * self._resources)
            due = round_cents(monthly_base * self._resources
                              + monthly_perf * self._disbursed_to_date)
            due = max(0, min(due, cap - self._fees_charged_to_date))
            self._fees_charged_to_date += due
            self.fees_charged[k] = due
            if fees.paid_from_fund:
                self._fee_arrears += due
                pay = min(self._fee_arrears, self.free)
                self._fee_arrears -= pay
                self.free -= pay
                self.fees_paid[k] = pay

            if rate and self.free > 0:
                interest = round_cents(self.free * rate)
                self.free += interest
                self.treasury_interest[k] = interest

            self.cash[k] = self.free + self._undisbursed
            self.legacy[k] = self._legacy
        self.closed = max(self.closed, month)

    # -- results -----------------------------------------------------------------
    def series(self) -> dict[str, np.ndarray]:
        """The line's timeseries columns (flows cumulative, stocks end of month)."""
        f = {kind: np.cumsum(self.flows[kind]) for kind in FLOW_KINDS}
        paid = f["loans_disbursed"] + f["grants_paid"]
        out = {
            "cash": self.cash.copy(),
            "committed_undisbursed": np.cumsum(self.committed_amount) - paid - f["released"],
            "loans_outstanding": (f["loans_disbursed"] - f["principal_repaid"]
                                  - f["principal_written_off"]),
            "legacy": self.legacy.copy(),
            "loans_disbursed": f["loans_disbursed"],
            "grants_paid": f["grants_paid"],
            "grants_recovered": f["grants_recovered"],
            "principal_repaid": f["principal_repaid"],
            "interest_received": f["interest_received"],
            "principal_written_off": f["principal_written_off"],
            "recoveries": f["recoveries"],
            "fees_paid": np.cumsum(self.fees_paid),
            "fees_charged": np.cumsum(self.fees_charged),
            "treasury_interest": np.cumsum(self.treasury_interest),
            "reallocated_in": np.cumsum(self.reallocated_in),
            "reallocated_out": np.cumsum(self.reallocated_out),
        }
        for name in COUNT_COLUMNS:
            counts = self.counts[name]
            out[name] = counts.copy() if name == "waiting" else np.cumsum(counts)
        return out


def total_series(per_line: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The ``total`` line: every column summed over the lines."""
    return {name: np.sum([s[name] for s in per_line], axis=0) for name in per_line[0]}


def check_invariants(series: dict[str, np.ndarray], allocation: int, line: str,
                     dates: list) -> None:
    """Assert the ledger identities for every month; raise :class:`InvariantError`."""
    s = series
    lhs = s["cash"] + s["legacy"]
    rhs = (allocation + s["reallocated_in"] - s["reallocated_out"] - s["loans_disbursed"]
           - s["grants_paid"] - s["fees_paid"] + s["grants_recovered"] + s["principal_repaid"]
           + s["interest_received"] + s["recoveries"] + s["treasury_interest"])
    _first_failure(lhs != rhs, "cash + legacy", lhs, "sources - uses", rhs, line, dates)
    outstanding = s["loans_disbursed"] - s["principal_repaid"] - s["principal_written_off"]
    _first_failure(s["loans_outstanding"] != outstanding, "loans_outstanding",
                   s["loans_outstanding"], "disbursed - repaid - written off", outstanding,
                   line, dates)
    _first_failure(s["committed_undisbursed"] > s["cash"], "committed_undisbursed",
                   s["committed_undisbursed"], "cash", s["cash"], line, dates)
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
