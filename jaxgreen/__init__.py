"""jaxgreen: what JAX programs really cost, as the Green AI paper's FPO (ADD + MUL).

The public line is this package and its public submodules (``jaxgreen.flax``,
``jaxgreen.targets``, ``jaxgreen.testing``, ... the names of :data:`__all__` that are
modules, and the integrations ``jaxgreen.keras`` and ``jaxgreen.optuna``). Everything
under ``jaxgreen._src`` is private: it can change in any release.

The public names load on first use, so ``import jaxgreen`` is cheap and imports no jax.
What it does at once is arrange for jax's start-up to be quiet in this process (on a
machine without their chips the CUDA and TPU plugins of the ``[gpu]``/``[tpu]`` extras
print pages of start-up noise otherwise), and keep the import paths of jaxgreen 0.1 working
with a :class:`DeprecationWarning` that names the new home.

Nothing of jaxgreen runs at interpreter start unless the environment opted in with
``jaxgreen quiet-jax --install`` (a one-line ``.pth`` that imports this package, so that
plain jax programs are quiet too). There the package is imported before pytest could
rewrite its asserts (its pytest plugin is registered by an entry point); the marker
PYTEST_DONT_REWRITE tells pytest so, instead of a warning in every test session.
"""

from __future__ import annotations

from jaxgreen._src import _moved, _quiet
from jaxgreen._version import __version__ as __version__

_quiet.install()
_moved.install()

# The public names, listed once: name -> "module:attribute" it is loaded from.
_LAZY = {
    # Counting a program.
    "count": "jaxgreen._src.api:count",
    "count_jaxpr": "jaxgreen._src.api:count_jaxpr",
    "count_lowered": "jaxgreen._src.hlo:count_lowered",
    "count_compiled": "jaxgreen._src.hlo:count_compiled",
    "Cost": "jaxgreen._src.cost:Cost",
    "Counts": "jaxgreen._src.cost:Counts",
    "CostModel": "jaxgreen._src.cost_model:CostModel",
    "register_rule": "jaxgreen._src.jaxpr.registry:register",
    "kernel_estimates": "jaxgreen._src.jaxpr.rules.pallas:kernel_estimates",
    "UncountedPrimitiveError": "jaxgreen._src.jaxpr.interpreter:UncountedPrimitiveError",
    "UncountedPrimitiveWarning": "jaxgreen._src.jaxpr.interpreter:UncountedPrimitiveWarning",
    # Machines, XLA's figures, comparing targets.
    "mesh": "jaxgreen.targets:mesh",
    "TargetError": "jaxgreen._src._target_error:TargetError",
    "reconcile": "jaxgreen._src.reconciliation:reconcile",
    "Reconciliation": "jaxgreen._src.reconciliation:Reconciliation",
    "TargetReport": "jaxgreen._src.reconciliation:TargetReport",
    "compare": "jaxgreen._src.comparison:compare",
    "Comparison": "jaxgreen._src.comparison:Comparison",
    "TargetResult": "jaxgreen._src.comparison:TargetResult",
    "ModuleReport": "jaxgreen._src.comparison:ModuleReport",
    "Setup": "jaxgreen._src.comparison:Setup",
    # Training: Equation 1's E, D and H.
    "track": "jaxgreen._src.account:track",
    "Tracker": "jaxgreen._src.account:Tracker",
    "Experiment": "jaxgreen._src.account:Experiment",
    "Trial": "jaxgreen._src.account:Trial",
    "current_trial": "jaxgreen._src.account:current_trial",
    "Ledger": "jaxgreen._src.account:Ledger",
    "LedgerError": "jaxgreen._src.account:LedgerError",
    "merge_ledgers": "jaxgreen._src.account:merge",
    "PriceTag": "jaxgreen._src.account:PriceTag",
    "TrialCost": "jaxgreen._src.account:TrialCost",
    "Throughput": "jaxgreen._src.account:Throughput",
    "expected_max": "jaxgreen.curves:expected_max",
    "report_html": "jaxgreen._src._report_html:report_html",
}
# Public submodules that need no extra, reached as attributes: ``jaxgreen.flax.summary``.
_SUBMODULES = ("card", "carbon", "chips", "curves", "energy", "flax", "forecast", "hlo", "sinks",
               "targets", "testing")

