"""Cross-field checks of a scenario: the rules that tie one field to another.

These run on the merged tables, not on the validated model, so that they can
report their problems in the same pass as the type and range errors of
single fields.  A check whose inputs are missing, or already reported as
wrong by the field checks (the ``bad`` paths), is skipped: one mistake gives
one message.

When a rule ties values set in different files (a base scenario and the file
that inherits from it, or a ``--set``), the problem is reported on the value
written last: that is the one the user just changed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from typing import Any

from pydantic import TypeAdapter, ValidationError

from .distributions import Distribution, Fixed
from .errors import Problem
from .instruments import PERIOD_MONTHS

_TOLERANCE = 1e-9
_DURATIONS = ("applications.evaluation_months", "disbursement.signing_months",
              "disbursement.implementation_months")
_DISTRIBUTION: TypeAdapter[Any] = TypeAdapter(Distribution)


class Provenance:
    """Which file set each value of the merged tables.

    ``entries`` maps dotted paths to file labels in the order they were
    written (the loader re-inserts a path each time it is overwritten), so a
    file's rank is its place in the inheritance chain: base first, the file
    itself next, ``--set`` last.  Calling the object with a field path gives
    the file to name in a message about that field.
    """

    def __init__(self, entries: Mapping[str, str], default: str):
        self._entries = list(entries.items())
        self._rank: dict[str, int] = {}
        for _, label in self._entries:
            self._rank.setdefault(label, len(self._rank))
        self.default = default

    def _last(self, path: str) -> tuple[int, str | None]:
        """Rank and label of the latest file that set ``path``, a table above or a value below."""
        best: tuple[int, str | None] = (-1, None)
        for entry, label in self._entries:
            if entry == path or path.startswith(entry + ".") or entry.startswith(path + "."):
                rank = self._rank[label]
                if rank > best[0]:
                    best = (rank, label)
        return best

    def __call__(self, *paths: str) -> str:
        """The file to name for a problem involving ``paths``: the latest one to set any."""
        return self._last(self.latest(*paths))[1] or self.default

    def latest(self, *paths: str) -> str:
        """Of ``paths``, the one set by the latest file (the last path on a tie)."""
        ranks = [self._last(p)[0] for p in paths]
        top = max(ranks)
        return [p for p, r in zip(paths, ranks, strict=True) if r == top][-1]


class TableReader:
    """Read values of the merged tables, hiding those the field checks refused."""

    def __init__(self, tables: dict[str, Any], bad: Collection[str]):
        self.tables = tables
        self.bad = tuple(bad)

    def is_bad(self, path: str, inside: bool = False) -> bool:
        """Was the value at ``path`` (or a table above it) refused?

        With ``inside``, a refused value below ``path`` counts too: a
        distribution table with a wrong parameter is wrong as a whole.
        """
        return any(b == path or path.startswith(b + ".")
                   or (inside and b.startswith(path + ".")) for b in self.bad)

    def get(self, path: str) -> Any:
        if self.is_bad(path):
            return None
        node: Any = self.tables
        for key in path.split("."):
            if isinstance(node, list) and key.isdigit() and int(key) < len(node):
                node = node[int(key)]
            elif isinstance(node, dict) and key in node:
                node = node[key]
            else:
                return None
        return node

    def num(self, path: str, default: float | None = None) -> float | None:
        value = self.get(path)
        if value is None and not self.is_bad(path):
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return float(value)

    def date(self, path: str) -> dt.date | None:
        value = self.get(path)
        if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
            return None
        return value

    def text(self, path: str, default: str | None = None) -> str | None:
        value = self.get(path)
        if value is None and not self.is_bad(path):
            return default
        return value if isinstance(value, str) else None


def euros(value: float) -> str:
    """An amount in euros as the reports write it: ``1.400.000 €``."""
    from .money import format_eur, to_cents
    return format_eur(to_cents(value), decimals=False)


def _num_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


class _Collector:
    def __init__(self, where: Provenance):
        self.where = where
        self.problems: list[Problem] = []

    def add(self, path: str, message: str, *involved: str) -> None:
        """A problem shown on ``path``, named in the latest file among ``path`` and ``involved``."""
        self.problems.append(Problem(self.where(path, *involved), path, message))


def cross_field_problems(tables: dict[str, Any], where: Provenance,
                         bad: Collection[str] = ()) -> list[Problem]:
    """Every cross-field problem of the merged tables (empty if none).

    ``where`` tells which file set each value; ``bad`` lists the field paths
    the field checks refused (their rules are not checked again).
    """
    read = TableReader(tables, bad)
    out = _Collector(where)
    lines_table = read.get("lines")
    lines = {k: v for k, v in lines_table.items() if isinstance(v, dict)} \
        if isinstance(lines_table, dict) else {}

    _allocations(read, out, list(lines_table) if isinstance(lines_table, dict) else [])
    _dates(read, out, lines)
    _reallocations(read, out, list(lines))
    for line_id in lines:
        _line(read, out, f"lines.{line_id}")
    _state_aid(read, out, list(lines))
    _funding(read, out)
    _payments(read, out)
    return out.problems


def _shares_sum_to_one(read: TableReader, out: _Collector, path: str) -> list[str]:
    """Check a table of source -> share sums to 1; return the source names."""
    shares = read.get(path)
    if not isinstance(shares, dict):
        return []
    values = [read.num(f"{path}.{name}") for name in shares]
    if shares and None not in values and abs(sum(values) - 1.0) > _TOLERANCE:
        out.add(path, f"funding shares must sum to 1, got {sum(values):g}")
    if not shares:
        out.add(path, "needs at least one source, e.g. { EU = 0.5, State = 0.35, "
                "Region = 0.15 }")
    return list(shares)


def _funding(read: TableReader, out: _Collector) -> None:
    names = _shares_sum_to_one(read, out, "fund.funding.shares") if \
        read.get("fund.funding.shares") is not None else ["EU", "State", "Region"]
    switches = read.get("fund.funding.switches")
    start = read.date("scenario.start")
    previous = None
    for i in range(len(switches) if isinstance(switches, list) else 0):
        path = f"fund.funding.switches.{i}"
        names += [n for n in _shares_sum_to_one(read, out, f"{path}.shares") if n not in names]
        when = read.date(f"{path}.date")
        if when is not None and start is not None and when <= start:
            out.add(f"{path}.date", f"must be after scenario.start ({start}), got {when}")
        if when is not None and previous is not None and when <= previous:
            out.add(f"{path}.date", f"switches must be in date order, got {when} after "
                    f"{previous}")
        previous = when or previous
    eligible = read.get("fund.funding.eligible")
    if isinstance(eligible, list):
        for name in eligible:
            if isinstance(name, str) and name not in names:
                out.add("fund.funding.eligible", f"no funding source '{name}' "
                        f"(sources: {', '.join(names)})")


def _payments(read: TableReader, out: _Collector) -> None:
    if read.get("fund.payments.phased") is not True:
        return
    for key in ("first_share", "next_share"):
        value = read.num(f"fund.payments.{key}")
        if value is not None and value <= 0:
            out.add(f"fund.payments.{key}", f"must be greater than 0 when phased = true, "
                    f"got {value:g}")


def _allocations(read: TableReader, out: _Collector, line_ids: list[str]) -> None:
    endowment = read.num("fund.endowment")
    paths = [f"lines.{i}.allocation" for i in line_ids]
    allocations = [read.num(p) for p in paths]
    if endowment is None or not allocations or None in allocations:
        return
    total = sum(round(a * 100) for a in allocations if a is not None)
    if total == round(endowment * 100):
        return
    shown = out.where.latest("fund.endowment", *paths)
    parts = ", ".join(f"{i} {euros(a)}" for i, a in zip(line_ids, allocations, strict=True)
                      if a is not None)
    out.add(shown, f"the line allocations ({parts}) sum to {euros(total / 100)}, but "
            f"fund.endowment is {euros(endowment)}: they must be equal",
            "fund.endowment", *paths)


def _dates(read: TableReader, out: _Collector, lines: dict[str, dict]) -> None:
    """Dates in order: (earlier, later, strictly) pairs, one message per field to fix."""
    rules: list[tuple[str, str, bool]] = [
        ("scenario.start", "fund.eligibility_end", True),
        ("scenario.start", "fund.revolving_until", True),
    ]
    for line_id, line in lines.items():
        prefix = f"lines.{line_id}"
        opens = f"{prefix}.desk_opens" if "desk_opens" in line else "scenario.start"
        if opens != "scenario.start":
            rules.append(("scenario.start", opens, False))
        rules.append((opens, f"{prefix}.desk_closes", True))
        calls = line.get("calls")
        for i in range(len(calls) if isinstance(calls, list) else 0):
            rules.append((f"{prefix}.calls.{i}.opens", f"{prefix}.calls.{i}.closes", True))
    realloc = read.get("fund.reallocations")
    for i in range(len(realloc) if isinstance(realloc, list) else 0):
        rules.append(("scenario.start", f"fund.reallocations.{i}.date", False))

    # shown field -> rule -> [(other field, its date)], and every field involved
    broken: dict[str, dict[str, list[str]]] = {}
    involved: dict[str, list[str]] = {}
    for early, late, strict in rules:
        a, b = read.date(early), read.date(late)
        if a is None or b is None or (a < b if strict else a <= b):
            continue
        shown = out.where.latest(early, late)
        if shown == late:
            rule, other = ("must be after" if strict else "must not be before"), f"{early} ({a})"
        else:
            rule, other = ("must be before" if strict else "must not be after"), f"{late} ({b})"
        broken.setdefault(shown, {}).setdefault(rule, []).append(other)
        involved.setdefault(shown, []).extend((early, late))
    for shown, by_rule in broken.items():
        text = " and ".join(f"{rule} {', '.join(others)}" for rule, others in by_rule.items())
        out.add(shown, f"{text}, got {read.date(shown)}", *involved[shown])


def _reallocations(read: TableReader, out: _Collector, line_ids: list[str]) -> None:
    realloc = read.get("fund.reallocations")
    for i in range(len(realloc) if isinstance(realloc, list) else 0):
        path = f"fund.reallocations.{i}"
        names = {side: read.text(f"{path}.{side}") for side in ("from", "to")}
        for side, name in names.items():
            if name is not None and line_ids and name not in line_ids:
                out.add(f"{path}.{side}", f"no line '{name}' (lines: {', '.join(line_ids)})")
        if names["from"] is not None and names["from"] == names["to"] \
                and names["from"] in line_ids:
            out.add(f"{path}.to", f"must differ from 'from', got '{names['to']}'")


def _line(read: TableReader, out: _Collector, prefix: str) -> None:
    min_path, max_path = f"{prefix}.min_cost", f"{prefix}.max_cost"
    low, high = read.num(min_path), read.num(max_path)
    if low is not None and high is not None and low > high:
        if out.where.latest(min_path, max_path) == min_path:
            out.add(min_path, f"must not exceed max_cost ({euros(high)}), got {euros(low)}",
                    max_path)
        else:
            out.add(max_path, f"must not be below min_cost ({euros(low)}), got {euros(high)}",
                    min_path)
        low = high = None  # the cost checks below need valid bounds

    if read.text(f"{prefix}.procedure") == "graduatoria" and not read.get(f"{prefix}.calls") \
            and read.get(f"{prefix}.desk_closes") is None:
        out.add(f"{prefix}.calls", "a graduatoria needs call windows (calls = [{opens = "
                "..., closes = ...}]) or a desk_closes date", f"{prefix}.procedure")

    apps = f"{prefix}.applications"
    if isinstance(read.get(apps), dict):
        mode = read.text(f"{apps}.mode", "poisson")
        if mode == "poisson":
            for key in ("per_month", "cost"):
                if read.get(f"{apps}.{key}") is None and not read.is_bad(f"{apps}.{key}"):
                    out.add(f"{apps}.{key}", "required when mode = \"poisson\"", f"{apps}.mode")
        elif mode == "pipeline" and read.get(f"{apps}.pipeline") is None \
                and not read.is_bad(f"{apps}.pipeline"):
            out.add(f"{apps}.pipeline", "required when mode = \"pipeline\" (a CSV file name)",
                    f"{apps}.mode")
        if low is not None and high is not None:
            _cost_inside(read, out, f"{apps}.cost", low, high, (min_path, max_path))
    for key in _DURATIONS:
        _non_negative_duration(read, out, f"{prefix}.{key}")

    _instrument(read, out, f"{prefix}.instrument")

    tranches_path = f"{prefix}.disbursement.tranches"
    tranches = read.get(tranches_path)
    if isinstance(tranches, list) and tranches:
        shares = [read.num(f"{tranches_path}.{i}.share") for i in range(len(tranches))]
        if None not in shares:
            total = sum(s for s in shares if s is not None)
            if abs(total - 1.0) > _TOLERANCE:
                out.add(tranches_path, "tranche shares must sum to 1, got "
                        f"{' + '.join(_num_text(s) for s in shares if s is not None)} = "
                        f"{total:.10g}")


def _instrument(read: TableReader, out: _Collector, prefix: str) -> None:
    if not isinstance(read.get(prefix), dict):
        return
    freq_path = f"{prefix}.frequency"
    frequency = read.text(freq_path, "quarterly")
    period = PERIOD_MONTHS.get(frequency or "")
    if period:
        wrong = []
        for key in ("term_months", "grace_months"):
            months = read.get(f"{prefix}.{key}")
            if isinstance(months, int) and not isinstance(months, bool) and months % period:
                wrong.append((key, months))
        keys = [f"{prefix}.{k}" for k, _ in wrong]
        if wrong and out.where.latest(*keys, freq_path) == freq_path:
            got = ", ".join(f"{k} = {m}" for k, m in wrong)
            out.add(freq_path, f"'{frequency}' needs term_months and grace_months in whole "
                    f"multiples of {period} months, got {got}", *keys)
        else:
            for key, months in wrong:
                out.add(f"{prefix}.{key}", "must be a whole multiple of the instalment period "
                        f"({period} months, {frequency}), got {months}", freq_path)

    coverage = read.num(f"{prefix}.coverage", 1.0)
    grant = read.num(f"{prefix}.grant_share", 0.0)
    loan_share = read.num(f"{prefix}.public_loan_share")
    grant_base = read.text(f"{prefix}.grant_base", "eligible_cost")
    if coverage is None or grant is None or grant_base is None:
        return
    if grant_base == "eligible_cost":
        grant_of_cost = grant
    elif loan_share is not None:
        grant_of_cost = grant * coverage * loan_share
    else:
        return
    if coverage + grant_of_cost > 1.0 + _TOLERANCE:
        involved = [f"{prefix}.{k}" for k in ("coverage", "grant_share", "grant_base")]
        shown = out.where.latest(*involved[:2])
        room = max(1.0 - grant_of_cost, 0.0)
        out.add(shown, f"loan ({coverage:.0%} of the cost) plus grant ({grant_of_cost:.0%} "
                "of the cost) exceed the eligible cost: lower coverage (to at most "
                f"{_num_text(round(room, 6))} with this grant) or grant_share", *involved)


def _distribution(read: TableReader, path: str) -> Any:
    value = read.get(path)
    if value is None or read.is_bad(path, inside=True):
        return None
    try:
        return _DISTRIBUTION.validate_python(value)
    except ValidationError:
        return None  # reported by the field checks


def _cost_inside(read: TableReader, out: _Collector, path: str, low: float, high: float,
                 bounds: tuple[str, str]) -> None:
    """A cost distribution must be able to produce values inside the line's bounds."""
    dist = _distribution(read, path)
    if dist is None:
        return

    def span() -> str:   # formatted for a message only: a sweep checks hundreds of points
        return f"({euros(low)} - {euros(high)})"

    if isinstance(dist, Fixed):
        if not low <= dist.value <= high:
            out.add(path, f"must lie between min_cost and max_cost {span()}, got "
                    f"{euros(dist.value)}", *bounds)
        return
    if dist.dist == "empirical":
        outside = [v for v in dist.values if not low <= v <= high]
        if outside:
            out.add(f"{path}.values", f"values outside the line's bounds {span()}: "
                    f"{', '.join(euros(v) for v in outside)}", *bounds)
        return
    mass = dist.mass_inside(low, high)
    if mass < 1e-6:
        what = "no" if mass == 0 else "almost no"
        out.add(path, f"the {dist.dist} distribution puts {what} probability inside the "
                f"line's bounds min_cost - max_cost {span()}", *bounds)


