"""Distributions of costs and durations: support, exact truncation, statistics, seeding.

Statistical checks use tolerances derived from the sample size (4 standard
errors), with fixed seeds: they are deterministic, and a correct
implementation would fail them with a probability below 1e-4 for any seed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import TypeAdapter, ValidationError
from scipy.stats import norm

from simulator.distributions import (
    Distribution,
    Empirical,
    Fixed,
    Lognormal,
    Triangular,
    Uniform,
    to_file_value,
)

N = 200_000
DIST = TypeAdapter(Distribution)


def rng(seed: int = 12345) -> np.random.Generator:
    return np.random.default_rng(seed)


def within_4_sigma(share: float, p: float, n: int = N) -> bool:
    """Is an observed share compatible with probability ``p`` (binomial, 4 sigma)?"""
    return abs(share - p) <= 4 * math.sqrt(p * (1 - p) / n) + 1e-12


EXAMPLES = [
    Fixed(value=3.0),
    Uniform(dist="uniform", low=12, high=24),
    Triangular(dist="triangular", low=1, mode=2, high=4),
    Triangular(dist="triangular", low=0, mode=0, high=6),   # mode at the minimum
    Triangular(dist="triangular", low=0, mode=6, high=6),   # mode at the maximum
    Lognormal(dist="lognormal", median=60_000, sigma=0.5),
    Empirical(dist="empirical", values=[1, 2, 3, 10], weights=[1, 2, 3, 4]),
    Empirical(dist="empirical", values=[5, 7]),
]
BOUNDS = [(0.0, math.inf), (2.5, 3.5), (1.5, 15.0), (20_000, 100_000), (0.0, 1.0)]


# -- support and truncation ---------------------------------------------------------------

@pytest.mark.parametrize("dist", EXAMPLES, ids=lambda d: f"{d.dist}")
@pytest.mark.parametrize("bounds", BOUNDS, ids=str)
def test_draws_lie_in_the_support_and_the_bounds(dist, bounds):
    low, high = bounds
    values = dist.draw(rng(), 20_000, low, high)
    assert values.shape == (20_000,) and values.dtype == float
    assert np.all(np.isfinite(values))
    assert np.all((values >= low) & (values <= high))
    lo, hi = dist.bounds()
    if dist.mass_inside(low, high) > 0:  # the truncated distribution exists: inside both
        assert np.all((values >= lo) & (values <= hi))


def test_truncation_is_conditioning_not_clipping():
    """A uniform on [12, 24] truncated to [15, 18] is uniform on [15, 18]: no mass at 15 or 18."""
    values = Uniform(dist="uniform", low=12, high=24).draw(rng(), N, 15, 18)
    assert np.mean(values == 15) == 0 and np.mean(values == 18) == 0
    assert within_4_sigma(np.mean(values < 16.5), 0.5)


def test_empirical_truncation_renormalises_the_weights():
    dist = Empirical(dist="empirical", values=[1, 2, 3, 10], weights=[1, 2, 3, 4])
    values = dist.draw(rng(), N, 1.5, 5)
    assert set(np.unique(values)) == {2.0, 3.0}
    assert within_4_sigma(np.mean(values == 2), 2 / 5)


def test_no_probability_inside_the_bounds_gives_the_nearest_bound():
    """The scenario checks refuse this for costs; the draw still stays finite and in bounds."""
    far = Lognormal(dist="lognormal", median=1.0, sigma=0.1)
    assert far.mass_inside(1e6, 2e6) == 0
    assert np.all(far.draw(rng(), 100, 1e6, 2e6) == 1e6)
    assert np.all(Uniform(dist="uniform", low=1, high=2).draw(rng(), 10, 5, 6) == 5)


def test_fixed_is_clipped_and_degenerate_cases_are_constant():
    assert np.all(Fixed(value=3).draw(rng(), 5, 0, 2) == 2)
    assert np.all(Triangular(dist="triangular", low=2, mode=2, high=2).draw(rng(), 5) == 2)
    assert np.all(Lognormal(dist="lognormal", median=50, sigma=0).draw(rng(), 5, 60, 70) == 60)
    assert Uniform(dist="uniform", low=1, high=2).draw(rng(), 0).shape == (0,)


# -- statistics ---------------------------------------------------------------------------

def analytic_truncated_median(median: float, sigma: float, low: float, high: float) -> float:
    """Median of a lognormal truncated to [low, high], from scipy's normal distribution."""
    a = (math.log(low) - math.log(median)) / sigma if low > 0 else -math.inf
    b = (math.log(high) - math.log(median)) / sigma if math.isfinite(high) else math.inf
    # Half-way in probability between the bounds, via the survival function (upper tails).
    return median * math.exp(sigma * norm.isf((norm.sf(a) + norm.sf(b)) / 2))


@pytest.mark.parametrize(("median", "sigma", "low", "high"), [
    (1_400_000, 0.35, 1_000_000, 5_000_000),   # line A: the lower bound cuts
    (60_000, 0.5, 10_000, 100_000),            # line B: the upper bound cuts
    (60_000, 0.5, 0.0, math.inf),              # no truncation: the median itself
    (10_000, 0.3, 100_000, 200_000),           # far in the upper tail (z > 7)
    (1_000_000, 1.5, 5_000, 20_000),           # far in the lower tail
])
def test_truncated_lognormal_median(median, sigma, low, high):
    dist = Lognormal(dist="lognormal", median=median, sigma=sigma)
    expected = analytic_truncated_median(median, sigma, low, high)
    assert low <= expected <= high
    assert dist.truncated_median(low, high) == pytest.approx(expected, rel=1e-6)
    values = dist.draw(rng(), N, low, high)
    assert np.all((values >= low) & (values <= high))
    share_below = np.mean(values < expected)
    assert within_4_sigma(share_below, 0.5), (share_below, expected, np.median(values))


