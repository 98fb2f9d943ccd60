"""Equation 1 at run time: ``@track`` for train/eval steps, experiments and trials.

Green AI's price tag of a result is ``Cost(R) ∝ E · D · H``: the cost of one example
(E), the number of training examples (D) and the number of hyperparameter trials (H).
``@jaxgreen.track`` counts E from the step's program (``jaxgreen.count``, once per
input signature) and adds up steps and examples; an :class:`Experiment` groups steps
into trials and writes them to a :class:`~jaxgreen.Ledger`.

Nothing here waits for the device: a tracked call only looks at argument shapes,
dtypes and avals, never at values, and the count traces the program abstractly
(for a ``jax.jit`` step the trace is shared with jit's own trace cache).
"""

from __future__ import annotations

import atexit
import contextvars
import functools
import hashlib
import inspect
import json
import numbers
import os
import signal
import socket
import sqlite3
import threading
import time
import uuid
import warnings
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ParamSpec, TypeVar

import jax
import numpy as np

from jaxgreen._compat import ArrayImpl as _ArrayImpl
from jaxgreen._compat import trace_state_clean as _top_level
from jaxgreen._state import final_state, has_graph_nodes
from jaxgreen.cost import Cost
from jaxgreen.ledger import KINDS, Ledger, LedgerError

# A flush triggered inside a train step waits at most this long for another process's
# write lock; if the ledger is busy the steps stay buffered for the next window, so a
# busy ledger never stalls training. Only close() and exit wait the ledger's full timeout.
_STEP_FLUSH_TIMEOUT_S = 0.05
# Trial start, log and end wait at most this long; a busy or full ledger keeps their rows
# for the next write (with one warning). Only close() and exit wait the full timeout.
_TRIAL_WRITE_TIMEOUT_S = 0.5
# On SIGTERM the open trials are written within this time (preemption grace periods are
# typically 30 s or more).
_PREEMPT_TIMEOUT_S = 10.0

P = ParamSpec("P")
R = TypeVar("R")

_ACTIVE: contextvars.ContextVar[Trial | None] = contextvars.ContextVar(
    "jaxgreen_trial", default=None)


# Trials started and not yet ended, in start order, with the thread that started each.
# A thread that did not inherit a trial's context (threading.Thread and thread pools
# start with an empty one) attributes its steps to the running trial of another thread.
_RUNNING: dict[Trial, int] = {}
_RUNNING_LOCK = threading.Lock()
_warned_ambiguous = False


def current_trial() -> Trial | None:
  """The trial that tracked steps are attributed to now, or None.

  In the thread that started a trial (or a context copied from it) that is the trial
  of the innermost running ``with exp.trial()``. In another thread (a data loader, a
  thread pool) it is the innermost running trial, provided all running trials were
  started by one thread; with trials running in several threads a worker thread's
  steps cannot be attributed, and a warning says so once.
  """
  trial = _ACTIVE.get()
  if trial is not None or not _RUNNING:
    return trial
  return _fallback_trial()


def _fallback_trial() -> Trial | None:
  global _warned_ambiguous
  me = threading.get_ident()
  with _RUNNING_LOCK:
    running = [(t, th) for t, th in _RUNNING.items() if t.status == "running"]
  if not running or any(th == me for _, th in running):
    return None  # this thread runs trials of its own: its context is authoritative
  if len({th for _, th in running}) == 1:
    return running[-1][0]
  if not _warned_ambiguous:
    _warned_ambiguous = True
    warnings.warn("jaxgreen.track: a step ran in a thread without a trial while trials run "
                  "in several threads; it is not attributed to any trial. Start the worker "
                  "in the trial's context: contextvars.copy_context().run(...)", stacklevel=4)
  return None


# -- preemption (SIGTERM) ----------------------------------------------------------

_EXPERIMENTS: weakref.WeakSet[Experiment] = weakref.WeakSet()
_sigterm_previous: Any = None
_sigterm_installed = False
_critical_code: set[Any] = set()  # code objects a handler must not interrupt mid-way


def _install_sigterm() -> None:
  """Makes SIGTERM (Slurm, Kubernetes, ``docker stop``, spot/TPU preemption) commit
  every open trial and end it as ``stopped`` ("preempted: SIGTERM"), then do what the
  process did before: the previous Python handler runs, or the default kills it."""
  global _sigterm_previous, _sigterm_installed
  if _sigterm_installed or threading.current_thread() is not threading.main_thread():
    return
  try:
    previous = signal.getsignal(signal.SIGTERM)
  except (ValueError, AttributeError):  # pragma: no cover - no SIGTERM on this platform
    return
  if previous is signal.SIG_IGN or previous is None:  # ignored, or a C handler: keep it
    return
  if not _critical_code:
    _critical_code.update(f.__code__ for f in (
        Tracker._record, Trial._add, Trial._take, Trial._sync, Trial.flush, Trial.log,
        Trial._end, Trial._deactivate, Ledger.write, Ledger.transaction.__wrapped__))
  signal.signal(signal.SIGTERM, _on_sigterm)
  _sigterm_previous, _sigterm_installed = previous, True


