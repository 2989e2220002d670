"""Sweeps: run every combination of a few parameter values and tabulate the KPIs.

A sweep file names a base scenario and, in a ``[sweep]`` table, dotted paths
to lists of values::

    base = "wecare_fesr_2018.toml"
    [sweep]
    "lines.A.instrument.grant_share" = [0.0, 0.1, 0.2, 0.3]
    "lines.A.risk.default_rate" = [0.01, 0.03, 0.05]

Every combination (here 4 x 3 = 12 *points*) is a variant of the base, made
exactly as ``--set path=value`` would make it; ``--vary path=v1,v2`` on the
command line adds (or replaces) a list. Besides ``base`` and ``[sweep]`` a
sweep file may override other values of the base, like any inheriting
scenario file.

Every point is checked before anything runs: an unknown path, an empty list
or a value the scenario refuses is reported, naming the sweep file and the
path, and nothing is computed.

All points run with the same seed and replication ids (common random
numbers, see :mod:`simulator.decide`), so the KPIs move with the parameters,
not with luck. Each finished point is stored in the sweep folder as
``points/<key>.parquet`` (its KPI table, one row per replication), where the
key is the scenario's canonical hash, the seed and the number of
replications: re-running a sweep reuses the finished points, an interrupted
sweep resumes where it stopped, and a point whose scenario changed gets a
new key and is computed again.

The sweep folder holds ``sweep.parquet`` and ``sweep.csv`` (one row per
point x KPI: the point number, one column per swept path with its value,
``kpi, label, unit, mean, p5, p50, p95, replications``, the seed and the
scenario hash) and
``sweep.json`` (what was run, and which points were reused).
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import json
import os
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from . import __version__
from .decide import (
    Progress,
    collect_kpis,
    parse_vary,
    toml_value,
    unique,
    value_text,
)
from .errors import InputError, Problem
from .executors import Run, runs_results
from .scenario import (
    Scenario,
    _label,
    _read_chain,
    _read_toml,
    apply_overrides,
    validate_tables,
)

SET = "--set"    # how the scenario loader labels values set by an override
VARY = "--vary"


@dataclass
class Point:
    """One combination of the swept values and the scenario it makes."""

    number: int                 # 1, 2, ... in the order of the combinations
    values: dict[str, Any]      # dotted path -> value
    scenario: Scenario

    def describe(self) -> str:
        return ", ".join(f"{path}={value_text(v)}" for path, v in self.values.items())

    @cached_property
    def scenario_hash(self) -> str:
        """``Scenario.hash`` of its scenario, computed once (a point's scenario is not changed)."""
        return self.scenario.hash()

    def key(self, seed: int, replications: int) -> str:
        """The cache key: scenario content, seed, number of replications and tool version.

        A new version may compute other numbers (it did when the random
        streams changed), so a sweep folder from an older one is not reused.
        """
        from . import __version__

        return f"{self.scenario_hash[:16]}-s{seed}-n{replications}-v{__version__}"


@dataclass
class Sweep:
    """A checked sweep: where it comes from, its lists of values and its points."""

    source: Path
    label: str
    dims: dict[str, list[Any]]
    origins: dict[str, str]      # dotted path -> the file or option that listed it
    points: list[Point]
    overrides: list[str] = field(default_factory=list)
    file_paths: list[str] = field(default_factory=list)  # the paths the file's [sweep] lists

    def default_folder(self, root: Path = Path("results")) -> Path:
        """``results/sweep-<file name>`` (without a ``sweep_`` prefix), plus the names
        of the paths ``--vary`` adds to the file's.

        Fixed (no timestamp): running the same sweep again, or with other
        values for the same paths, finds its finished points there.
        """
        name = "sweep-" + self.source.stem.removeprefix("sweep_").removeprefix("sweep-")
        varied = [p.rsplit(".", 1)[-1] for p in self.dims if p not in self.file_paths]
        if varied:
            name += "-" + "-".join(varied)
        return root / name


@dataclass
class SweepResult:
    """What :func:`run_sweep` produced."""

    sweep: Sweep
    folder: Path
    table: pd.DataFrame
    seed: int | None
    computed: list[int]          # point numbers run now
    reused: list[int]            # point numbers read from the cache


# -- reading and checking a sweep -------------------------------------------------------------

def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"lines": {"A": {"x": [..]}}}`` -> ``{"lines.A.x": [..]}`` (unquoted dotted keys)."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, path + "."))
        else:
            out[path] = value
    return out


