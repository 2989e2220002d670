"""Distributions of drawn quantities: project costs, evaluation and implementation times.

A scenario may write a plain number ("fixed") wherever a cost or a duration is
drawn, or one of the inline tables below.  Each table is a small pydantic
model that knows how to draw a numpy array of values from a
``numpy.random.Generator``; the model never calls numpy's global random state,
so a replication's draws depend on its own seed stream only.

Costs are truncated to the line's bounds ``[min_cost, max_cost]``; durations
to ``[0, inf)``.  Truncation of the lognormal is exact (inverse CDF on the
truncated range, Devroye 1986, ch. 2), not rejection sampling, so a draw costs
the same whatever the bounds.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from scipy.special import ndtr, ndtri

_CONFIG = ConfigDict(extra="forbid", strict=True, frozen=True)


class Fixed(BaseModel):
    """A constant: written in the scenario file as a plain number."""

    model_config = _CONFIG
    dist: Literal["fixed"] = "fixed"
    value: float

    def draw(self, rng: np.random.Generator, size: int, low: float = 0.0,
             high: float = math.inf) -> np.ndarray:
        return np.full(size, min(max(self.value, low), high), dtype=float)

    def bounds(self) -> tuple[float, float]:
        return self.value, self.value


class Uniform(BaseModel):
    """Uniform on [low, high]."""

    model_config = _CONFIG
    dist: Literal["uniform"]
    low: float
    high: float

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        if not self.low <= self.high:
            raise ValueError(f"low must not exceed high, got low={self.low}, high={self.high}")
        return self

    def draw(self, rng: np.random.Generator, size: int, low: float = 0.0,
             high: float = math.inf) -> np.ndarray:
        return np.clip(rng.uniform(self.low, self.high, size), low, high)

    def bounds(self) -> tuple[float, float]:
        return self.low, self.high


class Triangular(BaseModel):
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
                f"needs low <= mode <= high, got low={self.low}, mode={self.mode}, "
                f"high={self.high}")
        return self

    def draw(self, rng: np.random.Generator, size: int, low: float = 0.0,
             high: float = math.inf) -> np.ndarray:
        if self.low == self.high:
            return np.full(size, self.low, dtype=float)
        return np.clip(rng.triangular(self.low, self.mode, self.high, size), low, high)

    def bounds(self) -> tuple[float, float]:
        return self.low, self.high


class Lognormal(BaseModel):
    """Lognormal with the given median and log-scale ``sigma``, truncated to the bounds."""

    model_config = _CONFIG
    dist: Literal["lognormal"]
    median: float = Field(gt=0)
    sigma: float = Field(ge=0)

    def draw(self, rng: np.random.Generator, size: int, low: float = 0.0,
             high: float = math.inf) -> np.ndarray:
        if self.sigma == 0:
            return np.full(size, min(max(self.median, low), high), dtype=float)
        mu = math.log(self.median)
        # Inverse CDF restricted to [F(low), F(high)]: exact truncation.
        p_low = float(ndtr((math.log(low) - mu) / self.sigma)) if low > 0 else 0.0
        p_high = float(ndtr((math.log(high) - mu) / self.sigma)) if math.isfinite(high) else 1.0
        u = rng.uniform(p_low, p_high, size)
        return np.clip(np.exp(mu + self.sigma * ndtri(u)), low, high)

    def bounds(self) -> tuple[float, float]:
        return 0.0, math.inf


class Empirical(BaseModel):
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
                raise ValueError("weights must be non-negative and not all zero")
        return self

    def draw(self, rng: np.random.Generator, size: int, low: float = 0.0,
             high: float = math.inf) -> np.ndarray:
        values = np.asarray(self.values, dtype=float)
        p = None
        if self.weights is not None:
            w = np.asarray(self.weights, dtype=float)
            p = w / w.sum()
        return np.clip(rng.choice(values, size=size, p=p), low, high)

    def bounds(self) -> tuple[float, float]:
        return min(self.values), max(self.values)


def _number_is_fixed(value: object) -> object:
    # A plain number in the file means "fixed"; booleans are not numbers here.
    if isinstance(value, bool):
        raise ValueError(f"expected a number or a distribution table, got {value!r}")
    if isinstance(value, int | float):
        return {"dist": "fixed", "value": float(value)}
    return value


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
    return dist.model_dump(exclude_none=True)
