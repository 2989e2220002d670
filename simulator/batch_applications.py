"""One line's applications and decisions in every replication of a chunk.

What the batch engine (``batch``) knows before its month loop starts: the
draws of every application (``draws``), its terms (loan, bank loan, grant,
as ``loanbook.project_terms``), and the decisions the line will offer, in
the SimPy model's event order. None of it depends on the fund's cash: the
month loop then takes these decisions for every line of every replication
at once.
"""

from __future__ import annotations

import numpy as np

from .draws import application_windows, draw_chunk, order_within_groups
from .money import round_cents, round_half_away
from .scenario import Scenario

# Per application, as drawn (``draws.draw_chunk``).
DRAWN = ("arrival", "eligible_cost", "admitted", "evaluation_months", "score",
         "signing_months", "implementation_months", "fails", "failure_fraction",
         "prior_aid", "default_months", "prepayment_months")
# Per application, its terms (:meth:`LineApplications._terms`).
TERMS = ("public_loan", "bank_loan", "grant", "exposure")


class LineApplications:
    """The applications of one line in ``replications`` and the decisions offered on them.

    Applications go replication by replication (``app_rep``, 0 ..
    replications - 1; ``app_number``, from 0 within a replication).
    Decisions are positions of applications (``dec_app``) with their times
    (``dec_time``), sorted by replication and, within one, in the model's
    order: by time (sportello), or by call, then score, then arrival
    (graduatoria).
    """

    def __init__(self, scenario: Scenario, line_id: str, replications: list[int], seed: int,
                 end_time: float):
        self.scenario, self.line_id = scenario, line_id
        self.line = scenario.lines[line_id]
        self.size = len(replications)
        # A pipeline's rows (mode = "pipeline"): each application is row ``app_number``
        # in every replication, with that row's id and beneficiary.
        self.pipeline = scenario.pipeline(line_id) \
            if self.line.applications.mode == "pipeline" else None
        self._draw(replications, seed)
        self._terms()
        self._decisions(end_time)

    def release_arrays(self) -> None:
        """Let go of the per-application and per-decision arrays once the chunk
        has stacked every line's (``batch.ChunkBatch``); the line's rules and
        pipeline stay."""
        for name in ("app_rep", "app_number", *DRAWN, *TERMS, "dec_app", "dec_time"):
            delattr(self, name)

    def _draw(self, replications: list[int], seed: int) -> None:
        columns = draw_chunk(self.scenario, self.line_id, replications, seed)
        counts = columns["counts"]
        self.app_rep = np.repeat(np.arange(self.size), counts)
        self.app_number = np.arange(len(self.app_rep)) - np.repeat(np.cumsum(counts) - counts,
                                                                   counts)
        for name in DRAWN:
            setattr(self, name, columns[name])

    def _terms(self) -> None:
        """``loanbook.project_terms`` of every application."""
        i = self.line.instrument
        cost = self.eligible_cost
        financed = round_half_away(cost * i.coverage)
        public = round_half_away(financed * i.public_loan_share)
        bank = financed - public
        if i.max_public_loan is not None:
            public = np.minimum(public, round_cents(i.max_public_loan * 100))
        base = cost if i.grant_base == "eligible_cost" else public
        grant = round_half_away(base * i.grant_share)
        if i.max_grant is not None:
            grant = np.minimum(grant, round_cents(i.max_grant * 100))
        grant = np.maximum(np.minimum(grant, cost - public - bank), 0)
        self.public_loan, self.bank_loan, self.grant = public, bank, grant
        self.exposure = public + grant

    def _decisions(self, end: float) -> None:
        """Every decision of the line before ``end``, per replication in the model's order."""
        line = self.line
        apps = np.flatnonzero(self.admitted)
        if line.procedure == "graduatoria":
            # No call inside the horizon: no decision.
            parts = [(np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0, dtype=np.int64),
                      np.zeros(0))]
            for call, (opens, closes) in enumerate(application_windows(line, self.scenario)):
                entry = (self.arrival >= opens) & (self.arrival < closes)
                ends = np.full(self.size, closes)
                np.maximum.at(ends, self.app_rep[entry],
                              (self.arrival + self.evaluation_months)[entry])
                chosen = np.flatnonzero(entry & self.admitted)
                time = ends[self.app_rep[chosen]]
                keep = time < end
                chosen, time = chosen[keep], time[keep]
                parts.append((chosen, time, np.full(len(chosen), call), -self.score[chosen]))
            chosen = np.concatenate([p[0] for p in parts])
            time = np.concatenate([p[1] for p in parts])
            call = np.concatenate([p[2] for p in parts])
            rank = np.concatenate([p[3] for p in parts])
            # Ranked by score, ties by arrival (the application's number).
            order = np.lexsort((self.app_number[chosen], rank, call, time,
                                self.app_rep[chosen]))
        else:
            time = (self.arrival + self.evaluation_months)[apps]
            keep = time < end
            chosen, time = apps[keep], time[keep]
            # Within a replication, positions follow the applications' numbers: ties
            # in time kept in place are ties broken by number.
            order = order_within_groups(self.app_rep[chosen], time)
        self.dec_app = chosen[order].astype(np.int64)
        self.dec_time = np.asarray(time, dtype=float)[order]
