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
import dataclasses
import datetime as dt
import json
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import tomli_w

from . import __version__
from .errors import InputError, Problem
from .parquet_join import ENCODING_KEY, JoinedParquet, Part, encode_part
from .scenario import Scenario, load_scenario
from .series_layout import SeriesLayout

FILES = ("manifest.json", "scenario.toml", "timeseries.parquet", "loans.parquet",
         "kpis.parquet", "summary.csv")


class Results:
    """What a run produced: the scenario, its four tables and the manifest.

    A result read from a run folder loads ``timeseries`` and ``loans`` only
    when first used, so a 10,000-replication run can be summarised without
    reading gigabytes.
    """

    def __init__(self, scenario: Scenario, timeseries: pd.DataFrame | None,
                 loans: pd.DataFrame | None, kpis: pd.DataFrame, summary: pd.DataFrame,
                 manifest: dict | None = None, path: Path | None = None):
        self.scenario = scenario
        self._timeseries = timeseries
        self._loans = loans
        self.kpis = kpis
        self.summary = summary
        self.manifest = manifest or {}
        self.path = path
        self._layout: SeriesLayout | None = None

    @property
    def timeseries(self) -> pd.DataFrame:
        if self._timeseries is None:
            self._timeseries = pd.read_parquet(self.path / "timeseries.parquet")
        return self._timeseries

    @property
    def layout(self) -> SeriesLayout:
        """The timeseries as a cube of replications, lines and months (read once; from
        the table's ``replication``, ``line`` and ``date`` columns only when the table is
        not in memory)."""
        if self._layout is None:
            if self._timeseries is not None:
                self._layout = SeriesLayout.of(self._timeseries)
            else:
                # Lines as codes into their names and dates as day numbers: a string
                # or a date object per row would take gigabytes on a large run.
                names, columns = _layout_columns(self.path / "timeseries.parquet")
                coded = SeriesLayout.of_columns(*columns)
                self._layout = dataclasses.replace(
                    coded, lines=tuple(names[code] for code in coded.lines),
                    dates=coded.dates.astype(np.int64).astype("datetime64[D]"))
        return self._layout

    def series(self, column: str) -> np.ndarray:
        """One timeseries column as replications x lines x months (``layout``).

        When the table is not in memory the column is read alone from the run
        folder's file: a report of a large run holds one column at a time,
        not the whole table (10,000 replications of the reference: ~50 MB
        against ~3 GB). With the table in memory the cube may be a view of
        it: not to be changed in place.
        """
        if self._timeseries is not None:
            return self.layout.cube(self._timeseries[column])
        # Row group by row group into one array: the column is held once, not twice.
        values = np.empty(pq.read_metadata(self.path / "timeseries.parquet").num_rows,
                          dtype=np.int64)
        start = 0
        for part in self._column_parts(column):
            values[start:start + len(part)] = part
            start += len(part)
        return self.layout.cube(values)

    def _column_parts(self, column: str) -> Iterator[np.ndarray]:
        """A column of the run folder's timeseries file, one row group at a time."""
        file = pq.ParquetFile(self.path / "timeseries.parquet")
        for group in range(file.num_row_groups):
            yield file.read_row_group(group, columns=[column])[column].to_numpy()

    def has_nonzero(self, column: str) -> bool:
        """Whether a timeseries column is other than zero anywhere (read row group by
        row group when the table is not in memory: a few megabytes at a time)."""
        if self._timeseries is not None:
            return bool(self._timeseries[column].to_numpy().any())
        return any(part.any() for part in self._column_parts(column))

    def timeseries_columns(self) -> list[str]:
        """The timeseries table's columns (its file's schema when it is not in memory)."""
        if self._timeseries is not None:
            return list(self._timeseries.columns)
        return pq.read_schema(self.path / "timeseries.parquet").names

    def replication_timeseries(self, replication: int) -> pd.DataFrame:
        """The timeseries rows of one replication (read alone when not in memory: the
        file's row groups are skipped by their replication statistics)."""
        return self._one_replication("timeseries", self._timeseries, replication)

    def replication_loans(self, replication: int) -> pd.DataFrame:
        """The loan book of one replication (read alone when not in memory)."""
        return self._one_replication("loans", self._loans, replication)

    def _one_replication(self, name: str, table: pd.DataFrame | None,
                         replication: int) -> pd.DataFrame:
        if table is not None:
            return table[table["replication"] == replication].reset_index(drop=True)
        return pd.read_parquet(self.path / f"{name}.parquet",
                               filters=[("replication", "==", replication)])

    @property
    def loans(self) -> pd.DataFrame:
        if self._loans is None:
            self._loans = pd.read_parquet(self.path / "loans.parquet")
        return self._loans

    def save(self, folder: str | Path) -> Path:
        """Write the run folder atomically; refuse to overwrite an existing one.

        Tables are written in chunks of replications exactly as a streamed
        run writes them, so the files are the same bytes either way.
        """
        from .executors import chunk_size, chunked

        folder = Path(folder)
        ids = sorted(self.kpis["replication"].tolist())
        ts_groups = dict(tuple(self.timeseries.groupby("replication", sort=True)))
        loan_groups = dict(tuple(self.loans.groupby("replication", sort=True)))
        empty_loans = self.loans.iloc[0:0]
        with RunWriter(self.scenario, folder) as writer:
            for chunk in chunked(ids, chunk_size(self.scenario)):
                writer.add(
                    pd.concat([ts_groups[i] for i in chunk], ignore_index=True),
                    pd.concat([loan_groups.get(i, empty_loans) for i in chunk],
                              ignore_index=True),
                    self.kpis[self.kpis["replication"].isin(chunk)])
            writer.finish(self.manifest)
        self.path = folder
        return folder


