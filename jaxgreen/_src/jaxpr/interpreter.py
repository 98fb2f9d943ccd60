"""The walk: visits every equation of a jaxpr once and dispatches to its rule.

The interpreter knows nothing about individual primitives; rules (in
:mod:`jaxgreen._src.jaxpr.rules`) compute a cost from shapes and params. Higher-order rules
(scan, while, cond, calls) walk their bodies through :meth:`RuleContext.walk`, which
memoizes identical sub-jaxprs so a block called N times is counted once and scaled.
"""

from __future__ import annotations

import math
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from types import FrameType
from typing import Any

import jax.numpy as jnp
import numpy as np
from jax.extend import core as jcore

from jaxgreen._src._scope import clean_scope, join
from jaxgreen._src._source import stack_of
from jaxgreen._src.cost import Cost, Counts
from jaxgreen._src.cost_acc import CostAcc
from jaxgreen._src.cost_model import CostModel
from jaxgreen._src.jaxpr import registry
from jaxgreen._src.jaxpr.fold import FOLD_CALLS, FOLDS, Env, propagate_call, propagate_known, read

# The scalar folds live in jaxgreen._src.jaxpr.fold; these names are read from here too.
from jaxgreen._src.jaxpr.fold import KnownTable as KnownTable  # noqa: PLC0414
from jaxgreen._src.jaxpr.fold import fold_outputs as fold_outputs  # noqa: PLC0414
from jaxgreen._src.jaxpr.fold import fold_scalar as fold_scalar  # noqa: PLC0414
from jaxgreen._src.jaxpr.fold import known_scalar as known_scalar  # noqa: PLC0414

COND_POLICIES = ("max", "min", "mean")
TOP_LEVEL = "<top level>"  # how notes and trip_counts name the outermost scope


class UncountedPrimitiveError(NotImplementedError):
  """Raised with ``strict=True`` when a primitive has no cost rule."""

  __module__ = "jaxgreen"  # its public home, as tracebacks and reprs show it


class UncountedPrimitiveWarning(UserWarning):
  """A primitive had no cost rule; it is listed in ``Cost.uncounted``."""

  __module__ = "jaxgreen"  # its public home, as tracebacks and reprs show it


_FLOAT_KINDS = frozenset("fc")
_dtype_info: dict[Any, tuple[bool, int]] = {}


def dtype_info(dtype) -> tuple[bool, int]:
  """(is floating or complex, itemsize in bytes) for a dtype, cached."""
  info = _dtype_info.get(dtype)
  if info is None:
    try:
      np_dtype = np.dtype(dtype)
      # bfloat16 and the float8 types are numpy "V" (void) kinds: ask jax's lattice.
      floating = np_dtype.kind in _FLOAT_KINDS or bool(jnp.issubdtype(np_dtype, jnp.inexact))
      info = (floating, np_dtype.itemsize)
    except TypeError:  # extended dtypes: PRNG keys, float0, tokens
      kind = getattr(dtype, "kind", "")
      info = (kind in _FLOAT_KINDS, int(getattr(dtype, "itemsize", 0) or 0))
    _dtype_info[dtype] = info
  return info


def aval_bytes(aval) -> int:
  shape = getattr(aval, "shape", None)
  if shape is None:
    return 0
  return math.prod(shape) * dtype_info(aval.dtype)[1]


def _is_float(aval) -> bool:
  dtype = getattr(aval, "dtype", None)
  return dtype is not None and dtype_info(dtype)[0]


def eqn_bytes(eqn) -> int:
  """Operand + result bytes of one equation (literals included, as XLA reads them)."""
  b = 0
  for v in eqn.invars:
    b += aval_bytes(v.aval)
  for v in eqn.outvars:
    b += aval_bytes(v.aval)
  return b


