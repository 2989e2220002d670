"""fesr-sim: Monte Carlo simulator of a FESR mixed financial instrument.

Notebook use::

    import simulator
    scenario = simulator.load_scenario("scenarios/wecare_fesr_2018.toml")
    results = simulator.run(scenario, replications=200)
    results.summary          # one row per KPI
    results.save("results/my-run")
"""

__version__ = "0.2.0"

from .runner import run
from .scenario import load_scenario

__all__ = ["__version__", "load_scenario", "run"]
