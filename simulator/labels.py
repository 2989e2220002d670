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
    "absorption_at_eligibility_end": "Assorbimento alla scadenza di ammissibilità",
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
    "projects_over_de_minimis": "Progetti oltre il massimale de minimis",
    "rejected_state_aid": "Domande respinte per il massimale de minimis",
    "reduced_state_aid": "Aiuti ridotti al massimale de minimis",
    "legacy_period_returns_eur": "Rientri nel periodo legacy (art. 45)",
    "fees_grant_part_eur": "Commissioni sulla parte contributo",
    "contribution_paid_in_eur": "Contributo versato al fondo",
    "idle_cash_mean_eur": "Liquidità non impegnata media (fino alla scadenza)",
    "absorption_eligible_at_eligibility_end": "Assorbimento ammissibile alla chiusura",
}

KPI_LABELS_EN = {
    "public_committed_eur": "Public resources committed",
    "loans_disbursed_eur": "Loans disbursed",
    "grants_paid_eur": "Grants paid",
    "private_cofinancing_eur": "Private co-financing",
    "leverage": "Leverage",
    "revolving_multiplier": "Revolving multiplier",
    "absorption_at_eligibility_end": "Absorption at the eligibility deadline",
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
    "projects_over_de_minimis": "Projects over the de minimis ceiling",
    "rejected_state_aid": "Applications rejected at the de minimis ceiling",
    "reduced_state_aid": "Aid reduced to the de minimis ceiling",
    "legacy_period_returns_eur": "Returns in the legacy period (Art. 45)",
    "fees_grant_part_eur": "Fees on the grant part",
    "contribution_paid_in_eur": "Contribution paid into the fund",
    "idle_cash_mean_eur": "Mean uncommitted cash (to the deadline)",
    "absorption_eligible_at_eligibility_end": "Eligible absorption at closure",
}