def _on_sigterm(signum: int, frame: Any) -> None:
  f = frame
  while f is not None:
    if f.f_code in _critical_code:
      # Interrupted inside jaxgreen's own bookkeeping or a ledger transaction: let it
      # finish (microseconds) and take the signal again just after.
      threading.Timer(0.005, os.kill, (os.getpid(), signum)).start()
      return
    f = f.f_back
  for exp in list(_EXPERIMENTS):
    for t in list(exp._open):
      t._end("stopped", "preempted: SIGTERM", timeout=_PREEMPT_TIMEOUT_S)
      if t._owes():
        t._sync(_PREEMPT_TIMEOUT_S)
  previous = _sigterm_previous
  if callable(previous):
    previous(signum, frame)
    return
  signal.signal(signum, signal.SIG_DFL)  # die of the signal, as without jaxgreen
  os.kill(os.getpid(), signum)


# -- signatures --------------------------------------------------------------------


def _is_array(x: Any) -> bool:
  return hasattr(x, "shape") and hasattr(x, "dtype")


def _leaf_key(x: Any, jitted: bool) -> Any:
  if isinstance(x, jax.Array):
    # The aval (shape, dtype, weak type, sharding-in-types) is what jit traces on, so
    # it fixes the jaxpr and hence the count. Device placement only changes how that
    # same global program is compiled, not its FPO, so it is left out of the key.
    return x.aval
  if _is_array(x):  # numpy arrays and scalars
    return (tuple(x.shape), np.dtype(x.dtype))
  if jitted and isinstance(x, (bool, int, float, complex)):
    return ("py", type(x))  # jit abstracts Python scalars: the value does not matter
  try:
    hash(x)
  except TypeError:
    return ("id", type(x), id(x))
  # A plain function may branch on a Python value, so it is part of the signature.
  return ("value", type(x), x)


def _describe(leaves: Sequence[Any], statics: Sequence[Any], jitted: bool) -> str:
  parts = []
  for x in leaves:
    if _is_array(x):
      parts.append(f"{np.dtype(x.dtype).name}[{','.join(map(str, x.shape))}]")
    elif jitted and isinstance(x, (bool, int, float, complex)):
      # Any value shares this signature (see _leaf_key): name the type, not the
      # first value seen, so the signature id does not depend on it.
      parts.append(type(x).__name__)
    else:
      parts.append(repr(x))
  if statics:
    parts.append("static " + ", ".join(repr(s) for s in statics))
  return ", ".join(parts)


class _Entry:
  """The counted cost of one call for one input signature."""

  __slots__ = ("calls", "cost", "examples", "fpo", "function", "id", "signature")

  def __init__(self, cost: Cost, signature: str, examples: int, function: str):
    self.cost = cost
    self.fpo = int(cost.fpo)
    self.signature = signature
    self.examples = examples
    self.function = function
    self.calls = 0
    digest = hashlib.sha256(f"{function}\n{signature}\n{cost.to_json(sort_keys=True)}"
                            .encode()).hexdigest()
    self.id = digest[:32]


