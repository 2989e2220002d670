"""A strict run that rejects aid over the de minimis ceiling, on the batch engine.

In a strict run (``state_aid.strict``), a line whose ``over_ceiling`` rule is
``reject`` settles an application without committing it when the aid of the
project would take its beneficiary over the ceiling (``FundModel._try_commit``).
The SimPy model prices a project's aid only when the line can cover it,
that is exactly when a run that only flags the aid commits it. So, event by
event, a strict run and a flagging run of a replication stay the same until
the first commitment that the flagging run marks as over the ceiling on a
rejecting line: a replication without one is the same in both.

The batch engine therefore runs such a chunk as a flagging run, and the
replications where a project on a rejecting line went over the ceiling are
run again on the SimPy model, whose tables replace theirs
(:func:`redo_on_the_simpy_model`). Replications are independent, so the
others keep the batch engine's tables, and which are run again depends on
each replication alone, never on the chunk it is in. A line that *reduces*
aid over the ceiling prices projects the line cannot cover as well (a
reduced one may fit), so a flagging run says nothing about them: such a
scenario runs on the SimPy model (``batch.unsupported``).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from .scenario import Scenario


def rejecting_lines(scenario: Scenario) -> list[str]:
    """The lines whose aid over the ceiling this run rejects."""
    if not scenario.state_aid.strict:
        return []
    return [line_id for line_id, line in scenario.lines.items()
            if line.state_aid.over_ceiling == "reject"]


def replications_to_redo(scenario: Scenario, loans: dict[str, np.ndarray],
                         replications: list[int]) -> list[int]:
    """Positions in ``replications`` of those whose flagging run committed a project
    over the ceiling on a rejecting line (``loans``: the chunk's loan table)."""
    lines = rejecting_lines(scenario)
    if not lines or not len(loans["replication"]):
        return []
    over = np.asarray(loans["over_ceiling"], dtype=bool) & np.isin(
        np.asarray(loans["line"], dtype=object), lines)
    ids = set(np.asarray(loans["replication"])[over].tolist())
    return [p for p, replication in enumerate(replications) if replication in ids]


def redo_on_the_simpy_model(scenario: Scenario, replications: list[int], seed: int,
                            check: bool, redo: list[int],
                            series: dict[str, np.ndarray] | None,
                            loans: dict[str, np.ndarray], kpis: dict[str, np.ndarray]):
    """The chunk's tables with the replications at positions ``redo`` run on the SimPy model.

    ``series`` (column -> replications x lines and total x months, or None),
    ``loans`` (the loan table's columns, replication by replication) and
    ``kpis`` (column -> one value per replication) as ``batch.simulate_chunk``
    has them; returns them with those replications' rows replaced, the
    loans as Arrow arrays of the run folder's types.
    """
    from .results import loans_schema
    from .runner import LOAN_COLUMNS, arrow_table, run_replication

    tables = [run_replication(scenario, replications[p], seed, check) for p in redo]
    names = [*scenario.lines, "total"]
    if series is not None:
        for column, cube in series.items():
            for p, table in zip(redo, tables, strict=True):
                cube[p] = [table.series[name][column] for name in names]
    for column, values in kpis.items():
        if column != "replication":
            for p, table in zip(redo, tables, strict=True):
                values[p] = table.kpis[column]
    schema = loans_schema()
    redone = np.isin(np.asarray(loans["replication"]), [replications[p] for p in redo])
    joined = pa.concat_tables([
        arrow_table(loans, schema).filter(pa.array(~redone)),
        arrow_table({c: np.concatenate([t.loans[c] for t in tables]) for c in LOAN_COLUMNS},
                     schema)])
    # Back in replication order (each replication's rows keep theirs).
    position = {replication: p for p, replication in enumerate(replications)}
    order = np.argsort([position[r] for r in joined["replication"].to_pylist()], kind="stable")
    joined = joined.take(pa.array(order))
    return series, {c: joined[c].combine_chunks() for c in schema.names}, kpis