def _layout_columns(path: Path) -> tuple[list[str], tuple[np.ndarray, ...]]:
    """A timeseries file's ``replication``, ``line`` (codes into the names returned)
    and ``date`` (day numbers) columns, read row group by row group into arrays:
    each value is held once (100,000 replications: ~0.75 GB, not ~1.8)."""
    file = pq.ParquetFile(path, read_dictionary=["line"])
    rows = file.metadata.num_rows
    replication, line, date = (np.empty(rows, dtype=np.int32) for _ in range(3))
    names: dict[str, int] = {}
    start = 0
    for group in range(file.num_row_groups):
        part = file.read_row_group(group, columns=["replication", "line", "date"])
        end = start + part.num_rows
        replication[start:end] = part["replication"].to_numpy()
        date[start:end] = part["date"].combine_chunks().cast(pa.int32()).to_numpy()
        at = start
        for chunk in part["line"].chunks:   # each with its own dictionary
            codes = np.array([names.setdefault(name, len(names))
                              for name in chunk.dictionary.to_pylist()], dtype=np.int32)
            line[at:at + len(chunk)] = codes[chunk.indices.to_numpy()]
            at += len(chunk)
        start = end
    return list(names), (replication, line, date)


def _schema(columns: dict[str, pa.DataType], nullable: bool = True) -> pa.Schema:
    return pa.schema([pa.field(name, kind, nullable=nullable)
                      for name, kind in columns.items()])


# How a text column with few values travels: codes into its values (``runner.frames``).
TEXT_CODES = pa.dictionary(pa.int32(), pa.string())


def timeseries_schema(scenario: Scenario) -> pa.Schema:
    """Every cell has a value: the columns are required (in Parquet's terms), which
    also spares the writer a level per value."""
    from .ledger import timeseries_columns

    columns = {"replication": pa.int32(), "date": pa.date32(), "line": pa.string()}
    columns.update({c: pa.int64() for c in timeseries_columns(scenario)})
    # Money that moves in most months once loans repay. Stored as changes, a revolving
    # fund's timeseries writes in 33 ms a chunk instead of 38, in 10.8 MB instead of
    # 12.3; the reference's in 3.0 MB instead of 3.6, for ~0.6 ms more.
    return stored_as_changes(_schema(columns, nullable=False),
                             ("cash", "loans_outstanding", "principal_repaid"))


