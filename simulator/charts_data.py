"""The numbers behind the charts of a run: facts of the run, percentiles, sources and uses.

* *percentiles* are taken over replications, month by month, with numpy's
  linear interpolation (as in ``summary.csv``);
* the **median replication** is the replication closest to the median of
  the run both in the fund value at the horizon (``fund_value_end_eur``)
  and in the amount paid to final recipients (loans + grants): see
  :func:`median_replication`.  It is an actual replication, so its flows
  add up exactly, which percentiles of each flow separately would not.

Amounts returned here are in euros (the run's tables hold integer cents).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import __version__
from .charts_style import source_line

PERCENTILES = (5, 25, 50, 75, 95)





def _chosen(replications: pd.Series) -> tuple[int, ...]:
    """The replication numbers of a drill-down (not 0 to N - 1); () for a whole run."""
    ids = sorted(int(r) for r in replications.unique())
    return () if ids == list(range(len(ids))) else tuple(ids)


@dataclass(frozen=True)
class RunFacts:
    """What every chart of a run needs to know besides its own data."""

    title: str
    name: str
    hash: str
    version: str
    replications: int
    start: dt.date            # first month end of the series
    end: dt.date              # last month end of the series
    eligibility_end: dt.date
    revolving_until: dt.date | None
    endowment_eur: float
    lines: tuple[str, ...]
    # The replications run, when they are chosen ones (a drill-down), not 0 to N - 1.
    chosen: tuple[int, ...] = ()

    @classmethod
    def of(cls, results) -> RunFacts:
        scenario = results.scenario
        dates = pd.to_datetime(results.layout.dates)
        manifest = results.manifest or {}
        return cls(
            title=scenario.title,
            name=scenario.name,
            hash=manifest.get("scenario_hash") or scenario.hash(),
            version=str(manifest.get("version", __version__)),
            replications=int(results.kpis["replication"].nunique()),
            start=dates.min().date(),
            end=dates.max().date(),
            eligibility_end=scenario.fund.eligibility_end,
            revolving_until=scenario.fund.revolving_until,
            endowment_eur=float(scenario.fund.endowment),
            lines=tuple(scenario.lines),
            chosen=_chosen(results.kpis["replication"]),
        )

    @property
    def drill_down(self) -> bool:
        return bool(self.chosen)

    def source(self, lang: str) -> str:
        return source_line(self.version, self.name, self.hash, self.replications, lang)

    @property
    def panels(self) -> tuple[str, ...]:
        """Lines, plus the total when there is more than one line."""
        return (*self.lines, "total") if len(self.lines) > 1 else self.lines




def percentiles(results, column: str | np.ndarray, line: str,
                qs: tuple[int, ...] = PERCENTILES) -> pd.DataFrame:
    """Percentiles over replications of a column (cents) of one line, month by month.

    Returns one row per date with columns ``p5, p25, ...`` in **euros**.
    ``column`` may be a cube of ``results.series`` (e.g. a sum of columns).
    """
    cube = results.series(column) if isinstance(column, str) else column
    return percentiles_of(results, results.layout.of_line(cube, line), qs)


def percentiles_of(results, values: np.ndarray, qs: tuple[int, ...] = PERCENTILES
                   ) -> pd.DataFrame:
    """:func:`percentiles` of replications x months ``values`` (cents) of one line."""
    q = percentiles_by_month(values, qs) / 100.0
    out = pd.DataFrame(q.T, columns=[f"p{p}" for p in qs])
    out.insert(0, "date", pd.to_datetime(results.layout.dates).date)
    return out


def percentiles_by_month(values: np.ndarray, qs: tuple[int, ...]) -> np.ndarray:
    """``np.percentile(values, qs, axis=0)`` of replications x months ``values``:
    the same numbers (quantiles x months), faster.

    numpy selects the order statistics along the last axis several times
    faster than along a strided one: each month's replications are made
    contiguous first (on a large run's report, about a quarter of the time
    of the workbook's series). A month of zeros in every replication (a
    flow the scenario never has) needs no search.
    """
    if not values.any():
        return np.zeros((len(qs), values.shape[1]))
    return np.percentile(np.ascontiguousarray(values.T), qs, axis=1)


def quantile_over_replications(values, q: float) -> np.ndarray:
    """The ``q`` quantile of ``values`` along the first axis (replications).

    Linear interpolation between the two nearest ranks, ``a + (b - a) * f``,
    as pandas computes a grouped quantile; numpy's ``percentile`` computes
    ``b - (b - a) * (1 - f)`` when ``f >= 0.5``, which can differ in the last
    bit and so, once in a while, in a rounded cent of a chart's data.
    """
    ordered = np.sort(np.asarray(values, dtype=float), axis=0)
    position = q * (len(ordered) - 1)
    below = int(position)
    fraction = position % 1
    low = ordered[below]
    return low if fraction == 0.0 else low + (ordered[below + 1] - low) * fraction


MEDIAN_KPIS = ("fund_value_end_eur", "paid_eur")


def median_replication(kpis: pd.DataFrame) -> int:
    """The replication closest to the median of the run in both what it paid and what is left.

    Each replication gets its percentile rank (``(rank - 0.5) / n``, ties
    averaged) on the fund value at the horizon (``fund_value_end_eur``) and
    on the amount paid to final recipients (``loans_disbursed_eur +
    grants_paid_eur``); its distance from the median is the larger of
    ``|rank - 0.5|`` on the two.  The median replication has the smallest
    distance; ties go to the one closer on the fund value, then to the
    lowest replication number.  (Ranking on the fund value alone can pick a
    replication that lent far less than a typical one, which misleads a
    sources-and-uses chart.)
    """
    frame_ = pd.DataFrame({
        "replication": kpis["replication"].astype(int),
        "fund_value_end_eur": kpis["fund_value_end_eur"].astype(float),
        "paid_eur": kpis["loans_disbursed_eur"].astype(float)
        + kpis["grants_paid_eur"].astype(float),
    }).dropna()
    if frame_.empty:
        return int(kpis["replication"].min())
    n = len(frame_)
    dist = pd.DataFrame({k: ((frame_[k].rank(method="average") - 0.5) / n - 0.5).abs()
                         for k in MEDIAN_KPIS})
    frame_["distance"] = dist.max(axis=1)
    frame_["tie"] = dist["fund_value_end_eur"]
    best = frame_.sort_values(["distance", "tie", "replication"], kind="stable")
    return int(best["replication"].iloc[0])


def sources_uses(results, replication: int) -> pd.DataFrame:
    """Sources and uses of the whole fund over the horizon for one replication (euros).

    Steps, each with its signed ``amount`` and the running total before
    (``start``) and after (``end``) it, sources first, then uses::

        endowment + principal repaid + recoveries + interest
          (+ grants recovered + treasury interest)      = total sources
        - loans disbursed - grants paid - fees paid
          (- moved to legacy)                           = fund cash at the horizon
        + loans outstanding (performing)                = fund value at the horizon

    With phased payments the first step is what was paid in of the endowment
    by the horizon (``contribution_paid_in``), shown under its own name.

    Sources come first so that the running total is the money that went
    through the fund and never goes below zero, even when the fund lent its
    resources several times over (outflows first would show a negative
    balance that never existed).  The last total equals the replication's
    ``fund_value_end_eur``.  Loan losses are the part of the loans disbursed
    that neither came back nor is still owed (principal written off, net of
    recoveries); they are reported in ``memo`` rows, which are not part of
    the sum.  Steps that are zero for this scenario (grants recovered,
    treasury interest, legacy) are left out.
    """
    ts = results.replication_timeseries(replication)
    row = ts[(ts["line"] == "total") & (ts["date"] == ts["date"].max())]
    if row.empty:
        raise ValueError(f"replication {replication} is not in the run")
    v = {k: int(row[k].iloc[0]) for k in ts.columns if k not in ("replication", "date", "line")}
    # What the fund received: its endowment, unless part of it was never paid in
    # (phased payments). Reallocations move money between lines, not in or out.
    endowment = v["contribution_paid_in"]
    first = "endowment" if endowment == round(results.scenario.fund.endowment * 100) \
        else "contribution_paid_in"
    sources = (endowment + v["principal_repaid"] + v["recoveries"] + v["grants_recovered"]
               + v["interest_received"] + v["treasury_interest"])
    steps: list[tuple[str, str, int, bool]] = [   # key, kind, cents, always shown
        (first, "total", endowment, True),
        ("principal_repaid", "flow", v["principal_repaid"], True),
        ("recoveries", "flow", v["recoveries"], True),
        ("grants_recovered", "flow", v["grants_recovered"], False),
        ("interest_received", "flow", v["interest_received"], True),
        ("treasury_interest", "flow", v["treasury_interest"], False),
        ("sources", "total", sources, True),
        ("loans_disbursed", "flow", -v["loans_disbursed"], True),
        ("grants_paid", "flow", -v["grants_paid"], True),
        ("fees_paid", "flow", -v["fees_paid"], True),
        ("legacy", "flow", -v["legacy"], False),
        ("cash", "total", v["cash"], True),
        ("loans_outstanding", "flow", v["loans_outstanding"], True),
        ("fund_value", "total", v["cash"] + v["loans_outstanding"], True),
    ]
    rows = []
    running = 0
    for key, kind, cents, always in steps:
        if not always and cents == 0:
            continue
        if kind == "total":
            if key != first and cents != running:   # the ledger's identity, to the cent
                raise AssertionError(f"sources and uses do not add up at {key}: "
                                     f"{running} != {cents} cents")
            rows.append((key, kind, cents, 0, cents))
            running = cents
        else:
            rows.append((key, kind, cents, running, running + cents))
            running += cents
    written_off = v["principal_written_off"]
    rows.append(("principal_written_off", "memo", -written_off, np.nan, np.nan))
    rows.append(("losses", "memo", -(written_off - v["recoveries"]), np.nan, np.nan))
    out = pd.DataFrame(rows, columns=["item", "kind", "amount", "start", "end"])
    for col in ("amount", "start", "end"):
        out[col] = out[col] / 100.0
    out.insert(0, "replication", replication)
    return out
