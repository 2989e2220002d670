"""Where replications run: in this process, on local worker processes, or on Dask.

Replications are grouped in chunks of consecutive ids (:func:`chunk_size`:
:data:`CHUNK_SIZE` for the SimPy model, up to :data:`BATCH_CHUNK_SIZE` or
:data:`LONG_DESK_CHUNK_SIZE` for the batch engine, which simulates a
chunk's replications together). The
chunking depends on the scenario only, never on the number of workers or
the backend, and chunks come back in order, so a run writes the same bytes
whether it ran serially, on all local cores or on a Dask cluster.

* serial: ``workers=1``;
* local processes (the default, ``workers=None`` = all cores): ``workers``
  processes simulate, this one and ``workers - 1`` helpers; a bounded number
  of chunks is outstanding at any time, so memory does not grow with the
  number of replications (:mod:`.pool`);
* Dask distributed: pass a ``dask.distributed.Client`` (or ``--scheduler
  tcp://host:8786`` on the command line); Dask is an optional extra
  (``pip install 'fesr-sim[dask]'``).
"""

from __future__ import annotations

import ctypes
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import pandas as pd
import pyarrow as pa

from .parquet_join import Part

CHUNK_SIZE = 50
BATCH_CHUNK_SIZE = 250
APPLICATIONS_PER_CHUNK = 100_000   # keeps a chunk of a very large fund within memory
# The batch engine steps month by month while applications come in, at a cost per
# month that does not depend on the number of replications in the chunk. Where the
# desk stays open for years (a revolving fund), larger chunks spread that cost
# thinner: on the revolving scenario, 500 replications per chunk take about a tenth
# less time than 250 (1,000: no less than 500, for 1.6 times the memory). Memory
# goes with the applications a chunk holds (about 2 KB each, whatever the scenario);
# the larger bound costs about 0.2 GiB more per process. Not for a short desk: the
# large fund runs slower in chunks of twice as many applications.
LONG_DESK_MONTHS = 60
LONG_DESK_CHUNK_SIZE = 500
LONG_DESK_APPLICATIONS_PER_CHUNK = 200_000


@dataclass
class ChunkFrames:
    """The tables of a chunk of consecutive replications.

    ``timeseries`` and ``loans`` are Arrow tables with the run folder's
    schemas, or, for a run that writes a folder, those tables already
    encoded as Parquet row groups (``parquet_join.Part``), or None for a run
    that keeps only KPIs (``run_chunk(kpis_only=True)``). Sent between
    processes, tables travel as LZ4-compressed Arrow IPC streams (about a
    tenth of the bytes of a pickled DataFrame), parts as they are.
    ``kpis_part``: the KPI table encoded as a row group too, for a run that
    writes a folder (the summary reads ``kpis``).
    """

    replications: list[int]
    timeseries: pa.Table | Part | None
    loans: pa.Table | Part | None
    kpis: pd.DataFrame
    kpis_part: Part | None = None

    def __getstate__(self) -> dict:
        return {"replications": self.replications, "kpis": self.kpis,
                "kpis_part": self.kpis_part,
                "timeseries": _ipc_bytes(self.timeseries), "loans": _ipc_bytes(self.loans)}

    def __setstate__(self, state: dict) -> None:
        self.replications, self.kpis = state["replications"], state["kpis"]
        self.kpis_part = state["kpis_part"]
        self.timeseries = _from_ipc(state["timeseries"])
        self.loans = _from_ipc(state["loans"])


def _ipc_bytes(table) -> tuple[str, object]:
    if not isinstance(table, pa.Table):   # a Parquet part (run_chunk(encode=True)), or None
        return "as is", table
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression="lz4")
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return "arrow", sink.getvalue().to_pybytes()


def _from_ipc(state: tuple[str, object]):
    kind, data = state
    return pa.ipc.open_stream(data).read_all() if kind == "arrow" else data


def chunked(ids: list[int], size: int = CHUNK_SIZE) -> list[list[int]]:
    return [ids[i:i + size] for i in range(0, len(ids), size)]


