"""Goal seeking on one parameter: "the largest grant share that still leaves 3 M€ in 2035".

``solve`` varies one number of a scenario (a dotted path, as with ``--set``)
between two bounds and looks for the value at which a *target* on a KPI
statistic is just met, e.g. ``fund_value_end_eur.p50 >= 3000000``:

* ``--maximize``: the largest value in the range that meets the target;
* ``--minimize``: the smallest one;
* neither: the value where the target starts (or stops) being met, when it
  is met at one end of the range only; with ``=`` the value where the
  statistic equals the target value.

Every evaluation runs the scenario with the same seed and the same
replication ids (common random numbers, see :mod:`simulator.decide`). The
statistic is then a deterministic function of the parameter, with no
sampling noise between two evaluations, and a root finder can work on it:
``scipy.optimize.brentq`` on the signed distance to the target for a number,
bisection for a whole number (months, counts). Brent's method needs no
smoothness, only a change of sign between the bounds (a KPI of a discrete
world, such as the number of projects financed, moves in steps: the search
then narrows the step down to the tolerance). Both bounds are evaluated
first; when the target is met at neither, the solver refuses and shows the
values it found, rather than guessing. It assumes the statistic moves in
one direction across the range (more grant, less left in the fund); the
table of evaluations shows whether it does.
"""

from __future__ import annotations

import difflib
import json
import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import numpy as np
import pandas as pd
from pydantic import BaseModel

from . import __version__
from .decide import (
    STATISTICS,
    Progress,
    kpi_statistic,
    run_kpis,
    stamp,
    toml_value,
    unit_of,
    value_text,
)
from .errors import InputError, Problem
from .metrics import KPI_DEFINITIONS
from .scenario import Scenario, load_scenario

Goal = Literal["maximize", "minimize"] | None

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt,
    "=": operator.eq,
}
_TARGET = re.compile(r"^\s*([A-Za-z0-9_]+)\s*\.\s*([A-Za-z0-9]+)\s*(>=|<=|==|=|>|<)\s*(.+?)\s*$")
_STAT_ALIASES = {"median": "p50", "average": "mean", "media": "mean", "mediana": "p50"}


# -- the target ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    """``KPI.STAT OP VALUE``, e.g. ``fund_value_end_eur.p50 >= 3000000``."""

    kpi: str
    statistic: str
    op: str
    value: float

    def __str__(self) -> str:
        return f"{self.kpi}.{self.statistic} {self.op} {value_text(self.value)}"

    def met(self, statistic: float) -> bool:
        if math.isnan(statistic):
            return False
        if self.op == "=":
            return math.isclose(statistic, self.value, rel_tol=1e-9, abs_tol=1e-9)
        return _OPS[self.op](statistic, self.value)

    def distance(self, statistic: float) -> float:
        """Signed distance to the target: > 0 where it is met (for ``=``: stat - value)."""
        tiny = 1e-12 * max(1.0, abs(self.value))
        if math.isnan(statistic):
            return -tiny  # undefined in every replication: not met
        margin = statistic - self.value if self.op in (">=", ">", "=") else \
            self.value - statistic
        if self.op == "=":
            return margin
        if self.met(statistic):
            return margin if margin > 0 else tiny
        return margin if margin < 0 else -tiny


def kpi_choices(scenario: Scenario) -> list[str]:
    """The KPI names of a scenario (``projects_financed_<line>`` for each of its lines)."""
    names = [f"projects_financed_{line}" for line in scenario.lines]
    return names + [k for k in KPI_DEFINITIONS if "<" not in k]


