"""The random draws of applications: counter-based streams, over many replications at once.

Every drawn quantity of an application (arrival time, cost, admission,
evaluation time, score, signing and implementation times, failure, default
and prepayment draws, declared prior aid) is a pure function of five things:
the master seed, the replication, the line id, the quantity and the
application's number. So replication ``i`` draws the same numbers whether it
runs alone (``--replication 17``), in a chunk of 250 or on another machine,
and two scenarios run with the same seed give application ``k`` the same
cost and the same fate (common random numbers, quantity by quantity).

The generator is SplitMix64 (G. Steele, D. Lea, C. Flood, "Fast splittable
pseudorandom number generators", OOPSLA 2014; the mixing function of
Stafford's variant 13, as in Java's ``SplittableRandom``)::

    state  = mix(mix(mix(seed + gamma) ^ (crc32(line) << 16 | quantity))
                 + (replication + 1) * gamma)
    u_k    = (mix(state + (k + 1) * gamma) >> 11) * 2**-53      # in [0, 1)

with ``gamma = 0x9E3779B97F4A7C15`` and arithmetic modulo 2**64. Each stream
is a stretch of SplitMix64's single sequence of period 2**64, which passes
BigCrush; streams start at hashed states, so two of them overlap with
negligible probability. Why not one ``numpy.random.Generator`` per stream:
building one costs about 20 microseconds and every draw call a few more, and
a chunk of replications has thousands of streams; here a column of every
replication of a chunk costs a handful of numpy operations.

Values come from uniforms by inversion (``distributions``: one uniform each);
the number of arrivals in a window is the Poisson quantile of one uniform,
and arrival times are sorted uniforms in the window.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
from scipy.special import pdtr, pdtrik

from .distributions import Fixed
from .loanbook import hazard_months
from .money import round_cents, round_half_away
from .scenario import date_to_months

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = (np.uint64(s) for s in (30, 27, 31, 11))

# The quantities drawn per application; arrival times of window w use ARRIVAL_TIMES + w.
(COUNTS, COST, ADMITTED, EVALUATION, SCORE, SIGNING, IMPLEMENTATION, FAILS,
 FAILURE_FRACTION, DEFAULT, PREPAYMENT, PRIOR_AID) = range(12)
ARRIVAL_TIMES = 1000


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's output function of an array of states (uint64, wrapping)."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


def stream_states(seed: int, replications: np.ndarray, line_id: str,
                  quantity: int) -> np.ndarray:
    """The starting state of one quantity's stream in each replication (uint64)."""
    if not 0 <= seed < 2**64:
        raise ValueError(f"a seed is a whole number from 0 to 2**64 - 1, got {seed}")
    tag = (zlib.crc32(line_id.encode()) << 16) | quantity
    base = _mix(np.array([seed], dtype=np.uint64) + _GAMMA)
    base = _mix(base ^ np.uint64(tag))
    reps = np.asarray(replications, dtype=np.uint64) + np.uint64(1)
    return _mix(base + reps * _GAMMA)


def uniforms(states: np.ndarray, counts: np.ndarray,
             steps: np.ndarray | None = None) -> np.ndarray:
    """The first ``counts[r]`` uniforms in [0, 1) of stream ``r``, streams one after another.

    ``steps``: :func:`stream_steps` of ``counts``, when several quantities
    are drawn for the same applications.
    """
    counts = np.asarray(counts, dtype=np.int64)
    if steps is None:
        steps = stream_steps(counts)
    z = _mix(np.repeat(states, counts) + steps)
    return (z >> _S11).astype(np.float64) * 2.0**-53


def stream_steps(counts: np.ndarray) -> np.ndarray:
    """``(k + 1) * gamma`` of the k-th draw of each stream, streams one after another."""
    total = int(counts.sum())
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return (np.arange(total, dtype=np.int64) - starts + 1).astype(np.uint64) * _GAMMA


