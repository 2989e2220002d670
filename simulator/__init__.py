"""fesr-sim: Monte Carlo simulator of a FESR mixed financial instrument.

Notebook use::

    import simulator
    scenario = simulator.load_scenario("scenarios/wecare_fesr_2018.toml")
    results = simulator.run(scenario, replications=200)
    results.summary          # one row per KPI
    results.save("results/my-run")
"""

__version__ = "0.5.5"

__all__ = ["__version__", "load_scenario", "run"]


def __getattr__(name: str):
    # Imported on first use: ``import simulator`` (and the start of the
    # fesr-sim command) does not wait for pandas and pyarrow.
    if name == "run":
        from .runner import run
        return run
    if name == "load_scenario":
        from .scenario import load_scenario
        return load_scenario
    raise AttributeError(f"module 'simulator' has no attribute {name!r}")