class Tracker:
  """Running totals of one tracked function (``step.tracker``).

  Attributes:
    name: the function's name as recorded in the ledger.
    kind: ``"train"`` or ``"eval"``.
    steps: calls so far.
    examples: examples so far (D for a train step).
  """

  def __init__(self, fn: Callable, *, examples: Any, kind: str, name: str | None,
               static_argnums: Sequence[int], static_argnames: Sequence[str],
               count_options: Mapping[str, Any]):
    self.fn = fn
    self.kind = kind
    self.name = name or getattr(fn, "__qualname__", None) or getattr(fn, "__name__", repr(fn))
    self.steps = 0
    self.examples = 0
    self.entries: dict[Any, _Entry] = {}
    self.fast: _Entry | None = None
    self.jitted = hasattr(fn, "_cache_size")
    self._lock = threading.Lock()
    self._static_argnums = frozenset(static_argnums)
    self._static_argnames = frozenset(static_argnames)
    self._count_options = dict(count_options)
    self._examples_fn: Callable | None = None
    self._examples_const: int | None = None
    self._examples_arg: tuple[str, int | None] | None = None
    self._init_examples(examples)

  # -- examples ----------------------------------------------------------------

  def _init_examples(self, examples: Any) -> None:
    try:
      params = list(inspect.signature(self.fn).parameters.values())
    except (TypeError, ValueError):
      params = []
    if examples is None:
      examples = "batch" if any(p.name == "batch" for p in params) else 0
    if isinstance(examples, bool):
      raise TypeError(f"track(examples={examples!r}): pass an argument name, an int or "
                      f"a function (args, kwargs) -> int")
    if isinstance(examples, int):
      if examples < 0:
        raise ValueError(f"track(examples={examples}) must be >= 0")
      self._examples_const = examples
    elif isinstance(examples, str):
      names = [p.name for p in params]
      if params and examples not in names:
        raise ValueError(f"track(examples={examples!r}): {self.name} has no argument "
                         f"{examples!r}; its arguments are {names}")
      pos = None
      if examples in names:
        p = params[names.index(examples)]
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
          pos = names.index(examples)
      self._examples_arg = (examples, pos)
    elif callable(examples):
      self._examples_fn = examples
    else:
      raise TypeError(f"track(examples={examples!r}): pass an argument name such as "
                      f"'batch', an int, or a function (args, kwargs) -> int")

  def _examples_from_arg(self, args: tuple, kwargs: dict) -> int:
    name, pos = self._examples_arg  # type: ignore[misc]
    if name in kwargs:
      value = kwargs[name]
    elif pos is not None and pos < len(args):
      value = args[pos]
    else:
      raise TypeError(f"track(examples={name!r}): the call to {self.name} did not pass "
                      f"{name!r}; pass it, or give track(examples=N)")
    for leaf in jax.tree_util.tree_leaves(value):
      if _is_array(leaf) and len(leaf.shape) >= 1:
        return int(leaf.shape[0])
    raise ValueError(f"track(examples={name!r}): argument {name!r} of {self.name} has no "
                     f"array with a leading (batch) dimension; give track(examples=N)")

  def _examples(self, args: tuple, kwargs: dict) -> int:
    n = self._examples_fn(args, kwargs)  # type: ignore[misc]
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
      raise TypeError(f"track(examples=...) returned {n!r}; it must return an int >= 0")
    return int(n)

  # -- signatures --------------------------------------------------------------

  def _split(self, args: tuple, kwargs: dict):
    if not self._static_argnums and not self._static_argnames:
      return args, kwargs, ()
    n = len(args)
    static_pos = {i % n for i in self._static_argnums if -n <= i < n}
    dyn_args = tuple(a for i, a in enumerate(args) if i not in static_pos)
    dyn_kwargs = {k: v for k, v in kwargs.items() if k not in self._static_argnames}
    statics = (tuple((i, args[i]) for i in sorted(static_pos))
               + tuple((k, kwargs[k]) for k in sorted(kwargs) if k in self._static_argnames))
    return dyn_args, dyn_kwargs, statics

  def entry(self, args: tuple, kwargs: dict) -> _Entry:
    """The cost entry for this call's signature; counts it on first sight."""
    dyn_args, dyn_kwargs, statics = self._split(args, kwargs)
    leaves, treedef = jax.tree_util.tree_flatten((dyn_args, dyn_kwargs))
    jitted = self.jitted
    key = (treedef, tuple([x.aval if type(x) is _ArrayImpl else _leaf_key(x, jitted)
                           for x in leaves]), statics)
    e = self.entries.get(key)
    if e is None:
      e = self.entries[key] = self._count(args, kwargs, leaves, treedef, statics)
    return e

  def _count(self, args, kwargs, leaves, treedef, statics) -> _Entry:
    from jaxgreen.api import count

    arr = [i for i, x in enumerate(leaves) if _is_array(x)]
    abstract = [jax.ShapeDtypeStruct(tuple(leaves[i].shape), leaves[i].dtype,
                                     weak_type=bool(getattr(leaves[i], "weak_type", False)))
                for i in arr]
    fixed = list(leaves)
    fn = self.fn
    # nnx objects the step updates in place are outputs of what is counted (see
    # jaxgreen._state): otherwise DCE drops the backward pass and the optimizer.
    stateful = has_graph_nodes((args, kwargs))

    def call(*arrays):
      ls = list(fixed)
      for i, a in zip(arr, arrays, strict=True):
        ls[i] = a
      dyn_args, dyn_kwargs = jax.tree_util.tree_unflatten(treedef, ls)
      full = list(dyn_args)
      for i, v in statics:
        if isinstance(i, int):
          full.insert(i, v)
      kw = dict(dyn_kwargs) | {k: v for k, v in statics if isinstance(k, str)}
      out = fn(*full, **kw)
      return (out, final_state((full, kw))) if stateful else out

    try:
      cost = count(call, **self._count_options)(*abstract)
    except Exception as e:  # a tracker must never stop training; the gap is recorded
      warnings.warn(f"jaxgreen.track: could not count {self.name}: {e!r}; its FPO is "
                    f"recorded as 0 and marked inexact", stacklevel=4)
      cost = Cost(inexact=(f"count of {self.name} failed: {e!r}",))
    examples = 0
    if self._examples_const is not None:
      examples = self._examples_const
    elif self._examples_arg is not None:
      examples = self._examples_from_arg(args, kwargs)
    return _Entry(cost, _describe(leaves, [v for _, v in statics], self.jitted), examples,
                  self.name)

  # -- totals ------------------------------------------------------------------

  def record(self, entry: _Entry, args: tuple, kwargs: dict) -> None:
    """Adds one call of ``entry``'s signature with these arguments to the totals."""
    self._record(entry, self._examples_of(entry, args, kwargs))

  def _examples_of(self, entry: _Entry, args: tuple, kwargs: dict) -> int:
    return entry.examples if self._examples_fn is None else self._examples(args, kwargs)

  def _record(self, entry: _Entry, ex: int) -> None:
    with self._lock:  # steps may run in several threads
      entry.calls += 1
      self.steps += 1
      self.examples += ex
    trial = _ACTIVE.get()
    if trial is None and _RUNNING:
      trial = _fallback_trial()
    if trial is not None:
      trial._add(entry, self.kind, ex)

  @property
  def fpo(self) -> int:
    """FPO of all calls so far: Σ over signatures of calls × FPO per call."""
    return sum(e.calls * e.fpo for e in self.entries.values())

  @property
  def cost(self) -> Cost:
    """The full :class:`Cost` of all calls so far (breakdowns included)."""
    return sum((e.cost * e.calls for e in self.entries.values()), Cost())

  def totals(self) -> dict[str, Any]:
    e = self.fpo / self.examples if self.examples else None
    return {"function": self.name, "kind": self.kind, "steps": self.steps,
            "examples": self.examples, "fpo": self.fpo, "fpo_per_example": e,
            "signatures": len(self.entries)}

  def reset(self) -> None:
    """Zeroes the running totals; counted signatures are kept."""
    self.steps = self.examples = 0
    for e in self.entries.values():
      e.calls = 0


