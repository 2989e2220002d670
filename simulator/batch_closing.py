"""Closing months in every unit of a chunk: the ledger side of the batch engine.

Each line in each replication of a chunk (a *unit*, :class:`batch.ChunkBatch`)
is a ledger of its own, and closing a month does for every unit at once
what ``LineLedger._close_loop`` does for one: the month's returns go to
free cash (or, past the revolving period, to legacy), commitments that
failed release what they had not drawn, the fees are charged and paid
from free cash (arrears wait), free cash earns treasury interest, and,
with phased payments, the next tranche of the line's contribution is paid
in once enough of what was paid in has been spent. The running totals are
arrays over the units; the months after the last decision close in one
pass (``ledger.close_span``) when nothing makes a month depend on the path
of free cash (treasury interest, tranches still to come).
"""

from __future__ import annotations

import numpy as np

from . import batch_flows as bf
from .ledger import FLOW_KINDS, close_span
from .money import round_cents, round_half_away

# A unit's running state, as ``ledger.close_span`` names it.
_RUNNING = ("free", "undisbursed", "legacy", "loans_to_date", "grants_to_date",
            "charged_to_date", "grant_fees_to_date", "arrears")

# Rows of ``ChunkBatch.flow_array`` read together when a month is closed.
KIND = {kind: i for i, kind in enumerate(FLOW_KINDS)}
_RETURNS = [KIND[k] for k in ("principal_repaid", "interest_received", "recoveries",
                              "grants_recovered")]
_PAID_OUT = [KIND["loans_disbursed"], KIND["grants_paid"]]
_RELEASED = KIND["released"]
_LEAVES_UNDISBURSED = [*_PAID_OUT, _RELEASED]


def _row(array: str, index: int) -> property:
    """A running total kept as one row of a 2-D array (``close`` updates the rows together)."""

    def get(self) -> np.ndarray:
        return getattr(self, array)[index]

    def set_(self, values: np.ndarray) -> None:
        getattr(self, array)[index] = values

    return property(get, set_)