def order_within_groups(group: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The order that sorts by ``group``, then by ``values``, ties kept in place:
    ``np.lexsort((values, group))``, for many small groups.

    ``group``: integers >= 0; ``values``: no NaN. Each group is sorted on its
    own, as a row of a table as wide as the largest group (padded with +inf,
    which stays after any value, +inf included, in a stable sort), instead of
    one sort of the whole array: about half the time for a chunk's
    applications (hundreds per replication). Groups of very different sizes
    would make the table large: then ``np.lexsort``.
    """
    table = _group_table(group, values)
    if table is None:
        return np.lexsort((values, group))
    grouped, starts, used, rows = table
    within = np.argsort(rows, axis=1, kind="stable")
    return grouped[(within + starts[:, None])[used]]


def sort_within_groups(group: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values[np.lexsort((values, group))]``: the values, group by group, each group
    sorted (as :func:`order_within_groups`, without the order: an unstable
    sort in place, several times faster)."""
    table = _group_table(group, values)
    if table is None:
        return values[np.lexsort((values, group))]
    _, _, used, rows = table
    rows.sort(axis=1)
    return rows[used]


def _group_table(group: np.ndarray, values: np.ndarray):
    """``values`` laid out one group per row, padded with +inf; None where that table
    would be much larger than the values. Also: the positions in group order, the
    first of each group in that order, and which cells hold a value."""
    count = len(values)
    if count == 0:
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp), \
            np.zeros((0, 0), dtype=bool), np.zeros((0, 0))
    # A stable sort of 16-bit keys is a radix sort.
    key = group.astype(np.uint16) if group.max() < 2**16 else group
    grouped = np.argsort(key, kind="stable")
    ordered = group[grouped]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    lengths = np.diff(np.r_[starts, count])
    width = int(lengths.max())
    if len(starts) * width > 4 * count + 1024:
        return None
    used = np.arange(width) < lengths[:, None]
    rows = np.full((len(starts), width), np.inf)
    rows[used] = values[grouped]
    return grouped, starts, used, rows


def poisson_counts(u: np.ndarray, mean: float) -> np.ndarray:
    """Poisson(``mean``) numbers by inversion: the smallest k with CDF(k) >= u.

    ``pdtrik`` inverts the CDF continuously; its ceiling is k or k + 1, and
    one evaluation of the CDF tells which (as ``scipy.stats.poisson.ppf``
    does, without importing ``scipy.stats``, which costs most of a second).
    """
    if mean <= 0:
        return np.zeros(len(u), dtype=np.int64)
    upper = np.maximum(np.ceil(np.nan_to_num(pdtrik(u, mean))), 0.0)   # u = 0: k = 0
    lower = np.maximum(upper - 1.0, 0.0)
    return np.where(pdtr(lower, mean) >= u, lower, upper).astype(np.int64)


def application_windows(line, scenario) -> list[tuple[float, float]]:
    """When the line takes applications, in months since the start."""
    horizon = float(scenario.scenario.horizon_months)
    start = scenario.scenario.start
    if line.procedure == "graduatoria" and line.calls:
        spans = [(date_to_months(start, c.opens), date_to_months(start, c.closes))
                 for c in line.calls]
    else:
        opens = date_to_months(start, line.desk_opens) if line.desk_opens else 0.0
        closes = date_to_months(start, line.desk_closes) if line.desk_closes else horizon
        spans = [(opens, closes)]
    return [(max(0.0, a), min(b, horizon)) for a, b in spans if min(b, horizon) > max(0.0, a)]


def _override(given, drawn: np.ndarray) -> np.ndarray:
    """A pipeline's per-row value where given, the drawn one elsewhere."""
    given = np.asarray(given, dtype=float)
    return np.where(np.isnan(given), drawn, given)