def track(fn: Callable[P, R] | None = None, *, examples: Any = None, kind: str = "train",
          name: str | None = None, static_argnums: int | Sequence[int] | None = None,
          static_argnames: str | Sequence[str] | None = None,
          **count_options: Any) -> Any:
  """Counts the FPO of every call of a train or eval step, plain or ``jax.jit``-ed.

  Each call's signature (the pytree structure, the avals of its arrays: shape, dtype,
  weak type and sharding-in-types, and the static arguments) is counted once with
  :func:`jaxgreen.count` and cached; then each call adds one step, its examples and
  its FPO to the totals (``step.tracker``) and to the active :class:`Trial`. Outputs
  are those of ``fn``, untouched: nothing waits for the device or reads a value. For
  a jitted step whose jit cache holds one executable, a call costs two
  ``_cache_size()`` reads and a few additions; otherwise the signature is built from
  the flattened arguments (a dict lookup on their avals). A call made while an outer
  function is traced (inside another ``jit``, ``scan``, ``grad``...) is part of that
  program, not a step: it passes through untracked; track the outer function.

  Args:
    fn: the step. ``@track`` and ``@track(...)`` both work.
    examples: examples per call (D): the name of the argument whose leading dimension
      is the batch (default ``"batch"`` if ``fn`` has such an argument, else 0), an
      int, or a function ``(args, kwargs) -> int``.
    kind: ``"train"`` (counted in E · D · H) or ``"eval"`` (inference, reported apart).
    name: the name recorded in the ledger (default ``fn.__qualname__``).
    static_argnums, static_argnames: static arguments of a plain function; for a
      ``jax.jit`` function they are read from the jit.
    **count_options: passed to :func:`jaxgreen.count` (``cond``, ``trip_counts``, ...).

  Returns:
    A function with ``fn``'s signature (``__wrapped__`` is ``fn``; ``lower``, ``trace``,
    ``eval_shape`` and ``clear_cache`` of a jitted ``fn`` are kept), plus ``.tracker``.

  Example:
    >>> @jaxgreen.track(examples="batch")
    ... @jax.jit
    ... def train_step(state, batch): ...
    >>> train_step.tracker.totals()["fpo"]
  """
  if kind not in KINDS:
    raise ValueError(f"track(kind={kind!r}): use 'train' or 'eval'")
  if fn is None:
    return functools.partial(track, examples=examples, kind=kind, name=name,
                             static_argnums=static_argnums, static_argnames=static_argnames,
                             **count_options)
  if not callable(fn):
    raise TypeError(f"track(fn=...) must be callable, got {type(fn).__name__}: {fn!r}")
  _check_count_options(fn, count_options)
  info = getattr(fn, "_jit_info", None)
  if static_argnums is None:
    static_argnums = tuple(getattr(info, "static_argnums", ()) or ())
  elif isinstance(static_argnums, int):
    static_argnums = (static_argnums,)
  if static_argnames is None:
    static_argnames = tuple(getattr(info, "static_argnames", ()) or ())
  elif isinstance(static_argnames, str):
    static_argnames = (static_argnames,)
  tracker = Tracker(fn, examples=examples, kind=kind, name=name,
                    static_argnums=tuple(static_argnums),
                    static_argnames=tuple(static_argnames), count_options=count_options)
  cache_size = getattr(fn, "_cache_size", None)

  if cache_size is None:
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
      if not _top_level():  # traced as part of an outer program: not a step of its own
        return fn(*args, **kwargs)
      # Everything that may raise (a new signature's count, examples) runs before the
      # step: an error never discards a step that ran, nor its donated inputs.
      entry = tracker.entry(args, kwargs)
      ex = tracker._examples_of(entry, args, kwargs)
      out = fn(*args, **kwargs)
      tracker._record(entry, ex)
      return out
  else:
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
      # Fast path: while jit's cache holds exactly one executable and this call adds
      # none, the call had the one signature that executable was built for.
      if not _top_level():  # traced as part of an outer program: not a step of its own
        return fn(*args, **kwargs)
      fast = tracker.fast
      if fast is not None and cache_size() == 1:
        ex = fast.examples if tracker._examples_fn is None else tracker._examples(args, kwargs)
        out = fn(*args, **kwargs)
        if cache_size() == 1:
          tracker._record(fast, ex)
          return out
        tracker.fast = None
        # A new signature: shapes are still readable from donated (deleted) arrays.
        try:
          entry = tracker.entry(args, kwargs)
        except Exception as e:  # the step ran: return its output, raise next call
          warnings.warn(f"jaxgreen.track: this call of {tracker.name} was not recorded: "
                        f"{e}", stacklevel=2)
          return out
        tracker._record(entry, entry.examples if tracker._examples_fn is None else ex)
        return out
      entry = tracker.entry(args, kwargs)
      ex = tracker._examples_of(entry, args, kwargs)
      out = fn(*args, **kwargs)
      tracker.fast = entry if cache_size() == 1 else None
      tracker._record(entry, ex)
      return out

    for attr in ("lower", "trace", "eval_shape", "clear_cache"):
      if hasattr(fn, attr):
        setattr(wrapper, attr, getattr(fn, attr))

  wrapper.tracker = tracker  # type: ignore[attr-defined]
  return wrapper


