"""Compare alternatives on paired replications: "70 % loan + 10 % grant, or 60 % + 30 %?".

Each alternative is a scenario file (run here) or a run folder already
computed. All of them are run with the same master seed and the same
replication ids (common random numbers, see :mod:`simulator.decide`), so
replication ``i`` of alternative B faces exactly the applications and fates
of replication ``i`` of the baseline A. The difference ``B_i - A_i`` is then
the effect of the change in that simulated future, and its spread over the
replications is the uncertainty about the effect, without the noise of two
independent samples.

For every KPI and every alternative other than the baseline the comparison
reports, from the paired differences ``d_i = B_i - A_i``:

* ``diff_mean``: the mean difference;
* ``diff_p5_paired`` .. ``diff_p95_paired``: the 5th and 95th percentiles of
  the paired differences, i.e. the range of the effect in 90 % of the
  simulated futures (how much the effect itself varies);
* ``diff_mean_ci90_low`` .. ``diff_mean_ci90_high``: the 90 % confidence
  interval of the *mean* difference, ``mean +/- t(0.95, n-1) * sd / sqrt(n)``
  (how precisely the replications pin down the average effect; it narrows
  as replications grow, the paired range does not).

A scenario compared with itself gives differences of exactly zero and
intervals of zero width.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import __version__
from .decide import (
    STATISTICS,
    Progress,
    collect_kpis,
    defined,
    kpi_names,
    kpi_statistic,
    stamp,
    unit_of,
)
from .errors import InputError, Problem
from .executors import Run, runs_results
from .labels import kpi_label
from .scenario import Scenario, load_scenario

#: The interval level of the comparison (90 %: P5-P95 and a two-sided 90 % t interval).
LEVEL = 0.90


@dataclass
class Alternative:
    """One scenario of a comparison: a scenario file or a run folder."""

    name: str
    source: str                       # the file or folder as the user gave it
    scenario: Scenario
    run_folder: Path | None = None    # set when the KPIs come from a run folder
    seed: int | None = None           # the run folder's seed
    replication_ids: list[int] | None = None
    kpis: pd.DataFrame | None = None  # one row per replication, once run or read

    @property
    def is_run(self) -> bool:
        return self.kpis is not None


@dataclass
class Comparison:
    """The result of :func:`compare`: the alternatives, their KPIs and the table."""

    alternatives: list[Alternative]
    baseline: str
    seed: int
    replication_ids: list[int]
    table: pd.DataFrame
    started: dt.datetime = field(default_factory=dt.datetime.now)
    ended: dt.datetime = field(default_factory=dt.datetime.now)

    def alternative(self, name: str) -> Alternative:
        return next(a for a in self.alternatives if a.name == name)

    def save(self, folder: str | Path, command: list[str] | None = None,
             charts: bool = True) -> Path:
        """Write the comparison folder atomically (refuse an existing folder)."""
        from .results import atomic_folder

        folder = Path(folder)
        if folder.exists():
            raise InputError([Problem("--out", str(folder),
                                      "already exists: choose another folder")])
        with atomic_folder(folder) as tmp:
            self.table.to_csv(tmp / "comparison.csv", index=False, float_format="%.6f")
            for alt in self.alternatives:
                assert alt.kpis is not None
                alt.kpis.to_parquet(tmp / f"kpis_{alt.name}.parquet", index=False)
                (tmp / f"scenario_{alt.name}.toml").write_text(
                    alt.scenario.resolved_toml(), encoding="utf-8")
            (tmp / "comparison.json").write_text(
                json.dumps(self.manifest(command), indent=2, default=str) + "\n",
                encoding="utf-8")
            if charts:
                from .charts_compare import write_comparison_charts

                title = " / ".join(a.scenario.title for a in self.alternatives)
                write_comparison_charts(self.table, tmp / "charts",
                                        len(self.replication_ids), subtitle=title)
        return folder

    def manifest(self, command: list[str] | None = None) -> dict[str, Any]:
        ids = self.replication_ids
        return {
            "tool": "fesr-sim", "version": __version__, "kind": "comparison",
            "baseline": self.baseline, "seed": self.seed, "replications": len(ids),
            "replication_ids": ids if len(ids) <= 20 else [ids[0], ids[-1]],
            "interval_level": LEVEL,
            "alternatives": [
                {"name": a.name, "source": a.source, "scenario": a.scenario.name,
                 "scenario_hash": a.scenario.hash(),
                 "run_folder": str(a.run_folder) if a.run_folder else None}
                for a in self.alternatives],
            "start_time": self.started.isoformat(timespec="seconds"),
            "end_time": self.ended.isoformat(timespec="seconds"),
            "command": command or [],
        }


# -- loading the alternatives ---------------------------------------------------------------

def is_run_folder(path: Path) -> bool:
    return path.is_dir() and (path / "manifest.json").is_file()


def load_alternative(path: str | Path) -> Alternative:
    """A scenario file, or a run folder with its KPIs, seed and replication ids."""
    path = Path(path)
    if path.is_dir() and not is_run_folder(path):
        raise InputError([Problem(str(path), "", "is a folder but not a run folder (no "
                                  "manifest.json): give a scenario file or a run folder")])
    if not is_run_folder(path):
        scenario = load_scenario(path)
        return Alternative(scenario.name, str(path), scenario)
    from .results import load_results

    results = load_results(path, lazy=True)
    seed = results.manifest.get("seed")
    if not isinstance(seed, int):
        raise InputError([Problem(str(path / "manifest.json"), "seed",
                                  "missing: cannot pair this run with others")])
    kpis = results.kpis.sort_values("replication", ignore_index=True)
    return Alternative(results.scenario.name, str(path), results.scenario, run_folder=path,
                       seed=seed, replication_ids=[int(i) for i in kpis["replication"]],
                       kpis=kpis)


def name_alternatives(alternatives: list[Alternative]) -> None:
    """Give every alternative a unique name: its scenario name, else file name, else -2, -3."""
    counts: dict[str, int] = {}
    for alt in alternatives:
        counts[alt.name] = counts.get(alt.name, 0) + 1
    for alt in alternatives:
        if counts[alt.name] > 1:
            alt.name = Path(alt.source).stem if alt.run_folder is None else \
                Path(alt.source).name
    seen: dict[str, int] = {}
    for alt in alternatives:
        n = seen[alt.name] = seen.get(alt.name, 0) + 1
        if n > 1:
            alt.name = f"{alt.name}-{n}"


def choose_baseline(alternatives: list[Alternative], baseline: str | None) -> str:
    """The baseline's name: ``baseline`` as a name or as the path given; default the first."""
    if baseline is None:
        return alternatives[0].name
    for alt in alternatives:
        if baseline in (alt.name, alt.source) or \
                Path(baseline).resolve() == Path(alt.source).resolve():
            return alt.name
    names = ", ".join(a.name for a in alternatives)
    raise InputError([Problem("--baseline", baseline, f"no such alternative (names: {names})")])


