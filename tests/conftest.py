"""Shared fixtures: small scenarios written to a temporary folder."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import tomli_w
from hypothesis import settings

from simulator.scenario import Scenario, load_scenario

# `make test` gates every change, so it tries the same examples every time: a
# random search that finds a new corner case would otherwise fail an unrelated
# change. `make test-explore` searches afresh (HYPOTHESIS_PROFILE=explore).
settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False, max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"

# One line, one project at a time, no risk, no fees: a fund whose every euro is
# easy to follow by hand. Tests change what they need with `deep_update`.
BASE_TABLES: dict = {
    "scenario": {"name": "tiny", "title": "Tiny fund", "start": "2020-01-01",
                 "horizon_months": 60, "replications": 4, "seed": 7},
    "fund": {"endowment": 1_000_000, "eligibility_end": "2023-12-31",
             "treasury_rate": 0.0,
             "fees": {"paid_from_fund": True, "base_rate": 0.0, "performance_rate": 0.0,
                      "grant_rate": 0.0,
                      "cap": 0.08}},
    "lines": {"A": {
        "title": "Linea A", "allocation": 1_000_000, "min_cost": 10_000, "max_cost": 500_000,
        "procedure": "sportello", "when_dry": "reject",
        "applications": {"mode": "poisson", "per_month": 0.0,
                         "cost": 100_000, "admission_rate": 1.0, "evaluation_months": 0},
        "instrument": {"coverage": 1.0, "public_loan_share": 0.8, "public_rate": 0.0,
                       "bank_rate": 0.03, "grant_share": 0.0, "term_months": 24,
                       "grace_months": 6, "frequency": "quarterly", "method": "french"},
        "disbursement": {"tranches": [{"share": 1.0, "at": "signing"}],
                         "signing_months": 0, "implementation_months": 3,
                         "grant_paid_at": "completion"},
        "risk": {"failure_rate": 0.0, "default_rate": 0.0, "recovery_rate": 0.0,
                 "recovery_lag_months": 0, "prepayment_rate": 0.0},
    }},
}


def deep_update(tables: dict, changes: dict) -> dict:
    out = copy.deepcopy(tables)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_update(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _dates_to_toml(value):
    import datetime as dt
    if isinstance(value, dict):
        return {k: _dates_to_toml(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_dates_to_toml(v) for v in value]
    if isinstance(value, str) and len(value) == 10 and value[4] == "-" and value[7] == "-":
        return dt.date.fromisoformat(value)
    return value


def write_scenario(folder: Path, tables: dict, name: str = "scenario.toml") -> Path:
    path = folder / name
    path.write_text(tomli_w.dumps(_dates_to_toml(tables)), encoding="utf-8")
    return path


@pytest.fixture
def make_scenario(tmp_path):
    """Build a Scenario from BASE_TABLES plus changes (and an optional pipeline CSV)."""
    def build(changes: dict | None = None, pipeline: str | None = None) -> Scenario:
        tables = deep_update(BASE_TABLES, changes or {})
        if pipeline is not None:
            (tmp_path / "pipeline.csv").write_text(pipeline, encoding="utf-8")
        return load_scenario(write_scenario(tmp_path, tables))
    return build


def _numbers_and_rest(svg: str) -> tuple[list[float], str]:
    """An SVG's numbers, and its text without them and without element ids."""
    import re

    text = re.sub(r"\b[pm][0-9a-f]{10}\b", "ID", svg)
    number = r"-?\d+(?:\.\d+)?(?:e-?\d+)?"
    return [float(n) for n in re.findall(number, text)], re.sub(number, "N", text)


def _pixels_apart(a: Path, b: Path) -> float:
    """The share of pixels that differ between two PNG pictures of the same size."""
    import numpy as np
    from PIL import Image

    one, two = (np.asarray(Image.open(path).convert("RGBA")) for path in (a, b))
    assert one.shape == two.shape
    return float((one != two).any(axis=-1).mean())


def assert_same_charts(one: Path, two: Path) -> None:
    """Two chart folders drawn by different processes hold the same charts.

    Chart data to the bit. A text's extent can differ in its last bits with
    what the drawing process drew before: SVG coordinates agree to far below
    a pixel (element ids aside), and pictures (so far always the same bytes)
    could at most differ in a pixel at an edge.
    """
    import numpy as np

    names = sorted(p.name for p in one.iterdir())
    assert names == sorted(p.name for p in two.iterdir())
    for name in names:
        a, b = one / name, two / name
        if name.endswith(".svg"):
            (numbers_a, rest_a), (numbers_b, rest_b) = (_numbers_and_rest(a.read_text()),
                                                        _numbers_and_rest(b.read_text()))
            assert rest_a == rest_b, name
            assert np.allclose(numbers_a, numbers_b, rtol=0, atol=1e-4), name
        elif name.endswith(".png"):
            assert _pixels_apart(a, b) < 1e-4, name
        else:
            assert a.read_bytes() == b.read_bytes(), name
