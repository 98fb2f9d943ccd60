"""jaxgreen: what JAX programs really cost, as the Green AI paper's FPO (ADD + MUL)."""

# First, before anything imports jax: keep the CUDA plugin's messages on a machine with
# no GPU driver (the [gpu] extra compiles deviceless) off the user's terminal.
from jaxgreen.targets import import_jax_quietly as _import_jax_quietly

_import_jax_quietly()

from jaxgreen import curves as curves
from jaxgreen import targets as targets
from jaxgreen.api import count as count
from jaxgreen.api import count_jaxpr as count_jaxpr
from jaxgreen.compare import Comparison as Comparison
from jaxgreen.compare import compare as compare
from jaxgreen.cost import Cost as Cost
from jaxgreen.cost import Counts as Counts
from jaxgreen.cost_model import CostModel as CostModel
from jaxgreen.curves import expected_max as expected_max
from jaxgreen.hlo import count_compiled as count_compiled
from jaxgreen.hlo import count_lowered as count_lowered
from jaxgreen.jaxpr.interpreter import UncountedPrimitiveError as UncountedPrimitiveError
from jaxgreen.jaxpr.interpreter import UncountedPrimitiveWarning as UncountedPrimitiveWarning
from jaxgreen.jaxpr.registry import register as register_rule
from jaxgreen.ledger import Ledger as Ledger
from jaxgreen.ledger import PriceTag as PriceTag
from jaxgreen.ledger import merge as merge_ledgers
from jaxgreen.reconcile import Reconciliation as Reconciliation
from jaxgreen.reconcile import reconcile as reconcile
from jaxgreen.targets import mesh as mesh
from jaxgreen.track import Experiment as Experiment
from jaxgreen.track import Trial as Trial
from jaxgreen.track import track as track

__version__ = "0.1.0"

__all__ = [
    "Cost",
    "Comparison",
    "CostModel",
    "Counts",
    "Experiment",
    "Ledger",
    "PriceTag",
    "Reconciliation",
    "Trial",
    "UncountedPrimitiveError",
    "UncountedPrimitiveWarning",
    "compare",
    "count",
    "count_compiled",
    "count_jaxpr",
    "count_lowered",
    "curves",
    "expected_max",
    "flax",
    "merge_ledgers",
    "mesh",
    "reconcile",
    "register_rule",
    "targets",
    "track",
]


def __getattr__(name):
  # Submodules with heavier imports load on first use: `jaxgreen.flax.summary(...)`.
  if name == "flax":
    import importlib

    return importlib.import_module("jaxgreen.flax")
  raise AttributeError(f"module 'jaxgreen' has no attribute {name!r}")