def _id_text(ids: list[int]) -> str:
    if ids and ids == list(range(ids[0], ids[-1] + 1)):
        return f"{len(ids)} replications ({ids[0]}-{ids[-1]})"
    return f"{len(ids)} replications"


def common_plan(alternatives: list[Alternative], seed: int | None,
                replications: int | None, baseline: str) -> tuple[int, list[int]]:
    """The seed and replication ids every alternative must share; refuse if none exists.

    Run folders fix them (and must agree with each other and with ``--seed``
    and ``--replications`` if given); otherwise ``--seed`` / ``--replications``
    or the baseline scenario's own values.
    """
    runs = [a for a in alternatives if a.run_folder is not None]
    if runs:
        first = runs[0]
        assert first.seed is not None and first.replication_ids is not None
        problems = [
            Problem(other.source, "", f"cannot pair its replications with {first.source}: "
                    f"run with seed {other.seed} and {_id_text(other.replication_ids or [])}, "
                    f"the other with seed {first.seed} and {_id_text(first.replication_ids)}. "
                    "Re-run one of them with the same --seed and --replications, or compare "
                    "the scenario files (compare runs them with the same seed)")
            for other in runs[1:]
            if other.seed != first.seed or other.replication_ids != first.replication_ids]
        if seed is not None and seed != first.seed:
            problems.append(Problem("--seed", str(seed), f"the run folder {first.source} was "
                                    f"run with seed {first.seed}: its replications cannot be "
                                    "paired with another seed"))
        if replications is not None and replications != len(first.replication_ids):
            problems.append(Problem("--replications", str(replications),
                                    f"the run folder {first.source} has "
                                    f"{_id_text(first.replication_ids)}"))
        if problems:
            raise InputError(problems)
        return first.seed, list(first.replication_ids)
    base = next(a for a in alternatives if a.name == baseline).scenario.scenario
    count = base.replications if replications is None else replications
    return (base.seed if seed is None else seed), list(range(count))


# -- paired differences ------------------------------------------------------------------------

def paired_differences(base: pd.DataFrame, other: pd.DataFrame, kpi: str) -> np.ndarray:
    """``other_i - base_i`` for the replications where both define the KPI."""
    merged = base[["replication", kpi]].merge(other[["replication", kpi]], on="replication",
                                              suffixes=("_base", "_other"))
    diff = merged[f"{kpi}_other"].to_numpy(float) - merged[f"{kpi}_base"].to_numpy(float)
    return defined(diff)