# The formulas of ``metrics.KPI_DEFINITIONS``, in Italian (the workbook's Sintesi sheet).
KPI_DEFINITIONS_IT = {
    "projects_financed_<line>": "progetti con finanziamento concesso sulla linea nell'orizzonte",
    "public_committed_eur": (
        "somma sui progetti finanziati dell'esposizione del fondo "
        "(finanziamento pubblico + contributo)"),
    "loans_disbursed_eur": "quote di finanziamento del fondo erogate ai destinatari finali",
    "grants_paid_eur": "contributi a fondo perduto erogati ai destinatari finali",
    "private_cofinancing_eur": (
        "finanziamenti bancari + mezzi propri dei destinatari dei progetti finanziati "
        "(costo ammissibile - finanziamento pubblico - contributo)"),
    "leverage": (
        "(finanziamenti erogati + contributi erogati + cofinanziamento privato) / dotazione: "
        "risorse che raggiungono i destinatari finali per euro del fondo (variante del "
        "Regolamento finanziario, con l'intera dotazione come contributo pubblico)"),
    "revolving_multiplier": (
        "finanziamenti del fondo erogati in totale / risorse destinate ai finanziamenti, "
        "dove le risorse destinate ai finanziamenti = somma sulle linee di dotazione x "
        "finanziamento pubblico / (finanziamento pubblico + contributo) dello strumento "
        "della linea"),
    "absorption_at_eligibility_end": (
        "(finanziamenti erogati + contributi erogati) entro la fine del mese del termine di "
        "ammissibilità / dotazione"),
    "desk_exhausted_month": (
        "mesi dall'avvio fino alla prima domanda ammessa che ha trovato la linea senza "
        "risorse (respinta o in lista d'attesa); vuoto se non è mai accaduto"),
    "rejected_no_funds": (
        "domande ammesse respinte per mancanza di fondi, comprese quelle uscite dalla lista "
        "d'attesa dopo max_wait_months"),
    "losses_eur": "capitale svalutato (default, revoche) - recuperi",
    "fees_eur": ("commissioni di gestione maturate nell'orizzonte (a carico del fondo o "
                 "della Regione, come dice lo scenario)"),
    "net_public_cost_eur": (
        "contributi erogati - contributi recuperati + perdite + commissioni - interessi "
        "incassati - interessi di tesoreria"),
    "fund_value_end_eur": (
        "liquidità + crediti in bonis in essere all'orizzonte (risorse legacy escluse)"),
    "legacy_eur": "rientri accantonati dopo revolving_until, all'orizzonte",
    "esl_mean_pct": (
        "media sui progetti finanziati dell'equivalente sovvenzione lordo (ESL) in "
        "percentuale del costo ammissibile"),
    "esl_total_eur": "somma degli equivalenti sovvenzione lordi dei progetti finanziati",
    "projects_failed": "progetti finanziati non completati (revoca prima della conclusione)",
    "projects_defaulted": "finanziamenti andati in default durante il preammortamento o "
                          "il rimborso",
    "projects_over_de_minimis": (
        "progetti finanziati il cui aiuto supera il massimale de minimis in vigore alla "
        "concessione: ESL + aiuti già ricevuti dal beneficiario nel periodo > massimale "
        "(colonna over_ceiling di loans.parquet; 0 in un'esecuzione strict sulle linee che "
        "riducono o respingono)"),
    "rejected_state_aid": (
        "domande non finanziate in un'esecuzione strict perché il loro aiuto supera il "
        "massimale de minimis (over_ceiling = \"reject\", oppure \"reduce\" senza margine "
        "residuo)"),
    "reduced_state_aid": (
        "progetti finanziati con contributo o finanziamento del fondo ridotto in "
        "un'esecuzione strict perché l'aiuto rientri nel massimale de minimis "
        "(over_ceiling = \"reduce\")"),
    "fees_grant_part_eur": (
        "commissioni sulla parte a fondo perduto: grant_rate annuo sui contributi erogati, "
        "entro grant_cap x contributi erogati (comprese in fees_eur)"),
    "contribution_paid_in_eur": (
        "contributo del programma versato al fondo entro l'orizzonte (la dotazione, salvo "
        "[fund.payments] phased = true)"),
    "idle_cash_mean_eur": (
        "media sui mesi fino al termine di ammissibilità della liquidità non impegnata del "
        "fondo (liquidità - impegni non ancora erogati)"),
    "disbursed_<source>_eur": (
        "finanziamenti e contributi erogati ai destinatari finali a valere su ciascuna "
        "fonte ([fund.funding], quote in vigore mese per mese), es. disbursed_eu_eur"),
    "absorption_eligible_at_eligibility_end": (
        "erogazioni ai destinatari finali dalle fonti ammissibili alla chiusura "
        "([fund.funding] eligible) entro il termine di ammissibilità / dotazione"),
    "legacy_period_returns_eur": (
        "capitale rimborsato + interessi + recuperi + contributi recuperati dalla fine del "
        "mese di eligibility_end alla fine del mese legacy_years anni dopo (art. 45 RDC: "
        "rientri che devono continuare a servire il programma), oppure fino all'orizzonte "
        "se finisce prima (un avviso di validazione segnala il periodo troncato)"),
}

# Units of the KPIs (``metrics.KPI_DEFINITIONS``) in words.
UNIT_LABELS = {"count": ("numero", "count"), "EUR": ("euro", "euros"),
               "ratio": ("rapporto", "ratio"), "share": ("quota", "share"),
               "months": ("mesi", "months"), "%": ("%", "%")}


def kpi_definition(name: str, lang: str = "it") -> str:
    """A KPI's formula in words (``metrics.KPI_DEFINITIONS``), in the user's language."""
    from .metrics import KPI_DEFINITIONS

    key = name
    if name.startswith("projects_financed_"):
        key = "projects_financed_<line>"
    elif name.startswith("disbursed_") and name.endswith("_eur"):
        key = "disbursed_<source>_eur"
    if lang == "it" and key in KPI_DEFINITIONS_IT:
        return KPI_DEFINITIONS_IT[key]
    return KPI_DEFINITIONS.get(key, ("", ""))[1]


def rough_percentiles_note(lang: str = "it") -> str:
    """What a run of fewer than ``metrics.FEW_REPLICATIONS`` replications says of its
    percentiles (the terminal's summary, the PDF's)."""
    from .metrics import FEW_REPLICATIONS

    if lang == "it":
        return (f"Con meno di {FEW_REPLICATIONS} replicazioni i percentili sono stime "
                "grezze: per una decisione usarne almeno 1.000.")
    return (f"With fewer than {FEW_REPLICATIONS} replications the percentiles are rough "
            "estimates: use at least 1,000 for a decision.")