def stored_as_changes(schema: pa.Schema, names: tuple[str, ...]) -> pa.Schema:
    """``schema`` with the columns ``names`` stored in Parquet as the differences between
    successive values (its delta encoding; then compressed, as every column is).

    For columns whose values spread over a wide range in small steps (running
    totals, dates, each loan's amounts): compressed plain values leave most of
    their bytes, the differences take a few bits each, written faster. Readers
    see the same values; the choice travels with the schema as field metadata
    (``parquet_join.encoded`` reads it), not in the file's schema.
    """
    for name in names:
        at = schema.get_field_index(name)
        schema = schema.set(at, schema.field(at).with_metadata(
            {ENCODING_KEY: b"DELTA_BINARY_PACKED"}))
    return schema


def travelling_timeseries_schema(scenario: Scenario) -> pa.Schema:
    """:func:`timeseries_schema` with ``line`` dictionary-coded: the schema of the
    timeseries tables chunks make (``runner.frames``) and send between processes.

    Written to Parquet, a dictionary-coded column is stored as the file's
    text column is (``parquet_join.encode``), and read back as text.
    """
    return _coded(timeseries_schema(scenario), ("line",))


def travelling_loans_schema() -> pa.Schema:
    """:func:`loans_schema` with ``line`` and ``status`` dictionary-coded, as
    :func:`travelling_timeseries_schema` (``runner.frames``): codes into the
    scenario's lines and ``loanbook.STATUSES``, not a text object per loan."""
    return _coded(loans_schema(), ("line", "status"))


def _coded(schema: pa.Schema, names: tuple[str, ...]) -> pa.Schema:
    for name in names:
        at = schema.get_field_index(name)
        schema = schema.set(at, schema.field(at).with_type(TEXT_CODES))
    return schema


def text_codes(values, labels: list[str]) -> pa.DictionaryArray:
    """A text column (numpy or Arrow) as codes into ``labels``, which hold every value.

    The dictionary is ``labels`` whichever engine or path made the column, so
    a chunk's loan table is written to the same bytes either way; the batch
    engine makes its columns so (``batch_loans``), and they pass as they are.
    """
    dictionary = pa.array(labels, type=pa.string())
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.DictionaryArray) and values.type == TEXT_CODES \
            and values.dictionary.equals(dictionary):
        return values
    if not isinstance(values, pa.Array):
        values = pa.array(values, type=pa.string())
    elif values.type != pa.string():   # other codes; or no type, an empty column from pandas
        values = values.cast(pa.string())
    codes = pc.index_in(values, value_set=dictionary)
    if codes.null_count:
        unknown = sorted(set(pc.filter(values, pc.is_null(codes)).to_pylist()), key=str)
        raise ValueError(f"text values {unknown} are none of {labels}")
    return pa.DictionaryArray.from_arrays(codes.cast(pa.int32()), dictionary)


def coded_loan_text(columns: dict, scenario: Scenario) -> dict:
    """The loan table's ``columns`` with ``line`` and ``status`` as :func:`text_codes`
    into the scenario's lines and ``loanbook.STATUSES`` (the columns of
    :func:`travelling_loans_schema`)."""
    from .loanbook import STATUSES

    labels = {"line": list(scenario.lines), "status": list(STATUSES)}
    return {name: text_codes(values, labels[name]) if name in labels else values
            for name, values in columns.items()}


def decoded(table: pa.Table) -> pa.Table:
    """``table`` with its dictionary-coded columns as plain values."""
    for at, field in enumerate(table.schema):
        if pa.types.is_dictionary(field.type):
            table = table.set_column(at, field.with_type(field.type.value_type),
                                     table.column(at).cast(field.type.value_type))
    return table


