"""jaxgreen: what JAX programs really cost, as the Green AI paper's FPO (ADD + MUL).

The public names load on first use, so ``import jaxgreen`` is cheap and imports no jax.
What it does at once is arrange for jax's start-up to be quiet in this process
(:func:`jaxgreen._quiet.install`): on a machine without their chips, the CUDA and TPU
plugins of the ``[gpu]``/``[tpu]`` extras print pages of start-up noise otherwise.

Nothing of jaxgreen runs at interpreter start unless the environment opted in with
``jaxgreen quiet-jax --install`` (a one-line ``.pth`` that imports this package, so that
plain jax programs are quiet too). There the package is imported before pytest could
rewrite its asserts (its pytest plugin is registered by an entry point); the marker
PYTEST_DONT_REWRITE tells pytest so, instead of a warning in every test session.
"""

from __future__ import annotations

from jaxgreen import _quiet
from jaxgreen._version import __version__ as __version__

_quiet.install()

# Public name -> (module that defines it, its name there).
_EXPORTS = {
    "count": ("jaxgreen.api", "count"),
    "count_jaxpr": ("jaxgreen.api", "count_jaxpr"),
    "Cost": ("jaxgreen.cost", "Cost"),
    "Counts": ("jaxgreen.cost", "Counts"),
    "CostModel": ("jaxgreen.cost_model", "CostModel"),
    "register_rule": ("jaxgreen.jaxpr.registry", "register"),
    "UncountedPrimitiveError": ("jaxgreen.jaxpr.interpreter", "UncountedPrimitiveError"),
    "UncountedPrimitiveWarning": ("jaxgreen.jaxpr.interpreter", "UncountedPrimitiveWarning"),
    "kernel_estimates": ("jaxgreen.jaxpr.rules.pallas", "kernel_estimates"),
    "count_lowered": ("jaxgreen.hlo", "count_lowered"),
    "count_compiled": ("jaxgreen.hlo", "count_compiled"),
    "mesh": ("jaxgreen.targets", "mesh"),
    "reconcile": ("jaxgreen.reconciliation", "reconcile"),
    "Reconciliation": ("jaxgreen.reconciliation", "Reconciliation"),
    "compare": ("jaxgreen.comparison", "compare"),
    "Comparison": ("jaxgreen.comparison", "Comparison"),
    "Setup": ("jaxgreen.comparison", "Setup"),
    "track": ("jaxgreen.account", "track"),
    "Experiment": ("jaxgreen.account", "Experiment"),
    "Trial": ("jaxgreen.account", "Trial"),
    "Ledger": ("jaxgreen.account", "Ledger"),
    "PriceTag": ("jaxgreen.account", "PriceTag"),
    "merge_ledgers": ("jaxgreen.account", "merge"),
    # The trackers module: jaxgreen.sinks.TensorBoard("runs"), .WandB(...), .MLflow(...).
    "sinks": ("jaxgreen.account", "sinks"),
    "expected_max": ("jaxgreen.curves", "expected_max"),
    "report_html": ("jaxgreen._report_html", "report_html"),
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
  from jaxgreen._report_html import report_html as report_html
  from jaxgreen.account import Experiment as Experiment
  from jaxgreen.account import Ledger as Ledger
  from jaxgreen.account import PriceTag as PriceTag
  from jaxgreen.account import Trial as Trial
  from jaxgreen.account import merge as merge_ledgers
  from jaxgreen.account import sinks as sinks
  from jaxgreen.account import track as track
  from jaxgreen.api import count as count
  from jaxgreen.api import count_jaxpr as count_jaxpr
  from jaxgreen.comparison import Comparison as Comparison
  from jaxgreen.comparison import Setup as Setup
  from jaxgreen.comparison import compare as compare
  from jaxgreen.cost import Cost as Cost
  from jaxgreen.cost import Counts as Counts
  from jaxgreen.cost_model import CostModel as CostModel
  from jaxgreen.curves import expected_max as expected_max
  from jaxgreen.hlo import count_compiled as count_compiled
  from jaxgreen.hlo import count_lowered as count_lowered
  from jaxgreen.jaxpr.interpreter import UncountedPrimitiveError as UncountedPrimitiveError
  from jaxgreen.jaxpr.interpreter import UncountedPrimitiveWarning as UncountedPrimitiveWarning
  from jaxgreen.jaxpr.registry import register as register_rule
  from jaxgreen.jaxpr.rules.pallas import kernel_estimates as kernel_estimates
  from jaxgreen.reconciliation import Reconciliation as Reconciliation
  from jaxgreen.reconciliation import reconcile as reconcile
  from jaxgreen.targets import mesh as mesh