def _check_count_options(fn: Callable, options: Mapping[str, Any]) -> None:
  """Rejects bad ``jaxgreen.count`` options now, not as an FPO of 0 at every call."""
  from jaxgreen.api import count

  known = [n for n in inspect.signature(count).parameters if n not in ("fn", "static_argnums")]
  for k in options:
    if k not in known:
      raise TypeError(f"track({k}=...): not an option of track or jaxgreen.count; the "
                      f"count options are {', '.join(known)}")
  try:
    count(fn, **options)  # validates without tracing
  except (TypeError, ValueError) as e:
    msg = str(e)
    raise type(e)("track(" + msg[len("count("):] if msg.startswith("count(") else
                  f"track(...): {msg}") from None


# -- experiments and trials ----------------------------------------------------------


def _device_info() -> dict[str, Any]:
  devices = jax.devices()
  return {"device_kind": devices[0].device_kind if devices else "?",
          "device_count": jax.device_count(), "process_index": jax.process_index(),
          "process_count": jax.process_count()}


class Experiment:
  """A named group of trials, recorded in a ledger.

  Multi-host: under ``jax.distributed`` every host runs the same SPMD step, which
  is ONE step of the global program (its arguments have global shapes), so by
  default only process 0 writes the ledger; other processes track in memory. Pass
  ``all_processes=True`` only when hosts run independent programs (e.g. separate
  trials), each then counted once by its own writer.

  Args:
    name: the experiment's name (trials of all runs with one name are reported together).
    ledger: a path (default ``"green.sqlite"``), a :class:`Ledger`, or None to keep
      everything in memory.
    flush_steps: commit tracked steps after this many calls...
    flush_seconds: ...or after this many seconds, whichever comes first. A killed
      process loses at most this window; trial ends and exit always commit.
    all_processes: record on every process, not only ``jax.process_index() == 0``.
    measure_energy: read NVML energy counters per trial where available.

  Example:
    >>> exp = jaxgreen.Experiment("mlp-sweep", ledger="green.sqlite")
    >>> with exp.trial({"lr": 1e-3}) as trial:
    ...   for step in range(100):
    ...     state = train_step(state, batch)
    ...   trial.log(step, val_acc=0.91)
    >>> print(exp.report())
  """

  def __init__(self, name: str, ledger: str | os.PathLike | Ledger | None = "green.sqlite", *,
               flush_steps: int = 1000, flush_seconds: float = 30.0,
               all_processes: bool = False, measure_energy: bool = True):
    if not isinstance(name, str) or not name.strip():
      raise ValueError(f"Experiment(name={name!r}) must be a non-empty string")
    if not isinstance(flush_steps, int) or flush_steps < 1:
      raise ValueError(f"Experiment(flush_steps={flush_steps!r}) must be an int >= 1")
    if (isinstance(flush_seconds, bool) or not isinstance(flush_seconds, int | float)
        or not flush_seconds > 0):
      raise ValueError(f"Experiment(flush_seconds={flush_seconds!r}) must be a number > 0")
    if not (ledger is None or isinstance(ledger, str | os.PathLike | Ledger)):
      raise TypeError(f"Experiment(ledger={ledger!r}): pass a file path such as "
                      f"'green.sqlite', a jaxgreen.Ledger, or None to keep it in memory")
    if isinstance(ledger, str | os.PathLike) and not str(ledger).strip():
      raise ValueError(f"Experiment(ledger={ledger!r}) is an empty path; pass a file path "
                       f"such as 'green.sqlite', or None to keep it in memory")
    self.name = name
    self.flush_steps = flush_steps
    self.flush_seconds = float(flush_seconds)
    self.measure_energy = measure_energy
    info = _device_info()
    self.recording = all_processes or info["process_index"] == 0
    if isinstance(ledger, Ledger):
      self.ledger = ledger if self.recording else Ledger(":memory:")
    else:
      memory = ledger is None or not self.recording
      self.ledger = Ledger(":memory:" if memory else ledger)  # type: ignore[arg-type]
    self.run_id = uuid.uuid4().hex
    self._signatures: set[str] = set()
    # Trials started and not yet written as ended. Held strongly: a trial whose end
    # write failed is written at close/exit even after the user's variable moved on.
    self._open: dict[Trial, None] = {}
    self._n = 0
    from jaxgreen import __version__

    row = (self.run_id, name, socket.gethostname(), os.getpid(), info["process_index"],
           info["process_count"], info["device_kind"], info["device_count"],
           jax.__version__, __version__, time.time())
    self._warned: set[bool] = set()
    self.ledger.write(lambda c: c.execute(
        "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row))
    atexit.register(self._at_exit)
    _EXPERIMENTS.add(self)
    _install_sigterm()

  def trial(self, hparams: Mapping[str, Any] | None = None, *, name: str | None = None,
            resume: str | None = None) -> Trial:
    """A new trial (one hyperparameter assignment); use it as a context manager.

    Args:
      resume: the ``id`` of a trial of this experiment recorded earlier (save
        ``trial.id`` with your checkpoint): after a checkpoint restore the trial goes on
        under the same id, its cumulative FPO and examples continuing from the ledger
        (a preempted or crashed trial is thereby counted once in H, not twice).
    """
    if hparams is not None and not isinstance(hparams, Mapping):
      raise TypeError(f"trial(hparams={hparams!r}) must be a dict of name -> value")
    if resume is not None:
      return self._resume(resume, hparams, name)
    self._n += 1
    hp = dict(hparams or {})
    if name is None:
      name = ", ".join(f"{k}={v}" for k, v in hp.items()) or f"trial {self._n}"
    return Trial(self, name, hp)

  def _resume(self, trial_id: str, hparams: Mapping[str, Any] | None,
              name: str | None) -> Trial:
    if not isinstance(trial_id, str) or not trial_id:
      raise TypeError(f"trial(resume={trial_id!r}) must be the id of a recorded trial "
                      f"(trial.id, saved with the checkpoint)")
    found = self.ledger.rows("SELECT name, hparams, experiment, energy_j FROM trials "
                             "WHERE id = ?", (trial_id,))
    if not found or found[0]["experiment"] != self.name:
      where = f"experiment {found[0]['experiment']!r}" if found else "no trial"
      raise ValueError(f"trial(resume={trial_id!r}): {self.ledger.path!r} holds {where} "
                       f"with this id, not a trial of {self.name!r}; pass the trial.id saved "
                       f"with the checkpoint, and the same experiment name and ledger")
    if any(t.id == trial_id for t in self._open):
      raise ValueError(f"trial(resume={trial_id!r}) is still open in this process; end it "
                       f"before resuming it")
    row = found[0]
    hp = dict(hparams) if hparams is not None else json.loads(row["hparams"] or "{}")
    t = Trial(self, name or row["name"] or trial_id[:8], hp)
    t.id = trial_id
    tag = self.ledger.price_tag(self.name)
    (prev,) = [c for c in tag.trials if c.id == trial_id]
    t.steps = prev.train_steps + prev.eval_steps
    t.train_fpo, t.train_examples = prev.train_fpo, prev.train_examples
    t._resumed, t._energy_before = True, row["energy_j"]
    return t

  def flush(self) -> None:
    """Commits what every open trial owes the ledger (safe from any thread); waits up
    to the ledger's timeout and raises :class:`~jaxgreen.ledger.LedgerError` if the
    ledger stays busy or full (the rows are kept)."""
    for t in list(self._open):
      t.flush()

  def _warn_once(self, error: Exception, busy: bool) -> None:
    if busy in self._warned:
      return
    self._warned.add(busy)
    why = "is busy (another writer holds its lock)" if busy else f"could not be written ({error})"
    warnings.warn(f"jaxgreen: the ledger {self.ledger.path!r} {why}; training goes on and "
                  f"the rows are kept in memory and written at the next flush, trial end, "
                  f"experiment.close() or exit", stacklevel=4)

  def price_tag(self, joules_per_flop: float | None = None, run: str | None = None):
    """The :class:`~jaxgreen.ledger.PriceTag` of this experiment: all its runs, or one
    (``run="this"``: this process's, ``"latest"``, or the start of a run id)."""
    self.flush()
    return self.ledger.price_tag(self.name, joules_per_flop=joules_per_flop,
                                 run=self.run_id if run == "this" else run)

  def report(self, format: str = "text", joules_per_flop: float | None = None,
             run: str | None = None) -> str:
    """The price tag as ``"text"`` (a terminal table), ``"markdown"`` or ``"json"``;
    ``run`` as in :meth:`price_tag`."""
    formats = ("text", "markdown", "json")
    if format not in formats:
      raise ValueError(f"report(format={format!r}): use one of {formats}")
    tag = self.price_tag(joules_per_flop, run)
    if format == "json":
      return tag.to_json(indent=2)
    return tag.markdown() if format == "markdown" else tag.table()

  def _write_signature(self, c, entry: _Entry) -> None:
    if entry.id in self._signatures:
      return
    cost = entry.cost
    c.execute("INSERT OR IGNORE INTO signatures VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
              (entry.id, entry.function, entry.signature, str(entry.fpo), str(int(cost.adds)),
               str(int(cost.muls)), int(cost.exact), cost.to_json()))

  def _finish(self, raise_errors: bool) -> None:
    """Ends running trials as failed, then writes everything owed, waiting up to the
    ledger's timeout (a trial whose end write failed keeps the status it asked for)."""
    for t in list(self._open):
      t._end("failed", "the process exited before the trial ended")
    failed: list[tuple[Trial, Exception]] = []
    for t in list(self._open):
      try:
        t._sync(None, raise_errors=True)
      except (sqlite3.Error, LedgerError, OSError) as e:
        failed.append((t, e))
    if not failed:
      return
    steps = sum(t._owed_steps() for t, _ in failed)
    msg = (f"could not write {len(failed)} trial(s) ({steps} step(s)) to the ledger "
           f"{self.ledger.path!r}: {failed[-1][1]}")
    if raise_errors:
      raise LedgerError(f"{msg}; they are kept in memory: fix the cause and call close() "
                        f"again (they are also retried at exit)")
    warnings.warn(f"jaxgreen: {msg}; they are lost", stacklevel=2)

  def _at_exit(self) -> None:
    self._finish(raise_errors=False)

  def __enter__(self) -> Experiment:
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def close(self) -> None:
    """Ends open trials (as failed), writes what is owed and closes the ledger, a
    passed-in Ledger too. The one call that waits for a busy ledger (its full timeout):
    if the ledger still cannot be written, :class:`~jaxgreen.ledger.LedgerError` is
    raised, the ledger stays open, and the rows are kept for another close() or exit."""
    self._finish(raise_errors=True)
    atexit.unregister(self._at_exit)
    self.ledger.close()


class Trial:
  """One trial: steps tracked inside ``with exp.trial(...)`` are attributed to it.

  It ends ``completed``, ``failed`` (an exception left the block; it propagates) or
  ``stopped`` (after :meth:`stop_early`, or preempted by SIGTERM). All count in H and
  in the cost. Steps may be tracked, and :meth:`flush` called, from any thread.

  What a trial owes the ledger (its row, step rows, metrics, its end) is written with
  bounded waits from inside training; if the ledger is busy or full it is kept, held
  by the experiment, and written at the next flush, trial end, ``close()`` or exit.
  """

  def __init__(self, experiment: Experiment, name: str, hparams: dict[str, Any]):
    self.experiment = experiment
    self.name = name
    self.hparams = hparams
    self.id = uuid.uuid4().hex
    self.status = "new"
    self.train_fpo = 0
    self.train_examples = 0
    self.steps = 0
    # Steps not yet given a row id, and rows given an id but not known to be committed.
    # A row keeps its id until a commit holding it is confirmed, and rows are written
    # with INSERT OR IGNORE: a write interrupted after its COMMIT (Ctrl-C) and written
    # again never counts a step twice.
    self._lock = threading.RLock()
    self._buf: dict[tuple[_Entry, str], list] = {}
    self._owed: list[tuple] = []
    self._metrics_owed: list[tuple] = []
    self._row_owed: tuple | None = None
    self._end_owed: tuple | None = None
    self._pending = 0
    self._last_flush = time.monotonic()
    self._token: contextvars.Token | None = None
    self._stop_reason: str | None = None
    self._stopped = False
    self._meter = None
    self._energy: float | None = None
    self._started = 0.0
    self._resumed = False
    self._energy_before: float | None = None

  def __enter__(self) -> Trial:
    self.start()
    return self

  def __exit__(self, exc_type, exc, tb) -> None:
    if exc_type is not None and not (exc_type is SystemExit and exc.code in (0, None)):
      self._end("failed", f"{exc_type.__name__}: {exc}")
    else:  # sys.exit(0) inside the block is a normal end
      self._end("stopped" if self._stopped else "completed", self._stop_reason)

  def start(self) -> Trial:
    if self.status != "new":
      raise RuntimeError(f"trial {self.name!r} was already started; make a new one "
                         f"with experiment.trial(...)")
    exp = self.experiment
    self.status = "running"
    self._started = time.time()
    self._row_owed = (self.id, exp.run_id, exp.name, self.name,
                      json.dumps(self.hparams, default=str), self._started, self._resumed)
    exp._open[self] = None
    if exp.measure_energy:
      from jaxgreen.energy import NvmlMeter

      meter = NvmlMeter()
      if meter.available:
        meter.start()
        self._meter = meter
    self._token = _ACTIVE.set(self)
    with _RUNNING_LOCK:
      _RUNNING[self] = threading.get_ident()
    self._sync(_TRIAL_WRITE_TIMEOUT_S)
    return self

  def stop_early(self, reason: str | None = None) -> None:
    """Marks the trial as stopped early; it still counts in H and in the cost."""
    self._stopped = True
    self._stop_reason = reason

  def _add(self, entry: _Entry, kind: str, examples: int) -> None:
    key = (entry, kind)
    now = time.time()
    exp = self.experiment
    with self._lock:
      b = self._buf.get(key)
      if b is None:
        b = self._buf[key] = [0, 0, now, now]
      b[0] += 1
      b[1] += examples
      b[3] = now
      self.steps += 1
      if kind == "train":
        self.train_fpo += entry.fpo
        self.train_examples += examples
      self._pending += 1
      due = (self._pending >= exp.flush_steps
             or time.monotonic() - self._last_flush >= exp.flush_seconds)
      if due:  # the next window starts now, whatever this flush does
        self._pending = 0
        self._last_flush = time.monotonic()
    if due:  # inside a train step: never wait long for another process's write lock
      self._sync(_STEP_FLUSH_TIMEOUT_S, quiet_if_busy=True)

  def _take(self) -> list[tuple]:
    """Gives the buffered steps row ids; returns every row not known to be committed."""
    with self._lock:
      for (entry, kind), (steps, examples, first, last) in self._buf.items():
        self._owed.append((uuid.uuid4().hex, entry, kind, steps, examples, first, last))
      self._buf.clear()
      return list(self._owed)

  def _owed_steps(self) -> int:
    with self._lock:
      return sum(r[3] for r in self._owed) + sum(b[0] for b in self._buf.values())

  def _owes(self) -> bool:
    with self._lock:
      return bool(self._buf or self._owed or self._metrics_owed or self._row_owed
                  or self._end_owed)

  def _sync(self, timeout: float | None, raise_errors: bool = False,
            quiet_if_busy: bool = False) -> bool:
    """Writes everything this trial owes in one transaction; True once committed.

    Args:
      timeout: seconds to wait for another writer (None: the ledger's timeout).
      raise_errors: raise a failed write (explicit flush and close); otherwise it is
        kept for the next write and warned about once per experiment.
      quiet_if_busy: no warning when the ledger is only busy (a step's flush).
    """
    exp = self.experiment
    with self._lock:
      rows = self._take()
      metrics = list(self._metrics_owed)
      row, end = self._row_owed, self._end_owed
    if not (rows or metrics or row or end):
      return True

    def write(c):
      if row is not None and row[-1]:  # resumed: running again, under this run
        c.execute("UPDATE trials SET status = 'running', run_id = ?, error = NULL, "
                  "ended = NULL WHERE id = ?", (row[1], row[0]))
      elif row is not None:
        c.execute("INSERT OR IGNORE INTO trials (id, run_id, experiment, name, hparams, "
                  "status, started) VALUES (?, ?, ?, ?, ?, 'running', ?)", row[:-1])
      for row_id, entry, kind, steps, examples, first, last in rows:
        exp._write_signature(c, entry)
        c.execute("INSERT OR IGNORE INTO steps VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                  (row_id, self.id, entry.id, kind, steps, examples, first, last))
      if metrics:
        c.executemany("INSERT OR IGNORE INTO metrics VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                      metrics)
      if end is not None:
        c.execute("UPDATE trials SET status = ?, error = ?, ended = ?, energy_j = ?, "
                  "energy_source = ? WHERE id = ?", (*end, self.id))

    try:
      exp.ledger.write(write, timeout=timeout)
    except (sqlite3.Error, LedgerError, OSError) as e:
      if raise_errors:
        raise
      busy = "locked" in str(e) or "busy" in str(e)
      if not (quiet_if_busy and busy):
        exp._warn_once(e, busy)
      return False
    done = {r[0] for r in rows}
    metric_ids = {m[0] for m in metrics}
    with self._lock:
      self._owed = [r for r in self._owed if r[0] not in done]
      self._metrics_owed = [m for m in self._metrics_owed if m[0] not in metric_ids]
      if row is not None and self._row_owed is row:
        self._row_owed = None
      if end is not None and self._end_owed is end:
        self._end_owed = None
      finished = (self.status not in ("new", "running") and self._end_owed is None
                  and not self._owed and not self._buf)
    for r in rows:
      exp._signatures.add(r[1].id)
    if finished:
      exp._open.pop(self, None)
    return True

  def flush(self, timeout: float | None = None) -> None:
    """Commits what the trial owes the ledger (safe from any thread).

    Args:
      timeout: seconds to wait for another writer (default: the ledger's timeout);
        past it, or if the disk is full, :class:`~jaxgreen.ledger.LedgerError` is
        raised and the rows are kept for the next write.
    """
    self._sync(timeout, raise_errors=True)

  def log(self, step: int, **metrics: float) -> None:
    """Records validation metrics at ``step`` (and commits pending steps with them).

    Each value is stored with the trial's cumulative training FPO and examples, so a
    training curve is metric vs FPO. Values are converted with ``float()``: pass host
    numbers, or accept that a device value is read here. A busy or full ledger never
    stalls training: the rows are then kept and written at the next write.
    """
    if self.status != "running":
      raise RuntimeError(f"trial {self.name!r} is {self.status}; log() inside its with-block")
    if not metrics:
      raise ValueError("log(step, **metrics) needs at least one metric, e.g. val_acc=0.9")
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
      raise TypeError(f"log(step={step!r}): the step must be an int (an epoch or step "
                      f"number); metrics are also stored with the trial's cumulative FPO")
    now = time.time()
    values = []
    for k, v in metrics.items():
      try:
        values.append((k, float(v)))
      except (TypeError, ValueError):
        raise TypeError(f"log({k}={v!r}): a metric must be a number") from None
    with self._lock:
      fpo, examples = str(self.train_fpo), self.train_examples
      self._metrics_owed += [(uuid.uuid4().hex, self.id, int(step), k, value, fpo, examples,
                              now) for k, value in values]
    self._sync(_TRIAL_WRITE_TIMEOUT_S)

  def end(self, status: str = "completed", error: str | None = None) -> None:
    """Ends a trial started with :meth:`start` (a with-block does this itself)."""
    if status not in ("completed", "stopped", "failed"):
      raise ValueError(f"end(status={status!r}): use 'completed', 'stopped' or 'failed'")
    self._end(status, error)

  def _end(self, status: str, error: str | None,
           timeout: float | None = None) -> None:
    with self._lock:
      if self.status != "running":
        return
      self.status = status
    ended = time.time()
    self._deactivate()
    with _RUNNING_LOCK:
      _RUNNING.pop(self, None)
    if self._meter is not None:
      self._energy = self._meter.stop()
      self._meter = None
    energy = self._energy
    if energy is not None and self._energy_before is not None:  # resumed: both parts
      energy += self._energy_before
    with self._lock:
      self._end_owed = (status, error, ended, energy, "NVML" if energy is not None else None)
    # If the write fails the trial stays owed (held by the experiment), so a later
    # flush, close() or the exit handler writes it with this status.
    self._sync(_TRIAL_WRITE_TIMEOUT_S if timeout is None else timeout)

  def _deactivate(self) -> None:
    """Stops attributing steps to this trial; an enclosing running trial takes over."""
    token, self._token = self._token, None
    if token is None or _ACTIVE.get() is not self:
      return  # already replaced by a later trial: leave that one active
    previous = token.old_value
    try:
      _ACTIVE.reset(token)
    except ValueError:  # ended from another context (atexit)
      _ACTIVE.set(None)
    if isinstance(previous, Trial) and previous.status != "running":
      _ACTIVE.set(None)  # trials ended out of order: never revive an ended one

  def __repr__(self) -> str:
    return (f"Trial({self.name!r}, status={self.status}, steps={self.steps}, "
            f"train_fpo={self.train_fpo:,})")


