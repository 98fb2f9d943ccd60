"""Trackers: jaxgreen's figures beside your metrics in TensorBoard, W&B and MLflow.

``Experiment(..., sinks=[...])`` sends each trial to trackers as it runs, one tracker run
per jaxgreen trial (named after the trial, its hyperparameters as config/params):

* at ``trial.log(step, **metrics)``: your metrics plus jaxgreen's values;
* at each flush window of tracked steps (``flush_steps`` / ``flush_seconds``, never
  every step) and at the trial's end: jaxgreen's values only;
* at the trial's end: its status (completed, stopped, failed, preempted).

jaxgreen's values are ``jaxgreen/train_pfpo`` (cumulative training FPO / 1e15, a float:
GPT-3's ~3e23 FPO would overflow an int64 step axis, so FPO is a value, never the step),
``jaxgreen/train_examples``, ``jaxgreen/tracked_steps`` (tracked calls, train and eval)
and, once a step was timed, ``jaxgreen/fpo_per_s_per_device``, ``jaxgreen/mfu`` and
``jaxgreen/hfu`` (PaLM's model and hardware FLOPs utilisation, only with a known peak:
see :mod:`jaxgreen._src.account.throughput`); once the trial's energy was measured and its
region's grid intensity is known, ``jaxgreen/co2e_g`` (measured kWh × gCO2e/kWh × PUE:
:mod:`jaxgreen._src.account.carbon`).

Step axes, each monotonic: your metrics are written at the step you pass to
``trial.log``; jaxgreen's series at ``jaxgreen/tracked_steps`` (a point is written only
when steps ran since the previous one). W&B has one step per row, so there every row
carries ``jaxgreen/train_pfpo`` and every chart can use it as its x-axis
(``define_metric("*", step_metric="jaxgreen/train_pfpo")``); your step is the value
``step``.

Sinks are called only by the recording process (``experiment.recording``); one that
raises is warned about once and disabled, so a tracker never stops training or changes
the ledger. The trackers are optional extras, imported when a sink is made:
``pip install 'jaxgreen[tensorboard]'`` (tensorboardX), ``'jaxgreen[wandb]'``,
``'jaxgreen[mlflow]'``. For another tracker, pass a function
``fn(event, trial, step, values)`` (event ``"start"``, ``"log"`` or ``"end"``) or a
:class:`Sink` subclass.

Example:
  >>> import jax, jax.numpy as jnp, jaxgreen
  >>> seen = []
  >>> def sink(event, trial, step, values):
  ...   seen.append((event, step, values))
  >>> exp = jaxgreen.Experiment("doc-sinks", ledger=None, sinks=[sink])
  >>> step = jaxgreen.track(jax.jit(lambda x: x * 2.0 + 1.0), examples="x")
  >>> with exp.trial({"lr": 0.1}) as trial:
  ...   y = step(jnp.ones(8))  # 8 MUL + 8 ADD = 16 FPO, 8 examples
  ...   trial.log(1, val_acc=0.5)
  >>> for event in seen:
  ...   print(event)
  ('start', None, {})
  ('log', 1, {'val_acc': 0.5, 'jaxgreen/train_pfpo': 1.6e-14, 'jaxgreen/train_examples': 8.0, 'jaxgreen/tracked_steps': 1.0})
  ('end', None, {})
  >>> exp.close()
"""  # noqa: E501

from __future__ import annotations

import atexit
import os
import re
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
  from jaxgreen._src.account.throughput import Throughput

PFPO = "jaxgreen/train_pfpo"
EXAMPLES = "jaxgreen/train_examples"
STEPS = "jaxgreen/tracked_steps"
RATE = "jaxgreen/fpo_per_s_per_device"
MFU = "jaxgreen/mfu"
HFU = "jaxgreen/hfu"
CO2E = "jaxgreen/co2e_g"


class Trial(Protocol):
  """What a sink reads of a trial (a :class:`jaxgreen.Trial`)."""

  id: str
  name: str
  hparams: dict[str, Any]
  experiment: Any  # its ``name``, and ``books.region`` for the CO2e

  @property
  def throughput(self) -> Throughput | None: ...

  @property
  def energy_j(self) -> float | None: ...

  def counts(self) -> tuple[int, int, int]: ...


