"""fesr-sim: Monte Carlo simulator of a FESR mixed financial instrument."""

__version__ = "0.1.0"
