"""Cross-field checks of a scenario: the rules that tie one field to another.

These run on the merged tables, not on the validated model, so that they can
report their problems in the same pass as the type and range errors of
single fields: a check whose inputs are missing or of the wrong type is
skipped (the field check already reported them).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from .errors import Problem
from .instruments import PERIOD_MONTHS

_TOLERANCE = 1e-9


def _get(tables: Any, path: str) -> Any:
    node = tables
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _date(value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
        return None
    return value


def _euros(value: float) -> str:
    from .money import format_eur, to_cents
    return format_eur(to_cents(value), decimals=False)


def cross_field_problems(tables: dict[str, Any], where: Callable[[str], str]) -> list[Problem]:
    """Every cross-field problem of the merged tables (empty if none)."""
    problems: list[Problem] = []

    def add(path: str, message: str) -> None:
        problems.append(Problem(where(path), path, message))

    lines = _get(tables, "lines")
    lines = lines if isinstance(lines, dict) else {}
    start = _date(_get(tables, "scenario.start"))

    endowment = _num(_get(tables, "fund.endowment"))
    allocations = [_num(_get(line, "allocation")) for line in lines.values()
                   if isinstance(line, dict)]
    if endowment is not None and allocations and None not in allocations:
        total = sum(round(a * 100) for a in allocations)
        if total != round(endowment * 100):
            add("fund.endowment",
                f"the line allocations sum to {_euros(total / 100)}, but the endowment is "
                f"{_euros(endowment)}: they must be equal")

    for key in ("fund.eligibility_end", "fund.revolving_until"):
        value = _date(_get(tables, key))
        if start and value and value <= start:
            add(key, f"must be after scenario.start ({start}), got {value}")

    for i, realloc in enumerate(_get(tables, "fund.reallocations") or []):
        if not isinstance(realloc, dict):
            continue
        path = f"fund.reallocations.{i}"
        for side in ("from", "to"):
            name = realloc.get(side)
            if isinstance(name, str) and lines and name not in lines:
                add(f"{path}.{side}", f"no line '{name}' (lines: {', '.join(lines)})")
        if realloc.get("from") is not None and realloc.get("from") == realloc.get("to"):
            add(f"{path}.to", "must differ from 'from'")
        when = _date(realloc.get("date"))
        if start and when and when < start:
            add(f"{path}.date", f"must not be before scenario.start ({start}), got {when}")

    for line_id, line in lines.items():
        if isinstance(line, dict):
            _line_problems(f"lines.{line_id}", line, start, add)
    return problems


def _line_problems(prefix: str, line: dict, start: dt.date | None,
                   add: Callable[[str, str], None]) -> None:
    min_cost, max_cost = _num(line.get("min_cost")), _num(line.get("max_cost"))
    if min_cost is not None and max_cost is not None and min_cost > max_cost:
        add(f"{prefix}.max_cost",
            f"must not be below min_cost ({_euros(min_cost)}), got {_euros(max_cost)}")

    opens, closes = _date(line.get("desk_opens")), _date(line.get("desk_closes"))
    if start and opens and opens < start:
        add(f"{prefix}.desk_opens", f"must not be before scenario.start ({start}), got {opens}")
    if closes and (opens or start) and closes <= (opens or start):
        add(f"{prefix}.desk_closes",
            f"must be after desk_opens ({opens or start}), got {closes}")
    for i, call in enumerate(line.get("calls") or []):
        if isinstance(call, dict):
            c_open, c_close = _date(call.get("opens")), _date(call.get("closes"))
            if c_open and c_close and c_close <= c_open:
                add(f"{prefix}.calls.{i}.closes",
                    f"must be after opens ({c_open}), got {c_close}")
    if line.get("procedure") == "graduatoria" and not line.get("calls") and closes is None:
        add(f"{prefix}.calls", "a graduatoria needs call windows (calls = [{opens = ..., "
            "closes = ...}]) or a desk_closes date")

    apps = line.get("applications")
    if isinstance(apps, dict):
        mode = apps.get("mode", "poisson")
        if mode == "poisson":
            for key in ("per_month", "cost"):
                if key not in apps:
                    add(f"{prefix}.applications.{key}", "required when mode = \"poisson\"")
        elif mode == "pipeline" and "pipeline" not in apps:
            add(f"{prefix}.applications.pipeline",
                "required when mode = \"pipeline\" (a CSV file name)")
        cost = apps.get("cost")
        if min_cost is not None and max_cost is not None:
            _cost_inside(f"{prefix}.applications.cost", cost, min_cost, max_cost, add)

    instrument = line.get("instrument")
    if isinstance(instrument, dict):
        period = PERIOD_MONTHS.get(instrument.get("frequency", "quarterly"))
        for key in ("term_months", "grace_months"):
            months = instrument.get(key)
            if period and isinstance(months, int) and not isinstance(months, bool) \
                    and months % period:
                add(f"{prefix}.instrument.{key}",
                    f"must be a whole multiple of the instalment period ({period} months, "
                    f"{instrument.get('frequency', 'quarterly')}), got {months}")

        coverage = _num(instrument.get("coverage", 1.0))
        grant = _num(instrument.get("grant_share", 0.0))
        loan_share = _num(instrument.get("public_loan_share"))
        if coverage is not None and grant is not None:
            base = instrument.get("grant_base", "eligible_cost")
            grant_of_cost = grant if base == "eligible_cost" else \
                grant * coverage * (loan_share if loan_share is not None else 0.0)
            if coverage + grant_of_cost > 1.0 + _TOLERANCE:
                add(f"{prefix}.instrument.grant_share",
                    f"loan ({coverage:.0%} of the cost) plus grant ({grant_of_cost:.0%}) "
                    "exceed the eligible cost: lower coverage or grant_share")

    disbursement = line.get("disbursement")
    tranches = disbursement.get("tranches") if isinstance(disbursement, dict) else None
    if isinstance(tranches, list) and tranches:
        shares = [_num(t.get("share")) if isinstance(t, dict) else None for t in tranches]
        if None not in shares and abs(sum(shares) - 1.0) > _TOLERANCE:
            add(f"{prefix}.disbursement.tranches",
                f"tranche shares must sum to 1, got {sum(shares):g}")


def _cost_inside(path: str, cost: Any, low: float, high: float,
                 add: Callable[[str, str], None]) -> None:
    """A cost distribution must be able to produce values inside the line's bounds."""
    if _num(cost) is not None:
        if not low <= cost <= high:
            add(path, f"must lie between min_cost and max_cost ({_euros(low)} - "
                f"{_euros(high)}), got {_euros(cost)}")
        return
    if not isinstance(cost, dict):
        return
    kind = cost.get("dist")
    if kind in ("uniform", "triangular"):
        lo, hi = _num(cost.get("low")), _num(cost.get("high"))
        if lo is not None and hi is not None and (hi < low or lo > high):
            add(path, f"range {_euros(lo)} - {_euros(hi)} lies outside the line's bounds "
                f"({_euros(low)} - {_euros(high)})")
    elif kind == "empirical" and isinstance(cost.get("values"), list):
        outside = [v for v in cost["values"] if _num(v) is not None and not low <= v <= high]
        if outside:
            add(f"{path}.values", f"values outside the line's bounds ({_euros(low)} - "
                f"{_euros(high)}): {', '.join(_euros(v) for v in outside)}")