def values_of(trial: Trial) -> dict[str, float]:
  """jaxgreen's values of ``trial`` now (see the module docstring)."""
  fpo, examples, steps = trial.counts()
  out = {PFPO: fpo / 1e15, EXAMPLES: float(examples), STEPS: float(steps)}
  tp = trial.throughput
  if tp is not None and tp.fpo_per_s_per_device is not None:
    out[RATE] = tp.fpo_per_s_per_device
    if tp.mfu is not None:
      out[MFU] = tp.mfu
    if tp.hfu is not None:
      out[HFU] = tp.hfu
  joules = trial.energy_j
  if joules is not None:
    grams = trial.experiment.books.region.carbon(wait=0).co2e_g(joules)
    if grams is not None:
      out[CO2E] = grams
  return out


def _need(module: str, extra: str, what: str) -> Any:
  import importlib

  try:
    return importlib.import_module(module)
  except ImportError as e:
    raise ImportError(f"jaxgreen.sinks.{what} needs {module}: pip install "
                      f"'jaxgreen[{extra}]'") from e


class Sink:
  """A tracker that receives trials; subclass it for a tracker jaxgreen has no sink for.

  One sink object serves every trial of an experiment (several may be open at once),
  so keep per-trial state keyed by ``trial.id``. Calls may come from any thread that
  runs tracked steps. An exception disables the sink for the rest of the experiment.
  """

  def start(self, trial: Trial) -> None:
    """A trial started: ``trial.name``, ``trial.id``, ``trial.hparams`` and
    ``trial.experiment.name`` describe it."""

  def log(self, trial: Trial, step: int, values: Mapping[str, float]) -> None:
    """Values of ``trial``: the user's metrics at ``step`` and jaxgreen's
    (``jaxgreen/...``, whose step is ``values["jaxgreen/tracked_steps"]``)."""

  def end(self, trial: Trial, status: str) -> None:
    """The trial ended: ``status`` is completed, stopped, failed or preempted."""


class _Function(Sink):
  """A plain function ``fn(event, trial, step, values)`` as a sink."""

  def __init__(self, fn: Callable[..., Any]):
    self.fn = fn

  def start(self, trial: Trial) -> None:
    self.fn("start", trial, None, {})

  def log(self, trial: Trial, step: int, values: Mapping[str, float]) -> None:
    self.fn("log", trial, step, values)

  def end(self, trial: Trial, status: str) -> None:
    self.fn("end", trial, None, {})

  def __repr__(self) -> str:
    return f"{getattr(self.fn, '__qualname__', self.fn)!r}"


def _as_sink(s: Any) -> Sink:
  if isinstance(s, type):
    raise TypeError(f"Experiment(sinks=[..., {s.__name__}, ...]) is a class; pass an "
                    f"instance, e.g. {s.__name__}(...)")
  if isinstance(s, Sink) or all(callable(getattr(s, m, None)) for m in ("start", "log", "end")):
    return s
  if callable(s):
    return _Function(s)
  raise TypeError(f"Experiment(sinks=[..., {s!r}, ...]): a sink is a jaxgreen.sinks.Sink "
                  f"(TensorBoard('runs'), WandB(project=...), MLflow()) or a function "
                  f"fn(event, trial, step, values)")


