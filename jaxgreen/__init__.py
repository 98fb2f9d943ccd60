"""jaxgreen: what JAX programs really cost, as the Green AI paper's FPO (ADD + MUL)."""

from jaxgreen.api import count as count
from jaxgreen.api import count_jaxpr as count_jaxpr
from jaxgreen.cost import Cost as Cost
from jaxgreen.cost import Counts as Counts
from jaxgreen.cost_model import CostModel as CostModel
from jaxgreen.jaxpr.interpreter import UncountedPrimitiveError as UncountedPrimitiveError
from jaxgreen.jaxpr.interpreter import UncountedPrimitiveWarning as UncountedPrimitiveWarning
from jaxgreen.jaxpr.registry import register as register_rule

__version__ = "0.1.0"

__all__ = [
    "Cost",
    "CostModel",
    "Counts",
    "UncountedPrimitiveError",
    "UncountedPrimitiveWarning",
    "count",
    "count_jaxpr",
    "flax",
    "register_rule",
]


def __getattr__(name):
  # Submodules with heavier imports load on first use: `jaxgreen.flax.summary(...)`.
  if name == "flax":
    import importlib

    return importlib.import_module("jaxgreen.flax")
  raise AttributeError(f"module 'jaxgreen' has no attribute {name!r}")
