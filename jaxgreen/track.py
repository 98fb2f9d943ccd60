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
import os
import socket
import sqlite3
import time
import uuid
import warnings
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ParamSpec, TypeVar

import jax
import numpy as np

from jaxgreen._state import final_state, has_graph_nodes
from jaxgreen.cost import Cost
from jaxgreen.ledger import KINDS, Ledger

# A flush triggered inside a train step waits at most this long for another process's
# write lock; if the ledger is busy the steps stay buffered for the next window, so a
# busy ledger never stalls training. Trial ends and exits wait the ledger's full timeout.
_STEP_FLUSH_TIMEOUT_S = 0.05

P = ParamSpec("P")
R = TypeVar("R")

_ACTIVE: contextvars.ContextVar[Trial | None] = contextvars.ContextVar(
    "jaxgreen_trial", default=None)


def current_trial() -> Trial | None:
  """The trial that tracked steps are attributed to now, or None."""
  return _ACTIVE.get()


# -- signatures --------------------------------------------------------------------


def _is_array(x: Any) -> bool:
  return hasattr(x, "shape") and hasattr(x, "dtype")


try:  # True outside any trace; ~0.3 us
  from jax._src.core import trace_state_clean as _top_level
except ImportError:  # pragma: no cover
  def _top_level() -> bool:
    return True

try:  # the concrete array type: `type(x) is _ArrayImpl` is ~10x cheaper than isinstance
  from jax._src.array import ArrayImpl as _ArrayImpl