def parse_target(text: str, kpis: list[str]) -> Target:
    """Read ``KPI.STAT OP VALUE``; refuse an unknown KPI or statistic, listing the valid ones."""
    match = _TARGET.match(text)
    if not match:
        raise InputError([Problem("--target", text, 'expected "KPI.STAT >= VALUE", e.g. '
                                  '"fund_value_end_eur.p50 >= 3000000" (STAT: '
                                  f"{', '.join(STATISTICS)}; also <=, >, <, =)")])
    kpi, stat, op, raw = match.groups()
    stat = _STAT_ALIASES.get(stat.lower(), stat.lower())
    problems = []
    if kpi not in kpis:
        close = difflib.get_close_matches(kpi, kpis, n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        problems.append(Problem("--target", kpi, f"unknown KPI{hint}; KPIs: {', '.join(kpis)}"))
    if stat not in STATISTICS:
        problems.append(Problem("--target", stat, "unknown statistic; use one of "
                                f"{', '.join(STATISTICS)}"))
    try:
        value = float(raw.replace("_", ""))
        if not math.isfinite(value):
            raise ValueError
    except ValueError:
        problems.append(Problem("--target", raw, "the target value must be a number, "
                                "e.g. 3000000 or 3e6 (euros, not M€)"))
        value = math.nan
    if problems:
        raise InputError(problems)
    return Target(kpi, stat, "=" if op == "==" else op, value)


# -- the parameter -------------------------------------------------------------------------------

def _numeric_kind(annotation: Any) -> str | None:
    """``"int"``, ``"float"`` or None for the annotation of a schema field."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _numeric_kind(args[0])
    if origin is Union or (origin is not None and type(None) in args):
        kinds = {_numeric_kind(a) for a in args if a is not type(None)}
        return "float" if "float" in kinds else ("int" if "int" in kinds else None)
    if annotation is bool:
        return None
    if annotation is int:
        return "int"
    if annotation is float:
        return "float"
    return None


def parameter_kind(scenario: Scenario, path: str) -> str | None:
    """``"int"`` or ``"float"`` for a numeric field, ``"other"`` for another, None if unknown."""
    node: Any = scenario
    keys = path.split(".")
    for key in keys[:-1]:
        if isinstance(node, dict):
            node = node.get(key)
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        elif isinstance(node, BaseModel):
            node = getattr(node, _attribute(type(node), key), None)
        else:
            return None
    if not isinstance(node, BaseModel):
        return None
    name = _attribute(type(node), keys[-1])
    field_info = type(node).model_fields.get(name)
    if field_info is None:
        return None
    return _numeric_kind(field_info.annotation) or "other"


def _attribute(model: type[BaseModel], key: str) -> str:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return name
    return key


def number_text(x: float, kind: str) -> str:
    return str(round(x)) if kind == "int" else toml_value(float(x))


# -- evaluations ---------------------------------------------------------------------------------

@dataclass
class Evaluation:
    """The KPI at one value of the parameter."""

    number: int
    x: float
    kpi: str
    statistic: float             # the target's statistic of the KPI
    mean: float
    p5: float
    p50: float
    p95: float
    met: bool
    scenario: Scenario = field(repr=False)
    kpis: pd.DataFrame = field(repr=False)


@dataclass
class Solution:
    """What :func:`solve` found: the value, the KPI there, every evaluation made."""

    path: str
    low: float
    high: float
    target: Target
    goal: Goal
    kind: str                    # "int" or "float"
    tol: float
    seed: int
    replications: int
    evaluations: list[Evaluation]
    found: Evaluation
    neighbour: Evaluation | None  # the closest evaluation on the other side of the target
    at_bound: bool = False        # the answer is a bound of the range (no search was needed)

    @property
    def value(self) -> float:
        return self.found.x

    def table(self) -> pd.DataFrame:
        """The evaluations, in the order made."""
        return evaluation_table(self.evaluations, self.path, self.target)

    def save(self, folder: str | Path, command: list[str] | None = None) -> Path:
        """Write ``evaluations.csv``, ``solution.json``, the scenario and KPIs at the value."""
        from .results import atomic_folder

        folder = Path(folder)
        if folder.exists():
            raise InputError([Problem("--out", str(folder),
                                      "already exists: choose another folder")])
        with atomic_folder(folder) as tmp:
            self.table().to_csv(tmp / "evaluations.csv", index=False, float_format="%.6f")
            (tmp / "scenario.toml").write_text(self.found.scenario.resolved_toml(),
                                               encoding="utf-8")
            self.found.kpis.to_parquet(tmp / "kpis.parquet", index=False)
            (tmp / "solution.json").write_text(
                json.dumps(self.manifest(command), indent=2, default=str) + "\n",
                encoding="utf-8")
        return folder

    def manifest(self, command: list[str] | None = None) -> dict[str, Any]:
        at = self.found
        return {
            "tool": "fesr-sim", "version": __version__, "kind": "solve",
            "parameter": self.path, "between": [self.low, self.high],
            "target": str(self.target), "goal": self.goal, "tolerance": self.tol,
            "value": at.x, "kpi_at_value": {"kpi": self.target.kpi, "mean": at.mean,
                                            "p5": at.p5, "p50": at.p50, "p95": at.p95},
            "other_side": self.neighbour.x if self.neighbour else None,
            "at_bound": self.at_bound, "seed": self.seed, "replications": self.replications,
            "evaluations": len(self.evaluations), "scenario_hash": at.scenario.hash(),
            "command": command or [],
        }


def evaluation_table(evaluations: list[Evaluation], path: str, target: Target) -> pd.DataFrame:
    return pd.DataFrame([
        {"evaluation": e.number, path: e.x, "kpi": target.kpi,
         "statistic": target.statistic, "value": e.statistic, "mean": e.mean, "p5": e.p5,
         "p50": e.p50, "p95": e.p95, "target_met": e.met} for e in evaluations])


class NotReachable(InputError):
    """The target cannot be met (or has no boundary) in the range: nothing to return."""

    def __init__(self, problems: list[Problem], target: Target,
                 evaluations: list[Evaluation]):
        super().__init__(problems)
        self.target = target
        self.evaluations = evaluations


class _Evaluator:
    """Run the scenario at a value of the parameter, once per value (cached)."""

    def __init__(self, make: Callable[[float], Scenario], target: Target, ids: list[int],
                 seed: int, run: Callable[..., pd.DataFrame],
                 on_evaluation: Callable[[Evaluation], None] | None):
        self.make, self.target, self.ids, self.seed = make, target, ids, seed
        self.run, self.on_evaluation = run, on_evaluation
        self.done: dict[float, Evaluation] = {}
        self.order: list[Evaluation] = []

    def __call__(self, x: float) -> Evaluation:
        x = float(x)
        if x not in self.done:
            scenario = self.make(x)
            kpis = self.run(scenario, self.ids, self.seed)
            values = kpis[self.target.kpi]
            stat = kpi_statistic(values, self.target.statistic)
            e = Evaluation(len(self.order) + 1, x, self.target.kpi, stat,
                           *(kpi_statistic(values, s) for s in STATISTICS),
                           met=self.target.met(stat), scenario=scenario, kpis=kpis)
            self.done[x] = e
            self.order.append(e)
            if self.on_evaluation is not None:
                self.on_evaluation(e)
        return self.done[x]

    def distance(self, x: float) -> float:
        return self.target.distance(self(x).statistic)


# -- the search ----------------------------------------------------------------------------------

def _refuse(message: str, evaluator: _Evaluator) -> NotReachable:
    return NotReachable([Problem("--target", str(evaluator.target), message)],
                        evaluator.target, list(evaluator.order))


def _describe_ends(lo: Evaluation, hi: Evaluation, target: Target) -> str:
    from .labels import kpi_value

    unit = unit_of(target.kpi)
    return (f"{target.kpi}.{target.statistic} is {kpi_value(lo.statistic, unit)} at "
            f"{lo.x:g} and {kpi_value(hi.statistic, unit)} at {hi.x:g}")


def _search_float(evaluator: _Evaluator, a: float, b: float, tol: float) -> float:
    from scipy.optimize import brentq

    return float(brentq(evaluator.distance, a, b, xtol=tol, maxiter=200))


def _search_int(evaluator: _Evaluator, a: int, b: int) -> float:
    """Bisection on whole numbers between a (one side of the target) and b (the other)."""
    side_a = evaluator.distance(a) > 0
    while abs(b - a) > 1:
        middle = (a + b) // 2
        if (evaluator.distance(middle) > 0) == side_a:
            a = middle
        else:
            b = middle
    return float(a if abs(evaluator.distance(a)) <= abs(evaluator.distance(b)) else b)


def _closest(evaluations: list[Evaluation], x: float, met: bool) -> Evaluation | None:
    side = [e for e in evaluations if e.met == met]
    return min(side, key=lambda e: (abs(e.x - x), e.number)) if side else None


def _endpoint_answer(lo: Evaluation, hi: Evaluation, goal: Goal, target: Target,
                     evaluator: _Evaluator) -> Evaluation | None:
    """The answer when it is a bound of the range, None when it lies inside; refuse else."""
    ends = _describe_ends(lo, hi, target)
    if target.op == "=":
        if lo.met or hi.met:
            return lo if lo.met else hi
        if not (lo.statistic - target.value) * (hi.statistic - target.value) < 0:
            raise _refuse(f"not reachable in the range: {ends}", evaluator)
        return None
    if not lo.met and not hi.met:
        raise _refuse(f"not reachable in the range: {ends} (assuming it moves in one "
                      "direction between the bounds); widen --between or change the target",
                      evaluator)
    if goal == "maximize":
        return hi if hi.met else None
    if goal == "minimize":
        return lo if lo.met else None
    if lo.met and hi.met:
        raise _refuse(f"met over the whole range ({ends}): there is no boundary to find; "
                      "use --maximize or --minimize to pick an end", evaluator)
    return None


def solve(scenario_path: str | Path, path: str, low: float, high: float, target: str,
          goal: Goal = None, replications: int | None = None, seed: int | None = None,
          tol: float | None = None, overrides: list[str] | tuple[str, ...] = (),
          workers: int | None = None, client: Any = None, progress: Progress | None = None,
          on_evaluation: Callable[[Evaluation], None] | None = None) -> Solution:
    """Find the value of ``path`` in [low, high] at which ``target`` is just met.

    Everything is checked before anything runs (the scenario at both bounds,
    the parameter, the target). Raise :class:`NotReachable` (an
    :class:`InputError`, with the evaluations made) when the target cannot
    be met in the range.
    """
    overrides = list(overrides)
    kind, base, parsed = _check_inputs(scenario_path, path, low, high, target, goal, tol,
                                       overrides)
    tol = (high - low) / 1000 if tol is None else tol
    seed = base.scenario.seed if seed is None else seed
    ids = list(range(base.scenario.replications if replications is None else replications))

    def make(x: float) -> Scenario:
        return _load_at(scenario_path, path, number_text(x, kind), overrides)

    def run(scenario: Scenario, run_ids: list[int], run_seed: int) -> pd.DataFrame:
        return run_kpis(scenario, run_ids, run_seed, workers, client, progress)

    evaluator = _Evaluator(make, parsed, ids, seed, run, on_evaluation)
    lo, hi = evaluator(low), evaluator(high)
    found = _endpoint_answer(lo, hi, goal, parsed, evaluator)
    at_bound = found is not None
    if found is None:
        met_side_low = parsed.op == "=" or lo.met
        if kind == "int":
            a, b = (low, high) if met_side_low else (high, low)
            root = _search_int(evaluator, round(a), round(b))
        else:
            root = _search_float(evaluator, low, high, tol)
        found = evaluator(root) if parsed.op == "=" else _closest(evaluator.order, root, True)
        assert found is not None
    neighbour = _closest(evaluator.order, found.x, not found.met) if parsed.op != "=" else None
    return Solution(path, low, high, parsed, goal, kind, tol, seed, len(ids),
                    list(evaluator.order), found, neighbour, at_bound)


def _load_at(scenario_path: str | Path, path: str, text: str, overrides: list[str]) -> Scenario:
    """The scenario with the parameter set to a value (problems with it named ``--vary``)."""
    try:
        return load_scenario(scenario_path, [*overrides, f"{path}={text}"])
    except InputError as exc:
        problems = [Problem("--vary" if p.file == "--set" and p.field.startswith(path)
                            else p.file, p.field, p.message + (
                                f" (at {path}={text})" if p.field != path else ""))
                    for p in exc.problems]
        raise InputError(problems) from None


def _check_inputs(scenario_path: str | Path, path: str, low: float, high: float,
                  target: str, goal: Goal, tol: float | None, overrides: list[str]
                  ) -> tuple[str, Scenario, Target]:
    """The kind of the parameter, the scenario and the target; every mistake at once."""
    problems: list[Problem] = []
    if not (np.isfinite(low) and np.isfinite(high)) or not low < high:
        problems.append(Problem("--between", f"{low:g} {high:g}",
                                "give the lower bound first, then a higher upper bound"))
    if tol is not None and not tol > 0:
        problems.append(Problem("--tol", f"{tol:g}", "must be greater than 0"))
    base = load_scenario(scenario_path, overrides)
    parsed = None
    try:
        parsed = parse_target(target, kpi_choices(base))
    except InputError as exc:
        problems.extend(exc.problems)
    if parsed is not None and goal is not None and parsed.op == "=":
        problems.append(Problem("--target", target, f"--{goal} needs a target with >=, >, "
                                "<= or <; '=' looks for the value where the KPI equals it"))
    kind = parameter_kind(base, path)
    if kind is None:  # not a field of the scenario: the loader says why
        try:
            _load_at(scenario_path, path, toml_value(float(low)), overrides)
        except InputError as exc:
            problems.extend(exc.problems)
        else:
            kind = "other"
    if kind == "other":
        problems.append(Problem("--vary", path, "is not a number: solve varies a number "
                                "between two bounds (use sweep for other values)"))
    elif kind == "int" and not (float(low).is_integer() and float(high).is_integer()):
        problems.append(Problem("--between", f"{low:g} {high:g}",
                                f"{path} takes whole numbers: give whole bounds"))
    elif kind is not None and np.isfinite(low) and np.isfinite(high) and low < high:
        for bound in (low, high):
            try:
                _load_at(scenario_path, path, number_text(bound, kind), overrides)
            except InputError as exc:
                problems.extend(exc.problems)
    if problems or parsed is None or kind is None:
        raise InputError(problems)
    return kind, base, parsed


def default_folder(scenario_name: str, root: Path = Path("results")) -> Path:
    folder = root / f"solve-{scenario_name}-{stamp()}"
    n = 2
    while folder.exists():
        folder = root / f"solve-{scenario_name}-{stamp()}-{n}"
        n += 1
    return folder

