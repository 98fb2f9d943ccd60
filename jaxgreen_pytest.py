"""pytest plugin: the ``fpo_snapshot`` fixture and ``--jaxgreen-update``.

Registered through the ``pytest11`` entry point when jaxgreen is installed, and inert
until a test asks for the fixture. It is a top-level module, not part of the ``jaxgreen``
package, and imports only pytest and the standard library: loading it does not import
jaxgreen or jax, so a test session that does not use it pays nothing.

In a test::

    def test_train_step_cost(fpo_snapshot):
      fpo_snapshot(train_step, params, batch)

The first run records the count in ``<test file stem>.fpo.json`` next to the test file
(sorted JSON, one figure per line, to review and commit with the code); later runs
compare with it and fail with the totals and the scopes and primitives that changed.
``pytest --jaxgreen-update`` records the new figures instead.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import pytest


class FpoBaselineWarning(UserWarning):
  """A baseline was recorded (first run, or ``--jaxgreen-update``): commit the file."""


def pytest_addoption(parser: pytest.Parser) -> None:
  group = parser.getgroup("jaxgreen", "jaxgreen FPO baselines")
  group.addoption("--jaxgreen-update", action="store_true", default=False,
                  help="record the FPO of every fpo_snapshot call as its new baseline "
                       "instead of comparing with the old one")


def baseline_path(test_file: str | os.PathLike) -> str:
  """The baseline file of a test module: ``tests/test_model.py`` ->
  ``tests/test_model.fpo.json``."""
  root, _ = os.path.splitext(os.fspath(test_file))
  return f"{root}.fpo.json"


class Snapshot:
  """Callable as ``fpo_snapshot(fn, *args, name=None, rtol=0, by_scope=True, **kw)``.

  Counts ``fn(*args)`` (keyword arguments other than the ones below go to
  :func:`jaxgreen.count`: ``static_argnums``, ``stage``, ``target``, ``cond``,
  ``cost_model``, ``trip_counts``) and compares it with the baseline stored under the
  test's name (plus ``name``, to pin several programs in one test). Returns the Cost.
  """

  def __init__(self, path: str, test_name: str, update: bool):
    self.path, self.test_name, self.update = path, test_name, update
    self.calls = 0

  def __call__(self, fn: Any, *args: Any, name: str | None = None, rtol: float = 0.0,
               by_scope: bool = True, **count_kw: Any) -> Any:
    from jaxgreen import testing
    from jaxgreen._src.api import count

    self.calls += 1
    key = self.test_name
    if name is not None:
      key = f"{key}::{name}"
    elif self.calls > 1:
      key = f"{key}#{self.calls}"
    fn_kw = {k: count_kw.pop(k) for k in list(count_kw)
             if k not in ("static_argnums", "stage", "target", "cond", "cost_model",
                          "trip_counts")}
    cost = count(fn, **count_kw)(*args, **fn_kw)
    rec = testing.record(cost, cost_model=count_kw.get("cost_model"),
                         stage=count_kw.get("stage", "jaxpr"))
    files = (testing.load(self.path) if os.path.exists(self.path)
             else testing.Baselines(self.path))
    old = files.get(key)
    if old is None or self.update:
      files.put(key, rec)
      what = "recorded" if old is None else "updated"
      warnings.warn(FpoBaselineWarning(
          f"FPO baseline {what}: {key} = {cost.fpo:,} in {self.path} (commit it)"),
          stacklevel=2)
      return cost
    diff = testing.Diff(old, rec, rtol=rtol, by_scope=by_scope)
    if diff.failed:
      pytest.fail(f"{key}: {diff.text()}\n\nBaseline: {self.path}; if the change is "
                  f"intended, run pytest --jaxgreen-update and commit the file.",
                  pytrace=False)
    return cost


@pytest.fixture
def fpo_snapshot(request: pytest.FixtureRequest) -> Snapshot:
  """Pins a program's FPO to a baseline file next to the test (see the module docs)."""
  return Snapshot(baseline_path(request.node.path), request.node.name,
                  bool(request.config.getoption("jaxgreen_update")))
