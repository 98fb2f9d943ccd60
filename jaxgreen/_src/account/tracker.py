"""The hot path: ``@track`` on a train or eval step, and its cache of counts.

Green AI's price tag of a result is ``Cost(R) ∝ E · D · H``: the cost of one example
(E), the number of training examples (D) and the number of hyperparameter trials (H).
``@jaxgreen.track`` counts E from the step's program (``jaxgreen.count``, once per
input signature) and adds up steps and examples; the active trial
(:mod:`jaxgreen._src.account.attribution`) receives each step.

Nothing here waits for the device (unless ``track(sync_every=N)`` asks to): a tracked
call only looks at argument shapes, dtypes and avals, never at values; its time is read
from the host clock after it returns (:mod:`jaxgreen._src.account.throughput`); and the count
traces the program abstractly (for a ``jax.jit`` step the trace is shared with jit's
own trace cache).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ParamSpec, TypeVar

import jax
import numpy as np

from jaxgreen._src._compat import ArrayImpl as _ArrayImpl
from jaxgreen._src._compat import jit_cache_size
from jaxgreen._src._compat import trace_state_clean as _top_level
from jaxgreen._src._state import final_state, has_graph_nodes
from jaxgreen._src.account import throughput as _tp
from jaxgreen._src.account.attribution import ACTIVE, RUNNING, fallback_trial
from jaxgreen._src.account.ledger import KINDS
from jaxgreen._src.account.remat import recompute_fpo
from jaxgreen._src.account.signatures import (
  _check_count_options,
  _describe,
  _is_array,
  _leaf_key,
  _name_of,
  _static_args,
)
from jaxgreen._src.account.throughput import Throughput
from jaxgreen._src.api import array_leaves, count_program
from jaxgreen._src.cost import Cost
from jaxgreen._src.program import Program
from jaxgreen.chips import _dtype_key

P = ParamSpec("P")
R = TypeVar("R")

class _Entry:
  """The counted cost of one call for one input signature."""

  __slots__ = ("calls", "cost", "devices", "examples", "fpo", "fpo_per_device", "function",
               "id", "model_fpo", "model_fpo_per_device", "signature", "warm")

  def __init__(self, cost: Cost, signature: str, examples: int, function: str,
               devices: int = 1, recompute_fpo: int = 0):
    self.cost = cost
    self.fpo = int(cost.fpo)
    self.devices = devices
    self.fpo_per_device = self.fpo / devices
    # PaLM's model FPO: the step as if nothing were rematerialised (account/remat.py).
    self.model_fpo = self.fpo - int(recompute_fpo)
    self.model_fpo_per_device = self.model_fpo / devices
    self.warm = False  # False until the first call (trace and compile) has run
    self.signature = signature
    self.examples = examples
    self.function = function
    self.calls = 0
    # The id names the program, not where its lines are: source sites (paths, line
    # numbers) are left out, so the same step from another checkout has the same id.
    counted = dataclasses.replace(cost, by_site={}).to_json(sort_keys=True)
    digest = hashlib.sha256(f"{function}\n{signature}\n{counted}".encode()).hexdigest()
    self.id = digest[:32]


class Tracker:
  """Running totals of one tracked function (``step.tracker``).

  Attributes:
    name: the function's name as recorded in the ledger.
    kind: ``"train"`` or ``"eval"``.
    steps: calls so far.
    examples: examples so far (D for a train step).
    sync_every, log_every: as given to :func:`track`.
  """

  def __init__(self, fn: Callable, *, examples: Any, kind: str, name: str | None,
               static_argnums: Sequence[int], static_argnames: Sequence[str],
               count_options: Mapping[str, Any], chip: str | None = None,
               peak: float | None = None, dtype: str = "bf16",
               sync_every: int | None = None, log_every: int | None = None):
    self.fn = fn
    self.kind = kind
    self.name: str = name or _name_of(fn)
    self.steps = 0
    self.examples = 0
    self.entries: dict[Any, _Entry] = {}
    self.fast: _Entry | None = None
    self.jitted = jit_cache_size(fn) is not None
    self._lock = threading.Lock()
    self._static_argnums = frozenset(static_argnums)
    self._static_argnames = frozenset(static_argnames)
    self._count_options = dict(count_options)
    self._examples_fn: Callable | None = None
    self._examples_const: int | None = None
    self._examples_arg: tuple[str, int | None] | None = None
    self._init_examples(examples)
    # Throughput: timed steps (each a call that is not its signature's first) and the
    # wall time between calls, stamped after each call returns (see throughput.py).
    self.sync_every = sync_every
    self.log_every = log_every
    self._peak_options = (chip, peak, _dtype_key(dtype))
    self._peak: tuple[str | None, float | None, str] | None = None
    self._timer = _tp.StepTimer()
    self._logged: Throughput | None = None

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
      self._examples_arg = self._batch_argument(examples, params)
    elif callable(examples):
      self._examples_fn = examples
    else:
      raise TypeError(f"track(examples={examples!r}): pass an argument name such as "
                      f"'batch', an int, or a function (args, kwargs) -> int")

  def _batch_argument(self, name: str, params: Sequence[inspect.Parameter]
                      ) -> tuple[str, int | None]:
    """(name, position or None if keyword-only) of the argument holding the batch."""
    names = [p.name for p in params]
    if params and name not in names:
      raise ValueError(f"track(examples={name!r}): {self.name} has no argument "
                       f"{name!r}; its arguments are {names}")
    pos = None
    if name in names:
      p = params[names.index(name)]
      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
        pos = names.index(name)
    return name, pos

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
    arr = [i for i, x in enumerate(leaves) if _is_array(x)]
    abstract = [jax.ShapeDtypeStruct(tuple(leaves[i].shape), leaves[i].dtype,
                                     weak_type=bool(getattr(leaves[i], "weak_type", False)))
                for i in arr]
    fixed = list(leaves)
    fn = self.fn
    # nnx objects the step updates in place are outputs of what is counted (see
    # jaxgreen._src._state): otherwise DCE drops the backward pass and the optimizer.
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
      # Only arrays are results of a program: an Equinox step returns its model whole,
      # activation functions included.
      out = array_leaves(fn(*full, **kw))
      return (out, final_state((full, kw))) if stateful else out

    recompute = 0
    try:
      cost, recompute = self._count_and_recompute(call, abstract)
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
                  self.name, _tp.devices_of(leaves), recompute)

  def _count_and_recompute(self, call: Callable, abstract: list) -> tuple[Cost, int]:
    """The step's count (hardware FPO) and the FPO its rematerialisation recomputes
    (model FPO = the difference; :mod:`jaxgreen._src.account.remat`), from one trace."""
    options = dict(self._count_options)
    stage = options.pop("stage", "jaxpr")
    program = Program(call, abstract, target=options.pop("target", "cpu"),
                      cost_model=options.get("cost_model"), cond=options.get("cond", "max"),
                      trip_counts=options.get("trip_counts"), caller="track")
    cost = count_program(program, stage, **options)
    if stage != "jaxpr":  # an HLO stage: no checkpoint left
      return cost, 0
    try:
      recompute = recompute_fpo(program.jaxpr)[0]
    except Exception as e:  # model FPO then equals the hardware FPO: MFU = HFU
      warnings.warn(f"jaxgreen.track: could not find what {self.name} rematerialises "
                    f"({e!r}); its MFU is reported equal to its HFU", stacklevel=5)
      recompute = 0
    return cost, recompute

  # -- totals ------------------------------------------------------------------

  def record(self, entry: _Entry, args: tuple, kwargs: dict) -> None:
    """Adds one call of ``entry``'s signature with these arguments to the totals."""
    self._record(entry, self._examples_of(entry, args, kwargs))

  def _examples_of(self, entry: _Entry, args: tuple, kwargs: dict) -> int:
    return entry.examples if self._examples_fn is None else self._examples(args, kwargs)

  def _record(self, entry: _Entry, ex: int) -> None:
    now = _tp.clock()
    with self._lock:  # steps may run in several threads
      entry.calls += 1
      self.steps += 1
      self.examples += ex
      warm = entry.warm
      self._timer.step(now, warm, entry)  # a compile's interval is not timed
      entry.warm = True
    trial = ACTIVE.get()
    if trial is None and RUNNING:
      trial = fallback_trial()
    if trial is not None:
      trial.add_step(entry, self.kind, ex, (now, warm, self))
    if self.log_every is not None and self.steps % self.log_every == 0:
      self._log()

  # A step's bookkeeping (microseconds, no I/O), for Ctrl-C and SIGTERM
  # (:mod:`jaxgreen._src.account.preemption`): a signal landing in it is taken just after.
  STEP_CODE = frozenset({_record.__code__})

  def _sync(self, out: Any) -> None:
    """``sync_every``: waits for the device every N steps, so the time is exact there."""
    if (self.steps + 1) % self.sync_every == 0:  # type: ignore[operator]
      jax.block_until_ready(out)

  def peak(self) -> tuple[str | None, float | None, str]:
    """(chip, peak FLOP/s per device or None, its source) that MFU is measured against."""
    if self._peak is None:
      self._peak = _tp.resolve_peak(*self._peak_options)
    return self._peak

  def throughput(self) -> Throughput:
    """Achieved FPO/s (per device) and MFU over the timed calls so far.

    Each call is timed from the end of the previous call to its own end, without
    waiting for the device (in steady state the device paces dispatch); the first call
    of each signature (trace and compile) is not timed. See
    :mod:`jaxgreen._src.account.throughput`.
    """
    with self._lock:
      timed = self._timer.snapshot()
    return self.throughput_of(timed)

  def throughput_of(self, timed: list[Any]) -> Throughput:
    """The :class:`Throughput` of timed steps' running totals
    (:class:`~jaxgreen._src.account.throughput.StepTimer`), against this tracker's peak."""
    chip, peak, source = self.peak()
    return _tp.from_timed(timed, chip, self._peak_options[2], peak, source)

  def _log(self) -> None:
    now = self.throughput()
    window = now if self._logged is None else now.minus(self._logged)
    self._logged = now
    print(f"jaxgreen: {self.name} step {self.steps:,}: {window.line()}", flush=True)

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
    """Zeroes the running totals and the throughput; counted signatures are kept."""
    self.steps = self.examples = 0
    self._timer, self._logged = _tp.StepTimer(), None
    for e in self.entries.values():
      e.calls = 0

  # -- wrappers ----------------------------------------------------------------

  def wrap_plain(self) -> Callable:
    """``fn`` wrapped to record each call (a plain function)."""
    fn = self.fn

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
      if not _top_level():  # traced as part of an outer program: not a step of its own
        return fn(*args, **kwargs)
      # Everything that may raise (a new signature's count, examples) runs before the
      # step: an error never discards a step that ran, nor its donated inputs.
      entry = self.entry(args, kwargs)
      ex = self._examples_of(entry, args, kwargs)
      out = fn(*args, **kwargs)
      if self.sync_every is not None:
        self._sync(out)
      self._record(entry, ex)
      return out

    return wrapper

  def wrap_jitted(self, cache_size: Callable[[], int]) -> Callable:
    """``fn`` wrapped to record each call (a ``jax.jit`` function, whose cache size
    ``cache_size()`` tells whether a call had the last call's signature)."""
    fn = self.fn

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
      # Fast path: while jit's cache holds exactly one executable and this call adds
      # none, the call had the one signature that executable was built for.
      if not _top_level():  # traced as part of an outer program: not a step of its own
        return fn(*args, **kwargs)
      fast = self.fast
      if fast is not None and cache_size() == 1:
        ex = fast.examples if self._examples_fn is None else self._examples(args, kwargs)
        out = fn(*args, **kwargs)
        if self.sync_every is not None:
          self._sync(out)
        if cache_size() == 1:
          self._record(fast, ex)
          return out
        self.fast = None
        # A new signature: shapes are still readable from donated (deleted) arrays.
        try:
          entry = self.entry(args, kwargs)
        except Exception as e:  # the step ran: return its output, raise next call
          warnings.warn(f"jaxgreen.track: this call of {self.name} was not recorded: "
                        f"{e}", stacklevel=2)
          return out
        self._record(entry, entry.examples if self._examples_fn is None else ex)
        return out
      entry = self.entry(args, kwargs)
      ex = self._examples_of(entry, args, kwargs)
      out = fn(*args, **kwargs)
      if self.sync_every is not None:
        self._sync(out)
      self.fast = entry if cache_size() == 1 else None
      self._record(entry, ex)
      return out

    return wrapper


