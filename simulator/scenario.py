"""Scenario files: schema, loading, ``base =`` inheritance, overrides and hash.

A scenario is a TOML file (format: ``shared/scenario-format.toml``) that
describes one fund: its endowment and dates, and per line the eligibility
bounds, the application stream, the instrument (loan/grant mix), the
disbursement in tranches and the risks.  Money is in euros in the file and
in these models; the model converts to integer cents.

Loading runs in four steps, each collecting every problem it finds:

1. read the file and its ``base`` chain, deep-merging tables (a later file
   overrides an earlier one; lists, and distributions written as tables with
   ``dist``, are replaced whole) and remembering which file set each value,
   so an error names the file the bad value came from;
2. apply ``--set dotted.path=value`` overrides: the path must name a field of
   the schema (and an existing line), the value is read as TOML and coerced
   to the field's type where the intent is clear (``scenario.name=2019``);
3. validate the merged tables against the pydantic models below (types,
   ranges, unknown keys with a "did you mean");
4. cross-field checks (allocations sum to the endowment, tranche shares sum
   to 1, dates ordered, grace and term multiples of the period; a rule that
   ties values from several files is reported on the value written last) and
   the pipeline CSV files (path relative to the file that names them).

A value refused in step 3 is not checked again in step 4: one mistake, one
message.

The canonical hash identifies the resolved content: the same scenario gives
the same hash whatever the key order, the inheritance used or where the
files lie (a pipeline file counts by its content, not its path).
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import difflib
import hashlib
import json
import math
import re
import tomllib
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import tomli_w
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
)

from . import checks
from .distributions import DISTRIBUTIONS, Distribution, Fixed, Uniform, to_file_value
from .errors import InputError, Problem

_CONFIG = ConfigDict(extra="forbid", strict=True, populate_by_name=True, allow_inf_nan=False)


def _num_text(value: float) -> str:
    """A number as a person writes it in a file: 5000000, 1.4, 0.035."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _share(value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"must be between 0 and 1, got {_num_text(value)}")
    return value


def _annual_rate(value: float) -> float:
    if not -0.2 <= value <= 1.0:
        raise ValueError(f"must be an annual rate between -0.2 and 1 (e.g. 0.035 = 3.5 %), "
                         f"got {_num_text(value)}")
    return value


def _positive(value: float) -> float:
    if not value > 0:
        raise ValueError(f"must be greater than 0, got {_num_text(value)}")
    return value


def _non_negative(value: float) -> float:
    if not value >= 0:
        raise ValueError(f"must be 0 or more, got {_num_text(value)}")
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
    # TOML integers have 64 bits with a sign: a seed is written back as it was read.
    seed: int = Field(default=20181015, ge=0, lt=2**63,
                      description="master seed of the random streams (0 to 2**63 - 1)")


class Reallocation(BaseModel):
    """[[fund.reallocations]]: move uncommitted resources between lines at a date."""

    model_config = _CONFIG
    date: dt.date
    from_: str = Field(alias="from")
    to: str
    amount: Literal["all_uncommitted"] | float = "all_uncommitted"

    @field_validator("amount", mode="before")
    @classmethod
    def _amount(cls, value: Any) -> Any:
        if value == "all_uncommitted":
            return value
        if isinstance(value, int | float) and not isinstance(value, bool) \
                and math.isfinite(value) and value > 0:
            return float(value)
        hint = _did_you_mean(value, ["all_uncommitted"], listing=False) \
            if isinstance(value, str) else ""
        raise ValueError('must be "all_uncommitted" or an amount in euros greater than 0, '
                         f"got {_describe(value)}{hint}")