def unit_label(unit: str, lang: str = "it") -> str:
    names = UNIT_LABELS.get(unit)
    return unit if names is None else names[0 if lang == "it" else 1]


# The sources of a line's money (``disbursed_<source>_eur``), in Italian and English.
SOURCE_NAMES = {"eu": ("UE", "EU"), "state": ("Stato", "State"),
                "region": ("Regione", "Region"), "fsc": ("FSC", "FSC")}


def kpi_label(name: str, unit: str = "", lang: str = "it") -> str:
    """A KPI's name for people; unknown names are shown as they are."""
    if name.startswith("projects_financed_"):
        line = name.removeprefix("projects_financed_")
        return f"Progetti finanziati, linea {line}" if lang == "it" else \
            f"Projects financed, line {line}"
    if name.startswith("disbursed_") and name.endswith("_eur"):
        source = name.removeprefix("disbursed_").removesuffix("_eur")
        named = SOURCE_NAMES.get(source)
        if named is None:   # a source without a name of its own: its code
            named = (source.upper(),) * 2 if len(source) <= 3 else (source.capitalize(),) * 2
        return f"Erogato da fonte {named[0]}" if lang == "it" else f"Paid out of {named[1]}"
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


# --------------------------------------------------------------------------- charts and reports

def line_label(line_id: str, lang: str = "it") -> str:
    """``Linea A`` (it), ``Line A`` (en); ``total`` is ``Totale`` / ``Total``."""
    if line_id == "total":
        return "Totale" if lang == "it" else "Total"
    return f"Linea {line_id}" if lang == "it" else f"Line {line_id}"


# timeseries.parquet columns: (Italian, English)
SERIES_LABELS: dict[str, tuple[str, str]] = {
    "cash": ("Fondo disponibile", "Fund cash"),
    "committed_undisbursed": ("Impegnato da erogare", "Committed, not yet paid"),
    "loans_outstanding": ("Crediti in essere", "Loans outstanding"),
    "legacy": ("Risorse legacy", "Legacy resources"),
    "loans_disbursed": ("Finanziamenti erogati", "Loans disbursed"),
    "grants_paid": ("Contributi erogati", "Grants paid"),
    "grants_recovered": ("Contributi restituiti (revoche)", "Grants recovered (revocations)"),
    "principal_repaid": ("Rientri di capitale", "Principal repaid"),
    "interest_received": ("Interessi incassati", "Interest received"),
    "principal_written_off": ("Capitale svalutato", "Principal written off"),
    "recoveries": ("Recuperi su crediti", "Recoveries"),
    "fees_paid": ("Commissioni pagate", "Fees paid"),
    "fees_charged": ("Commissioni maturate", "Fees charged"),
    "treasury_interest": ("Interessi sulla liquidità", "Treasury interest"),
    "reallocated_in": ("Riallocazioni in entrata", "Reallocated in"),
    "reallocated_out": ("Riallocazioni in uscita", "Reallocated out"),
    "applications": ("Domande ricevute", "Applications received"),
    "admitted": ("Domande ammesse", "Applications admitted"),
    "committed": ("Progetti finanziati", "Projects financed"),
    "rejected_no_funds": ("Respinte per mancanza di fondi", "Rejected for lack of funds"),
    "waiting": ("In lista d'attesa", "On the waiting list"),
}


def series_label(column: str, lang: str = "it") -> str:
    """A timeseries column for people: ``cash`` -> ``Fondo disponibile``."""
    it, en = SERIES_LABELS.get(column, (column, column))
    return it if lang == "it" else en


