"""Words and number formats for people: KPI names in Italian (or English) and values.

Charts, reports and the terminal table all take their labels from here, so a
KPI is called the same everywhere.
"""

from __future__ import annotations

import math

from .money import format_eur, format_number, format_pct

KPI_LABELS_IT = {
    "public_committed_eur": "Risorse pubbliche impegnate",
    "loans_disbursed_eur": "Finanziamenti erogati",
    "grants_paid_eur": "Contributi erogati",
    "private_cofinancing_eur": "Cofinanziamento privato",
    "leverage": "Effetto leva",
    "revolving_multiplier": "Moltiplicatore rotativo",
    "absorption_at_eligibility_end": "Assorbimento al 31/12/2023",
    "desk_exhausted_month": "Mesi all'esaurimento dello sportello",
    "rejected_no_funds": "Domande respinte per mancanza di fondi",
    "losses_eur": "Perdite nette",
    "fees_eur": "Commissioni di gestione",
    "net_public_cost_eur": "Costo pubblico netto",
    "fund_value_end_eur": "Valore del fondo all'orizzonte",
    "legacy_eur": "Risorse legacy",
    "esl_mean_pct": "ESL medio (% costo ammissibile)",
    "esl_total_eur": "ESL totale",
    "projects_failed": "Progetti non completati (revoca)",
    "projects_defaulted": "Finanziamenti in default",
}

KPI_LABELS_EN = {
    "public_committed_eur": "Public resources committed",
    "loans_disbursed_eur": "Loans disbursed",
    "grants_paid_eur": "Grants paid",
    "private_cofinancing_eur": "Private co-financing",
    "leverage": "Leverage",
    "revolving_multiplier": "Revolving multiplier",
    "absorption_at_eligibility_end": "Absorption at 31/12/2023",
    "desk_exhausted_month": "Months until the desk ran dry",
    "rejected_no_funds": "Applications rejected for lack of funds",
    "losses_eur": "Net losses",
    "fees_eur": "Management fees",
    "net_public_cost_eur": "Net public cost",
    "fund_value_end_eur": "Fund value at the horizon",
    "legacy_eur": "Legacy resources",
    "esl_mean_pct": "Mean ESL (% of eligible cost)",
    "esl_total_eur": "Total ESL",
    "projects_failed": "Projects not completed (revoked)",
    "projects_defaulted": "Loans in default",
}


def kpi_label(name: str, unit: str = "", lang: str = "it") -> str:
    """A KPI's name for people; unknown names are shown as they are."""
    if name.startswith("projects_financed_"):
        line = name.removeprefix("projects_financed_")
        return f"Progetti finanziati, linea {line}" if lang == "it" else \
            f"Projects financed, line {line}"
    labels = KPI_LABELS_IT if lang == "it" else KPI_LABELS_EN
    return labels.get(name, name)


def kpi_value(value: float, unit: str, lang: str = "it") -> str:
    """A KPI value in the user's format: euros without cents, shares as percentages."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if unit == "EUR":
        return format_eur(round(value * 100), lang=lang, decimals=False)
    if unit == "share":
        return format_pct(value, lang=lang)
    if unit == "%":
        return format_number(value, lang=lang, digits=2) + " %"
    if unit == "ratio":
        return format_number(value, lang=lang, digits=2)
    if unit == "months":
        return format_number(value, lang=lang, digits=1)
    return format_number(value, lang=lang, digits=1)