__all__ = sorted([*_LAZY, *_SUBMODULES])


TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see _quiet)


def __getattr__(name: str) -> object:
  import importlib

  if name in _LAZY:
    module, _, attr = _LAZY[name].partition(":")
    value = getattr(importlib.import_module(module), attr)
  elif name in _SUBMODULES or name in _moved.MOVED:  # an old path warns, and is not kept
    value = importlib.import_module(f"jaxgreen.{name}")
    if name in _moved.MOVED:
      return value
  else:
    raise AttributeError(f"module 'jaxgreen' has no attribute {name!r}")
  globals()[name] = value  # later lookups find it directly
  return value


def __dir__() -> list[str]:
  return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # what type checkers and editors see: _LAZY and _SUBMODULES, eagerly
  from jaxgreen import carbon as carbon
  from jaxgreen import card as card
  from jaxgreen import chips as chips
  from jaxgreen import curves as curves
  from jaxgreen import energy as energy
  from jaxgreen import flax as flax
  from jaxgreen import forecast as forecast
  from jaxgreen import hlo as hlo
  from jaxgreen import sinks as sinks
  from jaxgreen import targets as targets
  from jaxgreen import testing as testing
  from jaxgreen._src._report_html import report_html as report_html
  from jaxgreen._src._target_error import TargetError as TargetError
  from jaxgreen._src.account import Experiment as Experiment
  from jaxgreen._src.account import Ledger as Ledger
  from jaxgreen._src.account import LedgerError as LedgerError
  from jaxgreen._src.account import PriceTag as PriceTag
  from jaxgreen._src.account import Throughput as Throughput
  from jaxgreen._src.account import Tracker as Tracker
  from jaxgreen._src.account import Trial as Trial
  from jaxgreen._src.account import TrialCost as TrialCost
  from jaxgreen._src.account import current_trial as current_trial
  from jaxgreen._src.account import merge as merge_ledgers  # noqa: F401
  from jaxgreen._src.account import track as track
  from jaxgreen._src.api import count as count
  from jaxgreen._src.api import count_jaxpr as count_jaxpr
  from jaxgreen._src.comparison import Comparison as Comparison
  from jaxgreen._src.comparison import ModuleReport as ModuleReport
  from jaxgreen._src.comparison import Setup as Setup
  from jaxgreen._src.comparison import TargetResult as TargetResult
  from jaxgreen._src.comparison import compare as compare
  from jaxgreen._src.cost import Cost as Cost
  from jaxgreen._src.cost import Counts as Counts
  from jaxgreen._src.cost_model import CostModel as CostModel
  from jaxgreen._src.hlo import count_compiled as count_compiled
  from jaxgreen._src.hlo import count_lowered as count_lowered
  from jaxgreen._src.jaxpr.interpreter import UncountedPrimitiveError as UncountedPrimitiveError
  from jaxgreen._src.jaxpr.interpreter import (
    UncountedPrimitiveWarning as UncountedPrimitiveWarning,
  )
  from jaxgreen._src.jaxpr.registry import register as register_rule  # noqa: F401
  from jaxgreen._src.jaxpr.rules.pallas import kernel_estimates as kernel_estimates
  from jaxgreen._src.reconciliation import Reconciliation as Reconciliation
  from jaxgreen._src.reconciliation import TargetReport as TargetReport
  from jaxgreen._src.reconciliation import reconcile as reconcile
  from jaxgreen.curves import expected_max as expected_max
  from jaxgreen.targets import mesh as mesh
