"""Scenario files: schema, loading, ``base =`` inheritance, overrides and hash.

A scenario is a TOML file (format: ``shared/scenario-format.toml``) that
describes one fund: its endowment and dates, and per line the eligibility
bounds, the application stream, the instrument (loan/grant mix), the
disbursement in tranches and the risks.  Money is in euros in the file and
in these models; the model converts to integer cents.

Loading runs in four steps, each collecting every problem it finds:

1. read the file and its ``base`` chain, deep-merging tables (a later file
   overrides an earlier one; lists are replaced whole) and remembering which
   file set each value, so an error names the file the bad value came from;
2. apply ``--set dotted.path=value`` overrides (values parsed as TOML);
3. validate the merged tables against the pydantic models below (types,
   ranges, unknown keys with a "did you mean");
4. cross-field checks (allocations sum to the endowment, tranche shares sum
   to 1, dates ordered, grace and term multiples of the period) and the
   pipeline CSV files.

The canonical hash identifies the resolved content: the same scenario gives
the same hash whatever the key order, the inheritance used or where the
files lie (a pipeline file counts by its content, not its path).
"""

from __future__ import annotations

import copy
import datetime as dt
import difflib
import hashlib
import json
import math
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import tomli_w
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
)

from .distributions import Distribution, Fixed, Uniform, to_file_value
from .errors import InputError, Problem
from .instruments import PERIOD_MONTHS

_CONFIG = ConfigDict(extra="forbid", strict=True, populate_by_name=True)


def _share(value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"must be between 0 and 1, got {value:g}")
    return value


def _annual_rate(value: float) -> float:
    if not -0.2 <= value <= 1.0:
        raise ValueError(f"must be an annual rate between -0.2 and 1 (e.g. 0.035 = 3.5 %), "
                         f"got {value:g}")
    return value


def _positive(value: float) -> float:
    if not value > 0:
        raise ValueError(f"must be greater than 0, got {value:g}")
    return value


def _non_negative(value: float) -> float:
    if not value >= 0:
        raise ValueError(f"must be 0 or more, got {value:g}")
    return value


Share = Annotated[float, AfterValidator(_share)]
Rate = Annotated[float, AfterValidator(_annual_rate)]
Euros = Annotated[float, AfterValidator(_positive)]
NonNegEuros = Annotated[float, AfterValidator(_non_negative)]
Months = Annotated[int, AfterValidator(_non_negative)]
PositiveMonths = Annotated[int, AfterValidator(_positive)]


class ScenarioInfo(BaseModel):
    """[scenario]: identity, time span and Monte Carlo settings."""

    model_config = _CONFIG
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", min_length=1, max_length=80)
    title: str = ""
    description: str = ""
    start: dt.date
    horizon_months: PositiveMonths
    replications: PositiveMonths = 1000
    seed: Months = 20181015


class Reallocation(BaseModel):
    """[[fund.reallocations]]: move uncommitted resources between lines at a date."""

    model_config = _CONFIG
    date: dt.date
    from_: str = Field(alias="from")
    to: str
    amount: Literal["all_uncommitted"] | Euros = "all_uncommitted"


class Fees(BaseModel):
    """[fund.fees]: the manager's remuneration (Delegated Reg. 480/2014 Art. 13)."""

    model_config = _CONFIG
    paid_from_fund: bool = True
    base_rate: Share = 0.005
    performance_rate: Share = 0.01
    cap: Share = 0.08


class Fund(BaseModel):
    """[fund]: endowment, EU dates, revolving cut-off, treasury and fees."""

    model_config = _CONFIG
    endowment: Euros
    eligibility_end: dt.date
    revolving_until: dt.date | None = None
    treasury_rate: Rate = 0.0
    reallocations: list[Reallocation] = Field(default_factory=list)
    fees: Fees = Field(default_factory=Fees)


class Applications(BaseModel):
    """[lines.X.applications]: the stream of applications to the line."""

    model_config = _CONFIG
    mode: Literal["poisson", "pipeline"] = "poisson"
    per_month: NonNegEuros | None = None
    cost: Distribution | None = None
    admission_rate: Share = 1.0
    evaluation_months: Distribution = Fixed(value=0.0)
    # graduatoria only: the score that ranks the applications of a call.
    score: Distribution = Uniform(dist="uniform", low=0.0, high=100.0)
    pipeline: str | None = None