def loans_schema() -> pa.Schema:
    from .runner import LOAN_COLUMNS

    columns = {}
    for name in LOAN_COLUMNS:
        if name == "replication":
            columns[name] = pa.int32()
        elif name in ("project_id", "line", "status"):
            columns[name] = pa.string()
        elif name.endswith("_date"):
            columns[name] = pa.date32()
        elif name == "esl_pct":
            columns[name] = pa.float64()
        elif name == "over_ceiling":
            columns[name] = pa.bool_()
        else:  # money in cents (de_minimis_ceiling is null where there is no ceiling)
            columns[name] = pa.int64()
    # Dates of what has not happened (a first disbursement, an end), the share of aid
    # and the ceiling where there is none may be empty; every other cell has a value:
    # those columns are required, as the timeseries' are.
    schema = pa.schema([pa.field(name, kind, nullable=name.endswith("_date") or name in (
        "esl_pct", "de_minimis_ceiling")) for name, kind in columns.items()])
    # The dates and the amounts every loan has, stored as changes: a revolving chunk's
    # loan table writes in ~7.6 ms instead of 9.3, in a quarter fewer bytes.
    return stored_as_changes(schema, tuple(
        name for name in LOAN_COLUMNS if name.endswith("_date") or name in (
            "eligible_cost", "public_loan", "bank_loan", "grant", "loans_disbursed",
            "grant_paid", "principal_repaid", "interest_paid", "esl")))


class RunWriter:
    """Write a run folder chunk by chunk into a temporary sibling, then rename it.

    Used as a context manager: leaving it with an exception (or Ctrl-C)
    removes the temporary folder, so no half-written run folder ever exists.
    """

    def __init__(self, scenario: Scenario, folder: str | Path):
        self.scenario = scenario
        self.folder = Path(folder)
        self._kpis: list[pd.DataFrame] = []
        self._finished = False

    def __enter__(self) -> RunWriter:
        if self.folder.exists():
            raise InputError([Problem(str(self.folder), "",
                                      "already exists: choose another --out")])
        self._context = atomic_folder(self.folder)
        self.tmp = self._context.__enter__()
        try:
            self._schemas = (timeseries_schema(self.scenario), loans_schema())
            self._ts = JoinedParquet(self.tmp / "timeseries.parquet")
            self._loans = JoinedParquet(self.tmp / "loans.parquet")
            self._kpis_file = JoinedParquet(self.tmp / "kpis.parquet")
        except BaseException as exc:   # __exit__ will not run: remove the folder here
            self._context.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    def add(self, timeseries: pa.Table | pd.DataFrame | Part,
            loans: pa.Table | pd.DataFrame | Part, kpis: pd.DataFrame,
            encoded_kpis: Part | None = None) -> None:
        """Append the tables of a chunk of replications (in replication order).

        Tables may come already encoded as Parquet row groups
        (``executors.run_chunk(encode=True)``; ``encoded_kpis``: the KPIs);
        others are encoded here.
        """
        if not isinstance(loans, Part):   # its text coded as a chunk's is: the same bytes
            from .runner import arrow_table

            table = _as_arrow(loans, self._schemas[1])
            loans = arrow_table(coded_loan_text(
                {name: table[name].combine_chunks() for name in table.column_names},
                self.scenario), travelling_loans_schema())
        for file, table, schema in ((self._ts, timeseries, self._schemas[0]),
                                    (self._loans, loans, self._schemas[1])):
            file.append(table if isinstance(table, Part) else
                        encode_part(_as_arrow(table, schema), schema))
        self._kpis_file.append(encoded_kpis or kpis_part(kpis))
        self._kpis.append(kpis)

    def finish(self, manifest: dict) -> None:
        """Close the tables and write the summary, scenario and manifest."""
        from .metrics import summarise

        for file in (self._ts, self._loans, self._kpis_file):
            file.close()
        kpis = pd.concat(self._kpis, ignore_index=True)
        # The summary is computed from exactly what is written.
        summary = summarise(kpis)
        write_tables(self.scenario, self.tmp, summary, manifest)
        self._finished = True
        # What the folder holds, without reading it back (the large tables stay on disk).
        self.results = Results(self.scenario, None, None, kpis, summary, manifest,
                               path=self.folder)

    def __exit__(self, kind, value, traceback) -> bool:
        for file in (self._ts, self._loans, self._kpis_file):
            if file.is_open:
                file.abandon()   # the temporary folder goes, or finish() closed it
        if kind is None and not self._finished:
            kind = RuntimeError
            value = RuntimeError("RunWriter left without finish()")
        return bool(self._context.__exit__(kind, value, traceback))


