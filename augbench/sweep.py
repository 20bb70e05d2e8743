"""Moved to the augbench.sweeps package; kept so `from augbench.sweep import expand, load_sweep` works."""
from augbench.sweeps import *  # noqa: F401,F403
from augbench.sweeps import __all__  # noqa: F401