def _where(origin: str, path: str) -> tuple[str, str]:
    """File and field of a problem with a swept path: ``[sweep] path`` in a sweep file."""
    return (origin, path) if origin == VARY else (origin, f"[sweep] {path}")


def _list_problems(dims: dict[str, Any], origins: dict[str, str]) -> list[Problem]:
    """Each swept path must have a non-empty list of distinct values."""
    problems = []
    for path, values in dims.items():
        file, shown = _where(origins[path], path)
        if not isinstance(values, list):
            problems.append(Problem(file, shown, "must be a list of values, e.g. [0.1, 0.2], "
                                    f"got {value_text(values)}"))
        elif not values:
            problems.append(Problem(file, shown, "empty list: give at least one value"))
        else:
            texts = [toml_value(v) for v in values]
            for text in dict.fromkeys(t for t in texts if texts.count(t) > 1):
                problems.append(Problem(file, shown, f"value {text} is listed more than once"))
    return problems


def _collect_dims(raw: dict[str, Any], label: str, vary: list[str]
                  ) -> tuple[dict[str, Any], dict[str, str], list[Problem]]:
    """The swept paths and their lists: the file's ``[sweep]`` table, then ``--vary``."""
    problems: list[Problem] = []
    table = raw.get("sweep", {})
    if not isinstance(table, dict):
        problems.append(Problem(label, "sweep", "must be a table of dotted paths to lists, "
                                'e.g. "lines.A.instrument.grant_share" = [0.0, 0.1]'))
        table = {}
    dims = _flatten(table)
    origins = dict.fromkeys(dims, label)
    for text in vary:
        try:
            path, values = parse_vary(text, VARY)
        except InputError as exc:
            problems.extend(exc.problems)
            continue
        dims.pop(path, None)  # --vary replaces the file's list for the same path
        dims[path], origins[path] = values, VARY
    if not dims and not problems:
        problems.append(Problem(label, "sweep", "nothing to vary: add a [sweep] table of "
                                "dotted paths to lists, or use --vary path=v1,v2"))
    if "base" not in raw and "scenario" not in raw:
        problems.append(Problem(label, "base", 'missing: name the scenario to vary, e.g. '
                                'base = "wecare_fesr_2018.toml"'))
    return dims, origins, problems + _list_problems(dims, origins)