class Fees(BaseModel):
    """[fund.fees]: the manager's remuneration (Delegated Reg. 480/2014 Art. 13).

    Loan part: ``base_rate`` per year of the contributions paid into the
    instrument plus ``performance_rate`` per year of the loans paid to final
    recipients, charged month by month, never past ``cap`` x contributions.
    Grant part: ``grant_rate`` per year of the grants paid, never past
    ``grant_cap`` x grants paid. All values "to be verified" (DOMAIN.md).
    """

    model_config = _CONFIG
    paid_from_fund: bool = Field(True, description="false: the Region pays the fees "
                                 "outside the fund")
    base_rate: Share = Field(0.005, description="per year, of contributions paid in")
    performance_rate: Share = Field(0.01, description="per year, of loans paid to final "
                                    "recipients")
    cap: Share = Field(0.08, description="lifetime cap of the loan part, share of the "
                       "contributions (0.07 under the 2021-2027 rules)")
    grant_rate: Share = Field(0.005, description="grant part: per year, of grants paid")
    grant_cap: Share = Field(0.06, description="grant part: lifetime cap, share of the "
                             "grants paid")


class Payments(BaseModel):
    """[fund.payments]: the programme's contribution paid into the fund in tranches.

    Reg. 1303/2013 Art. 41 (to be verified): a first request of at most 25 %
    of the committed contribution; the next once 60 % of what was paid in has
    been spent, later ones once 85 % has. Modelled per line: each line's
    allocation is paid in by the same rule, and "spent" means paid to final
    recipients plus fees paid from the fund. Off by default: the whole
    allocation is in the fund from the start.
    """

    model_config = _CONFIG
    phased: bool = Field(False, description="true: pay the contribution in tranches")
    first_share: Share = Field(0.25, description="first tranche, share of the allocation")
    next_share: Share = Field(0.25, description="each later tranche, share of the allocation")
    second_threshold: Share = Field(0.6, description="share of what was paid in that must "
                                    "be spent before the second tranche")
    later_threshold: Share = Field(0.85, description="the same for the third and later "
                                   "tranches")