def difference_stats(diff: np.ndarray, level: float = LEVEL) -> dict[str, float]:
    """Mean, P5-P95 of the paired differences and the t interval of their mean."""
    from scipy import stats

    n = len(diff)
    nan = math.nan
    if n == 0:
        return {"diff_mean": nan, "diff_p5_paired": nan, "diff_p50_paired": nan,
                "diff_p95_paired": nan, "diff_mean_ci90_low": nan,
                "diff_mean_ci90_high": nan, "diff_pairs": 0}
    mean = float(diff.mean())
    tail = (1 - level) / 2
    p_low, p50, p_high = np.percentile(diff, [100 * tail, 50, 100 * (1 - tail)])
    if n > 1:
        sd = float(diff.std(ddof=1))
        half = float(stats.t.ppf(1 - tail, n - 1)) * sd / math.sqrt(n) if sd > 0 else 0.0
    else:
        half = nan
    return {"diff_mean": mean, "diff_p5_paired": float(p_low), "diff_p50_paired": float(p50),
            "diff_p95_paired": float(p_high), "diff_mean_ci90_low": mean - half,
            "diff_mean_ci90_high": mean + half, "diff_pairs": n}


def comparison_table(kpis: dict[str, pd.DataFrame], baseline: str) -> pd.DataFrame:
    """One row per KPI (name, Italian label, unit, baseline); per alternative
    ``<name>.mean/p5/p50/p95/replications`` and, for all but the baseline,
    ``<name>.diff_*``: the differences to the baseline on paired replications.
    """
    base = kpis[baseline]
    names = list(dict.fromkeys(k for table in (base, *kpis.values()) for k in kpi_names(table)))
    rows = []
    for kpi in names:
        unit = unit_of(kpi)
        row: dict[str, Any] = {"kpi": kpi, "label": kpi_label(kpi, unit), "unit": unit,
                               "baseline": baseline}
        for name, table in kpis.items():
            for stat in STATISTICS:
                row[f"{name}.{stat}"] = kpi_statistic(table[kpi], stat) if kpi in table \
                    else math.nan
            row[f"{name}.replications"] = len(defined(table[kpi])) if kpi in table else 0
        for name, table in kpis.items():
            if name == baseline or kpi not in table or kpi not in base:
                continue
            for key, value in difference_stats(paired_differences(base, table, kpi)).items():
                row[f"{name}.{key}"] = value
        rows.append(row)
    return pd.DataFrame(rows)


# -- the verb -----------------------------------------------------------------------------------

def compare(sources: list[str | Path], baseline: str | None = None, seed: int | None = None,
            replications: int | None = None, workers: int | None = None, client: Any = None,
            progress: Progress | None = None,
            on_start: Callable[[Alternative, int], None] | None = None) -> Comparison:
    """Compare scenario files and/or run folders on paired replications.

    Everything is read and checked before anything runs; the scenario files
    are then run with the common seed and replication ids. ``on_start`` is
    called with each alternative to run and its number of replications, ``progress`` with the
    number of its replications done.
    """
    if len(sources) < 2:
        raise InputError([Problem("compare", "", "give at least two scenarios or run folders")])
    alternatives, problems = [], []
    for source in sources:
        try:
            alternatives.append(load_alternative(source))
        except InputError as exc:
            problems.extend(exc.problems)
    if problems:
        raise InputError(problems)
    name_alternatives(alternatives)
    base_name = choose_baseline(alternatives, baseline)
    common_seed, ids = common_plan(alternatives, seed, replications, base_name)
    started = dt.datetime.now()
    to_run = [alt for alt in alternatives if not alt.is_run]
    # One stream of chunks: the next scenario's start while the last of one are computed.
    with runs_results([Run(alt.scenario, ids, common_seed) for alt in to_run],
                      workers=workers, client=client, kpis_only=True) as chunks:
        for alt in to_run:
            if on_start is not None:
                on_start(alt, len(ids))
            alt.kpis = collect_kpis(chunks, len(ids), progress)
    table = comparison_table({a.name: a.kpis for a in alternatives if a.kpis is not None},
                             base_name)
    return Comparison(alternatives, base_name, common_seed, ids, table, started,
                      dt.datetime.now())


def default_folder(root: Path = Path("results")) -> Path:
    folder = root / f"compare-{stamp()}"
    n = 2
    while folder.exists():
        folder = root / f"compare-{stamp()}-{n}"
        n += 1
    return folder