class Walker:
  """Counts jaxprs under one configuration (cost model, policies, strictness)."""

  def __init__(self, *, cost_model: CostModel, cond: str = "max", strict: bool = False,
               trip_counts: Mapping[str, int] | int | None = None, memo: bool = True):
    if cond not in COND_POLICIES:
      raise ValueError(f"cond={cond!r} is not a policy; use one of {COND_POLICIES}")
    self.model = cost_model
    self.cond = cond
    self.strict = strict
    self.trip_counts = trip_counts
    self.memo = memo  # False walks every sub-jaxpr afresh (used to check the memo)
    self._memo: dict[tuple, tuple[Any, Cost]] = {}
    # Set while walking a jaxpr whose result names its scope (a while loop's trip-count
    # key and note); such results are memoized per scope.
    self._scoped = False
    self._scope_cache: dict[int, tuple[Any, str]] = {}
    self.warned: set[str] = set()

  # -- entry points --------------------------------------------------------------

  def walk(self, jaxpr: jcore.Jaxpr, known: Sequence[Any] | None = None,
           axis_sizes: Mapping[str, int] | None = None, scope: str = "") -> Cost:
    """Counts ``jaxpr``; scopes in the result are relative to the jaxpr itself.

    Results are memoized on the jaxpr's identity and everything that can change them:
    the known constant inputs, the named-axis sizes and, only for jaxprs that hold a
    ``while`` loop (whose ``trip_counts`` key and ``inexact`` note name the scope),
    the calling scope. So a block called N times is walked once.

    Args:
      jaxpr: an open jaxpr (``closed.jaxpr``); constvars are treated as inputs.
      known: Python values (or None) for constvars + invars, used to find loop bounds.
      axis_sizes: named-axis sizes in scope (inside shard_map / pmap).
      scope: the scope of the equation that called this jaxpr (for trip_counts keys).
    """
    known_t = tuple(known) if known and any(k is not None for k in known) else ()
    axes_t = tuple(sorted(axis_sizes.items())) if axis_sizes else ()
    base = (id(jaxpr), known_t, axes_t)
    memo = self._memo
    # A result that does not depend on the calling scope is stored under None.
    for key, scoped in ((base + (None,), False), (base + (scope,), True)):
      hit = memo.get(key)
      if hit is not None and hit[0] is jaxpr:
        self._scoped |= scoped
        return hit[1]
    outer, self._scoped = self._scoped, False
    cost = self._walk(jaxpr, known_t, dict(axes_t), scope)
    scoped = self._scoped
    if self.memo:
      memo[base + ((scope,) if scoped else (None,))] = (jaxpr, cost)
    self._scoped = outer or scoped
    return cost

  def _walk(self, jaxpr, known, axis_sizes, outer_scope) -> Cost:
    acc = CostAcc()
    env: Env = {}
    if known:
      for v, k in zip(list(jaxpr.constvars) + list(jaxpr.invars), known, strict=False):
        if k is not None:
          env[v] = k
    lookup = registry.lookup
    for eqn in jaxpr.eqns:
      prim = eqn.primitive
      name = prim.name
      scope = self._scope_of(eqn)
      if name == "while":
        self._scoped = True
      rule = lookup(prim)
      src = stack_of(eqn.source_info.traceback)
      if rule is None:
        self._no_rule(acc, eqn, name, scope, env, src)
        continue
      ctx = RuleContext(self, eqn, env, axis_sizes, join(outer_scope, scope))
      _add_out(acc, eqn, name, scope, rule(ctx, *[v.aval for v in eqn.invars], **eqn.params),
               src)
      if name in FOLDS:
        propagate_known(eqn, env)
      elif name in FOLD_CALLS:
        propagate_call(eqn, env)
    return acc.to_cost(self.cond)

  def _scope_of(self, eqn) -> str:
    """The cleaned scope of an equation. Equations of one scope share a name-stack
    object: it is cleaned once per object."""
    ns = eqn.source_info.name_stack
    hit = self._scope_cache.get(id(ns))
    if hit is not None and hit[0] is ns:
      return hit[1]
    scope = clean_scope(str(ns))
    self._scope_cache[id(ns)] = (ns, scope)
    return scope

  def _no_rule(self, acc: CostAcc, eqn, name: str, scope: str, env: Env, src: str) -> None:
    """An equation without a rule: free (bytes only) when reviewed as zero-cost, else
    uncounted."""
    if name not in registry.ZERO_COST:
      self._uncounted(acc, name)
      return
    if name not in registry.NO_BYTES:
      b = eqn_bytes(eqn)
      if b:
        acc.add_pending((src, scope, name), 0, 0, 0, 0, b)
    if name in FOLDS:
      propagate_known(eqn, env)

  def _uncounted(self, acc: CostAcc, name: str) -> None:
    if self.strict:
      raise UncountedPrimitiveError(
          f"primitive {name!r} has no cost rule and strict=True. Register one with "
          f"@jaxgreen.register_rule({name!r}) or pass strict=False to list it in "
          f"Cost.uncounted instead.")
    acc.note_uncounted(name)
    if name not in self.warned:
      self.warned.add(name)
      warnings.warn(
          f"jaxgreen: primitive {name!r} has no cost rule; it is listed in "
          f"Cost.uncounted and the count is not exact.",
          UncountedPrimitiveWarning, stacklevel=_user_stacklevel())

  def trip_count_override(self, scope: str) -> int | None:
    tc = self.trip_counts
    if tc is None:
      return None
    if isinstance(tc, int):
      return tc
    # The inexact note names the top level "<top level>"; accept that and "".
    return tc.get(scope if scope or scope in tc else TOP_LEVEL)


