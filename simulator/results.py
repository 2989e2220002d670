"""Run folders: the results of a run, written atomically and read back.

A run folder (contract in ``DESIGN.md``) holds ``manifest.json``, the
resolved ``scenario.toml``, ``timeseries.parquet``, ``loans.parquet``,
``kpis.parquet`` and ``summary.csv`` (plus copies of any pipeline file, so
the folder re-runs on its own).  It is written into a hidden sibling
directory and renamed into place at the end: a folder is complete or absent,
whatever interrupts the run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import tomli_w

from . import __version__
from .errors import InputError, Problem
from .scenario import Scenario, load_scenario

FILES = ("manifest.json", "scenario.toml", "timeseries.parquet", "loans.parquet",
         "kpis.parquet", "summary.csv")


@dataclass
class Results:
    """What a run produced: the four tables, the scenario and the manifest."""

    scenario: Scenario
    timeseries: pd.DataFrame
    loans: pd.DataFrame
    kpis: pd.DataFrame
    summary: pd.DataFrame
    manifest: dict = field(default_factory=dict)
    path: Path | None = None

    def save(self, folder: str | Path) -> Path:
        """Write the run folder atomically; refuse to overwrite an existing one."""
        folder = Path(folder)
        if folder.exists():
            raise InputError([Problem(str(folder), "", "already exists: choose another --out")])
        with atomic_folder(folder) as tmp:
            write_tables(self, tmp)
        self.path = folder
        return folder


@contextlib.contextmanager
def atomic_folder(folder: Path) -> Iterator[Path]:
    """Yield a temporary sibling folder; rename it to ``folder`` only on success."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".partial",
                                dir=folder.parent))
    try:
        yield tmp
        os.rename(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_tables(results: Results, folder: Path) -> None:
    scenario = results.scenario
    tables = scenario.to_dict()
    # Copy pipeline files next to the resolved scenario so the folder is self-contained.
    for line_id, line in scenario.lines.items():
        if line.applications.mode == "pipeline" and scenario.source is not None:
            source = (scenario.source.parent / line.applications.pipeline).resolve()
            target = folder / f"pipeline_{source.name}"
            if not target.exists():
                shutil.copyfile(source, target)
            tables["lines"][line_id]["applications"]["pipeline"] = target.name
    header = (f"# Resolved scenario '{scenario.name}' (hash {scenario.hash()[:12]}), as run.\n")
    (folder / "scenario.toml").write_text(header + tomli_w.dumps(tables), encoding="utf-8")
    results.timeseries.to_parquet(folder / "timeseries.parquet", index=False)
    results.loans.to_parquet(folder / "loans.parquet", index=False)
    results.kpis.to_parquet(folder / "kpis.parquet", index=False)
    results.summary.to_csv(folder / "summary.csv", index=False, float_format="%.6f")
    (folder / "manifest.json").write_text(
        json.dumps(results.manifest, indent=2, default=str) + "\n", encoding="utf-8")


def default_folder(scenario: Scenario, root: Path = Path("results")) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    folder = root / f"{scenario.name}-{stamp}"
    n = 2
    while folder.exists():
        folder = root / f"{scenario.name}-{stamp}-{n}"
        n += 1
    return folder


def manifest(scenario: Scenario, seed: int, replications: list[int], started: dt.datetime,
             ended: dt.datetime, backend: str, command: list[str] | None = None,
             workers: int = 1) -> dict:
    return {
        "tool": "fesr-sim",
        "version": __version__,
        "scenario": scenario.name,
        "scenario_hash": scenario.hash(),
        "seed": seed,
        "replications": len(replications),
        "replication_ids": replications if len(replications) <= 20 else
        [replications[0], replications[-1]],
        "start_time": started.isoformat(timespec="seconds"),
        "end_time": ended.isoformat(timespec="seconds"),
        "wall_time_s": round((ended - started).total_seconds(), 3),
        "backend": backend,
        "workers": workers,
        "command": command or [],
    }


def load_results(folder: str | Path) -> Results:
    """Read a run folder back."""
    folder = Path(folder)
    missing = [name for name in FILES if not (folder / name).exists()]
    if missing:
        raise InputError([Problem(str(folder), "", f"not a run folder (missing "
                                  f"{', '.join(missing)})")])
    scenario = load_scenario(folder / "scenario.toml")
    return Results(
        scenario=scenario,
        timeseries=pd.read_parquet(folder / "timeseries.parquet"),
        loans=pd.read_parquet(folder / "loans.parquet"),
        kpis=pd.read_parquet(folder / "kpis.parquet"),
        summary=pd.read_csv(folder / "summary.csv"),
        manifest=json.loads((folder / "manifest.json").read_text(encoding="utf-8")),
        path=folder,
    )