class FundingSwitch(BaseModel):
    """A change of funding sources at a date (e.g. FSC refinancing, Nov 2020)."""

    model_config = _CONFIG
    date: dt.date
    shares: dict[Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")], Share]


class Funding(BaseModel):
    """[fund.funding]: which public budgets each euro paid out comes from.

    Default: POR FESR Piemonte 2014-2020 co-financing, 50 % EU, 35 % State,
    15 % Region (the national split is to be verified). ``switches`` change the
    shares from a date on; ``eligible`` lists the sources whose payments count
    for the programme's closure (default: those of the initial shares).
    """

    model_config = _CONFIG
    shares: dict[Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")], Share] = Field(
        default_factory=lambda: {"EU": 0.5, "State": 0.35, "Region": 0.15})
    switches: list[FundingSwitch] = Field(default_factory=list)
    eligible: list[str] | None = None

    def sources(self) -> list[str]:
        """Every source named, in order of first appearance."""
        names = list(self.shares)
        for switch in self.switches:
            names += [n for n in switch.shares if n not in names]
        return names

    def eligible_sources(self) -> list[str]:
        return list(self.eligible) if self.eligible is not None else list(self.shares)


class Fund(BaseModel):
    """[fund]: endowment, EU dates, revolving cut-off, treasury and fees."""

    model_config = _CONFIG
    endowment: Euros
    eligibility_end: dt.date
    revolving_until: dt.date | None = None
    treasury_rate: Rate = 0.0
    reallocations: list[Reallocation] = Field(default_factory=list)
    fees: Fees = Field(default_factory=Fees)
    payments: Payments = Field(default_factory=Payments)
    funding: Funding = Field(default_factory=Funding)
    legacy_years: PositiveMonths = Field(
        8, description="years after eligibility_end during which returns must keep serving "
        "the programme's aims (Reg. 1303/2013 Art. 45, 'legacy'); a horizon that ends "
        "earlier draws a warning and cuts legacy_period_returns_eur short")


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


def _margin(value: int) -> int:
    if not 0 <= value <= 5000:
        raise ValueError("must be a margin in basis points between 0 and 5000 "
                         f"(100 = 1 %), got {value}")
    return value


class StateAid(BaseModel):
    """[state_aid]: how the aid of a project is priced (ESL) and checked (de minimis).

    Reference rate = EU base rate + margin, discount rate = base rate + 100 bp,
    both as in force at the commitment date (communication 2008/C 14/02),
    read from a dated rates file (``simulator/data/reference_rates.toml`` by
    default).
    """

    model_config = _CONFIG
    rates_file: str | None = Field(
        None, description="a rates file to use instead of the shipped "
        "simulator/data/reference_rates.toml (path relative to the scenario file; same "
        "format): dated EU base rates and the margin table")
    rating: str | None = Field(
        None, description="the beneficiaries' rating in the margin table (strong, good, "
        "satisfactory, weak, bad, or a named case such as sme_no_rating, no_credit_history); "
        "default: the rates file's default (SMEs without a rating, +100 bp)")
    collateral: str = Field(
        "normal", description="collateral level of the margin table: high, normal or low")
    margin_bp: Annotated[int, AfterValidator(_margin)] | None = Field(
        None, description="margin over the base rate in basis points, instead of rating "
        "and collateral")
    strict: bool = Field(
        False, description="apply each line's over_ceiling rule (reduce or reject aid over "
        "the de minimis ceiling); false: only flag it (fesr-sim run --strict sets it)")


class LineStateAid(BaseModel):
    """[lines.X.state_aid]: the state-aid regime of the line's aid and its ceiling rule."""

    model_config = _CONFIG
    regime: Literal["auto", "de_minimis_2013", "de_minimis_2023", "gber", "none"] = Field(
        "auto", description="auto: de minimis by the commitment date (Reg. 1407/2013, "
        "200,000 EUR over three fiscal years, until 31 Dec 2023; Reg. 2023/2831, 300,000 EUR "
        "over three rolling years, from 1 Jan 2024); de_minimis_2013 or de_minimis_2023 "
        "whatever the date; gber or none: no ceiling")
    prior_aid: Distribution = Field(
        Fixed(value=0.0), description="de minimis aid each beneficiary already received in "
        "the period, euros: a number or a distribution (drawn per beneficiary)")
    over_ceiling: Literal["flag", "reduce", "reject"] = Field(
        "flag", description="what a strict run does with aid over the ceiling: flag (keep "
        "it, mark it), reduce (lower the grant, then the fund's loan, until it fits) or "
        "reject (do not commit the application)")


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
    state_aid: LineStateAid = Field(default_factory=LineStateAid)


class Scenario(BaseModel):
    """A fully resolved scenario (after inheritance and overrides)."""

    model_config = _CONFIG
    scenario: ScenarioInfo
    fund: Fund
    lines: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9_]+$")], Line] = Field(min_length=1)
    state_aid: StateAid = Field(default_factory=StateAid)

    # Not part of the file: where it was loaded from, the pipeline rows, the rate table.
    _source: Path | None = PrivateAttr(default=None)
    _pipelines: dict[str, Any] = PrivateAttr(default_factory=dict)
    _pipeline_digests: dict[str, str] = PrivateAttr(default_factory=dict)
    _rates: Any = PrivateAttr(default=None)
    _rates_digest: str | None = PrivateAttr(default=None)

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

    def rate_table(self):
        """The reference-rate table of the scenario (:class:`~simulator.state_aid.RateTable`).

        Read once, when the scenario is loaded: every loan of every replication
        is priced with this object.
        """
        if self._rates is None:
            from . import state_aid
            name = self.state_aid.rates_file
            self._rates = state_aid.load_rate_table(Path(name) if name else None)
        return self._rates

    def reference_margin_bp(self) -> int:
        """Margin over the base rate of the reference rate, in basis points."""
        settings = self.state_aid
        if settings.margin_bp is not None:
            return settings.margin_bp
        return self.rate_table().margin_bp(settings.rating, settings.collateral)

    def warnings(self) -> list[Problem]:
        """What is valid but probably not what the user wants (the run goes ahead)."""
        return checks.scenario_warnings(self)

    def hash(self) -> str:
        """Canonical SHA-256 of the resolved content (key order and paths do not count)."""
        tables = self.to_dict()
        for line_id, digest in self._pipeline_digests.items():
            tables["lines"][line_id]["applications"]["pipeline"] = f"sha256:{digest}"
        # The rates file counts by its content, the shipped one included.
        if self._rates_digest is None:
            from . import state_aid
            name = self.state_aid.rates_file
            self._rates_digest = state_aid.file_digest(Path(name) if name else None)
        tables["state_aid"]["rates_file"] = f"sha256:{self._rates_digest}"
        text = json.dumps(tables, sort_keys=True, default=_json_default, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def __eq__(self, other: object) -> bool:
        """Equal content (the canonical hash), wherever the files were loaded from."""
        if not isinstance(other, Scenario):
            return NotImplemented
        return self.hash() == other.hash()

    __hash__ = None  # type: ignore[assignment]  # mutable: not usable as a dict key

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
    except UnicodeDecodeError:
        raise InputError([Problem(label, "", "not valid TOML: the file is not UTF-8 text")]) \
            from None
    except OSError as exc:
        raise InputError([Problem(label, "", f"cannot be read: {exc.strerror}")]) from None


def _is_distribution(value: Any) -> bool:
    return isinstance(value, dict) and "dist" in value


def _record(provenance: dict[str, str], path: str, label: str) -> None:
    """Note that ``label`` set ``path`` now (re-inserted: the order is the writing order)."""
    for old in [p for p in provenance if p == path or p.startswith(path + ".")]:
        del provenance[old]
    provenance[path] = label


def _deep_merge(into: dict, update: dict, provenance: dict[str, str], label: str,
                prefix: str = "") -> None:
    """Merge ``update`` into ``into``: tables merge key by key, any other value replaces.

    A distribution written as a table with ``dist`` is one value, not a table to
    merge: ``cost = {dist = "uniform", ...}`` replaces an inherited lognormal
    whole (a table without ``dist`` still changes single parameters).
    """
    for key, value in update.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(into.get(key), dict) \
                and not _is_distribution(value):
            _deep_merge(into[key], value, provenance, label, path + ".")
        else:
            into[key] = copy.deepcopy(value)
            _record(provenance, path, label)


@dataclass
class _Chain:
    """What reading a file and its ``base`` chain gives."""

    tables: dict[str, Any]
    provenance: dict[str, str]
    folders: dict[str, Path]  # file label -> its folder (relative paths start there)


def _read_chain(path: Path) -> _Chain:
    chain = _Chain({}, {}, {})
    stack: list[Path] = []
    path = path.resolve()
    files: list[tuple[str, dict[str, Any]]] = []
    while True:
        label = _label(path)
        if path in stack:
            names = " -> ".join([*(_label(p) for p in stack), label])
            raise InputError([Problem(_label(stack[-1]), "base", f"inheritance cycle: {names}")])
        stack.append(path)
        data = _read_toml(path, label)
        chain.folders[label] = path.parent
        base = data.pop("base", None)
        files.append((label, data))
        if base is None:
            break
        if not isinstance(base, str) or not base.strip():
            raise InputError([Problem(label, "base",
                                      f"must be a file name in quotes, got {_describe(base)}")])
        base_path = (path.parent / base).resolve()
        if not base_path.is_file():
            raise InputError([Problem(label, "base",
                                      f"base file not found: {base} (looked for {base_path})")])
        path = base_path
    for label, data in reversed(files):  # the root base first, the file itself last
        _deep_merge(chain.tables, data, chain.provenance, label)
    return chain


def _label(path: Path) -> str:
    """How a file is named in messages: relative to the working directory if possible."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``dotted.path=value``; the value is read as TOML (1.4, true, "x", 2020-01-01).

    A value that is not valid TOML is taken as text (``procedure=graduatoria``).
    """
    if "=" not in text:
        raise InputError([Problem("--set", text, "expected dotted.path=value")])
    path, raw = (part.strip() for part in text.split("=", 1))
    if not path or any(not key for key in path.split(".")):
        raise InputError([Problem("--set", text, "expected dotted.path=value")])
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word such as graduatoria is meant as a string
    return path, value


# -- the schema as a tree, for overrides and messages ---------------------------------

@dataclass(frozen=True)
class _ListOf:
    item: Any


@dataclass(frozen=True)
class _TableOf:
    item: Any


_DIST = "distribution"
_DIST_MODELS: dict[str, type[BaseModel]] = {
    get_args(m.model_fields["dist"].annotation)[0]: m for m in DISTRIBUTIONS}


def _kind(annotation: Any) -> Any:
    """What a field holds: a model, ``_ListOf``, ``_TableOf``, ``_DIST`` or None (a value)."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _kind(args[0])
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if origin is list:
        return _ListOf(_kind(args[0]))
    if origin is dict:
        return _TableOf(_kind(args[1]))
    if origin in (Union, types.UnionType):
        if Fixed in args:
            return _DIST
        for arg in args:
            kind = _kind(arg)
            if kind is not None:
                return kind
    return None


def _field(model: type[BaseModel], key: Any) -> Any:
    for name, field in model.model_fields.items():
        if key in (name, field.alias):
            return field
    return None


def _keys(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]


def _did_you_mean(key: str, choices: list[str], listing: bool = True) -> str:
    """`` (did you mean 'x'?)`` for a close choice, else the allowed ones (if ``listing``)."""
    close = difflib.get_close_matches(key, choices, n=1, cutoff=0.6) or \
        [c for c in choices if c.lower() == key.lower()]
    if not close and len(key) >= 3:  # grace -> grace_months, public_loan -> public_loan_share
        close = [c for c in choices if c.startswith(key) or key.startswith(c)][:2]
        close = close if len(close) == 1 else []
    if close:
        return f" (did you mean '{close[0]}'?)"
    return f"; allowed: {', '.join(choices)}" if listing and choices else ""


def _override_target(tables: dict[str, Any], keys: list[str]) -> tuple[Any, str | None]:
    """Check an override path against the schema and the tables.

    Returns the annotation of the field it sets (None if unknown) and a
    message if the path cannot be set.
    """
    kind: Any = Scenario
    node: Any = tables
    annotation: Any = None
    for i, key in enumerate(keys):
        parent = ".".join(keys[:i]) or "the scenario"
        if kind == _DIST:
            if not isinstance(node, dict):
                return None, (f"{parent} is not a distribution table: set it whole, e.g. "
                              f'{parent}={{dist="uniform", low=1, high=2}}')
            if key == "values" and len(keys) > i + 1:
                return None, f"set the whole list: {parent}.values=[...]"
            return None, None  # a parameter of a distribution: checked with the scenario
        if isinstance(kind, _TableOf):
            names = list(node) if isinstance(node, dict) else []
            if key not in names:
                return None, f"no line '{key}' (lines: {', '.join(names)})" + \
                    _did_you_mean(key, names, listing=False)
            kind, node, annotation = kind.item, node[key], None
        elif isinstance(kind, _ListOf):
            size = len(node) if isinstance(node, list) else 0
            if not key.isdigit() or int(key) >= size:
                return None, (f"{parent} has {size} item(s): use an index from 0 to {size - 1}"
                              if size else f"{parent} is empty: set the whole list")
            kind, node, annotation = kind.item, node[int(key)], None
        elif isinstance(kind, type) and issubclass(kind, BaseModel):
            field = _field(kind, key)
            if field is None:
                return None, f"unknown field{_did_you_mean(key, _keys(kind))}"
            annotation, kind = field.annotation, _kind(field.annotation)
            node = node.get(key) if isinstance(node, dict) else None
        else:
            return None, f"{parent} is a value, not a table"
    return annotation, None


def _coerce(value: Any, raw: str, annotation: Any) -> Any:
    """Bring a ``--set`` value to the type of its field where the intent is clear."""
    args = [a for a in (get_args(annotation) or (annotation,)) if a is not type(None)]
    texts = all(a is str or (get_origin(a) is Literal and all(isinstance(v, str)
                                                               for v in get_args(a)))
                for a in args)
    if texts and args and not isinstance(value, str):
        return raw.strip().strip("'\"")  # scenario.name=2019 is the text "2019"
    if int in args and isinstance(value, float) and value.is_integer():
        return int(value)  # horizon_months=120.0
    if dt.date in args and isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            return value
    return value


def apply_overrides(tables: dict[str, Any], overrides: list[str],
                    provenance: dict[str, str]) -> None:
    """Set each ``dotted.path=value`` in the merged tables (creating tables as needed).

    The path must name a field of the schema (and an existing line or list
    item); the value is coerced to the field's type where that is unambiguous.
    """
    problems = []
    for text in overrides:
        try:
            path, value = parse_override(text)
        except InputError as exc:
            problems.extend(exc.problems)
            continue
        keys = path.split(".")
        annotation, error = _override_target(tables, keys)
        if error:
            problems.append(Problem("--set", path, error))
            continue
        value = _coerce(value, text.split("=", 1)[1], annotation)
        node: Any = tables
        for key in keys[:-1]:
            if isinstance(node, list):
                node = node[int(key)]
            else:
                child = node.get(key)
                if not isinstance(child, dict | list):
                    child = node[key] = {}
                node = child
        if isinstance(node, list):
            node[int(keys[-1])] = value
        else:
            node[keys[-1]] = value
        _record(provenance, path, "--set")
    if problems:
        raise InputError(problems)


def load_scenario(path: str | Path, overrides: list[str] | None = None) -> Scenario:
    """Load, merge, override and validate a scenario file; raise :class:`InputError`.

    Every problem found is reported at once, each naming the file that set the
    value, the dotted field path, what is expected and what was found.
    """
    path = Path(path)
    chain = _read_chain(path)
    top_label = _label(path.resolve())
    if "sweep" in chain.tables:
        raise InputError([Problem(top_label, "sweep",
                                  "this is a sweep file: run it with `fesr-sim sweep`")])
    apply_overrides(chain.tables, list(overrides or []), chain.provenance)
    return validate_tables(chain.tables, top_label, chain.provenance, path.resolve().parent,
                           path, folders=chain.folders)


def validate_tables(tables: dict[str, Any], top_label: str, provenance: dict[str, str],
                    folder: Path, source: Path | None = None,
                    folders: dict[str, Path] | None = None) -> Scenario:
    """Validate merged tables into a :class:`Scenario`, collecting every problem.

    ``provenance`` maps dotted paths to the file that set them (in writing
    order); ``folders`` maps those files to their folders, where relative
    pipeline paths start (``folder`` otherwise; the working directory for
    ``--set``).
    """
    from . import pipeline  # local: it imports this module

    where = checks.Provenance(provenance, top_label)
    problems, skip = _incomplete_lines(tables, where)
    scenario = None
    bad: set[str] = set(skip)
    try:
        scenario = Scenario.model_validate(tables)
    except ValidationError as exc:
        found, refused = _pydantic_problems(exc, where, skip)
        problems.extend(found)
        bad |= refused
    problems.extend(checks.cross_field_problems(tables, where, bad))

    def folder_of(field_path: str) -> Path:
        label = where(field_path)
        if label == "--set":
            return Path.cwd()
        return (folders or {}).get(label, folder)

    pipelines = pipeline.load_pipelines(tables, folder_of, where, bad)
    problems.extend(pipelines.problems)
    rates = _load_rates(tables, folder_of, where, bad)
    problems.extend(rates.problems)
    if problems or scenario is None:
        raise InputError(_unique(problems))
    scenario._source = source
    if rates.path is not None:
        # The resolved scenario names the file it read, wherever it is written back.
        scenario.state_aid.rates_file = str(rates.path)
    scenario._rates = rates.table
    scenario._rates_digest = rates.digest
    for line_id, frame in pipelines.frames.items():
        # The resolved scenario names the file it read, wherever it is written back.
        scenario.lines[line_id].applications.pipeline = str(pipelines.paths[line_id])
        scenario._pipelines[line_id] = frame
        scenario._pipeline_digests[line_id] = pipelines.digests[line_id]
    return scenario


@dataclass
class _Rates:
    """The rate table a scenario names, its file's digest, and what was wrong."""

    table: Any = None
    digest: str | None = None
    path: Path | None = None  # None: the shipped file
    problems: list[Problem] = dataclasses.field(default_factory=list)


def _load_rates(tables: dict[str, Any], folder_of, where: checks.Provenance,
                bad: set[str]) -> _Rates:
    """Read the rates file (``state_aid.rates_file`` or the shipped one) and check the
    rating, the collateral and the start date against it."""
    from . import state_aid

    read = checks.TableReader(tables, bad)
    out = _Rates()
    if read.is_bad("state_aid.rates_file"):
        return out
    name = read.text("state_aid.rates_file")
    if name is not None:
        path = (folder_of("state_aid.rates_file") / name).resolve()
        if not path.is_file():
            out.problems.append(Problem(where("state_aid.rates_file"), "state_aid.rates_file",
                                        f"rates file not found: {name} (looked for {path})"))
            return out
        try:
            out.table = state_aid.load_rate_table(path, label=_label(path))
        except InputError as exc:
            out.problems.extend(exc.problems)
            return out
        out.path = path
    else:
        out.table = state_aid.load_rate_table()
    out.digest = state_aid.file_digest(out.path)
    table = out.table
    shown_file = "the shipped rates file" if out.path is None else \
        f"the rates file {_label(out.path)}"

    rating = read.text("state_aid.rating")
    known = [*table.named_margins_bp, *table.rating_margins_bp]
    if rating is not None and rating not in known:
        out.problems.append(Problem(where("state_aid.rating"), "state_aid.rating",
                                    f"unknown rating {rating!r}"
                                    f"{_did_you_mean(rating, known, listing=False)}: use one "
                                    f"of {', '.join(known)} (from {shown_file})"))
    collateral = read.text("state_aid.collateral", "normal")
    if collateral is not None and collateral not in table.collateral and table.collateral:
        out.problems.append(Problem(where("state_aid.collateral"), "state_aid.collateral",
                                    f"must be one of {', '.join(map(repr, table.collateral))}, "
                                    f"got {collateral!r}"))
    start = read.date("scenario.start")
    if start is not None and table.valid_from and start < table.valid_from[0]:
        shown = "state_aid.rates_file" if name is not None else "scenario.start"
        out.problems.append(Problem(
            where(shown), shown,
            f"{shown_file} has no EU base rate before "
            f"{table.valid_from[0].isoformat()}, but scenario.start is {start.isoformat()}: "
            "add the rates in force from the start, or start later"))
    return out


_LINE_REQUIRED = ("allocation", "min_cost", "max_cost", "applications", "instrument")


def _incomplete_lines(tables: dict[str, Any], where: checks.Provenance,
                      ) -> tuple[list[Problem], set[str]]:
    """A line table lacking most required fields is a typo'd line id or a forgotten line.

    One message for it, instead of one per missing field.
    """
    lines = tables.get("lines")
    if not isinstance(lines, dict):
        return [], set()
    complete = [k for k, v in lines.items()
                if isinstance(v, dict) and all(r in v for r in _LINE_REQUIRED)]
    problems, skip = [], set()
    for line_id, line in lines.items():
        if not isinstance(line, dict):
            continue
        missing = [r for r in _LINE_REQUIRED if r not in line]
        if len(missing) < 2:
            continue
        path = f"lines.{line_id}"
        hint = _did_you_mean(line_id, complete, listing=False)
        if hint:
            message = f"no line '{line_id}'{hint}"
        else:
            message = f"incomplete line: missing {', '.join(missing)}"
        problems.append(Problem(where(path), path, message))
        skip.add(path)
    return problems, skip


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
_BOUNDS = {"greater_than": ("gt", "greater than {}"), "greater_than_equal": ("ge", "{} or more"),
           "less_than": ("lt", "less than {}"), "less_than_equal": ("le", "{} or less")}


def _walk(loc: tuple) -> tuple[list[str], Any]:
    """The field path shown for a pydantic location, and the schema kind found there.

    Pydantic puts union members and distribution tags in its locations
    (``cost.uniform.high``, ``amount.literal[...]``): they are not keys of the file.
    """
    kind: Any = Scenario
    shown: list[str] = []
    for part in loc:
        if kind == _DIST:
            if part in _DIST_MODELS:
                kind = _DIST_MODELS[part]
                continue
            kind = None
        elif isinstance(kind, _TableOf | _ListOf):
            kind = kind.item
        elif isinstance(kind, type) and issubclass(kind, BaseModel):
            field = _field(kind, part)
            kind = _kind(field.annotation) if field is not None else None
        elif isinstance(part, str) and ("[" in part or "(" in part):
            continue  # pydantic's name for a union member or a dict key
        else:
            kind = None
        shown.append(str(part))
    return shown, kind


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, float):
        return _num_text(value) if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dt.date):
        return value.isoformat()
    return repr(value)