def test_untruncated_lognormal_has_the_right_log_moments():
    values = Lognormal(dist="lognormal", median=60_000, sigma=0.5).draw(rng(), N)
    logs = np.log(values)
    assert abs(logs.mean() - math.log(60_000)) <= 4 * 0.5 / math.sqrt(N)
    assert logs.std() == pytest.approx(0.5, rel=4 * math.sqrt(1 / (2 * N)) * 1.5)


@pytest.mark.parametrize(("low", "mode", "high"), [(1, 2, 4), (12, 12, 24), (0, 6, 6),
                                                    (10, 11, 40)])
def test_triangular_mean(low, mode, high):
    values = Triangular(dist="triangular", low=low, mode=mode, high=high).draw(rng(), N)
    mean = (low + mode + high) / 3
    variance = (low**2 + mode**2 + high**2 - low * mode - low * high - mode * high) / 18
    assert abs(values.mean() - mean) <= 4 * math.sqrt(variance / N)
    assert values.min() >= low and values.max() <= high


def test_truncated_triangular_follows_the_conditional_cdf():
    dist = Triangular(dist="triangular", low=1, mode=2, high=4)
    low, high = 1.5, 3.0
    values = dist.draw(rng(), N, low, high)
    mass = float(dist.cdf(high) - dist.cdf(low))
    for x in (1.75, 2.0, 2.5):
        expected = float(dist.cdf(x) - dist.cdf(low)) / mass
        assert within_4_sigma(np.mean(values <= x), expected)


def test_triangular_cdf_against_scipy():
    from scipy.stats import triang
    dist = Triangular(dist="triangular", low=1, mode=2, high=4)
    x = np.linspace(0, 5, 51)
    assert np.allclose(dist.cdf(x), triang.cdf(x, c=1 / 3, loc=1, scale=3))


def test_uniform_mean():
    values = Uniform(dist="uniform", low=12, high=24).draw(rng(), N)
    assert abs(values.mean() - 18) <= 4 * math.sqrt(12**2 / 12 / N)


def test_empirical_frequencies_follow_the_weights():
    dist = Empirical(dist="empirical", values=[1, 2, 3, 10], weights=[1, 2, 3, 4])
    values = dist.draw(rng(), N)
    for value, p in zip([1, 2, 3, 10], [0.1, 0.2, 0.3, 0.4], strict=True):
        assert within_4_sigma(np.mean(values == value), p)
    equal = Empirical(dist="empirical", values=[5, 7]).draw(rng(), N)
    assert within_4_sigma(np.mean(equal == 5), 0.5)


# -- seeding ----------------------------------------------------------------------------------

@pytest.mark.parametrize("dist", EXAMPLES, ids=lambda d: f"{d.dist}")
def test_same_seed_same_draws(dist):
    first = dist.draw(rng(7), 1000, 0, 100_000)
    assert np.array_equal(first, dist.draw(rng(7), 1000, 0, 100_000))
    if not isinstance(dist, Fixed):
        assert not np.array_equal(first, dist.draw(rng(8), 1000, 0, 100_000))


@pytest.mark.parametrize("dist", EXAMPLES[1:], ids=lambda d: f"{d.dist}")
def test_a_draw_uses_one_uniform_per_value_whatever_the_bounds(dist):
    """The stream advances the same with any bounds: later draws do not shift."""
    a, b = rng(3), rng(3)
    dist.draw(a, 100, 0, math.inf)
    dist.draw(b, 100, 2.5, 3.5)
    assert a.uniform() == b.uniform()


# -- file values -----------------------------------------------------------------------------

@pytest.mark.parametrize("value", [
    3, 1.5, {"dist": "uniform", "low": 1, "high": 3},
    {"dist": "triangular", "low": 1, "mode": 2, "high": 4},
    {"dist": "lognormal", "median": 60_000, "sigma": 0.5},
    {"dist": "empirical", "values": [1, 2.5], "weights": [1, 3]},
    {"dist": "empirical", "values": [1, 2]},
])
def test_file_value_round_trip(value):
    dist = DIST.validate_python(value)
    assert to_file_value(dist) == value
    assert DIST.validate_python(to_file_value(dist)) == dist


def test_a_plain_number_is_fixed():
    assert DIST.validate_python(2) == Fixed(value=2.0)


@pytest.mark.parametrize("value", [
    True, "2", {"dist": "uniform", "low": 3, "high": 1},
    {"dist": "triangular", "low": 1, "mode": 5, "high": 4},
    {"dist": "lognormal", "median": 0, "sigma": 0.5},
    {"dist": "lognormal", "median": 1, "sigma": -0.1},
    {"dist": "empirical", "values": []},
    {"dist": "empirical", "values": [1, 2], "weights": [1]},
    {"dist": "empirical", "values": [1, 2], "weights": [0, 0]},
    {"dist": "empirical", "values": [1, 2], "weights": [-1, 2]},
    {"dist": "uniform", "low": 1, "high": float("inf")},
    {"dist": "uniform", "low": 1},
    {"dist": "normal", "mean": 1},
])
def test_invalid_distributions_are_refused(value):
    with pytest.raises(ValidationError):
        DIST.validate_python(value)