class Sinks:
  """An experiment's sinks: calls each in turn; one that raises is warned about once and
  disabled. Empty (falsy) when there are none or the process does not record."""

  def __init__(self, sinks: Iterable[Any] | Any | None, enabled: bool = True):
    if sinks is None:
      sinks = []
    elif isinstance(sinks, Sink) or not isinstance(sinks, Iterable):
      sinks = [sinks]
    checked = [_as_sink(s) for s in sinks]
    self.sinks: list[Sink] = checked if enabled else []
    # Re-entrant: SIGTERM may end trials while this thread is inside a sink call.
    self._lock = threading.RLock()
    self._at: dict[str, float] = {}  # trial id -> tracked steps of its last values

  def __bool__(self) -> bool:
    return bool(self.sinks)

  def _call(self, method: str, *args: Any) -> None:
    with self._lock:
      for s in list(self.sinks):
        try:
          getattr(s, method)(*args)
        except Exception as e:  # a tracker must never stop training
          if s in self.sinks:
            self.sinks.remove(s)
          warnings.warn(f"jaxgreen: the sink {s!r} raised {e!r} in {method}(); it is "
                        f"disabled for the rest of this experiment (training and the "
                        f"ledger are not affected)", stacklevel=2)

  def start(self, trial: Trial) -> None:
    self._call("start", trial)

  def log(self, trial: Trial, step: int, metrics: Mapping[str, float]) -> None:
    """``trial.log(step, **metrics)``: the metrics with jaxgreen's values."""
    values = dict(metrics) | values_of(trial)
    with self._lock:
      self._at[trial.id] = values[STEPS]
      self._call("log", trial, step, values)

  def flush(self, trial: Trial) -> None:
    """A flush window: jaxgreen's values, if steps ran since the last ones."""
    values = values_of(trial)
    with self._lock:
      if self._at.get(trial.id) == values[STEPS]:
        return
      self._at[trial.id] = values[STEPS]
      self._call("log", trial, int(values[STEPS]), values)

  def end(self, trial: Trial, status: str) -> None:
    with self._lock:
      self.flush(trial)
      self._at.pop(trial.id, None)
      self._call("end", trial, status)


class _Runs(Sink):
  """A tracker run per open trial.

  Trials still running at exit are ended failed by their experiment's exit hook; by
  then the tracker's own exit hook (wandb's, tensorboardX's: registered later, so run
  earlier) has closed its runs. So the runs of open trials are ended failed here, by a
  hook registered at the first start, after the tracker's, which runs before it.
  """

  def __init__(self) -> None:
    self._runs: dict[str, Any] = {}
    self._trials: dict[str, Trial] = {}
    self._hooked = False

  def _opened(self, trial: Trial, run: Any) -> None:
    self._runs[trial.id], self._trials[trial.id] = run, trial
    if not self._hooked:
      atexit.register(self._at_exit)
      self._hooked = True

  def _closed(self, trial: Trial) -> Any:
    self._trials.pop(trial.id, None)
    return self._runs.pop(trial.id, None)

  def _at_exit(self) -> None:
    for trial in list(self._trials.values()):
      try:
        values = values_of(trial)  # the last window's figures, then the end
        self.log(trial, int(values[STEPS]), values)
        self.end(trial, "failed")
      except Exception:  # exiting anyway
        self._closed(trial)


class _Series(_Runs):
  """A tracker with a step per value: the user's metrics at their step, jaxgreen's at
  the tracked-step count, each written only when it moves forward."""

  def __init__(self) -> None:
    super().__init__()
    self._last: dict[str, int] = {}

  def _points(self, trial: Trial, step: int, values: Mapping[str, float]
              ) -> list[tuple[int, dict[str, float]]]:
    own = {k: float(v) for k, v in values.items() if k.startswith("jaxgreen/")}
    user = {k: float(v) for k, v in values.items() if not k.startswith("jaxgreen/")}
    at = int(own.get(STEPS, step))
    points = [(int(step), user)] if user else []
    if own and at > self._last.get(trial.id, -1):
      self._last[trial.id] = at
      points.append((at, own))
    return points

  def _forget(self, trial: Trial) -> Any:
    self._last.pop(trial.id, None)
    return self._closed(trial)


def _folder(trial: Trial) -> str:
  return f"{re.sub(r'[^A-Za-z0-9._=,+-]+', '_', trial.name)[:80]}-{trial.id[:8]}"


def _hparam(v: Any) -> Any:
  return v if isinstance(v, bool | int | float | str) else str(v)


# TensorBoard's HParams statuses; a preempted trial's outcome is unknown.
_TB_STATUS = {"completed": "STATUS_SUCCESS", "stopped": "STATUS_SUCCESS",
              "failed": "STATUS_FAILURE", "preempted": "STATUS_UNKNOWN"}


