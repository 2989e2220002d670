"""Counter-based random streams: the published generator, independence, chunk invariance."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from simulator import load_scenario
from simulator.draws import (
    COST,
    DEFAULT,
    application_windows,
    draw_chunk,
    order_within_groups,
    poisson_counts,
    sort_within_groups,
    stream_states,
    uniforms,
)
from simulator.model import draw_columns

ROOT = Path(__file__).resolve().parent.parent


def test_a_stream_is_splitmix64():
    # The first outputs of SplitMix64 seeded with 0 (Vigna's reference splitmix64.c).
    expected = [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]
    u = uniforms(np.zeros(1, dtype=np.uint64), np.array([3]))
    assert u.tolist() == [(x >> 11) * 2.0**-53 for x in expected]


def _ks_ok(values: np.ndarray) -> bool:
    # Kolmogorov-Smirnov against U(0, 1) at the 1e-4 level: the bound shrinks as 1/sqrt(n).
    return stats.kstest(values, "uniform").pvalue > 1e-4


def test_uniforms_are_uniform_and_streams_uncorrelated():
    n, reps = 20_000, 64
    states = stream_states(2018, np.arange(reps), "A", COST)
    u = uniforms(states, np.full(reps, n)).reshape(reps, n)
    assert u.min() >= 0.0 and u.max() < 1.0
    assert _ks_ok(u.ravel())
    # Neighbouring replications, and two quantities of one replication, are independent:
    # correlations of n pairs lie within 4 standard errors (1/sqrt(n)) of zero.
    bound = 4 / math.sqrt(n)
    for a, b in [(u[0], u[1]), (u[10], u[11]), (u[0, :-1], u[0, 1:])]:
        assert abs(np.corrcoef(a, b)[0, 1]) < bound
    other = uniforms(stream_states(2018, np.arange(reps), "A", DEFAULT), np.full(reps, n))
    assert abs(np.corrcoef(u.ravel()[:n], other[:n])[0, 1]) < bound
    line_b = uniforms(stream_states(2018, np.arange(reps), "B", COST), np.full(reps, n))
    assert abs(np.corrcoef(u.ravel()[:n], line_b[:n])[0, 1]) < bound


def test_streams_differ_by_seed_replication_line_and_quantity():
    base = uniforms(stream_states(1, np.array([0]), "A", COST), np.array([5]))
    for states in (stream_states(2, np.array([0]), "A", COST),
                   stream_states(1, np.array([1]), "A", COST),
                   stream_states(1, np.array([0]), "B", COST),
                   stream_states(1, np.array([0]), "A", DEFAULT)):
        assert not np.array_equal(uniforms(states, np.array([5])), base)


@pytest.mark.parametrize("mean", [0.0, 0.3, 7.5, 480.0, 72_000.0])
def test_poisson_counts_invert_the_cdf(mean):
    u = np.r_[0.0, np.random.default_rng(5).random(3999)]
    k = poisson_counts(u, mean)
    if mean == 0:
        assert not k.any()
        return
    # The smallest k with CDF(k) >= u, as scipy.stats computes it.
    assert np.array_equal(k, np.maximum(stats.poisson.ppf(u, mean), 0).astype(np.int64))
    assert np.all(stats.poisson.cdf(k, mean) >= u - 1e-12)
    assert np.all((k == 0) | (stats.poisson.cdf(k - 1, mean) < u + 1e-12))
    # The mean of 3,999 counts (u = 0 aside) within 4 standard errors.
    assert abs(k[1:].mean() - mean) < 4 * math.sqrt(mean / (len(k) - 1))


def test_a_replication_draws_the_same_alone_and_in_a_chunk():
    scenario = load_scenario(ROOT / "scenarios" / "wecare_fesr_2018.toml")
    seed = scenario.scenario.seed
    for line_id in scenario.lines:
        chunk = draw_chunk(scenario, line_id, [3, 4, 9], seed)
        starts = np.r_[0, np.cumsum(chunk["counts"])]
        for position, replication in enumerate([3, 4, 9]):
            alone = draw_columns(scenario, line_id, replication, seed)
            rows = slice(starts[position], starts[position + 1])
            for name, values in alone.items():
                if isinstance(values, np.ndarray):
                    assert np.array_equal(chunk[name][rows], values), (line_id, name)


def test_arrivals_are_sorted_in_their_windows_and_as_many_as_expected():
    scenario = load_scenario(ROOT / "scenarios" / "wecare_fesr_2018.toml")
    line = scenario.lines["B"]
    (opens, closes), = application_windows(line, scenario)
    reps = 400
    chunk = draw_chunk(scenario, "B", list(range(reps)), 11)
    starts = np.r_[0, np.cumsum(chunk["counts"])]
    arrival = chunk["arrival"]
    for r in range(reps):
        times = arrival[starts[r]:starts[r + 1]]
        assert np.all(np.diff(times) >= 0)
        assert np.all((times >= opens) & (times < closes))
    mean = line.applications.per_month * (closes - opens)
    assert abs(chunk["counts"].mean() - mean) < 4 * math.sqrt(mean / reps)
    # Arrival times are uniform over the window.
    assert _ks_ok((arrival - opens) / (closes - opens))


@pytest.mark.parametrize("seed", [-1, 2**64])
def test_a_seed_outside_64_bits_is_refused(seed):
    with pytest.raises(ValueError, match="2\\*\\*64"):
        stream_states(seed, np.array([0]), "A", COST)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 70_000), st.sampled_from(
    [0.0, 1.0, 1.5, 2.0, 7.25, 207.0, math.inf, 1e-300])), max_size=300),
    st.integers(0, 3))
def test_order_within_groups_is_lexsort(rows, spread):
    # Few distinct values make ties; groups past 2**16 leave the radix sort;
    # ``spread`` makes groups of very different sizes (the fallback).
    group = np.array([g >> (4 * spread) for g, _ in rows], dtype=np.int64)
    values = np.array([v for _, v in rows], dtype=float)
    expected = np.lexsort((values, group))
    np.testing.assert_array_equal(order_within_groups(group, values), expected)
    np.testing.assert_array_equal(sort_within_groups(group, values), values[expected])


def test_order_within_groups_on_a_chunk_of_arrivals():
    rng = np.random.default_rng(5)
    counts = rng.poisson(180, 400)
    group = np.repeat(np.arange(400), counts)[rng.permutation(counts.sum())]
    values = np.round(rng.random(len(group)) * 207, 2)   # rounded: ties within groups
    expected = np.lexsort((values, group))
    np.testing.assert_array_equal(order_within_groups(group, values), expected)
    np.testing.assert_array_equal(sort_within_groups(group, values), values[expected])