# loans.parquet columns: (Italian, English)
LOAN_LABELS: dict[str, tuple[str, str]] = {
    "replication": ("Replicazione", "Replication"),
    "project_id": ("Progetto", "Project"),
    "line": ("Linea", "Line"),
    "status": ("Stato", "Status"),
    "application_date": ("Domanda", "Application"),
    "decision_date": ("Decisione", "Decision"),
    "commitment_date": ("Concessione", "Commitment"),
    "first_disbursement_date": ("Prima erogazione", "First disbursement"),
    "completion_date": ("Completamento", "Completion"),
    "end_date": ("Chiusura", "End"),
    "eligible_cost": ("Costo ammissibile", "Eligible cost"),
    "public_loan": ("Finanziamento del fondo", "Fund loan"),
    "bank_loan": ("Finanziamento bancario", "Bank loan"),
    "grant": ("Contributo", "Grant"),
    "loans_disbursed": ("Finanziamento erogato", "Loan disbursed"),
    "grant_paid": ("Contributo erogato", "Grant paid"),
    "principal_repaid": ("Capitale rimborsato", "Principal repaid"),
    "interest_paid": ("Interessi pagati", "Interest paid"),
    "written_off": ("Capitale svalutato", "Written off"),
    "recovered": ("Recuperato", "Recovered"),
    "grant_recovered": ("Contributo restituito", "Grant recovered"),
    "outstanding_end": ("Debito residuo all'orizzonte", "Outstanding at horizon"),
    "esl": ("ESL", "GGE"),
    "esl_pct": ("ESL (% costo ammissibile)", "GGE (% of eligible cost)"),
    "de_minimis_ceiling": ("Massimale de minimis", "De minimis ceiling"),
    "prior_aid": ("Aiuti già ricevuti nel periodo", "Aid already received in the period"),
    "over_ceiling": ("Oltre il massimale", "Over the ceiling"),
}


def loan_label(column: str, lang: str = "it") -> str:
    """A loans.parquet column for people: ``public_loan`` -> ``Finanziamento del fondo``."""
    it, en = LOAN_LABELS.get(column, (column, column))
    return it if lang == "it" else en


STATUS_LABELS: dict[str, tuple[str, str]] = {
    "active": ("in ammortamento", "active"),
    "repaid": ("rimborsato", "repaid"),
    "prepaid": ("estinto in anticipo", "prepaid"),
    "defaulted": ("in default", "defaulted"),
    "failed": ("revocato", "failed"),
}


def status_label(status: str, lang: str = "it") -> str:
    """A loan status for people: ``defaulted`` -> ``in default``."""
    it, en = STATUS_LABELS.get(status, (status, status))
    return it if lang == "it" else en


# Scenario parameters (leaf of a dotted path): (Italian, English)
PARAM_LABELS: dict[str, tuple[str, str]] = {
    "endowment": ("Dotazione del fondo", "Fund endowment"),
    "allocation": ("Dotazione", "Allocation"),
    "coverage": ("Quota di costo finanziata", "Share of cost financed"),
    "public_loan_share": ("Quota di finanziamento pubblico", "Public loan share"),
    "public_rate": ("Tasso del finanziamento pubblico", "Public loan rate"),
    "bank_rate": ("Tasso bancario", "Bank rate"),
    "grant_share": ("Quota di contributo", "Grant share"),
    "term_months": ("Durata (mesi)", "Term (months)"),
    "grace_months": ("Preammortamento (mesi)", "Grace (months)"),
    "failure_rate": ("Tasso di revoca", "Failure rate"),
    "default_rate": ("Tasso di default", "Default rate"),
    "recovery_rate": ("Tasso di recupero", "Recovery rate"),
    "prepayment_rate": ("Tasso di estinzione anticipata", "Prepayment rate"),
    "per_month": ("Domande al mese", "Applications per month"),
    "admission_rate": ("Quota di domande ammesse", "Admission rate"),
    "treasury_rate": ("Rendimento della liquidità", "Treasury rate"),
    "base_rate": ("Commissione di base", "Base fee"),
    "performance_rate": ("Commissione di risultato", "Performance fee"),
    "max_public_loan": ("Finanziamento massimo", "Maximum loan"),
    "min_cost": ("Costo minimo", "Minimum cost"),
    "max_cost": ("Costo massimo", "Maximum cost"),
}


def param_label(path: str, lang: str = "it") -> str:
    """A swept dotted path for people.

    ``lines.A.risk.default_rate`` -> ``Tasso di default, linea A``; unknown
    leaves are shown as they are.
    """
    parts = path.split(".")
    it, en = PARAM_LABELS.get(parts[-1], (parts[-1], parts[-1]))
    text = it if lang == "it" else en
    if len(parts) > 2 and parts[0] == "lines":
        text += f", {'linea' if lang == 'it' else 'line'} {parts[1]}"
    return text