class TensorBoard(_Series):
  """TensorBoard event files, one subfolder of ``logdir`` per trial (tensorboardX).

  Scalars are TensorBoard's float32. The trial's hyperparameters are a text summary at
  its start and, at its end, an HParams-dashboard session with its status (success:
  completed or stopped; failure; unknown: preempted) and the text ``jaxgreen/status``.

  Args:
    logdir: the folder TensorBoard is pointed at (``tensorboard --logdir runs``).
    flush_secs: how often tensorboardX writes its queue to disk.
  """

  def __init__(self, logdir: str | os.PathLike = "runs", flush_secs: int = 10):
    super().__init__()
    if not isinstance(logdir, str | os.PathLike) or not str(logdir).strip():
      raise ValueError(f"TensorBoard(logdir={logdir!r}): pass a folder such as 'runs'")
    self._tbx = _need("tensorboardX", "tensorboard", "TensorBoard")
    self.logdir = os.fspath(logdir)
    self.flush_secs = flush_secs
    self._tags: dict[str, dict[str, float]] = {}

  def start(self, trial: Trial) -> None:
    w = self._tbx.SummaryWriter(os.path.join(self.logdir, _folder(trial)),
                                flush_secs=self.flush_secs)
    rows = "".join(f"| {k} | {v} |\n" for k, v in trial.hparams.items())
    w.add_text("jaxgreen/trial", f"experiment `{trial.experiment.name}`, trial "
               f"`{trial.name}` (id `{trial.id}`)\n\n| hparam | value |\n|---|---|\n{rows}")
    self._tags[trial.id] = {}
    self._opened(trial, w)

  def log(self, trial: Trial, step: int, values: Mapping[str, float]) -> None:
    w = self._runs.get(trial.id)
    if w is None:
      return
    for at, group in self._points(trial, step, values):
      for k, v in group.items():
        w.add_scalar(k, v, at)
      self._tags[trial.id].update(group)

  def end(self, trial: Trial, status: str) -> None:
    w = self._forget(trial)
    last = self._tags.pop(trial.id, {})
    if w is None:
      return
    from tensorboardX.proto.api_pb2 import Status
    from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData
    from tensorboardX.summary import hparams

    hp = {k: _hparam(v) for k, v in trial.hparams.items()}
    exp, ssi, sei = hparams(hp, last)
    data = HParamsPluginData.FromString(sei.value[0].metadata.plugin_data.content)
    data.session_end_info.status = Status.Value(_TB_STATUS.get(status, "STATUS_FAILURE"))
    sei.value[0].metadata.plugin_data.content = data.SerializeToString()
    for summary in (exp, ssi, sei):
      w.file_writer.add_summary(summary)
    w.add_text("jaxgreen/status", status)
    w.close()

  def __repr__(self) -> str:
    return f"TensorBoard({self.logdir!r})"


# W&B exit codes: 0 is a finished run; 143 (128 + SIGTERM) follows mark_preempting().
_WANDB_EXIT = {"completed": 0, "stopped": 0, "failed": 1, "preempted": 143}


class WandB(_Runs):
  """Weights & Biases: one run per trial, hyperparameters as its config.

  Runs are named after the trial and grouped by experiment name; the config also holds
  ``jaxgreen_trial_id``. ``jaxgreen/train_pfpo`` is defined as the x-axis of every
  metric. The run finishes with the trial: exit code 0 (completed, stopped), 1 (failed)
  or 143 after ``mark_preempting()`` (preempted); its summary holds ``jaxgreen/status``.

  Args:
    project: the W&B project (default: W&B's, e.g. ``WANDB_PROJECT``).
    mode: ``"online"``, ``"offline"`` or ``"disabled"`` (default: W&B's, ``WANDB_MODE``).
    **init_kwargs: passed to ``wandb.init`` (``entity``, ``dir``, ``tags``...); they
      override jaxgreen's (``name``, ``group``...).
  """

  def __init__(self, project: str | None = None, mode: str | None = None,
               **init_kwargs: Any):
    super().__init__()
    self._wandb = _need("wandb", "wandb", "WandB")
    self.project, self.mode, self.init_kwargs = project, mode, init_kwargs
    major, minor = (int(p) for p in re.findall(r"\d+", self._wandb.__version__)[:2])
    # Several trials may be open at once: each gets its own run (wandb >= 0.19).
    self._reinit: Any = "create_new" if (major, minor) >= (0, 19) else True

  def start(self, trial: Trial) -> None:
    kw: dict[str, Any] = {"project": self.project, "name": trial.name,
                          "group": trial.experiment.name, "reinit": self._reinit,
                          "config": dict(trial.hparams) | {"jaxgreen_trial_id": trial.id}}
    if self.mode is not None:
      kw["mode"] = self.mode
    run = self._wandb.init(**(kw | self.init_kwargs))
    run.define_metric(PFPO)
    run.define_metric("*", step_metric=PFPO)
    self._opened(trial, run)

  def log(self, trial: Trial, step: int, values: Mapping[str, float]) -> None:
    run = self._runs.get(trial.id)
    if run is None:
      return
    row = dict(values)
    if any(not k.startswith("jaxgreen/") for k in row):
      row["step"] = step
    run.log(row)

  def end(self, trial: Trial, status: str) -> None:
    run = self._closed(trial)
    if run is None:
      return
    run.summary["jaxgreen/status"] = status
    if status == "preempted":
      run.mark_preempting()
    run.finish(exit_code=_WANDB_EXIT.get(status, 1))

  def __repr__(self) -> str:
    return f"WandB(project={self.project!r})"