class Instrument(BaseModel):
    """[lines.X.instrument]: the loan/grant mix offered to one project."""

    model_config = _CONFIG
    coverage: Share = 1.0
    public_loan_share: Share
    public_rate: Rate = 0.0
    bank_rate: Rate = 0.0
    grant_share: Share = 0.0
    grant_base: Literal["eligible_cost", "public_loan"] = "eligible_cost"
    max_public_loan: Euros | None = None
    max_grant: NonNegEuros | None = None
    term_months: PositiveMonths
    grace_months: Months = 0
    frequency: Literal["monthly", "quarterly", "semiannual", "annual"] = "quarterly"
    method: Literal["french", "italian", "bullet"] = "french"


class Tranche(BaseModel):
    """One disbursement of the fund's loan: a share of it at an event."""

    model_config = _CONFIG
    share: Share
    at: Literal["signing", "completion"]


class Disbursement(BaseModel):
    """[lines.X.disbursement]: when the fund pays the loan and the grant."""

    model_config = _CONFIG
    tranches: list[Tranche] = Field(
        default_factory=lambda: [Tranche(share=1.0, at="signing")], min_length=1)
    signing_months: Distribution = Fixed(value=0.0)
    implementation_months: Distribution = Fixed(value=12.0)
    grant_paid_at: Literal["signing", "completion"] = "completion"


class Risk(BaseModel):
    """[lines.X.risk]: failure, default, recovery and prepayment."""

    model_config = _CONFIG
    failure_rate: Share = 0.0
    default_rate: Share = 0.0
    recovery_rate: Share = 0.0
    recovery_lag_months: Months = 0
    prepayment_rate: Share = 0.0


class CallWindow(BaseModel):
    """One call of a ``graduatoria``: applications received in the window are ranked."""

    model_config = _CONFIG
    opens: dt.date
    closes: dt.date


class Line(BaseModel):
    """[lines.X]: one line of the measure (e.g. A: programmes >= 1 M€)."""

    model_config = _CONFIG
    title: str = ""
    allocation: NonNegEuros
    min_cost: Euros
    max_cost: Euros
    procedure: Literal["sportello", "graduatoria"] = "sportello"
    when_dry: Literal["reject", "waiting_list"] = "reject"
    max_wait_months: PositiveMonths = 12
    desk_opens: dt.date | None = None
    desk_closes: dt.date | None = None
    calls: list[CallWindow] = Field(default_factory=list)
    applications: Applications
    instrument: Instrument
    disbursement: Disbursement = Field(default_factory=Disbursement)
    risk: Risk = Field(default_factory=Risk)