except ImportError:  # pragma: no cover
  _ArrayImpl = jax.Array


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
    entry.calls += 1
    self.steps += 1
    self.examples += ex
    trial = _ACTIVE.get()
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
    self._open: weakref.WeakSet[Trial] = weakref.WeakSet()
    self._n = 0
    from jaxgreen import __version__

    row = (self.run_id, name, socket.gethostname(), os.getpid(), info["process_index"],
           info["process_count"], info["device_kind"], info["device_count"],
           jax.__version__, __version__, time.time())
    self.ledger.write(lambda c: c.execute(
        "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row))
    atexit.register(self._at_exit)

  def trial(self, hparams: Mapping[str, Any] | None = None, *, name: str | None = None
            ) -> Trial:
    """A new trial (one hyperparameter assignment); use it as a context manager."""
    if hparams is not None and not isinstance(hparams, Mapping):
      raise TypeError(f"trial(hparams={hparams!r}) must be a dict of name -> value")
    self._n += 1
    hp = dict(hparams or {})
    if name is None:
      name = ", ".join(f"{k}={v}" for k, v in hp.items()) or f"trial {self._n}"
    return Trial(self, name, hp)

  def flush(self) -> None:
    for t in list(self._open):
      t.flush()

  def price_tag(self, joules_per_flop: float | None = None):
    """The :class:`~jaxgreen.ledger.PriceTag` of this experiment (all its runs)."""
    self.flush()
    return self.ledger.price_tag(self.name, joules_per_flop=joules_per_flop)

  def report(self, format: str = "text", joules_per_flop: float | None = None) -> str:
    """The price tag as ``"text"`` (a terminal table), ``"markdown"`` or ``"json"``."""
    formats = ("text", "markdown", "json")
    if format not in formats:
      raise ValueError(f"report(format={format!r}): use one of {formats}")
    tag = self.price_tag(joules_per_flop)
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

  def _at_exit(self) -> None:
    for t in list(self._open):
      t._end("failed", "the process exited before the trial ended")

  def __enter__(self) -> Experiment:
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def close(self) -> None:
    """Ends open trials (as failed) and closes the ledger, a passed-in Ledger too."""
    self._at_exit()
    atexit.unregister(self._at_exit)
    self.ledger.close()


class Trial:
  """One trial: steps tracked inside ``with exp.trial(...)`` are attributed to it.

  It ends ``completed``, ``failed`` (an exception left the block; it propagates) or
  ``stopped`` (after :meth:`stop_early`). All three count in H and in the cost.
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
    self._buf: dict[tuple[_Entry, str], list] = {}
    self._pending = 0
    self._last_flush = time.monotonic()
    self._token: contextvars.Token | None = None
    self._stop_reason: str | None = None
    self._stopped = False
    self._meter = None
    self._energy: float | None = None
    self._started = 0.0

  def __enter__(self) -> Trial:
    self.start()
    return self

  def __exit__(self, exc_type, exc, tb) -> None:
    if exc_type is not None:
      self._end("failed", f"{exc_type.__name__}: {exc}")
    else:
      self._end("stopped" if self._stopped else "completed", self._stop_reason)

  def start(self) -> Trial:
    if self.status != "new":
      raise RuntimeError(f"trial {self.name!r} was already started; make a new one "
                         f"with experiment.trial(...)")
    exp = self.experiment
    self.status = "running"
    self._started = time.time()
    row = (self.id, exp.run_id, exp.name, self.name, json.dumps(self.hparams, default=str),
           self._started)
    exp.ledger.write(lambda c: c.execute(
        "INSERT INTO trials (id, run_id, experiment, name, hparams, status, started) "
        "VALUES (?, ?, ?, ?, ?, 'running', ?)", row))
    exp._open.add(self)
    if exp.measure_energy:
      from jaxgreen.energy import NvmlMeter

      meter = NvmlMeter()
      if meter.available:
        meter.start()
        self._meter = meter
    self._token = _ACTIVE.set(self)
    return self

  def stop_early(self, reason: str | None = None) -> None:
    """Marks the trial as stopped early; it still counts in H and in the cost."""
    self._stopped = True
    self._stop_reason = reason

  def _add(self, entry: _Entry, kind: str, examples: int) -> None:
    key = (entry, kind)
    now = time.time()
    b = self._buf.get(key)
    if b is None:
      b = self._buf[key] = [0, 0, now, now, ""]
    b[0] += 1
    b[1] += examples
    b[3] = now
    self.steps += 1
    if kind == "train":
      self.train_fpo += entry.fpo
      self.train_examples += examples
    self._pending += 1
    if (self._pending >= self.experiment.flush_steps
        or time.monotonic() - self._last_flush >= self.experiment.flush_seconds):
      try:
        # Inside a train step: never wait long for another process's write lock.
        self.flush(timeout=_STEP_FLUSH_TIMEOUT_S)
      except sqlite3.Error as e:  # keep training and the buffer; retry next window
        self._pending = 0
        self._last_flush = time.monotonic()
        if "locked" not in str(e) and "busy" not in str(e):
          warnings.warn(f"jaxgreen: could not write the ledger "
                        f"{self.experiment.ledger.path!r} ({e}); the steps stay buffered "
                        f"and are retried", stacklevel=4)

  def _step_rows(self, c) -> None:
    exp = self.experiment
    for (entry, kind), (steps, examples, first, last, _) in self._buf.items():
      exp._write_signature(c, entry)
      c.execute("INSERT INTO steps VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (uuid.uuid4().hex, self.id, entry.id, kind, steps, examples, first, last))

  def flush(self, timeout: float | None = None) -> None:
    """Commits the steps tracked since the last flush.

    Args:
      timeout: seconds to wait for another writer (default: the ledger's timeout).
    """
    if not self._buf:
      return
    self.experiment.ledger.write(self._step_rows, timeout=timeout)
    self._written()

  def _written(self) -> None:
    """Forgets the buffered steps once a transaction holding them has committed."""
    for entry, _ in self._buf:
      self.experiment._signatures.add(entry.id)
    self._buf.clear()
    self._pending = 0
    self._last_flush = time.monotonic()

  def log(self, step: int, **metrics: float) -> None:
    """Records validation metrics at ``step`` (and commits pending steps with them).

    Each value is stored with the trial's cumulative training FPO and examples, so a
    training curve is metric vs FPO. Values are converted with ``float()``: pass host
    numbers, or accept that a device value is read here.
    """
    if self.status != "running":
      raise RuntimeError(f"trial {self.name!r} is {self.status}; log() inside its with-block")
    if not metrics:
      raise ValueError("log(step, **metrics) needs at least one metric, e.g. val_acc=0.9")
    now = time.time()
    rows = []
    for k, v in metrics.items():
      try:
        value = float(v)
      except (TypeError, ValueError):
        raise TypeError(f"log({k}={v!r}): a metric must be a number") from None
      rows.append((uuid.uuid4().hex, self.id, int(step), k, value, str(self.train_fpo),
                   self.train_examples, now))

    def write(c):
      self._step_rows(c)
      c.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)

    self.experiment.ledger.write(write)
    self._written()

  def end(self, status: str = "completed", error: str | None = None) -> None:
    """Ends a trial started with :meth:`start` (a with-block does this itself)."""
    if status not in ("completed", "stopped", "failed"):
      raise ValueError(f"end(status={status!r}): use 'completed', 'stopped' or 'failed'")
    self._end(status, error)

  def _end(self, status: str, error: str | None) -> None:
    if self.status != "running":
      return
    self._deactivate()
    if self._meter is not None:
      self._energy = self._meter.stop()
      self._meter = None
    energy = self._energy
    ended = time.time()

    def write(c):
      self._step_rows(c)
      c.execute("UPDATE trials SET status = ?, error = ?, ended = ?, energy_j = ?, "
                "energy_source = ? WHERE id = ?",
                (status, error, ended, energy, "NVML" if energy is not None else None,
                 self.id))

    # If the write fails the trial stays open with its steps buffered, so the exit
    # handler (or experiment.close()) writes them later instead of dropping them.
    self.experiment.ledger.write(write)
    self._written()
    self.status = status
    self.experiment._open.discard(self)

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