def kpis_part(kpis: pd.DataFrame) -> Part:
    """A chunk's KPI table as a row group of ``kpis.parquet`` (``parquet_join``).

    Each chunk's KPIs are a row group of their own, encoded where the chunk
    ran, as its timeseries and loans are: the file is closed, not written,
    once the last chunk is in. Parquet's own types only (no pandas metadata):
    ``pandas.read_parquet`` gives the table back as it was.
    """
    # Column by column (as Table.from_pandas converts them: NaN as null), without
    # pandas' conversion machinery, which costs more than encoding a chunk's KPIs.
    table = pa.Table.from_arrays(
        [pa.array(kpis[name].to_numpy(), from_pandas=True) for name in kpis.columns],
        names=[str(name) for name in kpis.columns])
    return encode_part(table, table.schema)


def _as_arrow(table: pa.Table | pd.DataFrame, schema: pa.Schema) -> pa.Table:
    if isinstance(table, pa.Table):
        return table
    return pa.Table.from_pandas(table, schema=schema, preserve_index=False)


def staging_folder(parent: Path, prefix: str, suffix: str = "") -> Path:
    """A new hidden folder in ``parent``, to be renamed into place when complete.

    ``tempfile.mkdtemp`` makes it private (mode 700); once renamed it is a
    results folder like any other, so it gets the permissions a folder made
    with ``mkdir`` would have (colleagues on a shared drive can read it).
    Its name says which process writes it (:func:`remove_abandoned`, run
    first, takes away those whose process is gone).
    """
    remove_abandoned(parent)
    tmp = Path(tempfile.mkdtemp(prefix=f"{prefix}{_writer()}.", suffix=suffix, dir=parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)
    return tmp


def _writer(pid: int | None = None) -> str:
    """``host-pid`` of the process writing a staging folder (dots of the host name as _)."""
    return f"{socket.gethostname().replace('.', '_')}-{os.getpid() if pid is None else pid}"


# The end of a staging folder's name: its writer's pid, mkdtemp's 8 characters, a suffix.
_STAGING_END = re.compile(r"-(?P<pid>\d+)\.[a-z0-9_]{8}(?:\.partial)?")


def remove_abandoned(parent: Path) -> list[Path]:
    """Remove the hidden staging folders in ``parent`` that a process of this machine
    left when it was killed without a chance to clean up (SIGKILL, the out-of-memory
    killer, a power cut): hidden, they would fill the disk unseen. Folders of live
    processes, of other machines (a shared drive) or of older versions stay."""
    removed: list[Path] = []
    if os.name != "posix" or not parent.is_dir():
        return removed
    for path in parent.glob(".*"):
        end = _STAGING_END.search(path.name)
        if end is None or end.end() != len(path.name) or not path.is_dir():
            continue
        pid = int(end["pid"])
        if f"{_writer(pid)}." not in path.name or _alive(pid):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:   # another user's process: alive
        return True
    return True


@contextlib.contextmanager
def atomic_folder(folder: Path) -> Iterator[Path]:
    """Yield a temporary sibling folder; rename it to ``folder`` only on success.

    On failure nothing is left: neither the temporary folder nor the parent
    folders made for it (``--out new/deep/run``), if they are still empty.
    """
    made = missing_folders(folder.parent)
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        tmp = staging_folder(folder.parent, prefix=f".{folder.name}.", suffix=".partial")
        try:
            yield tmp
            os.rename(tmp, folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    except BaseException:
        remove_if_empty(made)
        raise


def missing_folders(folder: Path) -> list[Path]:
    """``folder`` and the folders above it that do not exist yet, deepest first: what
    ``mkdir(parents=True)`` would make, for :func:`remove_if_empty` to take back."""
    return [path for path in (folder.absolute(), *folder.absolute().parents)
            if not path.exists()]


def remove_if_empty(folders: list[Path]) -> None:
    """Remove ``folders`` (deepest first) as long as they are empty."""
    for path in folders:
        try:
            path.rmdir()
        except OSError:   # not empty (something else was put there meanwhile), or gone
            break


def write_tables(scenario: Scenario, folder: Path, summary: pd.DataFrame,
                 manifest: dict) -> None:
    """Write the small files of a run folder: scenario, summary, manifest."""
    tables = scenario.to_dict()
    # Copy pipeline files next to the resolved scenario so the folder is self-contained.
    for line_id, line in scenario.lines.items():
        if line.applications.mode == "pipeline" and scenario.source is not None:
            source = (scenario.source.parent / line.applications.pipeline).resolve()
            target = folder / f"pipeline_{source.name}"
            if not target.exists():
                shutil.copyfile(source, target)
            tables["lines"][line_id]["applications"]["pipeline"] = target.name
    # Likewise a user's rates file (the shipped one travels with the tool).
    state_aid = getattr(scenario, "state_aid", None)
    if state_aid is not None and state_aid.rates_file:
        source = Path(state_aid.rates_file)
        target = folder / f"rates_{source.name}"
        shutil.copyfile(source, target)
        tables["state_aid"]["rates_file"] = target.name
    header = (f"# Resolved scenario '{scenario.name}' (hash {scenario.hash()[:12]}), as run.\n")
    (folder / "scenario.toml").write_text(header + tomli_w.dumps(tables), encoding="utf-8")
    summary.to_csv(folder / "summary.csv", index=False, float_format="%.6f")
    (folder / "manifest.json").write_text(
        json.dumps(manifest, indent=2, default=str) + "\n", encoding="utf-8")


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
             workers: int | None = 1) -> dict:
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
        "engine": engine_name(scenario),
        "command": command or [],
    }