def _non_negative_duration(read: TableReader, out: _Collector, path: str) -> None:
    dist = _distribution(read, path)
    if dist is None:
        return
    lowest = dist.bounds()[0]
    if lowest < 0:
        where = path if isinstance(dist, Fixed) else \
            f"{path}.{'values' if dist.dist == 'empirical' else 'low'}"
        out.add(where, f"a duration in months must not be negative, got {_num_text(lowest)}")


def _state_aid(read: TableReader, out: _Collector, line_ids: list[str]) -> None:
    """An explicit margin excludes rating and collateral; declared aid is not negative."""
    margin = "state_aid.margin_bp"
    if read.get(margin) is not None:
        others = [p for p in ("state_aid.rating", "state_aid.collateral")
                  if read.get(p) is not None]
        if others:
            shown = out.where.latest(margin, *others)
            names = " and ".join(p.removeprefix("state_aid.") for p in others)
            out.add(shown, f"give either margin_bp or the rating and collateral it stands "
                    f"for, not both (got margin_bp and {names})", margin, *others)
    for line_id in line_ids:
        path = f"lines.{line_id}.state_aid.prior_aid"
        dist = _distribution(read, path)
        if dist is None:
            continue
        lowest = dist.bounds()[0]
        if lowest < 0:
            where = path if isinstance(dist, Fixed) else \
                f"{path}.{'values' if dist.dist == 'empirical' else 'low'}"
            out.add(where, "aid already received is an amount in euros of 0 or more, got "
                    f"{_num_text(lowest)}")