def _pydantic_problems(exc: ValidationError, where: checks.Provenance,
                       skip: set[str]) -> tuple[list[Problem], set[str]]:
    """One sentence per pydantic error, and the field paths refused."""
    problems: list[tuple[str, str, str]] = []  # kind, path, message
    suggested: set[str] = set()
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        kind = error["type"]
        value = error.get("input")
        shown, _ = _walk(loc)
        field_path = ".".join(shown)
        if any(field_path == s or field_path.startswith(s + ".") for s in skip):
            continue
        if kind == "extra_forbidden":
            parent_shown, parent_kind = _walk(loc[:-1])
            choices = _keys(parent_kind) if isinstance(parent_kind, type) and \
                issubclass(parent_kind, BaseModel) else []
            hint = _did_you_mean(str(loc[-1]), choices)
            if hint.startswith(" (did you mean"):
                suggested.add(".".join([*parent_shown, hint.split("'")[1]]))
            problems.append((kind, field_path, f"unknown key{hint}"))
            continue
        if kind == "missing":
            message = "required, but missing"
        elif kind == "value_error":
            message = str(error["msg"]).removeprefix("Value error, ")
        elif kind in _TYPE_WORDS:
            message = f"expected {_TYPE_WORDS[kind]}, got {_describe(value)}"
            if isinstance(value, str) and re.fullmatch(r"-?[\d.]*\d,\d+", value.strip()):
                message += " (write numbers with '.' for decimals and no quotes)"
        elif kind in _BOUNDS:
            key, words = _BOUNDS[kind]
            limit = error.get("ctx", {}).get(key)
            message = f"must be {words.format(_describe(limit))}, got {_describe(value)}"
        elif kind == "finite_number":
            message = f"must be a finite number, got {_describe(value)}"
        elif kind == "literal_error":
            choices = re.findall(r"'([^']*)'", error.get("ctx", {}).get("expected", ""))
            hint = _did_you_mean(value, choices, listing=False) if isinstance(value, str) else ""
            message = (f"must be one of {', '.join(repr(c) for c in choices)}, "
                       f"got {_describe(value)}{hint}")
        elif kind == "union_tag_invalid":
            tag = error["ctx"]["tag"]
            names = [n for n in _DIST_MODELS if n != "fixed"]
            hint = _did_you_mean(str(tag), names, listing=False)
            field_path += ".dist"
            message = (f"unknown distribution, got {_describe(tag)}{hint}: use one of "
                       f"{', '.join(repr(n) for n in names)}, or a plain number")
        elif kind == "union_tag_not_found":
            message = "a distribution table needs a 'dist' key (e.g. dist = \"uniform\")"
        elif kind == "string_pattern_mismatch":
            message = ("only letters, digits, '_', '-' and '.' are allowed, "
                       f"got {_describe(value)}")
        elif kind == "string_too_short":
            message = f"must not be empty, got {_describe(value)}"
        elif kind in ("too_short", "too_long"):
            ctx = error.get("ctx", {})
            size = ctx.get("actual_length", 0)
            limit = ctx.get("min_length", ctx.get("max_length"))
            word = "at least" if kind == "too_short" else "at most"
            message = f"must have {word} {limit} item(s), got {size}"
        else:
            message = f"{error['msg']}, got {_describe(value)}"
        problems.append((kind, field_path, message))
    # A misspelt key is one mistake: "unknown key (did you mean 'x'?)" covers "x: missing".
    kept = [(path, message) for kind, path, message in problems
            if not (kind == "missing" and path in suggested)]
    return ([Problem(where(path), path, message) for path, message in kept],
            {path for path, _ in kept})