def track(fn: Callable[P, R] | None = None, *, examples: Any = None, kind: str = "train",
          name: str | None = None, static_argnums: int | Sequence[int] | None = None,
          static_argnames: str | Sequence[str] | None = None, chip: str | None = None,
          peak: float | None = None, dtype: str = "bf16", sync_every: int | None = None,
          log_every: int | None = None, **count_options: Any) -> Any:
  """Counts the FPO of every call of a train or eval step, plain or ``jax.jit``-ed.

  Each call's signature (the pytree structure, the avals of its arrays: shape, dtype,
  weak type and sharding-in-types, and the static arguments) is counted once with
  :func:`jaxgreen.count` and cached; then each call adds one step, its examples and
  its FPO to the totals (``step.tracker``) and to the active :class:`Trial`. Outputs
  are those of ``fn``, untouched: nothing waits for the device or reads a value. For
  a jitted step whose jit cache holds one executable, a call costs two
  ``_cache_size()`` reads, one clock read and a few additions; otherwise the signature is built from
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
    chip: the chip whose published peak MFU is measured against (``"h100"``,
      ``"v5e"``; see :mod:`jaxgreen.chips`); default: the chip of the first device, if
      known (on a CPU there is none, and MFU is unavailable).
    peak: dense peak FLOP/s of one device, instead of a chip's published one.
    dtype: the dtype of the peak (``"bf16"``, ``"fp16"``, ``"fp32"``, ``"fp8"``).
    sync_every: wait for the device every N steps (default never), so throughput is
      exact at those steps rather than only in steady state.
    log_every: print one line (timed steps, FPO/s per device, MFU, over the last N
      steps) every N steps; ``step.tracker.throughput()`` gives it at any time.
    **count_options: passed to :func:`jaxgreen.count` (``cond``, ``trip_counts``, ...).

  Returns:
    A function with ``fn``'s signature (``__wrapped__`` is ``fn``; ``lower``, ``trace``,
    ``eval_shape`` and ``clear_cache`` of a jitted ``fn`` are kept), plus ``.tracker``.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> @track(examples="batch")
    ... @jax.jit
    ... def train_step(w, batch):
    ...   return w - 0.1 * jnp.mean(batch @ w)
    >>> w = train_step(jnp.ones(4), jnp.ones((8, 4)))
    >>> totals = train_step.tracker.totals()
    >>> totals["steps"], totals["examples"], totals["fpo"]  # 56 matmul + 8 mean + 1 + 4
    (1, 8, 69)
  """
  if kind not in KINDS:
    raise ValueError(f"track(kind={kind!r}): use 'train' or 'eval'")
  if fn is None:
    return functools.partial(track, examples=examples, kind=kind, name=name,
                             static_argnums=static_argnums, static_argnames=static_argnames,
                             chip=chip, peak=peak, dtype=dtype, sync_every=sync_every,
                             log_every=log_every, **count_options)
  if not callable(fn):
    raise TypeError(f"track(fn=...) must be callable, got {type(fn).__name__}: {fn!r}")
  _check_count_options(fn, count_options)
  _tp.check_options(chip, peak, dtype, sync_every, log_every)
  argnums, argnames = _static_args(fn, static_argnums, static_argnames)
  tracker = Tracker(fn, examples=examples, kind=kind, name=name, static_argnums=argnums,
                    static_argnames=argnames, count_options=count_options, chip=chip,
                    peak=peak, dtype=dtype, sync_every=sync_every, log_every=log_every)
  cache_size = jit_cache_size(fn)
  if cache_size is None:
    wrapper = tracker.wrap_plain()
  else:
    wrapper = tracker.wrap_jitted(cache_size)
    for attr in ("lower", "trace", "eval_shape", "clear_cache"):
      if hasattr(fn, attr):
        setattr(wrapper, attr, getattr(fn, attr))
  wrapper.tracker = tracker  # type: ignore[attr-defined]
  return wrapper

