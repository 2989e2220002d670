"""KPIs: the numbers a deliberation cites, one value per replication.

Names are a contract (``DESIGN.md``); the README's KPI section defines each
with its formula and unit, from the same table as :data:`KPI_DEFINITIONS`.
Money KPIs are in euros (floats, exact to the cent: they are computed from
integer cents and divided by 100 only at the end).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa

# name -> (unit, formula in words)
KPI_DEFINITIONS: dict[str, tuple[str, str]] = {
    "projects_financed_<line>": (
        "count", "projects committed on the line over the horizon"),
    "public_committed_eur": (
        "EUR", "sum over committed projects of the fund's exposure (public loan + grant)"),
    "loans_disbursed_eur": ("EUR", "fund loan tranches paid to final recipients"),
    "grants_paid_eur": ("EUR", "grants paid to final recipients"),
    "private_cofinancing_eur": (
        "EUR", "bank loans + recipients' own funds of committed projects "
        "(eligible cost - public loan - grant)"),
    "leverage": (
        "ratio", "(loans disbursed + grants paid + private co-financing) / endowment: "
        "finance reaching final recipients per euro of the fund (Financial Regulation "
        "variant, with the whole endowment as the public contribution)"),
    "revolving_multiplier": (
        "ratio", "cumulative fund loans disbursed / loan resources endowed, where loan "
        "resources = sum over lines of allocation x public loan / (public loan + grant) "
        "of the line's instrument"),
    "absorption_at_eligibility_end": (
        "share", "(loans disbursed + grants paid) by the end of the month of the "
        "eligibility deadline / endowment"),
    "desk_exhausted_month": (
        "months", "months from the start until the first admitted application found its "
        "line without money (rejected or queued); empty when it never happened"),
    "rejected_no_funds": (
        "count", "admitted applications rejected for lack of funds, including those that "
        "left the waiting list after max_wait_months"),
    "losses_eur": ("EUR", "loan principal written off (defaults, failures) - recoveries"),
    "fees_eur": ("EUR", "management fees charged over the horizon (paid from the fund or "
                 "by the Region, as the scenario says)"),
    "net_public_cost_eur": (
        "EUR", "grants paid - grants recovered + losses + fees - interest received - "
        "treasury interest"),
    "fund_value_end_eur": (
        "EUR", "cash + performing loans outstanding at the horizon (legacy excluded)"),
    "legacy_eur": ("EUR", "returns set aside after revolving_until, at the horizon"),
    "esl_mean_pct": (
        "%", "mean over financed projects of the gross grant equivalent (ESL) as a "
        "percentage of the eligible cost"),
    "esl_total_eur": ("EUR", "sum of the gross grant equivalents of financed projects"),
    "projects_failed": ("count", "committed projects that failed before completion"),
    "projects_defaulted": ("count", "loans that defaulted during grace or repayment"),
    "projects_over_de_minimis": (
        "count", "financed projects whose aid is over the de minimis ceiling in force at "
        "commitment: ESL + aid the beneficiary already had in the period > ceiling "
        "(column over_ceiling of loans.parquet; 0 in a strict run on lines that reduce or "
        "reject)"),
    "rejected_state_aid": (
        "count", "applications not committed in a strict run because their aid was over the "
        "de minimis ceiling (over_ceiling = \"reject\", or \"reduce\" with no room left)"),
    "reduced_state_aid": (
        "count", "projects committed with a lower grant or fund loan in a strict run so that "
        "their aid fits the de minimis ceiling (over_ceiling = \"reduce\")"),
    "fees_grant_part_eur": (
        "EUR", "fees of the grant part: grant_rate per year of the grants paid, capped at "
        "grant_cap x grants paid (included in fees_eur)"),
    "contribution_paid_in_eur": (
        "EUR", "programme contribution paid into the fund by the horizon (the endowment "
        "unless [fund.payments] phased = true)"),
    "idle_cash_mean_eur": (
        "EUR", "mean over the months up to the eligibility deadline of the fund's "
        "uncommitted cash (cash - committed_undisbursed)"),
    "disbursed_<source>_eur": (
        "EUR", "loans and grants paid to final recipients out of each funding source "
        "([fund.funding] shares in force each month), e.g. disbursed_eu_eur"),
    "absorption_eligible_at_eligibility_end": (
        "share", "payments to final recipients from the sources eligible at closure "
        "([fund.funding] eligible) by the eligibility deadline / endowment"),
    "legacy_period_returns_eur": (
        "EUR", "principal repaid + interest + recoveries + grants recovered from the end of "
        "the month of eligibility_end to the end of the month legacy_years later (Art. 45 "
        "CPR: returns that must keep serving the programme), or to the horizon if it ends "
        "earlier (then a validation warning says the period is cut short)"),
}


def kpi_unit(name: str) -> str:
    if name.startswith("projects_financed_"):
        return KPI_DEFINITIONS["projects_financed_<line>"][0]
    if name.startswith("disbursed_") and name.endswith("_eur"):
        return KPI_DEFINITIONS["disbursed_<source>_eur"][0]
    return KPI_DEFINITIONS[name][0]


def replication_kpis(scenario, total: dict[str, np.ndarray], loans: dict[str, np.ndarray],
                     first_dry_months: float, eligibility_month: int,
                     state_aid: dict[str, int] | None = None) -> dict[str, float]:
    """Every KPI of one replication from its total series and its loan book.

    ``state_aid`` counts the applications the de minimis rule rejected and the
    projects it reduced (``{"rejected": n, "reduced": n}``; zero if omitted).
    """
    counts = state_aid or {}
    values = chunk_kpis(scenario, {name: column[None, :] for name, column in total.items()},
                        loans, np.zeros(len(loans["line"]), dtype=np.int64),
                        np.array([first_dry_months]), eligibility_month,
                        np.array([counts.get("rejected", 0)]),
                        np.array([counts.get("reduced", 0)]))
    return {name: float(column[0]) for name, column in values.items()}


def chunk_kpis(scenario, total: dict[str, np.ndarray], loans: dict[str, np.ndarray],
               loan_replication: np.ndarray, first_dry_months: np.ndarray,
               eligibility_month: int, rejected_state_aid: np.ndarray,
               reduced_state_aid: np.ndarray) -> dict[str, np.ndarray]:
    """Every KPI of a chunk of replications at once, one value per replication.

    ``total``: the ``total`` series, replications x months; ``loans``: the
    loan table's columns with ``loan_replication`` the position (0 .. R - 1)
    of each loan's replication. Both engines compute their KPIs here, so
    they agree to the last bit. Money is summed in cents (exact in float64
    below 2**53 cents) and reported in euros.
    """
    size = len(first_dry_months)

    def per_replication(values=None, where=None) -> np.ndarray:
        rows = loan_replication if where is None else loan_replication[where]
        weights = None if values is None else values if where is None else values[where]
        return np.bincount(rows, weights=weights, minlength=size).astype(float)

    def last(name: str) -> np.ndarray:
        return total[name][:, -1]

    endowment = round(scenario.fund.endowment * 100)
    line_of = loans["line"]
    kpis: dict[str, np.ndarray] = {}
    for line_id in scenario.lines:
        kpis[f"projects_financed_{line_id}"] = per_replication(where=is_text(line_of, line_id))
    public_loan, grant, cost = loans["public_loan"], loans["grant"], loans["eligible_cost"]
    private = per_replication(cost - public_loan - grant)
    disbursed, grants = last("loans_disbursed"), last("grants_paid")
    losses = last("principal_written_off") - last("recoveries")
    fees = last("fees_charged")
    kpis["public_committed_eur"] = per_replication(public_loan + grant) / 100
    kpis["loans_disbursed_eur"] = disbursed / 100
    kpis["grants_paid_eur"] = grants / 100
    kpis["private_cofinancing_eur"] = private / 100
    kpis["leverage"] = (disbursed + grants + private) / endowment
    kpis["revolving_multiplier"] = disbursed / max(loan_resources(scenario), 1)
    horizon = total["loans_disbursed"].shape[-1]
    m = min(eligibility_month, horizon - 1)
    paid_by_deadline = total["loans_disbursed"][:, m] + total["grants_paid"][:, m] if m >= 0 \
        else np.zeros(size)
    kpis["absorption_at_eligibility_end"] = paid_by_deadline / endowment
    kpis["desk_exhausted_month"] = np.asarray(first_dry_months, dtype=float)
    kpis["rejected_no_funds"] = last("rejected_no_funds").astype(float)
    kpis["losses_eur"] = losses / 100
    kpis["fees_eur"] = fees / 100
    kpis["net_public_cost_eur"] = (
        grants - last("grants_recovered") + losses + fees
        - last("interest_received") - last("treasury_interest")) / 100
    kpis["fund_value_end_eur"] = (last("cash") + last("loans_outstanding")) / 100
    kpis["legacy_eur"] = last("legacy") / 100
    esl = loans["esl"]
    number = per_replication()
    with np.errstate(invalid="ignore", divide="ignore"):  # no loan: NaN
        kpis["esl_mean_pct"] = np.where(number > 0, per_replication(esl / cost) / number * 100,
                                        math.nan)
    kpis["esl_total_eur"] = per_replication(esl) / 100
    status = loans["status"]
    kpis["projects_failed"] = per_replication(where=is_text(status, "failed"))
    kpis["projects_defaulted"] = per_replication(where=is_text(status, "defaulted"))
    kpis["projects_over_de_minimis"] = per_replication(where=loans["over_ceiling"].astype(bool))
    kpis["rejected_state_aid"] = np.asarray(rejected_state_aid, dtype=float)
    kpis["reduced_state_aid"] = np.asarray(reduced_state_aid, dtype=float)
    kpis.update(_funding_kpis(scenario, total, eligibility_month, endowment))
    kpis["legacy_period_returns_eur"] = _legacy_period_returns(scenario, total,
                                                               eligibility_month)
    return kpis


def is_text(values, text: str) -> np.ndarray:
    """``values == text`` for a text column given as numpy values or as Arrow codes into
    its values (the batch engine's ``line`` and ``status``: ``results.text_codes``)."""
    if isinstance(values, pa.DictionaryArray):
        found = values.dictionary.index(text).as_py()
        return values.indices.to_numpy(zero_copy_only=False) == found
    return np.asarray(values) == text


def _legacy_period_returns(scenario, total: dict[str, np.ndarray],
                           eligibility_month: int) -> np.ndarray:
    """Returns from the end of the eligibility month to the end of the legacy period (EUR)."""
    from .checks import legacy_period_end

    start, end = scenario.scenario.start, legacy_period_end(scenario)
    # A horizon that ends earlier cuts the period short (Scenario.warnings() says so).
    last = min((end.year - start.year) * 12 + end.month - start.month,
               total["principal_repaid"].shape[-1] - 1)
    returns = (total["principal_repaid"] + total["interest_received"] + total["recoveries"]
               + total["grants_recovered"])
    first = min(eligibility_month, last)
    before = returns[:, first] if first >= 0 else 0
    return (returns[:, last] - before) / 100


def _funding_kpis(scenario, total: dict[str, np.ndarray], eligibility_month: int,
                  endowment: int) -> dict[str, np.ndarray]:
    """Fees of the grant part, contributions paid in, idle cash, payments by source."""
    funding = scenario.fund.funding
    size, horizon = total["cash"].shape
    m = min(max(eligibility_month, 0), horizon - 1)
    idle = total["cash"][:, :m + 1] - total["committed_undisbursed"][:, :m + 1]
    out = {
        "fees_grant_part_eur": total["fees_grant_charged"][:, -1] / 100,
        "contribution_paid_in_eur": total["contribution_paid_in"][:, -1] / 100,
        "idle_cash_mean_eur": idle.mean(axis=1) / 100 if eligibility_month >= 0 else
        np.full(size, math.nan),
    }
    eligible = np.zeros(size, dtype=np.int64)
    for name in funding.sources():
        column = f"disbursed_{name.lower()}"
        out[f"{column}_eur"] = total[column][:, -1] / 100
        if name in funding.eligible_sources():
            eligible = eligible + total[column][:, m]
    out["absorption_eligible_at_eligibility_end"] = eligible / endowment
    return out


def loan_resources(scenario) -> int:
    """Cents of the endowment meant for loans: each line's allocation x loan share of its mix."""
    total = 0.0
    for line in scenario.lines.values():
        i = line.instrument
        loan = i.coverage * i.public_loan_share
        grant = i.grant_share if i.grant_base == "eligible_cost" else i.grant_share * loan
        share = loan / (loan + grant) if loan + grant > 0 else 0.0
        total += line.allocation * 100 * share
    return round(total)


# Below this many replications, P5 and P95 rest on fewer than five replications on each
# side: the reports say the percentiles are rough.
FEW_REPLICATIONS = 100


def summarise(kpis: pd.DataFrame) -> pd.DataFrame:
    """One row per KPI: unit, mean, P5, P50, P95 and how many replications define it.

    The percentiles of the KPIs that every replication defines come from one
    call over all of them (a sweep summarises hundreds of points); each value
    is the one ``np.percentile`` gives for its KPI alone.
    """
    names = [name for name in kpis.columns if name != "replication"]
    values = np.asarray(kpis[names].to_numpy(dtype=float)).reshape(len(kpis), len(names))
    defined = ~np.isnan(values)
    counts = defined.sum(axis=0)
    complete = np.flatnonzero(counts == len(kpis)) if len(kpis) else np.zeros(0, dtype=int)
    quantiles = np.full((3, len(names)), math.nan)
    if len(complete):
        quantiles[:, complete] = np.percentile(values[:, complete], [5, 50, 95], axis=0)
    means = np.full(len(names), math.nan)
    for j in range(len(names)):
        column = values[:, j] if counts[j] == len(kpis) else values[defined[:, j], j]
        if len(column):
            means[j] = column.mean()
            if counts[j] < len(kpis):
                quantiles[:, j] = np.percentile(column, [5, 50, 95])
    return pd.DataFrame({"kpi": names, "unit": [kpi_unit(name) for name in names],
                         "mean": means, "p5": quantiles[0], "p50": quantiles[1],
                         "p95": quantiles[2], "replications": counts.astype(np.int64)})