def engine_name(scenario: Scenario) -> str:
    """Which engine runs the scenario's replications: ``batch``, or ``simpy`` and why
    (``batch.unsupported``); both give the same tables."""
    from .batch import unsupported

    reason = unsupported(scenario)
    return "batch" if reason is None else f"simpy ({reason})"


def slow_engine_note(scenario: Scenario) -> str | None:
    """What the commands tell a user whose scenario runs on the SimPy model (None when the
    batch engine runs it): why, and that only the time differs."""
    from .batch import unsupported

    reason = unsupported(scenario)
    if reason is None:
        return None
    return f"{reason}: the scenario runs on the SimPy model (the same results, several " \
        "times slower)"


def load_results(folder: str | Path, lazy: bool = False) -> Results:
    """Read a run folder back (``lazy``: timeseries and loans only when first used)."""
    folder = Path(folder)
    missing = [name for name in FILES if not (folder / name).exists()]
    if missing:
        raise InputError([Problem(str(folder), "", f"not a run folder (missing "
                                  f"{', '.join(missing)})")])
    scenario = load_scenario(folder / "scenario.toml")
    return Results(
        scenario=scenario,
        timeseries=None if lazy else pd.read_parquet(folder / "timeseries.parquet"),
        loans=None if lazy else pd.read_parquet(folder / "loans.parquet"),
        kpis=pd.read_parquet(folder / "kpis.parquet"),
        summary=pd.read_csv(folder / "summary.csv"),
        manifest=json.loads((folder / "manifest.json").read_text(encoding="utf-8")),
        path=folder,
    )
