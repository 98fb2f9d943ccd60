"""Keras 3 on the JAX backend: ``model.fit`` and ``model.evaluate`` recorded in an Experiment.

:class:`FPOCallback` is a Keras callback. Each train (and test) step that Keras runs is
a call of the function its JAX trainer jit-compiles (``train_step`` under ``jax.jit``);
the callback tracks that very function with :func:`jaxgreen.track`, so E is counted from
the program Keras runs, once per input signature, and every step adds its batch (D) and
its FPO to a trial. One ``fit`` is one trial (its validation steps are that trial's
evaluation work, reported apart); inside ``with experiment.trial(...)`` the steps go to
that trial instead, and a ``fit`` per trial is up to the user.

Keras picks its backend when it is first imported: importing this module sets
``KERAS_BACKEND=jax`` when Keras is not imported yet; ``FPOCallback`` fails with the fix
when Keras already runs another backend. Needs the ``[keras]`` extra.

Example::

  import jaxgreen
  from jaxgreen.keras import FPOCallback

  exp = jaxgreen.Experiment("keras-mlp", ledger="green.sqlite")
  cb = FPOCallback(exp, hparams={"lr": 1e-3})
  model.fit(x, y, batch_size=32, epochs=2, validation_data=(xv, yv), callbacks=[cb])
  model.evaluate(xt, yt, callbacks=[cb])   # eval FPO of the last fit's trial
  print(exp.report())
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

import jax

from jaxgreen._src.account import Experiment, Trial, track
from jaxgreen._src.account.attribution import ACTIVE

if "keras" not in sys.modules:  # Keras reads its backend once, when first imported
  os.environ.setdefault("KERAS_BACKEND", "jax")

# The name of the jitted step in the step function Keras' JAX trainer builds around it
# (``model.train_function(state, iterator)`` calls it once per batch).
_STEP = "step_function"

__all__ = ["FPOCallback"]  # noqa: F822 (made on first use, by __getattr__)


def _keras() -> Any:
  try:
    import keras
  except ImportError:
    raise ImportError("jaxgreen.keras needs Keras 3: pip install 'jaxgreen[keras]'") from None
  if keras.backend.backend() != "jax":
    raise ImportError(f"jaxgreen.keras records Keras on the JAX backend, but Keras runs on "
                      f"{keras.backend.backend()!r}: set KERAS_BACKEND=jax before Keras is "
                      f"first imported (or import jaxgreen.keras first)")
  return keras


def __getattr__(name: str) -> Any:
  # The callback class derives from Keras' own: built when first asked for, so that
  # importing this module (pytest's doctest collection does) needs no Keras.
  if name == "FPOCallback":
    keras = _keras()
    cls = type("FPOCallback", (_Recorder, keras.callbacks.Callback),
               {"__module__": __name__, "__doc__": _Recorder.__doc__})
    globals()[name] = cls
    return cls
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _examples(args: tuple, kwargs: dict) -> int:
  """The batch size of one Keras step: the leading dimension of its inputs."""
  data = args[1] if len(args) > 1 else kwargs.get("data")
  for leaf in jax.tree_util.tree_leaves(data):
    if len(getattr(leaf, "shape", ())) >= 1:
      return int(leaf.shape[0])
  return 0


class _Recorder:
  """Records the FPO, examples and trials of ``model.fit`` / ``model.evaluate``.

  ``evaluate`` inside a fit (validation) or after one is evaluation work of that fit's
  trial; inside ``with experiment.trial(...)``, of that trial; before any fit and outside
  a trial it is counted in :attr:`eval` only.

  Args:
    experiment: the :class:`~jaxgreen.Experiment` the trials are recorded in.
    hparams: the trial's hyperparameters (as ``experiment.trial(hparams)``).
    name: the trial's name (default: the experiment's numbering).
    **count_options: passed to :func:`jaxgreen.track` (``cond``, ``trip_counts``, ...).

  Attributes:
    trial: the trial of the current or last ``fit`` (None before the first).
    train, eval: the :class:`~jaxgreen._src.account.tracker.Tracker` of Keras' train and test
      step (``.totals()``, ``.throughput()``), None until Keras ran one.
  """

  model: Any  # set by Keras (Callback.set_model)

  def __init__(self, experiment: Experiment, *, hparams: Mapping[str, Any] | None = None,
               name: str | None = None, **count_options: Any):
    super().__init__()
    if not isinstance(experiment, Experiment):
      raise TypeError(f"FPOCallback(experiment=...) must be a jaxgreen.Experiment, got "
                      f"{type(experiment).__name__}; e.g. FPOCallback(jaxgreen.Experiment("
                      f"'keras-mlp', ledger='green.sqlite'))")
    self.experiment = experiment
    self.hparams = dict(hparams or {})
    self.name = name
    self.trial: Trial | None = None
    self.train: Any = None
    self.eval: Any = None
    self._count_options = count_options
    self._tracked: dict[int, Any] = {}  # id(Keras' jitted step) -> its tracked wrapper
    self._own_trial = False
    self._fitting = False
    self._restore: list[tuple[Any, Any, str]] = []
    self._token: Any = None

  # -- fit ---------------------------------------------------------------------

  def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
    self._fitting = True
    self.train = self._track(self.model.train_function, "train")
    active = ACTIVE.get()
    if isinstance(active, Trial) and active.status == "running":
      self.trial, self._own_trial = active, False  # the user's trial: theirs to end
    else:
      self.trial = self.experiment.trial(self.hparams, name=self.name).start()
      self._own_trial = True

  def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
    self._fitting = False
    self._untrack()
    if self._own_trial and self.trial is not None:
      self.trial.end("stopped" if getattr(self.model, "stop_training", False)
                     else "completed")

  # -- evaluate ----------------------------------------------------------------

  def on_test_begin(self, logs: Mapping[str, Any] | None = None) -> None:
    self.eval = self._track(self.model.test_function, "eval")
    if not self._fitting and self.trial is not None and ACTIVE.get() is None:
      # evaluate() after fit(): its inference work is the last fit's trial's.
      self._token = ACTIVE.set(self.trial)

  def on_test_end(self, logs: Mapping[str, Any] | None = None) -> None:
    if not self._fitting:
      self._untrack(kind="eval")
    if self._token is not None:
      ACTIVE.reset(self._token)
      self._token = None
      self.trial.flush()  # type: ignore[union-attr]  # ended: the experiment no longer does

  # -- the jitted step ---------------------------------------------------------

  def _track(self, step_function: Any, kind: str) -> Any:
    """Tracks the jitted step inside Keras' ``train_function``/``test_function``."""
    code = getattr(step_function, "__code__", None)
    if code is None or _STEP not in code.co_freevars:
      raise RuntimeError(f"jaxgreen.keras: Keras {_keras().__version__}'s {kind} function has "
                         f"no {_STEP!r}; FPOCallback supports the JAX trainer of Keras "
                         f">= 3.15")
    cell = step_function.__closure__[code.co_freevars.index(_STEP)]
    step = cell.cell_contents
    if getattr(step, "tracker", None) is not None:  # tracked already (nested evaluate)
      return step.tracker
    tracked = self._tracked.get(id(step))
    if tracked is None or tracked.__wrapped__ is not step:
      tracked = track(step, examples=_examples, kind=kind,
                      name=f"keras {self.model.name} {kind}_step", **self._count_options)
      self._tracked[id(step)] = tracked
    cell.cell_contents = tracked
    self._restore.append((cell, step, kind))
    return tracked.tracker

  def _untrack(self, kind: str | None = None) -> None:
    """Gives Keras its own step back (a later fit without the callback records nothing)."""
    keep = []
    for cell, step, k in self._restore:
      if kind is None or k == kind:
        cell.cell_contents = step
      else:
        keep.append((cell, step, k))
    self._restore = keep