def add_years(day: dt.date, years: int) -> dt.date:
    """The same calendar day ``years`` later (28 February for a 29 February)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def legacy_period_end(scenario) -> dt.date:
    """End of the legacy period: ``fund.eligibility_end`` + ``fund.legacy_years``."""
    return add_years(scenario.fund.eligibility_end, scenario.fund.legacy_years)


def scenario_warnings(scenario) -> list[Problem]:
    """What is valid but probably not meant: the run goes ahead, the user is told.

    * The horizon ends before the legacy period does (``eligibility_end`` +
      ``legacy_years``, Art. 45 CPR): returns are not followed for the whole
      period in which they must keep serving the programme's aims, and
      ``legacy_period_returns_eur`` is left empty.
    """
    from .scenario import _label, month_end

    label = _label(scenario.source) if scenario.source is not None else scenario.name
    info = scenario.scenario
    last_day = month_end(info.start, info.horizon_months - 1)
    legacy_end = legacy_period_end(scenario)
    out = []
    if last_day < legacy_end:
        months = (legacy_end.year - info.start.year) * 12 + legacy_end.month - info.start.month + 1
        out.append(Problem(label, "scenario.horizon_months", (
            f"the run ends on {last_day.isoformat()}, before the end of the "
            f"{scenario.fund.legacy_years}-year legacy period after fund.eligibility_end "
            f"({legacy_end.isoformat()}): returns are not followed for the whole period in "
            f"which they must keep serving the programme (Art. 45 CPR); horizon_months = "
            f"{months} reaches it")))
    return out
