"""Deciding between alternatives: what ``compare``, ``sweep`` and ``solve`` share.

The three verbs answer a policy question by running *variants* of a scenario
("grant share 10 % or 30 %?", "what if defaults double?") and looking at the
differences in the KPIs. A difference between two Monte Carlo runs is only
worth reading if it is caused by the change, not by luck. So every variant
is run with **common random numbers**: the same master seed and the same
replication ids. Replication ``i`` of any variant draws from streams keyed by
(seed, ``i``, line id), so it sees the same applications, costs and fates in
every variant; what differs is only what the change causes.

This module holds the pieces used by all three verbs:

* :func:`run_kpis` runs replications and keeps only the KPI table (one row
  per replication), chunk by chunk through the executors of the scale issue,
  so memory does not grow with the time series of thousands of replications;
* :func:`toml_value` and :func:`parse_values` turn values into and out of the
  ``--set`` syntax, so a sweep point or a solver step is exactly a
  ``--set path=value`` override, validated by the scenario loader;
* :func:`kpi_statistic` and :data:`STATISTICS`: mean and percentiles of a
  KPI over replications, computed the same way as ``summary.csv``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import tomllib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd

from .errors import InputError, Problem
from .scenario import Scenario

#: The statistics of a KPI over replications, as in ``summary.csv``.
STATISTICS = ("mean", "p5", "p50", "p95")

Progress = Callable[[int], None]


def run_kpis(scenario: Scenario, replication_ids: list[int], seed: int,
             workers: int | None = None, client: Any = None,
             progress: Progress | None = None) -> pd.DataFrame:
    """Run the replications of a scenario and return its KPI table only.

    One row per replication (column ``replication`` and one column per KPI,
    money in euros), identical to the ``kpis.parquet`` of a run folder run
    with the same seed and replication ids. ``progress`` is called with the
    number of replications done so far.
    """
    from .executors import chunk_results

    with chunk_results(scenario, list(replication_ids), seed, False, workers, client,
                       kpis_only=True) as results:
        return collect_kpis(results, len(replication_ids), progress)


def collect_kpis(chunks: Iterator[Any], replications: int,
                 progress: Progress | None = None) -> pd.DataFrame:
    """The KPI table of the next ``replications`` replications of a stream of chunks
    (``executors.runs_results``: one run's chunks after another's, none shared by two)."""
    parts, done = [], 0
    while done < replications:
        chunk = next(chunks, None)
        if chunk is None:
            raise RuntimeError(f"the stream of chunks ended after {done} of "
                               f"{replications} replications")
        parts.append(chunk.kpis)
        done += len(chunk.replications)
        if progress is not None:
            progress(done)
    kpis = pd.concat(parts, ignore_index=True)
    return kpis.sort_values("replication", ignore_index=True)


def unit_of(kpi: str) -> str:
    """A KPI's unit (``EUR``, ``share``, ...); empty for a KPI without a definition."""
    from .metrics import kpi_unit

    try:
        return kpi_unit(kpi)
    except KeyError:
        return ""


def kpi_names(kpis: pd.DataFrame) -> list[str]:
    """The KPI columns of a KPI table (everything but ``replication``)."""
    return [c for c in kpis.columns if c != "replication"]


def defined(values: pd.Series | np.ndarray) -> np.ndarray:
    """The values as floats, without the undefined ones (NaN)."""
    array = np.asarray(values, dtype=float)
    return array[~np.isnan(array)]


def kpi_statistic(values: pd.Series | np.ndarray, statistic: str) -> float:
    """Mean or percentile (``p5``, ``p50``, ``p95``) of a KPI over replications.

    Undefined values (``desk_exhausted_month`` when the desk never ran dry)
    are left out, as in ``summary.csv``; NaN if none is defined.
    """
    array = defined(values)
    if not len(array):
        return math.nan
    if statistic == "mean":
        return float(array.mean())
    return float(np.percentile(array, float(statistic.removeprefix("p"))))


# -- values in the --set syntax --------------------------------------------------------

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def toml_value(value: Any) -> str:
    """A value as TOML text for ``--set path=<text>`` (inline tables for distributions)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    if isinstance(value, dict):
        items = ", ".join(f"{k if _BARE_KEY.match(k) else json.dumps(k)} = {toml_value(v)}"
                          for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"not a TOML value: {value!r}")


def value_text(value: Any) -> str:
    """A swept value as a person reads it in a table or a column: 0.1, "graduatoria"."""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return toml_value(value)


def parse_values(raw: str) -> list[Any]:
    """The comma-separated values of ``--vary path=v1,v2,v3``, each read as TOML.

    Inline tables and quoted texts may contain commas
    (``{dist = "uniform", low = 1, high = 3}``); a bare word
    (``sportello,graduatoria``) is taken as text, as with ``--set``.
    """
    try:
        values = tomllib.loads(f"v = [{raw}]")["v"]
        return list(values)
    except tomllib.TOMLDecodeError:
        pass
    out = []
    for part in raw.split(","):
        text = part.strip()
        try:
            out.append(tomllib.loads(f"v = {text}")["v"])
        except tomllib.TOMLDecodeError:
            out.append(text)
    return out


def parse_vary(text: str, option: str = "--vary") -> tuple[str, list[Any]]:
    """Split ``dotted.path=v1,v2,v3`` into the path and its list of values."""
    if "=" not in text:
        raise InputError([Problem(option, text, "expected dotted.path=value1,value2,...")])
    path, raw = (part.strip() for part in text.split("=", 1))
    if not path or any(not key for key in path.split(".")):
        raise InputError([Problem(option, text, "expected dotted.path=value1,value2,...")])
    if not raw:
        raise InputError([Problem(option, path, "no values: write e.g. "
                                  f"{path}=0.1,0.2,0.3")])
    return path, parse_values(raw)


def relabel(problems: list[Problem], old: str, new: str) -> list[Problem]:
    """The problems with the file label ``old`` named ``new`` (e.g. ``--set`` -> a sweep file)."""
    return [Problem(new if p.file == old else p.file, p.field, p.message) for p in problems]


def unique(problems: list[Problem]) -> list[Problem]:
    """The problems without repetitions, in order."""
    seen: set[tuple[str, str, str]] = set()
    out = []
    for p in problems:
        key = (p.file, p.field, p.message)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def stamp() -> str:
    """The timestamp used in default folder names."""
    return dt.datetime.now().strftime("%Y%m%d-%H%M%S")