class Scenario(BaseModel):
    """A fully resolved scenario (after inheritance and overrides)."""

    model_config = _CONFIG
    scenario: ScenarioInfo
    fund: Fund
    lines: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9_]+$")], Line] = Field(min_length=1)

    # Not part of the file: where it was loaded from, and the pipeline rows.
    _source: Path | None = PrivateAttr(default=None)
    _pipelines: dict[str, Any] = PrivateAttr(default_factory=dict)
    _pipeline_digests: dict[str, str] = PrivateAttr(default_factory=dict)

    # -- convenience -------------------------------------------------------
    @property
    def name(self) -> str:
        return self.scenario.name

    @property
    def title(self) -> str:
        return self.scenario.title or self.scenario.name

    @property
    def source(self) -> Path | None:
        return self._source

    def pipeline(self, line: str):
        """The pipeline rows of a line in pipeline mode (a pandas DataFrame)."""
        return self._pipelines[line]

    def to_dict(self) -> dict[str, Any]:
        """The scenario as file tables (euros, dates, distributions as written)."""
        return _file_tables(self)

    def resolved_toml(self) -> str:
        """The fully resolved scenario as TOML that loads back to the same object."""
        header = (f"# Resolved scenario '{self.name}' (hash {self.hash()[:12]}): every value\n"
                  "# after inheritance and overrides, as the simulator ran it.\n")
        return header + tomli_w.dumps(self.to_dict())

    def hash(self) -> str:
        """Canonical SHA-256 of the resolved content (key order and paths do not count)."""
        tables = self.to_dict()
        for line_id, digest in self._pipeline_digests.items():
            tables["lines"][line_id]["applications"]["pipeline"] = f"sha256:{digest}"
        text = json.dumps(tables, sort_keys=True, default=_json_default, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def month_of(self, date: dt.date) -> float:
        """Simulation time (months since the start) of a calendar date."""
        return date_to_months(self.scenario.start, date)


# -- calendar -----------------------------------------------------------------

def _days_in_month(year: int, month: int) -> int:
    nxt = dt.date(year + month // 12, month % 12 + 1, 1)
    return (nxt - dt.timedelta(days=1)).day


def date_to_months(start: dt.date, date: dt.date) -> float:
    """Months from ``start`` to ``date``: whole calendar months plus the fraction of days.

    Month ``m`` of the simulation is the calendar month ``m`` months after the
    start's month; the start itself lies at a fraction of month 0.
    """
    whole = (date.year - start.year) * 12 + (date.month - start.month)
    frac_date = (date.day - 1) / _days_in_month(date.year, date.month)
    frac_start = (start.day - 1) / _days_in_month(start.year, start.month)
    return whole + frac_date - frac_start


def month_end(start: dt.date, month: int) -> dt.date:
    """The last day of simulation month ``month``."""
    index = start.year * 12 + start.month - 1 + month
    year, month0 = divmod(index, 12)
    return dt.date(year, month0 + 1, _days_in_month(year, month0 + 1))


# -- writing back ---------------------------------------------------------------

def _file_tables(model: BaseModel) -> Any:
    """Dump a model as the tables of a scenario file (distributions as written)."""
    if isinstance(model, Fixed) or getattr(model, "dist", None) is not None:
        return to_file_value(model)
    out: dict[str, Any] = {}
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if value is None:
            continue
        key = field.alias or name
        out[key] = _file_value(value)
    return out


def _file_value(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return _file_tables(value)
    if isinstance(value, dict):
        return {k: _file_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_file_value(v) for v in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)  # 5_000_000, not 5000000.0: the file reads as the user wrote it
    return value


def _json_default(value: Any) -> str:
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(f"not serialisable: {value!r}")


# -- loading --------------------------------------------------------------------

def _read_toml(path: Path, label: str) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise InputError([Problem(label, "", "file not found")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError([Problem(label, "", f"not valid TOML: {exc}")]) from None
    except OSError as exc:
        raise InputError([Problem(label, "", f"cannot be read: {exc.strerror}")]) from None


def _deep_merge(into: dict, update: dict, provenance: dict[str, str], label: str,
                prefix: str = "") -> None:
    for key, value in update.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value, provenance, label, path + ".")
        else:
            into[key] = copy.deepcopy(value)
            provenance[path] = label
            # A replaced table forgets where its old leaves came from.
            for old in [p for p in provenance if p.startswith(path + ".")]:
                provenance[old] = label


def _resolve_chain(path: Path, labels: dict[Path, str], stack: list[Path],
                   provenance: dict[str, str]) -> dict[str, Any]:
    path = path.resolve()
    label = labels.setdefault(path, _label(path))
    if path in stack:
        chain = " -> ".join(labels[p] for p in [*stack, path])
        raise InputError([Problem(labels[stack[-1]], "base", f"inheritance cycle: {chain}")])
    data = _read_toml(path, label)
    base = data.pop("base", None)
    merged: dict[str, Any] = {}
    if base is not None:
        if not isinstance(base, str):
            raise InputError([Problem(label, "base", f"must be a file name, got {base!r}")])
        base_path = path.parent / base
        if not base_path.exists():
            raise InputError([Problem(label, "base", f"base file not found: {base}")])
        merged = _resolve_chain(base_path, labels, [*stack, path], provenance)
    _deep_merge(merged, data, provenance, label)
    return merged


def _label(path: Path) -> str:
    """How a file is named in messages: relative to the working directory if possible."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``dotted.path=value``; the value is read as TOML (1.4, true, "x", 2020-01-01)."""
    if "=" not in text:
        raise InputError([Problem("--set", text, "expected dotted.path=value")])
    path, raw = (part.strip() for part in text.split("=", 1))
    if not path:
        raise InputError([Problem("--set", text, "expected dotted.path=value")])
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word such as graduatoria is meant as a string
    return path, value


def apply_overrides(tables: dict[str, Any], overrides: list[str],
                    provenance: dict[str, str]) -> None:
    """Set each ``dotted.path=value`` in the merged tables (creating tables as needed)."""
    problems = []
    for text in overrides:
        try:
            path, value = parse_override(text)
        except InputError as exc:
            problems.extend(exc.problems)
            continue
        keys = path.split(".")
        node = tables
        for i, key in enumerate(keys[:-1]):
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                problems.append(Problem("--set", path,
                                        f"{'.'.join(keys[:i + 1])} is not a table"))
                break
            node = child
        else:
            node[keys[-1]] = value
            provenance[path] = "--set"
    if problems:
        raise InputError(problems)


def load_scenario(path: str | Path, overrides: list[str] | None = None) -> Scenario:
    """Load, merge, override and validate a scenario file; raise :class:`InputError`."""
    path = Path(path)
    provenance: dict[str, str] = {}
    labels: dict[Path, str] = {}
    tables = _resolve_chain(path, labels, [], provenance)
    top_label = labels[path.resolve()]
    if "sweep" in tables:
        raise InputError([Problem(top_label, "sweep",
                                  "this is a sweep file: run it with `fesr-sim sweep`")])
    apply_overrides(tables, overrides or [], provenance)
    return validate_tables(tables, top_label, provenance, path.resolve().parent, path)


def validate_tables(tables: dict[str, Any], top_label: str, provenance: dict[str, str],
                    folder: Path, source: Path | None = None) -> Scenario:
    """Validate merged tables into a :class:`Scenario`, collecting every problem."""
    from . import checks, pipeline  # local: both import this module

    def where(field_path: str) -> str:
        parts = field_path.split(".")
        for n in range(len(parts), 0, -1):
            label = provenance.get(".".join(parts[:n]))
            if label:
                return label
        return top_label

    problems: list[Problem] = []
    scenario = None
    try:
        scenario = Scenario.model_validate(tables)
    except ValidationError as exc:
        problems.extend(_pydantic_problems(exc, tables, where))
    problems.extend(checks.cross_field_problems(tables, where))
    if scenario is not None and not problems:
        scenario._source = source
        try:
            pipeline.attach_pipelines(scenario, folder, where)
        except InputError as exc:
            problems.extend(exc.problems)
    if problems:
        raise InputError(_unique(problems))
    return scenario


def _unique(problems: list[Problem]) -> list[Problem]:
    seen, out = set(), []
    for p in problems:
        key = (p.file, p.field, p.message)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


# -- pydantic errors as sentences ---------------------------------------------------

_TYPE_WORDS = {
    "float_type": "a number", "int_type": "a whole number", "int_from_float": "a whole number",
    "string_type": "a text in quotes", "bool_type": "true or false", "date_type": "a date "
    "(YYYY-MM-DD, no quotes)", "list_type": "a list [...]", "dict_type": "a table",
    "model_type": "a table", "model_attributes_type": "a table",
}


def _fields_at(loc: tuple) -> list[str]:
    """Names of the fields allowed at a location of the schema (for "did you mean")."""
    model: Any = Scenario
    for part in loc:
        if model is None:
            return []
        if isinstance(part, int):
            continue
        if model is Scenario and part == "lines":
            model = "lines"
            continue
        if model == "lines":
            model = Line
            continue
        fields = getattr(model, "model_fields", {})
        if part not in fields:
            return []
        annotation = fields[part].annotation
        model = _model_in(annotation)
    if model is None or model == "lines":
        return []
    return [f.alias or n for n, f in model.model_fields.items()]


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:g}"
    if isinstance(value, dict):
        return "a table"
    return repr(value) if not isinstance(value, dt.date) else value.isoformat()


def _pydantic_problems(exc: ValidationError, tables: dict, where) -> list[Problem]:
    problems = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        # Drop the discriminator tag pydantic puts in union locations.
        loc = tuple(p for p in loc if p not in ("fixed", "uniform", "triangular", "lognormal",
                                                "empirical", "function-after[_share(), float]"))
        kind = error["type"]
        value = error.get("input")
        if kind == "extra_forbidden":
            *parent, key = loc
            field_path = ".".join(str(p) for p in loc)
            choices = _fields_at(tuple(parent))
            close = difflib.get_close_matches(str(key), choices, n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else (
                f"; allowed: {', '.join(choices)}" if choices else "")
            problems.append(Problem(where(field_path), field_path, f"unknown key{hint}"))
            continue
        field_path = ".".join(str(p) for p in loc)
        if kind == "missing":
            message = "required, but missing"
        elif kind == "value_error":
            message = str(error["msg"]).removeprefix("Value error, ")
        elif kind in _TYPE_WORDS:
            message = f"expected {_TYPE_WORDS[kind]}, got {_describe(value)}"
        elif kind == "literal_error":
            expected = error.get("ctx", {}).get("expected", "")
            message = f"must be one of {expected.replace(' or ', ', ')}, got {_describe(value)}"
        elif kind == "union_tag_invalid":
            message = ("unknown distribution: 'dist' must be one of 'uniform', 'triangular', "
                       f"'lognormal', 'empirical', got {_describe(error['ctx']['tag'])}")
        elif kind == "union_tag_not_found":
            message = "a distribution table needs a 'dist' key (e.g. dist = \"uniform\")"
        elif kind == "string_pattern_mismatch":
            message = ("only letters, digits, '_', '-' and '.' are allowed, "
                       f"got {_describe(value)}")
        elif kind in ("too_short", "too_long"):
            message = str(error["msg"]).replace("List", "list").replace("Dictionary", "table")
            message = message.replace("Value should", "must").replace("String should", "must")
            message = f"{message[0].lower()}{message[1:]}"
        else:
            message = f"{error['msg']}, got {_describe(value)}"
        problems.append(Problem(where(field_path), field_path, message))
    return problems
