"""The walk: visits every equation of a jaxpr once and dispatches to its rule.

The interpreter knows nothing about individual primitives; rules (in
:mod:`jaxgreen.jaxpr.rules`) compute a cost from shapes and params. Higher-order rules
(scan, while, cond, calls) walk their bodies through :meth:`RuleContext.walk`, which
memoizes identical sub-jaxprs so a block called N times is counted once and scaled.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np
from jax.extend import core as jcore

from jaxgreen._scope import clean_scope, join
from jaxgreen.cost import Cost, Counts
from jaxgreen.cost_model import CostModel
from jaxgreen.jaxpr import registry

COND_POLICIES = ("max", "min", "mean")


class UncountedPrimitiveError(NotImplementedError):
  """Raised with ``strict=True`` when a primitive has no cost rule."""


class UncountedPrimitiveWarning(UserWarning):
  """A primitive had no cost rule; it is listed in ``Cost.uncounted``."""


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


class _Acc:
  """Mutable accumulator used during one walk; frozen into a Cost at the end."""

  __slots__ = ("tot", "prim", "scope", "unc", "inexact")

  def __init__(self):
    self.tot = [0, 0, 0, 0, 0]
    self.prim: dict[str, list] = {}
    self.scope: dict[str, list] = {}
    self.unc: dict[str, Any] = {}
    self.inexact: dict[str, None] = {}

  def leaf(self, prim: str, scope: str, c: Sequence) -> None:
    t = self.tot
    for i in range(5):
      t[i] += c[i]
    for table, key in ((self.prim, prim), (self.scope, scope)):
      row = table.get(key)
      if row is None:
        table[key] = list(c)
      else:
        for i in range(5):
          row[i] += c[i]

  def cost(self, cost: Cost, prefix: str) -> None:
    t = self.tot
    for i, v in enumerate((cost.adds, cost.muls, cost.transcendentals, cost.int_ops,
                           cost.bytes)):
      t[i] += v
    for key, c in cost.by_primitive.items():
      self._row(self.prim, key, c)
    for key, c in cost.by_scope.items():
      self._row(self.scope, join(prefix, key), c)
    for key, n in cost.uncounted.items():
      self.unc[key] = self.unc.get(key, 0) + n
    for why in cost.inexact:
      self.inexact[why] = None

  @staticmethod
  def _row(table, key, c: Counts):
    row = table.get(key)
    vals = (c.adds, c.muls, c.transcendentals, c.int_ops, c.bytes)
    if row is None:
      table[key] = list(vals)
    else:
      for i in range(5):
        row[i] += vals[i]

  def freeze(self, cond: str) -> Cost:
    def counts(table):
      return {k: Counts(*v) for k, v in table.items() if any(v)}

    return Cost(*self.tot, by_primitive=counts(self.prim), by_scope=counts(self.scope),
                uncounted=self.unc, inexact=tuple(self.inexact), cond=cond)


class Walker:
  """Counts jaxprs under one configuration (cost model, policies, strictness)."""

  def __init__(self, *, cost_model: CostModel, cond: str = "max", strict: bool = False,
               trip_counts: Mapping[str, int] | int | None = None):
    if cond not in COND_POLICIES:
      raise ValueError(f"cond={cond!r} is not a policy; use one of {COND_POLICIES}")
    self.model = cost_model
    self.cond = cond
    self.strict = strict
    self.trip_counts = trip_counts
    self._memo: dict[tuple, tuple[Any, Cost]] = {}
    self.warned: set[str] = set()

  # -- entry points --------------------------------------------------------------

  def walk(self, jaxpr: jcore.Jaxpr, known: Sequence[Any] | None = None,
           axis_sizes: Mapping[str, int] | None = None, scope: str = "") -> Cost:
    """Counts ``jaxpr``; scopes in the result are relative to the jaxpr itself.

    Args:
      jaxpr: an open jaxpr (``closed.jaxpr``); constvars are treated as inputs.
      known: Python values (or None) for constvars + invars, used to find loop bounds.
      axis_sizes: named-axis sizes in scope (inside shard_map / pmap).
      scope: the scope of the equation that called this jaxpr (for trip_counts keys).
    """
    known_t = tuple(known) if known else ()
    axes_t = tuple(sorted(axis_sizes.items())) if axis_sizes else ()
    key = (id(jaxpr), known_t, axes_t, scope)
    hit = self._memo.get(key)
    if hit is not None and hit[0] is jaxpr:
      return hit[1]
    cost = self._walk(jaxpr, known_t, dict(axes_t), scope)
    self._memo[key] = (jaxpr, cost)
    return cost

  def _walk(self, jaxpr, known, axis_sizes, outer_scope) -> Cost:
    acc = _Acc()
    env: dict[Any, Any] = {}
    if known:
      for v, k in zip(list(jaxpr.constvars) + list(jaxpr.invars), known):
        if k is not None:
          env[v] = k
    for eqn in jaxpr.eqns:
      prim = eqn.primitive
      name = prim.name
      scope = clean_scope(str(eqn.source_info.name_stack))
      in_avals = [v.aval for v in eqn.invars]
      rule = registry.lookup(prim)
      if rule is None:
        if name in registry.ZERO_COST:
          if name not in registry.NO_BYTES:
            b = sum(map(aval_bytes, in_avals)) + sum(aval_bytes(v.aval) for v in eqn.outvars)
            if b:
              acc.leaf(name, scope, (0, 0, 0, 0, b))
          _propagate_known(eqn, env)
          continue
        self._uncounted(acc, name)
        continue
      ctx = RuleContext(self, eqn, env, axis_sizes, join(outer_scope, scope))
      out = rule(ctx, *in_avals, **eqn.params)
      if isinstance(out, Cost):
        acc.cost(out, scope)
      else:
        c = out
        is_float = any(dtype_info(a.dtype)[0] for a in in_avals if hasattr(a, "dtype"))
        b = sum(map(aval_bytes, in_avals)) + sum(aval_bytes(v.aval) for v in eqn.outvars)
        if is_float or not in_avals:
          acc.leaf(name, scope, (c.adds, c.muls, c.transcendentals, c.int_ops, c.bytes + b))
        else:  # integer / boolean arithmetic: kept out of FPO
          acc.leaf(name, scope, (0, 0, 0, c.int_ops + c.adds + c.muls, c.bytes + b))
      _propagate_known(eqn, env)
    return acc.freeze(self.cond)

  def _uncounted(self, acc: _Acc, name: str) -> None:
    if self.strict:
      raise UncountedPrimitiveError(
          f"primitive {name!r} has no cost rule and strict=True. Register one with "
          f"@jaxgreen.register_rule({name!r}) or pass strict=False to list it in "
          f"Cost.uncounted instead.")
    acc.unc[name] = acc.unc.get(name, 0) + 1
    if name not in self.warned:
      self.warned.add(name)
      warnings.warn(
          f"jaxgreen: primitive {name!r} has no cost rule; it is listed in "
          f"Cost.uncounted and the count is not exact.",
          UncountedPrimitiveWarning, stacklevel=4)

  def trip_count_override(self, scope: str) -> int | None:
    tc = self.trip_counts
    if tc is None:
      return None
    if isinstance(tc, int):
      return tc
    return tc.get(scope)


class RuleContext:
  """What a rule may use besides shapes and params."""

  __slots__ = ("walker", "eqn", "env", "axis_sizes", "scope")

  def __init__(self, walker: Walker, eqn, env, axis_sizes, scope: str):
    self.walker = walker
    self.eqn = eqn
    self.env = env
    self.axis_sizes = axis_sizes
    self.scope = scope

  @property
  def model(self) -> CostModel:
    return self.walker.model

  @property
  def outs(self) -> list:
    """Output avals of the equation."""
    return [v.aval for v in self.eqn.outvars]

  def known(self, i: int) -> Any:
    """The Python value of input ``i`` when it is a compile-time constant, else None."""
    v = self.eqn.invars[i]
    if isinstance(v, jcore.Literal):
      return _py(v.val)
    return self.env.get(v)

  def walk(self, jaxpr, known: Sequence[Any] | None = None,
           axis_sizes: Mapping[str, int] | None = None) -> Cost:
    """Counts a sub-jaxpr (open or closed) in this equation's context."""
    inner = getattr(jaxpr, "jaxpr", jaxpr)
    axes = dict(self.axis_sizes)
    if axis_sizes:
      axes.update(axis_sizes)
    if known is not None and isinstance(jaxpr, jcore.ClosedJaxpr):
      known = [_py(c) for c in jaxpr.consts] + list(known)
    elif known is None and isinstance(jaxpr, jcore.ClosedJaxpr) and jaxpr.consts:
      known = [_py(c) for c in jaxpr.consts] + [None] * len(inner.invars)
    return self.walker.walk(inner, known, axes, self.scope)


def _py(val) -> Any:
  """A hashable Python scalar for a 0-d constant, else None."""
  if isinstance(val, bool | int | float):
    return val
  shape = getattr(val, "shape", None)
  if shape == ():
    try:
      return np.asarray(val).item()
    except Exception:  # noqa: BLE001 - tracers and opaque constants stay unknown
      return None
  return None


_FOLD = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "max": max, "min": min, "neg": lambda a: -a,
    "convert_element_type": lambda a: a, "copy": lambda a: a,
    "lt": lambda a, b: a < b, "le": lambda a, b: a <= b, "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b, "eq": lambda a, b: a == b, "ne": lambda a, b: a != b,
}


def _propagate_known(eqn, env) -> None:
  """Folds scalar constants through simple ops so loop bounds can be recognised."""
  f = _FOLD.get(eqn.primitive.name)
  if f is None or len(eqn.outvars) != 1:
    return
  vals = []
  for v in eqn.invars:
    x = _py(v.val) if isinstance(v, jcore.Literal) else env.get(v)
    if x is None:
      return
    vals.append(x)
  try:
    env[eqn.outvars[0]] = f(*vals)
  except TypeError:
    pass