def draw_chunk(scenario, line_id: str, replications: list[int], seed: int) -> dict:
    """Every draw of a line's applications in each replication, as columns.

    Applications go replication by replication, each in arrival order;
    ``counts`` says how many each replication has. ``ids`` and
    ``beneficiaries`` are lists (None: generated / own beneficiary); every
    other column is a numpy array.
    """
    line = scenario.lines[line_id]
    apps = line.applications
    reps = np.asarray(replications, dtype=np.int64)
    size = len(reps)

    def draw(quantity: int, counts: np.ndarray) -> np.ndarray:
        return uniforms(stream_states(seed, reps, line_id, quantity), counts)

    # Quantities drawn once per application share their streams' steps. What a
    # draw would not change is not drawn: each quantity has its own stream, so
    # leaving one unread changes no other.
    def draw_each(quantity: int) -> np.ndarray:
        return uniforms(stream_states(seed, reps, line_id, quantity), counts, steps)

    def value(dist, quantity: int, **bounds) -> np.ndarray:
        if isinstance(dist, Fixed):
            return dist.from_uniform(np.empty(len(steps)), **bounds)
        return dist.from_uniform(draw_each(quantity), **bounds)

    def below(rate: float, quantity: int) -> np.ndarray:
        """Events of probability ``rate``: a uniform in [0, 1) below it."""
        if rate <= 0 or rate >= 1:
            return np.full(len(steps), rate >= 1)
        return draw_each(quantity) < rate

    def hazard(rate: float, quantity: int) -> np.ndarray:
        if rate <= 0 or rate >= 1:   # never, or the first month: whatever the draw
            return hazard_months(np.zeros(len(steps)), rate)
        return hazard_months(draw_each(quantity), rate)

    ids = beneficiaries = implementation_given = None
    if apps.mode == "pipeline":
        rows = scenario.pipeline(line_id)
        counts = np.full(size, len(rows), dtype=np.int64)
        steps = stream_steps(counts)
        arrival = np.tile(rows["t"].to_numpy(dtype=float), size)
        cost = np.tile(rows["eligible_cost"].to_numpy(dtype=float), size)
        drawn = draw_each(ADMITTED) < apps.admission_rate
        given = np.tile(rows["admitted"].to_numpy(dtype=object), size)
        admitted = np.array([bool(g) if g is not None else d
                             for g, d in zip(given, drawn, strict=True)], dtype=bool)
        evaluation = _override(np.tile(rows["evaluation_months"], size),
                               apps.evaluation_months.from_uniform(draw_each(EVALUATION)))
        score = _override(np.tile(rows["score"], size),
                          apps.score.from_uniform(draw_each(SCORE), low=-math.inf))
        ids = rows["id"].astype(str).tolist() * size
        implementation_given = np.tile(rows["implementation_months"].to_numpy(dtype=float),
                                       size)
        beneficiaries = [b if isinstance(b, str) and b else None
                         for b in rows["beneficiary"].tolist()] * size
    else:
        windows = application_windows(line, scenario)
        rep_of, window_of, times = [], [], []
        window_counts = draw(COUNTS, np.full(size, len(windows))).reshape(size, len(windows))
        counts = np.zeros(size, dtype=np.int64)
        for w, (opens, closes) in enumerate(windows):
            number = poisson_counts(window_counts[:, w], apps.per_month * (closes - opens))
            counts += number
            rep_of.append(np.repeat(np.arange(size), number))
            window_of.append(np.full(int(number.sum()), w))
            times.append(opens + (closes - opens) * draw(ARRIVAL_TIMES + w, number))
        rep_of, window_of, times = (np.concatenate(parts) if parts else np.zeros(0)
                                    for parts in (rep_of, window_of, times))
        arrival = sort_within_groups(rep_of * len(windows) + window_of, times)
        steps = stream_steps(counts)
        cost = value(apps.cost, COST, low=line.min_cost, high=line.max_cost)
        admitted = below(apps.admission_rate, ADMITTED)
        evaluation = value(apps.evaluation_months, EVALUATION)
        score = value(apps.score, SCORE, low=-math.inf)

    risk, disbursement = line.risk, line.disbursement
    signing = value(disbursement.signing_months, SIGNING)
    implementation = value(disbursement.implementation_months, IMPLEMENTATION)
    if implementation_given is not None:
        implementation = _override(implementation_given, implementation)
    prior = line.state_aid.prior_aid
    n = int(counts.sum())
    if isinstance(prior, Fixed):
        prior_cents = np.full(n, round_cents(prior.value * 100), dtype=np.int64)
    else:
        prior_cents = round_half_away(prior.from_uniform(draw_each(PRIOR_AID)) * 100.0)
    return {"counts": counts, "ids": ids, "beneficiaries": beneficiaries, "arrival": arrival,
            "eligible_cost": round_half_away(cost * 100.0), "admitted": admitted,
            "evaluation_months": evaluation, "score": score, "signing_months": signing,
            "implementation_months": implementation,
            "fails": below(risk.failure_rate, FAILS),
            "failure_fraction": draw_each(FAILURE_FRACTION), "prior_aid": prior_cents,
            "default_months": hazard(risk.default_rate, DEFAULT),
            "prepayment_months": hazard(risk.prepayment_rate, PREPAYMENT)}