class MonthClosing:
    """The months of every unit of a :class:`batch.ChunkBatch` closed, one or many at once.

    Reads the chunk's booked flows (``flow_array``, booked by ``_book``
    before a month is closed), its commitments and its units; keeps each
    unit's running totals and fills the monthly arrays (``monthly``).
    """

    # Disbursed to date (loans, grants) and fees charged to date (loan part, grant part):
    # rows of two arrays, as the month's fees are computed for both parts at once.
    loans_to_date, grants_to_date = _row("to_date", 0), _row("to_date", 1)
    charged_to_date, grant_fees_to_date = _row("fees_to_date", 0), _row("fees_to_date", 1)

    def _contributions(self, reps: int) -> None:
        """What each unit holds of its line's allocation (``LineLedger``): all of it, or,
        with phased payments, a first tranche, the next ones paid in as money is
        spent (:meth:`_pay_in`). The fees' base and cap follow what is paid in."""
        payments = self.scenario.fund.payments
        self.payments = payments if payments.phased else None
        if self.payments is None:
            self.paid_in = self.allocation.copy()
            self.resources = self.paid_in.copy()
            return

        def per_unit(amounts: list[int]) -> np.ndarray:
            return np.repeat(np.array(amounts, dtype=np.int64), reps)

        self.paid_in = per_unit([min(a, round_cents(a * payments.first_share))
                                 for a in self.allocations])
        self.next_tranche = per_unit([max(1, round_cents(a * payments.next_share))
                                      for a in self.allocations])
        self.tranches_paid = np.ones(len(self.paid_in), dtype=np.int64)
        self.spent = np.zeros(len(self.paid_in), dtype=np.int64)   # paid out + fees paid
        # What the fees are charged on: paid in, plus or minus reallocations.
        self.resources = self.paid_in.copy()

    def _fee_terms(self) -> None:
        """The month's fees are ``coefficient * to_date[row] + constant``, then rounded.

        Three amounts per unit: the loan part (base rate on the line's
        resources: what was paid in of its allocation, plus or minus
        reallocations; plus performance rate on loans disbursed), the grant part
        (on grants paid) and the grant part's cap. Adding 0.0 where the
        model adds nothing changes no value.
        """
        fees = self.fees
        self.fee_rows = [0, 1, 1]
        self.fee_coefficients = np.array([[fees.performance_rate / 12.0],
                                          [fees.grant_rate / 12.0], [fees.grant_cap]])
        self.fee_constants = np.zeros((3, self.size))
        # Row 0: the loan part's cap; row 1 is the grant part's, filled each month.
        self.fee_caps = np.zeros((2, self.size), dtype=np.int64)
        self._fees_on_resources()

    def _fees_on_resources(self) -> None:
        """The loan part's base and cap, from the resources (``LineLedger._resources``)."""
        self.fee_constants[0] = self.fees.base_rate / 12.0 * self.resources
        self.fee_caps[0] = round_half_away(self.fees.cap * self.resources)

    def _move_resources(self, source: slice, target: slice, amount: np.ndarray) -> None:
        """A reallocation's share of ``LineLedger.move``: the fees follow the resources."""
        self.resources[source] -= amount
        self.resources[target] += amount
        self._fees_on_resources()

    def close(self, k: int) -> None:
        """Close month ``k`` in every unit (``LineLedger._close_loop``, one month)."""
        self._book(k)
        flows = self.flow_array[:, k]
        returns = flows[_RETURNS].sum(axis=0)
        if k >= self.legacy_from:
            self.legacy = self.legacy + returns
        else:
            self.free = self.free + returns
        self.free = self.free + flows[_RELEASED]
        paid_out = flows[_PAID_OUT]
        self.to_date += paid_out
        self.undisbursed = (self.undisbursed + self.committed_amount[:, k]
                            - flows[_LEAVES_UNDISBURSED].sum(axis=0))
        # Fee rates and caps are shares (0 to 1): amounts >= 0, where rounding half up
        # is rounding half away from zero, in fewer steps.
        parts = bf.round_pos(self.fee_coefficients * self.to_date[self.fee_rows]
                             + self.fee_constants)
        caps = self.fee_caps
        caps[1] = parts[2]
        due = np.maximum(np.minimum(parts[:2], caps - self.fees_to_date), 0)
        self.fees_to_date += due
        charged = due[0] + due[1]
        monthly = self.monthly
        monthly["fees_charged"][:, k] = charged
        monthly["fees_grant_charged"][:, k] = due[1]
        if self.fees.paid_from_fund:
            self.arrears = self.arrears + charged
            pay = np.minimum(self.arrears, self.free)
            self.arrears = self.arrears - pay
            self.free = self.free - pay
            monthly["fees_paid"][:, k] = pay
        rate = self.treasury_rate / 12.0
        if rate:
            earning = self.free > 0
            interest = np.where(earning, round_half_away(self.free * rate), 0)
            self.free = self.free + interest
            monthly["treasury_interest"][:, k] = interest
        if self.payments is not None:
            self.spent += paid_out[0] + paid_out[1]
            if self.fees.paid_from_fund:
                self.spent += pay
            self._pay_in(k)
        monthly["cash"][:, k] = self.free + self.undisbursed
        monthly["legacy"][:, k] = self.legacy

    def _pay_in(self, k: int) -> None:
        """Month ``k``'s contribution tranches: ``LineLedger._next_tranche`` of every unit."""
        payments = self.payments
        threshold = np.where(self.tranches_paid == 1, payments.second_threshold,
                             payments.later_threshold)
        due = (self.paid_in < self.allocation) & ~(self.spent < threshold * self.paid_in)
        if not due.any():
            return
        tranche = np.where(due, np.minimum(self.allocation - self.paid_in, self.next_tranche),
                           0)
        self.paid_in += tranche
        self.resources += tranche
        self.tranches_paid += due
        self.free = self.free + tranche
        self.monthly["contribution_paid_in"][:, k] += tranche
        self._fees_on_resources()

    def _paying_in(self) -> bool:
        """Contribution tranches still to come in some unit."""
        return self.payments is not None and bool((self.paid_in < self.allocation).any())

    def close_rest(self, first: int) -> None:
        """Close months ``first`` .. horizon - 1 when no decision is left.

        All at once with ``ledger.close_span`` when it applies (no treasury
        interest), line by line; month by month otherwise.
        """
        self._book()
        # close_span takes a line's allocation as its resources: not after a reallocation.
        if not self.treasury_rate and not self._paying_in() \
                and bool((self.resources == self.allocation).all()):
            span = slice(first, self.horizon)
            closed = []
            for i, allocation in enumerate(self.allocations):
                units = self._units(i)
                # The running state goes by close_span's names.
                closed.append(close_span(
                    {name: getattr(self, name)[units] for name in _RUNNING},
                    {kind: np.ascontiguousarray(values[units, span])
                     for kind, values in self.flows.items()},
                    self.committed_amount[units, span],
                    np.arange(first, self.horizon) >= self.legacy_from, self.fees, allocation))
            if all(c is not None for c in closed):
                for i, (monthly, end) in enumerate(closed):
                    units = self._units(i)
                    for name, values in monthly.items():
                        self.monthly[name][units, span] = values
                    for name, values in end.items():
                        getattr(self, name)[units] = values
                return
        for k in range(first, self.horizon):
            self.close(k)

    def _units(self, line: int) -> slice:
        """The units of line number ``line``."""
        return slice(line * self.replications, (line + 1) * self.replications)