def chunk_size(scenario) -> int:
    """Replications per chunk: what the engine that runs the scenario does best with."""
    from .batch import expected_applications, stepped_months, unsupported

    if unsupported(scenario) is not None:
        return CHUNK_SIZE
    per_replication = max(expected_applications(scenario), 1.0)
    if stepped_months(scenario) > LONG_DESK_MONTHS:
        most, applications = LONG_DESK_CHUNK_SIZE, LONG_DESK_APPLICATIONS_PER_CHUNK
    else:
        most, applications = BATCH_CHUNK_SIZE, APPLICATIONS_PER_CHUNK
    return int(min(most, max(1, applications // per_replication)))


_MEMORY_TUNED = False


def keep_freed_memory() -> None:
    """Let this process reuse the memory it frees instead of returning it to the system.

    A chunk builds tens of megabytes of arrays and frees them; by default
    glibc gives large blocks back to the kernel, and the next chunk pays a
    page fault for every 4 KiB it touches again (on this project's 2-core
    virtual machine that was about 30 % of a reference replication). Blocks
    up to 32 MiB now come from the heap, and up to 512 MiB of freed heap is
    kept. Applied to the helper processes of local runs and by the
    ``fesr-sim`` command to its own process; not to a program that imports
    the library, nor to Dask workers, whose memory is theirs to manage. Only
    glibc has ``mallopt``; elsewhere this does nothing.
    """
    global _MEMORY_TUNED
    if _MEMORY_TUNED:
        return
    _MEMORY_TUNED = True
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 32 * 2**20)
    mallopt(m_trim_threshold, 512 * 2**20)


def run_chunk(scenario, ids: list[int], seed: int, check: bool,
              encode: bool = False, kpis_only: bool = False) -> ChunkFrames:
    """Run a chunk of replications and return its tables (runs in a worker).

    The batch engine runs the chunk when it covers the scenario; otherwise the
    SimPy model runs its replications one by one. Both give the same tables.
    ``encode``: the timeseries and loans come back as Parquet row groups
    ready for the run folder's files (``parquet_join``), encoded here rather
    than by the process that writes the folder. ``kpis_only``: the KPI table
    only, for what reads nothing else (sweeps, comparisons, goal seeking):
    ``timeseries`` and ``loans`` are None, their Arrow tables neither laid out
    (the batch engine sums the fund's totals, the KPIs read only those and
    the loans' arrays) nor sent between processes.
    """
    from .batch import simulate_chunk, unsupported
    from .runner import kpi_frame, run_replication, to_frames

    if unsupported(scenario) is None:
        chunk = simulate_chunk(scenario, ids, seed, check, kpis_only)
    else:
        batch = [run_replication(scenario, i, seed, check) for i in ids]
        if kpis_only:
            chunk = ChunkFrames(ids, None, None, kpi_frame(
                [{"replication": t.replication, **t.kpis} for t in batch]))
        else:
            chunk = ChunkFrames(ids, *to_frames(batch, scenario))
    if encode and not kpis_only:
        from .parquet_join import encode_part
        from .results import kpis_part, loans_schema, timeseries_schema

        chunk.timeseries = encode_part(chunk.timeseries, timeseries_schema(scenario))
        chunk.loans = encode_part(chunk.loans, loans_schema())
        chunk.kpis_part = kpis_part(chunk.kpis)
    return chunk


@contextmanager
def chunk_results(scenario, ids: list[int], seed: int, check: bool = False,
                  workers: int | None = None, client=None, encode: bool = False,
                  kpis_only: bool = False) -> Iterator[Iterator[ChunkFrames]]:
    """The tables of every chunk of ``ids``, in order (see :func:`map_tasks`;
    ``encode`` and ``kpis_only``: :func:`run_chunk`).

    Leaving the ``with`` block, normally or by an exception (Ctrl-C while the
    caller writes a chunk), stops the workers at once: a generator left to
    the garbage collector would keep them, and the exit, waiting. Helper
    processes that ended with the last chunk are waited for only then, so
    the caller's last work (closing the files it writes) goes on while they
    give their memory back.
    """
    with runs_results([Run(scenario, ids, seed)], check, workers, client, encode,
                      kpis_only) as results:
        yield results


@dataclass(frozen=True)
class Run:
    """Replications of a scenario to run with a seed: one of several run on the same workers."""

    scenario: Any
    ids: list[int]
    seed: int

    def chunks(self, most: int | None = None) -> list[list[int]]:
        """Its replication ids in chunks (:func:`chunk_size`, or ``most`` if smaller)."""
        return chunked(self.ids, min(chunk_size(self.scenario), most or len(self.ids) or 1))


@contextmanager
def runs_results(runs: list[Run], check: bool = False, workers: int | None = None,
                 client=None, encode: bool = False,
                 kpis_only: bool = False) -> Iterator[Iterator[ChunkFrames]]:
    """The chunks of several runs, run after run, each run's in order, computed on the same
    workers (:func:`chunk_results` of each, one after the other, without a pause).

    The chunks of the next run start while the last ones of a run are still
    being computed: runs of a chunk or two each (a sweep's points, the
    scenarios of a comparison) keep every worker busy instead of one.
    """
    ending: list = []
    tasks = [(run.scenario, ids, run.seed) for run in runs for ids in run.chunks()]
    local = 1 if client is not None else (workers or default_workers())
    if kpis_only and len(tasks) < local:
        # A KPI table does not depend on how its replications are grouped (run folders
        # do: their row groups): fewer chunks than workers are split, one for each.
        most = -(-sum(len(run.ids) for run in runs) // local)
        tasks = [(run.scenario, ids, run.seed) for run in runs for ids in run.chunks(most)]
    results = map_tasks(tasks, check, workers, client, encode, ending, kpis_only)
    try:
        yield results
    finally:
        results.close()
        if ending:
            from .pool import reap

            reap(ending)


def default_workers() -> int:
    """All cores (:func:`simulator.console.cores`)."""
    from .console import cores

    return cores()


def processes_used(workers: int | None, client=None, chunks: int | None = None) -> int | None:
    """How many local processes are started to simulate: ``workers`` (default all cores),
    no more than there are ``chunks`` (a helper with no chunk left ends at once); None on
    a Dask cluster."""
    if client is not None:
        return None
    count = workers or default_workers()
    return count if chunks is None else max(1, min(count, chunks))


def backend_name(workers: int | None, client=None, chunks: int | None = None) -> str:
    """What ran the chunks, as the manifest says it: ``serial``, ``local processes (2)``
    (those that did, see :func:`processes_used`) or ``dask (tcp://...)``."""
    if client is not None:
        return f"dask ({getattr(client, 'scheduler', None) and client.scheduler.address})"
    count = processes_used(workers, client, chunks)
    return "serial" if count == 1 else f"local processes ({count})"


# A chunk to run: (scenario, replication ids, seed).
Task = tuple[Any, list[int], int]


def map_tasks(tasks: list[Task], check: bool = False, workers: int | None = None,
              client=None, encode: bool = False, ending: list | None = None,
              kpis_only: bool = False) -> Iterator[ChunkFrames]:
    """Run every chunk (of any scenarios and seeds) and yield the results in the order
    given (see :func:`run_chunk`).

    ``ending``: where local helper processes go once the last chunk is out,
    for the caller to wait for (``pool.results_in_order``).
    """
    options = {"check": check, "encode": encode, "kpis_only": kpis_only}
    if client is not None:
        yield from _dask(tasks, options, client)
        return
    workers = workers or default_workers()
    if workers == 1 or len(tasks) <= 1:
        for task in tasks:
            yield _run_task(options, task)
        return
    yield from _processes(tasks, options, workers, ending)


def _run_task(options: dict, task: Task) -> ChunkFrames:
    scenario, ids, seed = task
    return run_chunk(scenario, ids, seed, **options)


def _in_order(submit, tasks: list[Task], window: int) -> Iterator[ChunkFrames]:
    """Submit chunks with at most ``window`` in flight; yield results in chunk order."""
    pending: deque = deque()
    todo = iter(tasks)
    try:
        for task in todo:
            pending.append(submit(task))
            if len(pending) >= window:
                break
        while pending:
            result = pending.popleft().result()
            for task in todo:  # one finished, one more in flight
                pending.append(submit(task))
                break
            yield result
    finally:
        for future in pending:
            future.cancel()


def _processes(tasks: list[Task], options, workers, ending=None) -> Iterator[ChunkFrames]:
    """``workers`` processes simulate: this one and ``workers - 1`` helpers.

    This process also writes what comes back; it takes a chunk itself only
    while the next one in order is not back (:mod:`.pool`).
    """
    from .pool import results_in_order

    helpers = min(workers, len(tasks)) - 1
    yield from results_in_order(partial(_run_task, options), tasks, helpers,
                                window=2 * workers + 1, start=keep_freed_memory,
                                ending=ending)


def _dask(tasks: list[Task], options, client) -> Iterator[ChunkFrames]:
    # Each scenario goes to the workers once, whatever its number of chunks. Under a key
    # of its own (hash=False): under the key of its contents, a scenario sent again
    # right after a run that sent it had ended could meet the workers deleting the
    # first copy, and the run failed with "lost dependencies" (a known race of
    # dask.distributed, issues 3703 and 8576; seen once in this project's tests).
    scenarios = list({id(task[0]): task[0] for task in tasks}.values())
    scattered = dict(zip(map(id, scenarios),
                         client.scatter(scenarios, broadcast=True, hash=False), strict=True))
    window = max(2, 2 * len(client.scheduler_info().get("workers", {})))
    yield from _in_order(
        lambda task: client.submit(run_chunk, scattered[id(task[0])], task[1], task[2],
                                   pure=False, **options),
        tasks, window)


def connect(scheduler: str, timeout_s: float = 10.0):
    """A Dask client for ``tcp://host:port``, checked before a run depends on it.

    Each way this can fail is one line naming ``--scheduler`` (an
    :class:`~simulator.errors.InputError`), within about ``timeout_s``
    seconds each: Dask not installed, an address that is not one, nothing
    answering, something answering that is not a Dask scheduler (its
    dashboard's port, say: Dask itself would wait for ever), a scheduler
    without workers, workers that cannot import this fesr-sim version.
    """
    from .errors import InputError, Problem

    def refuse(why: str) -> InputError:
        return InputError([Problem("--scheduler", scheduler, why)])

    try:
        from dask.distributed import Client
    except ImportError:
        raise refuse("Dask is not installed: pip install '.[dask]' in the project's "
                     "folder (or pip install 'fesr-sim[dask]')") from None
    address = scheduler if "://" in scheduler else f"tcp://{scheduler}"   # as Dask reads it
    scheme, _, place = address.partition("://")
    host, _, port = place.rpartition(":")
    if scheme not in ("tcp", "tls", "ws", "wss") or not host or not port.isdigit():
        raise refuse("not a scheduler address: write tcp://HOST:PORT, e.g. "
                     "tcp://192.168.1.20:8786")
    outcome: dict = {}
    lock = threading.Lock()   # the answer is taken, or given up on, not both

    def start() -> None:
        try:
            client = Client(address, timeout=f"{timeout_s:g}s")
        except Exception as exc:  # reported below, in the caller's thread
            outcome["error"] = exc
            return
        with lock:
            if outcome.get("given_up"):   # too late: nobody would use or close it
                client.close()
            else:
                outcome["client"] = client

    # In a thread of its own: Dask waits without limit for an answer from a port that
    # accepts connections but is not a scheduler's.
    thread = threading.Thread(target=start, daemon=True, name="dask-connect")
    thread.start()
    waited = 1.5 * timeout_s + 1   # Dask's own time limit first, where it has one
    thread.join(waited)
    with lock:
        outcome["given_up"] = "client" not in outcome
    if "client" not in outcome:
        if "error" in outcome:
            raise refuse(f"cannot reach the Dask scheduler: {outcome['error']}")
        raise refuse(f"no Dask scheduler answers there within {waited:g} s "
                     "(its port is 8786 unless set otherwise; 8787 is its dashboard)")
    client = outcome["client"]
    try:
        _check_workers(client, timeout_s)
    except BaseException:
        client.close()
        raise
    return client


def _check_workers(client, timeout_s: float) -> None:
    """The scheduler has workers and each runs this version of fesr-sim (else InputError)."""
    from . import __version__
    from .errors import InputError, Problem

    def refuse(why: str) -> InputError:
        return InputError([Problem("--scheduler", client.scheduler.address, why)])

    try:
        client.wait_for_workers(1, timeout=timeout_s)
    except (TimeoutError, OSError):
        raise refuse(f"the Dask scheduler has no workers (none joined within "
                     f"{timeout_s:g} s): start some with dask worker ADDRESS") from None
    try:
        versions = client.run(_worker_version)
    except Exception as exc:
        raise refuse(f"its workers cannot run fesr-sim ({type(exc).__name__}: {exc}): "
                     f"install fesr-sim {__version__} where they run") from None
    other = {worker: version for worker, version in versions.items()
             if version != __version__}
    if other:
        worker, version = next(iter(other.items()))
        raise refuse(f"worker {worker} runs fesr-sim {version}, this is {__version__}: "
                     f"every worker needs the same version (the same numbers)")


def _worker_version() -> str:
    """This package's version, where a Dask worker runs it (:func:`_check_workers`)."""
    from . import __version__

    return __version__