def _apply(chain: Any, overrides: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
    tables = copy.deepcopy(chain.tables)
    provenance = dict(chain.provenance)
    apply_overrides(tables, overrides, provenance)
    return tables, provenance


def _path_problems(chain: Any, dims: dict[str, list[Any]], origins: dict[str, str],
                   overrides: list[str]) -> list[Problem]:
    """Unknown paths (and bad ``--set``), found by setting each path to its first value."""
    problems = []
    try:
        _apply(chain, overrides)
    except InputError as exc:
        problems.extend(exc.problems)
    for path, values in dims.items():
        try:
            _apply(chain, [f"{path}={toml_value(values[0])}"])
        except InputError as exc:
            file, shown = _where(origins[path], path)
            problems.extend(Problem(file, shown, p.message) for p in exc.problems)
    return problems


def _owner(problem: Problem, dims: dict[str, list[Any]]) -> str | None:
    """The swept path a problem is about (its field or a field inside it), if any."""
    for path in dims:
        if problem.field == path or problem.field.startswith(path + "."):
            return path
    return None


def _point_problems(chain: Any, dims: dict[str, list[Any]], origins: dict[str, str],
                    overrides: list[str], label: str, folder: Path, source: Path
                    ) -> tuple[list[Point], list[Problem]]:
    """Build and validate every combination; report each mistake once.

    A problem that comes with one value of a path wherever that value is
    used (a wrong type, a rate out of range) is reported once for the path;
    one that depends on the combination (loan + grant above the cost) names
    the values the failing points share (or the first of them).
    """
    paths = list(dims)
    points, found = [], {}
    combos = list(itertools.product(*(dims[p] for p in paths)))
    for number, combo in enumerate(combos, start=1):
        values = dict(zip(paths, combo, strict=True))
        texts = [f"{p}={toml_value(v)}" for p, v in values.items()]
        try:
            tables, provenance = _apply(chain, overrides + texts)
            scenario = validate_tables(tables, label, provenance, folder, source,
                                       folders=chain.folders)
        except InputError as exc:
            for p in exc.problems:
                found.setdefault((p.file, p.field, p.message), (p, []))[1].append(values)
            continue
        points.append(Point(number, values, scenario))
    problems = []
    for problem, where in found.values():
        problems.append(_explain(problem, where, combos, paths, dims, origins))
    return points, unique(problems)


def _explain(problem: Problem, where: list[dict[str, Any]], combos: list[tuple],
             paths: list[str], dims: dict[str, list[Any]], origins: dict[str, str]) -> Problem:
    owner = _owner(problem, dims)
    file, shown = problem.file, problem.field
    if owner is not None and file == SET:
        file, shown = _where(origins[owner], problem.field)
    if len(where) == len(combos) and owner is None:
        return Problem(file, shown, problem.message)  # every point: a problem of the base
    if owner is not None:
        bad = {toml_value(w[owner]) for w in where}
        expected = sum(1 for c in combos if toml_value(c[paths.index(owner)]) in bad)
        if expected == len(where):  # wherever that value is used
            return Problem(file, shown, _with_values(problem.message, owner, where, dims))
    return Problem(file, shown, f"{problem.message} ({_points_text(where, combos, paths)})")


def _with_values(message: str, owner: str, where: list[dict[str, Any]],
                 dims: dict[str, list[Any]]) -> str:
    """The message, naming the refused value(s) of the list if it does not already."""
    values = list(dict.fromkeys(value_text(w[owner]) for w in where))
    if len(dims[owner]) < 2 or all(v in message for v in values):
        return message
    return f"{message} (value {', '.join(values)})"


def _points_text(where: list[dict[str, Any]], combos: list[tuple], paths: list[str]) -> str:
    """Which points a problem concerns: the values they share, else the first of them."""
    first = where[0]
    shared = {p: first[p] for p in paths
              if all(toml_value(w[p]) == toml_value(first[p]) for w in where)}
    matching = sum(1 for c in combos
                   if all(toml_value(c[paths.index(p)]) == toml_value(v)
                          for p, v in shared.items()))
    if shared and matching == len(where):
        return "with " + ", ".join(f"{p}={value_text(v)}" for p, v in shared.items())
    point = ", ".join(f"{p}={value_text(v)}" for p, v in first.items())
    more = f" and {len(where) - 1} more point(s)" if len(where) > 1 else ""
    return f"at {point}{more}"


def is_sweep_file(path: str | Path) -> bool:
    """Whether a TOML file has a ``[sweep]`` table (for ``validate``: check it with
    :func:`read_sweep`, which validates every point, instead of ``load_scenario``)."""
    try:
        with Path(path).open("rb") as handle:
            return "sweep" in tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return False


def _without_refused(dims: dict[str, Any], origins: dict[str, str],
                     problems: list[Problem]) -> dict[str, Any]:
    """The swept paths no problem has been reported for yet."""
    refused = {(q.file, q.field) for q in problems}
    return {p: v for p, v in dims.items() if _where(origins[p], p) not in refused}


def read_sweep(path: str | Path, vary: list[str] | tuple[str, ...] = (),
               overrides: list[str] | tuple[str, ...] = ()) -> Sweep:
    """Read a sweep file (or a scenario file plus ``--vary``) and check every point.

    Raise :class:`InputError` listing every mistake (naming the sweep file,
    or ``--vary``, and the path) before anything runs.
    """
    path = Path(path)
    label = _label(path.resolve())
    raw = _read_toml(path, label)
    dims, origins, problems = _collect_dims(raw, label, list(vary))
    if any(p.file == label and p.field in ("base", "sweep") for p in problems):
        raise InputError(problems)  # nothing to check the lists against
    try:
        chain = _read_chain(path)
    except InputError as exc:
        raise InputError(problems + exc.problems) from None
    chain.tables.pop("sweep", None)
    for key in [k for k in chain.provenance if k == "sweep" or k.startswith("sweep.")]:
        del chain.provenance[key]
    good = _without_refused(dims, origins, problems)
    problems += _path_problems(chain, good, origins, list(overrides))
    good = _without_refused(good, origins, problems)
    points, more = _point_problems(chain, good, origins, list(overrides), label,
                                   path.resolve().parent, path.resolve())
    problems = unique(problems + more)
    if problems:
        raise InputError(problems)
    file_paths = list(_flatten(raw["sweep"])) if isinstance(raw.get("sweep"), dict) else []
    return Sweep(path, label, dims, origins, points, list(overrides), file_paths)


# -- running ------------------------------------------------------------------------------------

def run_point(scenario: Scenario, replication_ids: list[int], seed: int,
              chunks: Iterator[Any], progress: Progress | None = None) -> pd.DataFrame:
    """The KPI table of one point, from its chunks in the sweep's stream of chunks
    (replaced in tests to count or interrupt the work)."""
    return collect_kpis(chunks, len(replication_ids), progress)


def _write_atomic(target: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary sibling and rename: a file is complete or absent."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _write_kpis(kpis: pd.DataFrame, path: Path) -> None:
    """A point's KPI table as Parquet, as ``DataFrame.to_parquet`` writes it (through
    pyarrow directly: a tenth of the time, which counts over hundreds of points)."""
    pq.write_table(pa.Table.from_pandas(kpis, preserve_index=False), path)


def _cached(file: Path, ids: list[int]) -> pd.DataFrame | None:
    """A finished point's KPI table, if it is there and complete."""
    if not file.is_file():
        return None
    try:
        kpis = pd.read_parquet(file)
    except Exception:  # unreadable: compute it again
        return None
    if "replication" not in kpis or sorted(kpis["replication"].tolist()) != ids:
        return None
    return kpis


def _column_values(values: list[Any]) -> list[Any]:
    """A swept path's values as one column type: numbers, texts, dates or else TOML text."""
    kinds = {type(v) for v in values}
    if kinds <= {int, float} or (len(kinds) == 1 and kinds <= {str, bool, dt.date}):
        return values
    return [value_text(v) for v in values]


def _point_rows(point: Point, kpis: pd.DataFrame, columns: dict[str, Any],
                seed: int) -> pd.DataFrame:
    from .labels import kpi_label
    from .metrics import summarise

    summary = summarise(kpis)
    rows = len(summary)
    labels = [kpi_label(k, u) for k, u in zip(summary["kpi"], summary["unit"], strict=True)]
    front = {name: [value] * rows for name, value in {"point": point.number, **columns}.items()}
    return pd.DataFrame({**front, "kpi": summary["kpi"], "label": labels,
                         **{name: summary[name] for name in summary.columns if name != "kpi"},
                         "seed": seed, "scenario_hash": point.scenario_hash})


def run_sweep(sweep: Sweep, folder: str | Path | None = None, replications: int | None = None,
              seed: int | None = None, workers: int | None = None, client: Any = None,
              progress: Progress | None = None,
              on_point: Callable[[Point, bool], None] | None = None,
              command: list[str] | None = None) -> SweepResult:
    """Run (or reuse) every point, then write ``sweep.parquet``, ``sweep.csv``, ``sweep.json``.

    ``replications`` and ``seed`` default to the scenario's own (the same for
    every point unless they are swept). ``on_point(point, reused)`` is called
    before each point, ``progress`` with the replications done in it.
    """
    folder = Path(folder) if folder is not None else sweep.default_folder()
    points_dir = folder / "points"
    points_dir.mkdir(parents=True, exist_ok=True)
    started = dt.datetime.now()
    columns = {p: _column_values([pt.values[p] for pt in sweep.points]) for p in sweep.dims}
    plans = []
    for point in sweep.points:
        info = point.scenario.scenario
        point_seed = info.seed if seed is None else seed
        ids = list(range(info.replications if replications is None else replications))
        key = point.key(point_seed, len(ids))
        plans.append((point, point_seed, ids, key, _cached(points_dir / f"{key}.parquet", ids)))
    # The points to compute share the workers: the next point's chunks start while a
    # point's last ones are computed, and a point of one chunk does not leave cores idle.
    # Two points that make the same scenario (values 0 and 0.0, say)
    # are computed once: the second finds the first's table, as if cached.
    to_run, planned = [], set()
    for point, point_seed, ids, key, kpis in plans:
        if kpis is None and key not in planned:
            planned.add(key)
            to_run.append(Run(point.scenario, ids, point_seed))
    parts, computed, reused, records = [], [], [], []
    finished: dict[str, pd.DataFrame] = {}
    with runs_results(to_run, workers=workers, client=client, kpis_only=True) as chunks:
        for index, (point, point_seed, ids, key, kpis) in enumerate(plans):
            kpis = finished.get(key, kpis)
            was_cached = kpis is not None
            if on_point is not None:
                on_point(point, was_cached)
            if kpis is None:
                kpis = finished[key] = run_point(point.scenario, ids, point_seed, chunks,
                                                 progress)
                _write_atomic(points_dir / f"{key}.toml",
                              lambda tmp, s=point.scenario: tmp.write_text(s.resolved_toml(),
                                                                           encoding="utf-8"))
                _write_atomic(points_dir / f"{key}.parquet",
                              lambda tmp, k=kpis: _write_kpis(k, tmp))
                computed.append(point.number)
            else:
                reused.append(point.number)
            row_values = {p: columns[p][index] for p in sweep.dims}
            parts.append(_point_rows(point, kpis, row_values, point_seed))
            records.append({"point": point.number, "values": point.values, "key": key,
                            "scenario_hash": point.scenario_hash, "replications": len(ids),
                            "seed": point_seed, "reused": was_cached})
    table = pd.concat(parts, ignore_index=True)
    _write_outputs(folder, sweep, table, records, started, command, workers)
    seeds = {r["seed"] for r in records}
    return SweepResult(sweep, folder, table, seeds.pop() if len(seeds) == 1 else None,
                       computed, reused)


def _write_outputs(folder: Path, sweep: Sweep, table: pd.DataFrame, records: list[dict],
                   started: dt.datetime, command: list[str] | None,
                   workers: int | None = None) -> None:
    ended = dt.datetime.now()
    manifest = {
        "tool": "fesr-sim", "version": __version__, "kind": "sweep",
        "sweep_file": sweep.label, "overrides": sweep.overrides,
        "sweep": sweep.dims, "points": records,
        "start_time": started.isoformat(timespec="seconds"),
        "end_time": ended.isoformat(timespec="seconds"),
        "wall_time_s": round((ended - started).total_seconds(), 3),
        "command": command or [],
    }
    _write_atomic(folder / "sweep.parquet", lambda tmp: table.to_parquet(tmp, index=False))
    _write_atomic(folder / "sweep.csv",
                  lambda tmp: table.to_csv(tmp, index=False, float_format="%.6f"))
    _write_atomic(folder / "sweep.json", lambda tmp: tmp.write_text(
        json.dumps(manifest, indent=2, default=str) + "\n", encoding="utf-8"))
    _write_charts(folder, sweep, table, workers)


def _write_charts(folder: Path, sweep: Sweep, table: pd.DataFrame,
                  workers: int | None = None) -> None:
    """Sensitivity charts, replaced whole (a temporary folder renamed into place)."""
    import shutil

    from .charts_compare import write_sweep_charts
    from .results import staging_folder

    replications = int(table["replications"].max()) if "replications" in table else 0
    tmp = staging_folder(folder, prefix=".charts.")
    try:
        # The scenario varied, as the run's charts name it, and the sweep file.
        subtitle = f"{sweep.points[0].scenario.title} ({Path(sweep.label).name})"
        write_sweep_charts(table, list(sweep.dims), tmp, replications, subtitle=subtitle,
                           workers=workers)
        shutil.rmtree(folder / "charts", ignore_errors=True)
        tmp.rename(folder / "charts")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
