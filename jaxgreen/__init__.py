"""jaxgreen: what JAX programs really cost, as the Green AI paper's FPO (ADD + MUL).

The public names load on first use, so ``import jaxgreen`` is cheap and imports no jax.
What it does at once is arrange for jax's start-up to be quiet in this process
(:func:`jaxgreen._src._quiet.install`): on a machine without their chips, the CUDA and TPU
plugins of the ``[gpu]``/``[tpu]`` extras print pages of start-up noise otherwise.

Nothing of jaxgreen runs at interpreter start unless the environment opted in with
``jaxgreen quiet-jax --install`` (a one-line ``.pth`` that imports this package, so that
plain jax programs are quiet too). There the package is imported before pytest could
rewrite its asserts (its pytest plugin is registered by an entry point); the marker
PYTEST_DONT_REWRITE tells pytest so, instead of a warning in every test session.
"""

from __future__ import annotations

from jaxgreen._src import _quiet
from jaxgreen._version import __version__ as __version__

_quiet.install()

# Public name -> (module that defines it, its name there).
_EXPORTS = {
    "count": ("jaxgreen._src.api", "count"),
    "count_jaxpr": ("jaxgreen._src.api", "count_jaxpr"),
    "Cost": ("jaxgreen._src.cost", "Cost"),
    "Counts": ("jaxgreen._src.cost", "Counts"),
    "CostModel": ("jaxgreen._src.cost_model", "CostModel"),
    "register_rule": ("jaxgreen._src.jaxpr.registry", "register"),
    "UncountedPrimitiveError": ("jaxgreen._src.jaxpr.interpreter", "UncountedPrimitiveError"),
    "UncountedPrimitiveWarning": ("jaxgreen._src.jaxpr.interpreter", "UncountedPrimitiveWarning"),
    "kernel_estimates": ("jaxgreen._src.jaxpr.rules.pallas", "kernel_estimates"),
    "count_lowered": ("jaxgreen._src.hlo", "count_lowered"),
    "count_compiled": ("jaxgreen._src.hlo", "count_compiled"),
    "mesh": ("jaxgreen.targets", "mesh"),
    "reconcile": ("jaxgreen._src.reconciliation", "reconcile"),
    "Reconciliation": ("jaxgreen._src.reconciliation", "Reconciliation"),
    "compare": ("jaxgreen._src.comparison", "compare"),
    "Comparison": ("jaxgreen._src.comparison", "Comparison"),
    "Setup": ("jaxgreen._src.comparison", "Setup"),
    "track": ("jaxgreen._src.account", "track"),
    "Experiment": ("jaxgreen._src.account", "Experiment"),
    "Trial": ("jaxgreen._src.account", "Trial"),
    "Ledger": ("jaxgreen._src.account", "Ledger"),
    "PriceTag": ("jaxgreen._src.account", "PriceTag"),
    "merge_ledgers": ("jaxgreen._src.account", "merge"),
    # The trackers module: jaxgreen.sinks.TensorBoard("runs"), .WandB(...), .MLflow(...).
    "sinks": ("jaxgreen._src.account", "sinks"),
    "expected_max": ("jaxgreen.curves", "expected_max"),
    "report_html": ("jaxgreen._src._report_html", "report_html"),
}
# Public submodules: ``jaxgreen.flax.summary(...)``, ``jaxgreen.targets.get_target(...)``.
_SUBMODULES = ("chips", "curves", "flax", "targets", "testing")

__all__ = [
    "Comparison",
    "Cost",
    "CostModel",
    "Counts",
    "Experiment",
    "Ledger",
    "PriceTag",
    "Reconciliation",
    "Setup",
    "Trial",
    "UncountedPrimitiveError",
    "UncountedPrimitiveWarning",
    "chips",
    "compare",
    "count",
    "count_compiled",
    "count_jaxpr",
    "count_lowered",
    "curves",
    "expected_max",
    "flax",
    "kernel_estimates",
    "merge_ledgers",
    "mesh",
    "reconcile",
    "register_rule",
    "report_html",
    "sinks",
    "targets",
    "testing",
    "track",
]


TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see _quiet)


def __getattr__(name: str) -> object:
  import importlib

  if name in _EXPORTS:
    module, attr = _EXPORTS[name]
    value = getattr(importlib.import_module(module), attr)
  elif name in _SUBMODULES:
    value = importlib.import_module(f"jaxgreen.{name}")
  else:
    raise AttributeError(f"module 'jaxgreen' has no attribute {name!r}")
  globals()[name] = value  # later lookups find it directly
  return value


def __dir__() -> list[str]:
  return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # what type checkers and editors see: the same names, eagerly
  from jaxgreen import chips as chips
  from jaxgreen import curves as curves
  from jaxgreen import flax as flax
  from jaxgreen import targets as targets
  from jaxgreen import testing as testing
  from jaxgreen._src._report_html import report_html as report_html
  from jaxgreen._src.account import Experiment as Experiment
  from jaxgreen._src.account import Ledger as Ledger
  from jaxgreen._src.account import PriceTag as PriceTag
  from jaxgreen._src.account import Trial as Trial
  from jaxgreen._src.account import merge as merge_ledgers
  from jaxgreen._src.account import sinks as sinks
  from jaxgreen._src.account import track as track
  from jaxgreen._src.api import count as count
  from jaxgreen._src.api import count_jaxpr as count_jaxpr
  from jaxgreen._src.comparison import Comparison as Comparison
  from jaxgreen._src.comparison import Setup as Setup
  from jaxgreen._src.comparison import compare as compare
  from jaxgreen._src.cost import Cost as Cost
  from jaxgreen._src.cost import Counts as Counts
  from jaxgreen._src.cost_model import CostModel as CostModel
  from jaxgreen.curves import expected_max as expected_max
  from jaxgreen._src.hlo import count_compiled as count_compiled
  from jaxgreen._src.hlo import count_lowered as count_lowered
  from jaxgreen._src.jaxpr.interpreter import UncountedPrimitiveError as UncountedPrimitiveError
  from jaxgreen._src.jaxpr.interpreter import UncountedPrimitiveWarning as UncountedPrimitiveWarning
  from jaxgreen._src.jaxpr.registry import register as register_rule
  from jaxgreen._src.jaxpr.rules.pallas import kernel_estimates as kernel_estimates
  from jaxgreen._src.reconciliation import Reconciliation as Reconciliation
  from jaxgreen._src.reconciliation import reconcile as reconcile
  from jaxgreen.targets import mesh as mesh