def _add_out(acc: CostAcc, eqn, name: str, scope: str, out: Cost | Counts, src: str) -> None:
  """Adds what a rule returned: a walked Cost as is, a leaf's Counts plus the
  equation's bytes (integer and boolean arithmetic kept out of FPO); ``src`` is the
  equation's user stack."""
  if isinstance(out, Cost):
    acc.add_cost(out, scope, src, name)
    return
  b = eqn_bytes(eqn)
  if not eqn.invars or any(_is_float(v.aval) for v in eqn.invars):
    acc.add_pending((src, scope, name), out.adds, out.muls, out.transcendentals,
                    out.int_ops, out.bytes + b)
  else:
    acc.add_pending((src, scope, name), 0, 0, 0, out.int_ops + out.adds + out.muls,
                    out.bytes + b)


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _user_stacklevel() -> int:
  """The stacklevel of the first frame outside jaxgreen, so a warning points there."""
  frame: FrameType | None = sys._getframe(1)
  level = 1
  while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
    frame, level = frame.f_back, level + 1
  return level


class RuleContext:
  """What a rule reads besides its input avals and params: the equation's primitive,
  result avals and bytes, the cost model and policies, the values folded from constants
  (:meth:`known`), and :meth:`walk` to count a sub-jaxpr.

  Attributes:
    scope: the equation's scope, as ``Cost.by_scope`` and the ``inexact`` notes name it.
    axis_sizes: the sizes of the named axes in scope (inside ``shard_map`` / ``pmap``).
  """

  __slots__ = ("_walker", "_eqn", "_env", "axis_sizes", "scope")
  axis_sizes: Mapping[str, int]
  scope: str

  def __init__(self, walker: Walker, eqn: jcore.JaxprEqn, env: Env,
               axis_sizes: Mapping[str, int], scope: str):
    self._walker = walker
    self._eqn = eqn
    self._env = env
    self.axis_sizes = axis_sizes
    self.scope = scope

  # -- the equation -------------------------------------------------------------------

  @property
  def primitive(self) -> jcore.Primitive:
    """The equation's primitive (one rule may serve several)."""
    return self._eqn.primitive

  @property
  def name(self) -> str:
    """The primitive's name."""
    return self._eqn.primitive.name

  @property
  def outs(self) -> list[Any]:
    """Output avals of the equation."""
    return [v.aval for v in self._eqn.outvars]

  @property
  def bytes(self) -> int:
    """Operand + result bytes of the equation (what the walker adds to a leaf)."""
    return eqn_bytes(self._eqn)

  # -- the configuration -----------------------------------------------------------------

  @property
  def model(self) -> CostModel:
    """The prices of operations that are not one ADD or one MUL."""
    return self._walker.model

  @property
  def cond(self) -> str:
    """The branch policy, ``"max"``, ``"min"`` or ``"mean"`` (a Cost's ``cond``)."""
    return self._walker.cond

  @property
  def memo(self) -> bool:
    """Whether identical sub-jaxprs are counted once and scaled (False walks each afresh,
    to check that the memo changes nothing)."""
    return self._walker.memo

  def trip_count(self, key: str) -> int | None:
    """The trip count the caller gave for ``key`` (``trip_counts=``), else None."""
    return self._walker.trip_count_override(key)

  # -- folded values ---------------------------------------------------------------------

  def known(self, i: int) -> Any:
    """The Python value of input ``i`` when it is a compile-time constant, else None."""
    return read(self._eqn.invars[i], self._env)

  def set_known(self, value: Any, i: int = 0) -> None:
    """Makes ``value`` the known value of output ``i`` for the equations after this one
    (a Pallas ``program_id`` at the grid point being walked)."""
    self._env[self._eqn.outvars[i]] = value

  # -- sub-jaxprs ------------------------------------------------------------------------

  def walk(self, jaxpr, known: Sequence[Any] | None = None,
           axis_sizes: Mapping[str, int] | None = None) -> Cost:
    """Counts a sub-jaxpr (open or closed) in this equation's context; ``known`` holds
    values (or None) for its inputs, after a closed jaxpr's constants."""
    inner = getattr(jaxpr, "jaxpr", jaxpr)
    axes = dict(self.axis_sizes)
    if axis_sizes:
      axes.update(axis_sizes)
    if known is not None and isinstance(jaxpr, jcore.ClosedJaxpr):
      known = [known_scalar(c) for c in jaxpr.consts] + list(known)
    elif known is None and isinstance(jaxpr, jcore.ClosedJaxpr) and jaxpr.consts:
      known = [known_scalar(c) for c in jaxpr.consts] + [None] * len(inner.invars)
    return self._walker.walk(inner, known, axes, self.scope)

  def walk_fresh(self, jaxpr: jcore.Jaxpr, known: Sequence[Any] | None, scope: str) -> Cost:
    """Counts an open jaxpr under scope ``scope`` with a memo of its own: for a body
    whose count depends on values the memo does not key on (a Pallas kernel at one grid
    point). ``known`` covers its constvars + invars."""
    w = self._walker
    sub = Walker(cost_model=w.model, cond=w.cond, strict=w.strict, trip_counts=w.trip_counts,
                 memo=w.memo)
    sub.warned = w.warned  # one warning per uncounted primitive per count() call
    cost = sub.walk(jaxpr, known, self.axis_sizes, scope)
    if sub._scoped:  # its notes name the scope: the enclosing result depends on it
      w._scoped = True
    return cost

  # -- deprecated: the walk's internals ----------------------------------------------------

  @property
  def walker(self) -> Walker:
    """Deprecated: use :attr:`model`, :attr:`cond`, :meth:`trip_count`, :meth:`walk`."""
    _deprecated("walker", "model, cond, trip_count() or walk()")
    return self._walker

  @property
  def eqn(self) -> jcore.JaxprEqn:
    """Deprecated: use :attr:`primitive`, :attr:`outs`, :attr:`bytes`."""
    _deprecated("eqn", "primitive, name, outs or bytes")
    return self._eqn

  @property
  def env(self) -> Env:
    """Deprecated: use :meth:`known` and :meth:`set_known`."""
    _deprecated("env", "known() or set_known()")
    return self._env


def _deprecated(old: str, new: str) -> None:
  warnings.warn(f"RuleContext.{old} is deprecated and will be removed; use {new} instead",
                DeprecationWarning, stacklevel=3)
