"""Distributions of drawn quantities: project costs, evaluation and implementation times.

A scenario may write a plain number ("fixed") wherever a cost or a duration is
drawn, or one of the inline tables below.  Each table is a small pydantic
model that turns uniform numbers into values by inversion
(``from_uniform``; ``draw`` takes the uniforms from a
``numpy.random.Generator``). The model's uniforms come from its own
counter-based streams (``draws``), never from numpy's global random state.

``draw(rng, size, low, high)`` returns values of the distribution *truncated*
to ``[low, high]`` (costs: the line's ``[min_cost, max_cost]``; durations:
``[0, inf)``), that is drawn from the distribution conditioned on lying in the
bounds.  Truncation is exact (inverse CDF on the truncated range, Devroye
1986, ch. 2), not rejection sampling, so a draw costs the same whatever the
bounds, and each draw uses exactly one uniform number of the stream.  Only
when the distribution puts no probability at all inside the bounds are the
values clipped to the nearest bound (the scenario checks refuse such costs).
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from scipy.special import ndtr, ndtri

_CONFIG = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


def _text(value: float) -> str:
    """A number as a person would write it: 12, 1.5, 1400000."""
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(value)


def _clip(values: np.ndarray, low: float, high: float) -> np.ndarray:
    return np.clip(values, low, high)


class _Drawn(BaseModel):
    """What every distribution does: values from uniforms, by inversion."""

    def draw(self, rng: np.random.Generator, size: int, low: float = 0.0,
             high: float = math.inf) -> np.ndarray:
        """``size`` values truncated to ``[low, high]``, one uniform of ``rng`` each."""
        return self.from_uniform(rng.uniform(0.0, 1.0, size), low, high)

    def from_uniform(self, u: np.ndarray, low: float = 0.0,
                     high: float = math.inf) -> np.ndarray:
        """The values of uniforms ``u`` in [0, 1) (inverse CDF on the truncated range)."""
        raise NotImplementedError


class Fixed(_Drawn):
    """A constant: written in the scenario file as a plain number."""

    model_config = _CONFIG
    dist: Literal["fixed"] = "fixed"
    value: float

    def from_uniform(self, u: np.ndarray, low: float = 0.0,
                     high: float = math.inf) -> np.ndarray:
        return np.full(len(u), min(max(self.value, low), high), dtype=float)

    def bounds(self) -> tuple[float, float]:
        return self.value, self.value

    def mass_inside(self, low: float, high: float) -> float:
        """Probability of a value in ``[low, high]`` (before truncation)."""
        return 1.0 if low <= self.value <= high else 0.0


class Uniform(_Drawn):
    """Uniform on [low, high]."""

    model_config = _CONFIG
    dist: Literal["uniform"]
    low: float
    high: float

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        if not self.low <= self.high:
            raise ValueError(f"needs low <= high, got low = {_text(self.low)}, "
                             f"high = {_text(self.high)}")
        return self

    def from_uniform(self, u: np.ndarray, low: float = 0.0,
                     high: float = math.inf) -> np.ndarray:
        lo, hi = max(self.low, low), min(self.high, high)
        if lo > hi:  # no overlap with the bounds: clip to the nearest one
            return _clip(self.low + (self.high - self.low) * u, low, high)
        return _clip(lo + (hi - lo) * u, low, high)

    def bounds(self) -> tuple[float, float]:
        return self.low, self.high

    def mass_inside(self, low: float, high: float) -> float:
        if self.low == self.high:
            return 1.0 if low <= self.low <= high else 0.0
        overlap = min(self.high, high) - max(self.low, low)
        return max(overlap, 0.0) / (self.high - self.low)


class Triangular(_Drawn):
    """Triangular with minimum ``low``, mode ``mode`` and maximum ``high``."""

    model_config = _CONFIG
    dist: Literal["triangular"]
    low: float
    mode: float
    high: float

    @model_validator(mode="after")
    def _ordered(self) -> Triangular:
        if not self.low <= self.mode <= self.high:
            raise ValueError(
                f"needs low <= mode <= high, got low = {_text(self.low)}, "
                f"mode = {_text(self.mode)}, high = {_text(self.high)}")
        return self

    def cdf(self, x: np.ndarray | float) -> np.ndarray:
        a, c, b = self.low, self.mode, self.high
        x = np.clip(np.asarray(x, dtype=float), a, b)
        if a == b:
            return np.ones_like(x)
        left = (x - a) ** 2 / ((b - a) * (c - a)) if c > a else np.ones_like(x)
        right = 1.0 - (b - x) ** 2 / ((b - a) * (b - c)) if b > c else np.ones_like(x)
        return np.where(x <= c, left if c > a else 0.0, right)

    def ppf(self, p: np.ndarray) -> np.ndarray:
        a, c, b = self.low, self.mode, self.high
        split = (c - a) / (b - a)
        p = np.asarray(p, dtype=float)
        left = a + np.sqrt(p * (b - a) * (c - a))
        right = b - np.sqrt((1.0 - p) * (b - a) * (b - c))
        return np.where(p < split, left, right)

    def from_uniform(self, u: np.ndarray, low: float = 0.0,
                     high: float = math.inf) -> np.ndarray:
        if self.low == self.high:
            return _clip(np.full(len(u), self.low, dtype=float), low, high)
        p_low, p_high = float(self.cdf(low)), float(self.cdf(high))
        if p_high <= p_low:  # no overlap with the bounds
            return _clip(self.ppf(u), low, high)
        return _clip(self.ppf(p_low + (p_high - p_low) * u), low, high)

    def bounds(self) -> tuple[float, float]:
        return self.low, self.high

    def mass_inside(self, low: float, high: float) -> float:
        if self.low == self.high:
            return 1.0 if low <= self.low <= high else 0.0
        return max(float(self.cdf(high)) - float(self.cdf(low)), 0.0)


class Lognormal(_Drawn):
    """Lognormal with the given median and log-scale ``sigma``, truncated to the bounds."""

    model_config = _CONFIG
    dist: Literal["lognormal"]
    median: float = Field(gt=0)
    sigma: float = Field(ge=0, le=10)

    def _z(self, x: float) -> float:
        """Standard normal quantile of ``x`` (``-inf`` at 0, ``inf`` at ``inf``)."""
        if x <= 0:
            return -math.inf
        if math.isinf(x):
            return math.inf
        return (math.log(x) - math.log(self.median)) / self.sigma

    def from_uniform(self, u: np.ndarray, low: float = 0.0,
                     high: float = math.inf) -> np.ndarray:
        size = len(u)
        if self.sigma == 0:
            return np.full(size, min(max(self.median, low), high), dtype=float)
        z_low, z_high = self._z(low), self._z(high)
        # Inverse CDF restricted to [F(low), F(high)]: exact truncation.  In the
        # upper tail the survival function keeps the precision the CDF loses.
        if z_low > 0:
            s_high, s_low = float(ndtr(-z_high)), float(ndtr(-z_low))
            z = -ndtri(s_high + (s_low - s_high) * u) if s_low > s_high else \
                np.full(size, z_low)
        else:
            p_low, p_high = float(ndtr(z_low)), float(ndtr(z_high))
            z = ndtri(p_low + (p_high - p_low) * u) if p_high > p_low else \
                np.full(size, z_high)
        return _clip(self.median * np.exp(self.sigma * z), low, high)

    def bounds(self) -> tuple[float, float]:
        return 0.0, math.inf

    def mass_inside(self, low: float, high: float) -> float:
        if self.sigma == 0:
            return 1.0 if low <= self.median <= high else 0.0
        z_low, z_high = self._z(low), self._z(high)
        if z_low > 0:
            return max(float(ndtr(-z_low)) - float(ndtr(-z_high)), 0.0)
        return max(float(ndtr(z_high)) - float(ndtr(z_low)), 0.0)

    def truncated_median(self, low: float = 0.0, high: float = math.inf) -> float:
        """The median of the distribution truncated to ``[low, high]``."""
        if self.sigma == 0:
            return min(max(self.median, low), high)
        z_low, z_high = self._z(low), self._z(high)
        if z_low > 0:  # upper tail: the survival function keeps the precision
            z = -float(ndtri((float(ndtr(-z_low)) + float(ndtr(-z_high))) / 2))
        else:
            z = float(ndtri((float(ndtr(z_low)) + float(ndtr(z_high))) / 2))
        return min(max(self.median * math.exp(self.sigma * z), low), high)


class Empirical(_Drawn):
    """A discrete distribution over ``values`` with optional ``weights``."""

    model_config = _CONFIG
    dist: Literal["empirical"]
    values: list[float] = Field(min_length=1)
    weights: list[float] | None = None

    @model_validator(mode="after")
    def _weights(self) -> Empirical:
        if self.weights is not None:
            if len(self.weights) != len(self.values):
                raise ValueError(
                    f"weights must have as many entries as values ({len(self.values)}), "
                    f"got {len(self.weights)}")
            if any(w < 0 for w in self.weights) or sum(self.weights) <= 0:
                raise ValueError("weights must be 0 or more and not all 0, got "
                                 f"{', '.join(_text(w) for w in self.weights)}")
        return self

    def _probabilities(self) -> np.ndarray:
        if self.weights is None:
            return np.full(len(self.values), 1.0 / len(self.values))
        w = np.asarray(self.weights, dtype=float)
        return w / w.sum()

    def from_uniform(self, u: np.ndarray, low: float = 0.0,
                     high: float = math.inf) -> np.ndarray:
        values = np.asarray(self.values, dtype=float)
        p = self._probabilities()
        inside = (values >= low) & (values <= high)
        if (p * inside).sum() > 0:  # truncation: renormalise over the values inside
            p = p * inside / (p * inside).sum()
        index = np.searchsorted(np.cumsum(p), u, side="right")
        return _clip(values[np.minimum(index, len(values) - 1)], low, high)

    def bounds(self) -> tuple[float, float]:
        return min(self.values), max(self.values)

    def mass_inside(self, low: float, high: float) -> float:
        values = np.asarray(self.values, dtype=float)
        return float((self._probabilities() * ((values >= low) & (values <= high))).sum())


def _number_is_fixed(value: object) -> object:
    # A plain number in the file means "fixed"; booleans and texts are not numbers here.
    if isinstance(value, bool):
        raise ValueError("expected a number or a distribution table, "
                         f"got {str(value).lower()}")
    if isinstance(value, str):
        raise ValueError(f"expected a number or a distribution table, got {value!r}")
    if isinstance(value, int | float):
        return {"dist": "fixed", "value": float(value)}
    return value


DISTRIBUTIONS = (Fixed, Uniform, Triangular, Lognormal, Empirical)

Distribution = Annotated[
    Fixed | Uniform | Triangular | Lognormal | Empirical,
    Field(discriminator="dist"),
    BeforeValidator(_number_is_fixed),
]


def to_file_value(dist: BaseModel) -> object:
    """How a distribution is written back to a scenario file (fixed -> plain number)."""
    if isinstance(dist, Fixed):
        value = dist.value
        return int(value) if float(value).is_integer() else value

    def plain(value: object) -> object:
        if isinstance(value, list):
            return [plain(v) for v in value]
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            return int(value)
        return value

    return {k: plain(v) for k, v in dist.model_dump(exclude_none=True).items()}