_MLFLOW_STATUS = {"completed": "FINISHED", "stopped": "FINISHED", "failed": "FAILED",
                  "preempted": "KILLED"}


class MLflow(_Series):
  """MLflow: one run per trial in an MLflow experiment, hyperparameters as params.

  The run is named after the trial and tagged ``jaxgreen.trial_id``,
  ``jaxgreen.experiment`` and, at its end, ``jaxgreen.status``; it ends FINISHED
  (completed, stopped), FAILED (failed) or KILLED (preempted). Uses ``MlflowClient``,
  never MLflow's global active run, so trials may be open at once.

  Args:
    tracking_uri: the tracking server or store (default: MLflow's,
      ``MLFLOW_TRACKING_URI``), e.g. ``"sqlite:///mlflow.db"`` or ``"http://host:5000"``.
    experiment: the MLflow experiment's name (default: the jaxgreen experiment's);
      created if missing.
  """

  def __init__(self, tracking_uri: str | None = None, experiment: str | None = None):
    super().__init__()
    self._tracking = _need("mlflow.tracking", "mlflow", "MLflow")
    self._entities = _need("mlflow.entities", "mlflow", "MLflow")
    self.tracking_uri, self.experiment = tracking_uri, experiment
    self._client: Any = None
    self._experiments: dict[str, str] = {}

  def _experiment_id(self, name: str) -> str:
    if name not in self._experiments:
      found = self._client.get_experiment_by_name(name)
      if found is None:
        try:
          self._experiments[name] = self._client.create_experiment(name)
        except Exception:  # created meanwhile by another process
          found = self._client.get_experiment_by_name(name)
          if found is None:
            raise
      if found is not None:
        self._experiments[name] = found.experiment_id
    return self._experiments[name]

  def start(self, trial: Trial) -> None:
    if self._client is None:
      self._client = self._tracking.MlflowClient(self.tracking_uri)
    eid = self._experiment_id(self.experiment or trial.experiment.name)
    run = self._client.create_run(eid, run_name=trial.name, tags={
        "jaxgreen.trial_id": trial.id, "jaxgreen.experiment": trial.experiment.name})
    run_id = run.info.run_id
    params = [self._entities.Param(str(k)[:250], str(v)[:6000])
              for k, v in trial.hparams.items()]
    for i in range(0, len(params), 100):  # MLflow takes up to 100 params per batch
      self._client.log_batch(run_id, params=params[i:i + 100])
    self._opened(trial, run_id)

  def log(self, trial: Trial, step: int, values: Mapping[str, float]) -> None:
    run_id = self._runs.get(trial.id)
    if run_id is None:
      return
    ms = int(time.time() * 1000)
    metrics = [self._entities.Metric(k, v, ms, at)
               for at, group in self._points(trial, step, values) for k, v in group.items()]
    if metrics:
      self._client.log_batch(run_id, metrics=metrics)

  def end(self, trial: Trial, status: str) -> None:
    run_id = self._forget(trial)
    if run_id is None:
      return
    self._client.set_tag(run_id, "jaxgreen.status", status)
    self._client.set_terminated(run_id, status=_MLFLOW_STATUS.get(status, "FAILED"))

  def __repr__(self) -> str:
    return f"MLflow(tracking_uri={self.tracking_uri!r})"
