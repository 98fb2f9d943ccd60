"""The walk: visits every equation of a jaxpr once and dispatches to its rule.

The interpreter knows nothing about individual primitives; rules (in
:mod:`jaxgreen.jaxpr.rules`) compute a cost from shapes and params. Higher-order rules
(scan, while, cond, calls) walk their bodies through :meth:`RuleContext.walk`, which
memoizes identical sub-jaxprs so a block called N times is counted once and scaled.
"""

from __future__ import annotations

import math
import os
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from types import FrameType
from typing import Any

import jax.numpy as jnp
import numpy as np
from jax.extend import core as jcore

from jaxgreen._scope import clean_scope, join
from jaxgreen._source import stack_of
from jaxgreen.cost import Cost, Counts
from jaxgreen.cost_model import CostModel
from jaxgreen.jaxpr import registry

COND_POLICIES = ("max", "min", "mean")
TOP_LEVEL = "<top level>"  # how notes and trip_counts name the outermost scope


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


class _Acc:
  """Mutable accumulator used during one walk; frozen into a Cost at the end."""

  __slots__ = ("tot", "prim", "scope", "unc", "inexact", "assumed", "src", "leaves")

  def __init__(self) -> None:
    self.tot: list[Any] = [0, 0, 0, 0, 0]
    self.prim: dict[str, list] = {}
    self.scope: dict[str, list] = {}
    self.unc: dict[str, Any] = {}
    self.inexact: dict[str, None] = {}
    self.assumed: dict[str, None] = {}
    # Sites: (the user's stack (see _source.py), scope, primitive) -> counts, of walked
    # bodies (src) and of this jaxpr's own equations (leaves). The leaves are added to
    # the totals and to the primitive and scope tables once, when frozen: one row per
    # equation instead of four.
    self.src: dict[tuple[str, str, str], list] = {}
    self.leaves: dict[tuple[str, str, str], list] = {}

  def leaf(self, prim: str, scope: str, c: Sequence, src: str = "") -> None:
    site = (src, scope, prim)
    row = self.leaves.get(site)
    if row is None:
      self.leaves[site] = list(c)
    else:
      a, m, t, i, b = c
      row[0] += a
      row[1] += m
      row[2] += t
      row[3] += i
      row[4] += b

  def cost(self, cost: Cost, prefix: str, src: str = "", prim: str = "") -> None:
    t = self.tot
    for i, v in enumerate((cost.adds, cost.muls, cost.transcendentals, cost.int_ops,
                           cost.bytes)):
      t[i] += v
    for key, c in cost.by_primitive.items():
      self._row(self.prim, key, c)
    for key, c in cost.by_scope.items():
      self._row(self.scope, join(prefix, key), c)
    self._sites(cost, prefix, src, prim)
    for key, n in cost.uncounted.items():
      self.unc[key] = self.unc.get(key, 0) + n
    for why in cost.inexact:
      self.inexact[why] = None
    for why in cost.assumed:
      self.assumed[why] = None

  def _sites(self, cost: Cost, prefix: str, src: str, prim: str) -> None:
    """Merges the sites of a walked body (see ``Cost.by_site``), its scopes below
    ``prefix``; work no user frame of the body wrote goes to the calling equation's
    stack ``src``, and work the rule gave without sites to the calling primitive
    ``prim``, so the sites always sum to the totals."""
    rest = [cost.adds, cost.muls, cost.transcendentals, cost.int_ops, cost.bytes]
    for key, c in cost.by_site.items():
      stack, scope, name = key.split("\t")
      self._row(self.src, (stack or src, join(prefix, scope), name), c)
      rest[0] -= c.adds
      rest[1] -= c.muls
      rest[2] -= c.transcendentals
      rest[3] -= c.int_ops
      rest[4] -= c.bytes
    if any(rest):
      self._row(self.src, (src, prefix, prim), Counts(*rest))

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

    tot = self.tot
    for site, v in self.leaves.items():
      for row in (tot, self.prim.get(site[2]), self.scope.get(site[1]), self.src.get(site)):
        if row is not None:
          for j in range(5):
            row[j] += v[j]
      if site[2] not in self.prim:
        self.prim[site[2]] = list(v)
      if site[1] not in self.scope:
        self.scope[site[1]] = list(v)
      if site not in self.src:
        self.src[site] = list(v)
    a, m, t, i, b = tot
    return Cost(a, m, t, i, b, by_primitive=counts(self.prim), by_scope=counts(self.scope),
                uncounted=self.unc, inexact=tuple(self.inexact), cond=cond,
                assumed=tuple(self.assumed),
                by_site={"\t".join(k): Counts(*v) for k, v in self.src.items() if any(v)})


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
    acc = _Acc()
    env: dict[Any, Any] = {}
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
      if name in _FOLD:
        _propagate_known(eqn, env)
      elif name in _FOLD_CALLS:
        _propagate_call(eqn, env)
    return acc.freeze(self.cond)

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

  def _no_rule(self, acc: _Acc, eqn, name: str, scope: str, env: dict[Any, Any],
               src: str) -> None:
    """An equation without a rule: free (bytes only) when reviewed as zero-cost, else
    uncounted."""
    if name not in registry.ZERO_COST:
      self._uncounted(acc, name)
      return
    if name not in registry.NO_BYTES:
      b = eqn_bytes(eqn)
      if b:
        acc.leaf(name, scope, (0, 0, 0, 0, b), src)
    if name in _FOLD:
      _propagate_known(eqn, env)

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
          UncountedPrimitiveWarning, stacklevel=_user_stacklevel())

  def trip_count_override(self, scope: str) -> int | None:
    tc = self.trip_counts
    if tc is None:
      return None
    if isinstance(tc, int):
      return tc
    # The inexact note names the top level "<top level>"; accept that and "".
    return tc.get(scope if scope or scope in tc else TOP_LEVEL)


def _add_out(acc: _Acc, eqn, name: str, scope: str, out: Cost | Counts, src: str) -> None:
  """Adds what a rule returned: a walked Cost as is, a leaf's Counts plus the
  equation's bytes (integer and boolean arithmetic kept out of FPO); ``src`` is the
  equation's user stack."""
  if isinstance(out, Cost):
    acc.cost(out, scope, src, name)
    return
  b = eqn_bytes(eqn)
  if not eqn.invars or any(_is_float(v.aval) for v in eqn.invars):
    acc.leaf(name, scope, (out.adds, out.muls, out.transcendentals, out.int_ops,
                           out.bytes + b), src)
  else:
    acc.leaf(name, scope, (0, 0, 0, out.int_ops + out.adds + out.muls, out.bytes + b), src)


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _user_stacklevel() -> int:
  """The stacklevel of the first frame outside jaxgreen, so a warning points there."""
  frame: FrameType | None = sys._getframe(1)
  level = 1
  while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
    frame, level = frame.f_back, level + 1
  return level


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
    return _read(self.eqn.invars[i], self.env)

  def walk(self, jaxpr, known: Sequence[Any] | None = None,
           axis_sizes: Mapping[str, int] | None = None) -> Cost:
    """Counts a sub-jaxpr (open or closed) in this equation's context."""
    inner = getattr(jaxpr, "jaxpr", jaxpr)
    axes = dict(self.axis_sizes)
    if axis_sizes:
      axes.update(axis_sizes)
    if known is not None and isinstance(jaxpr, jcore.ClosedJaxpr):
      known = [known_scalar(c) for c in jaxpr.consts] + list(known)
    elif known is None and isinstance(jaxpr, jcore.ClosedJaxpr) and jaxpr.consts:
      known = [known_scalar(c) for c in jaxpr.consts] + [None] * len(inner.invars)
    return self.walker.walk(inner, known, axes, self.scope)


class KnownTable:
  """A small constant integer array (a Pallas kernel's scalar-prefetch table, such as
  splash attention's block masks), hashable so it can key the memo. Scalar reads of it
  (``get``) fold to Python ints."""

  __slots__ = ("array", "_hash")
  MAX_ELEMENTS = 1 << 16

  def __init__(self, array: np.ndarray):
    self.array = array
    self._hash = hash((array.shape, array.dtype.str, array.tobytes()))

  def __hash__(self) -> int:
    return self._hash

  def __eq__(self, other: object) -> bool:
    return (isinstance(other, KnownTable) and self._hash == other._hash
            and self.array.shape == other.array.shape
            and np.array_equal(self.array, other.array))


def known_scalar(val) -> Any:
  """A hashable Python scalar for a 0-d constant, a :class:`KnownTable` for a small
  constant integer or boolean array, else None."""
  if isinstance(val, bool | int | float):
    return val
  shape = getattr(val, "shape", None)
  if shape is None or getattr(val, "dtype", None) is None:
    return None
  try:
    if shape == ():
      return np.asarray(val).item()
    if (np.dtype(val.dtype).kind in "iub" and 0 < math.prod(shape) <= KnownTable.MAX_ELEMENTS):
      return KnownTable(np.asarray(val))
  except Exception:  # noqa: BLE001 - tracers and opaque constants stay unknown
    return None
  return None


def _table_read(ref, *indices, tree=None, **_) -> Any:
  """``ref[i, j, ...]`` of a known table at known integer indices, or None."""
  if not isinstance(ref, KnownTable) or tree is None:
    return None
  import jax  # noqa: PLC0415 - jax.tree_util only here

  try:
    (indexer,) = jax.tree_util.tree_unflatten(tree, indices)
    idx = tuple(getattr(indexer, "indices", ()))
    if len(idx) != ref.array.ndim or not all(isinstance(i, int) for i in idx):
      return None
    return ref.array[idx].item()
  except Exception:  # noqa: BLE001 - an indexer this fold does not read: unknown
    return None


def _read(v, env) -> Any:
  """The known Python value of an equation input (a literal or a folded var), or None."""
  return known_scalar(v.val) if isinstance(v, jcore.Literal) else env.get(v)


def _convert(a, *, new_dtype=None, **_):
  kind = getattr(new_dtype, "kind", "")
  if kind == "b":
    return bool(a)
  if kind in ("i", "u"):
    return int(a)
  if kind == "f":
    return float(a)
  return a


def _div(a, b):
  if isinstance(a, int) and isinstance(b, int):
    q = abs(a) // abs(b)  # C semantics: truncate toward zero, as lax.div does
    return q if (a >= 0) == (b >= 0) else -q
  return a / b


def _rem(a, b):
  if isinstance(a, int) and isinstance(b, int):
    return a - _div(a, b) * b
  return math.fmod(a, b)


# Scalar folds used to find loop bounds; each takes the params as keywords.
_FOLD: dict[str, Callable[..., Any]] = {
    "add": lambda a, b, **_: a + b, "sub": lambda a, b, **_: a - b,
    "mul": lambda a, b, **_: a * b, "div": lambda a, b, **_: _div(a, b),
    "rem": lambda a, b, **_: _rem(a, b), "max": lambda a, b, **_: max(a, b),
    "min": lambda a, b, **_: min(a, b), "neg": lambda a, **_: -a,
    "convert_element_type": _convert, "copy": lambda a, **_: a,
    "lt": lambda a, b, **_: a < b, "le": lambda a, b, **_: a <= b,
    "gt": lambda a, b, **_: a > b, "ge": lambda a, b, **_: a >= b,
    "eq": lambda a, b, **_: a == b, "ne": lambda a, b, **_: a != b,
    "select_n": lambda p, *cases, **_: cases[int(p)],
    "clamp": lambda lo, a, hi, **_: min(max(a, lo), hi),
    "sign": lambda a, **_: (a > 0) - (a < 0), "abs": lambda a, **_: abs(a),
    "and": lambda a, b, **_: a & b, "or": lambda a, b, **_: a | b,
    "not": lambda a, **_: (not a) if isinstance(a, bool) else ~a,
    "get": _table_read,  # a scalar read of a known table (a Pallas scalar-prefetch ref)
}


def fold_outputs(jaxpr, known: Sequence[Any]) -> list[Any]:
  """Python values of ``jaxpr``'s scalar outputs computable from ``known`` inputs.

  ``known`` covers constvars + invars (None where unknown). Nested calls (``jit``,
  ``closed_call``, ...) are folded through, so a bound such as ``n // 2`` (a jitted
  ``floor_divide``) stays known.
  """
  env: dict[Any, Any] = {}
  for v, k in zip(list(jaxpr.constvars) + list(jaxpr.invars), known, strict=True):
    if k is not None:
      env[v] = k
  _fold_eqns(jaxpr.eqns, env)
  return [_read(v, env) for v in jaxpr.outvars]


def _fold_eqns(eqns, env) -> None:
  for eqn in eqns:
    if eqn.primitive.name in _FOLD:
      _propagate_known(eqn, env)
    elif eqn.primitive.name in _FOLD_CALLS:
      _propagate_call(eqn, env)


# Calls whose scalar results are folded through: primitive name -> jaxpr param.
_FOLD_CALLS = {"jit": "jaxpr", "closed_call": "call_jaxpr", "custom_jvp_call": "call_jaxpr"}


def _propagate_call(eqn, env) -> None:
  vals = [_read(v, env) for v in eqn.invars]
  if all(x is None for x in vals):
    return
  sub = eqn.params[_FOLD_CALLS[eqn.primitive.name]]
  inner = getattr(sub, "jaxpr", sub)
  consts = [known_scalar(c) for c in getattr(sub, "consts", ())]
  if len(consts) + len(vals) != len(inner.constvars) + len(inner.invars):
    return
  for v, x in zip(eqn.outvars, fold_outputs(inner, consts + vals), strict=True):
    if x is not None and getattr(v.aval, "shape", None) == ():
      env[v] = x


def fold_scalar(name: str, vals: Sequence[Any], params: Mapping[str, Any]) -> Any:
  """``name`` applied to known Python scalars, or None when it cannot be folded."""
  f = _FOLD.get(name)
  if f is None:
    return None
  try:
    return f(*vals, **params)
  except (TypeError, ValueError, ZeroDivisionError, IndexError):
    return None


def _propagate_known(eqn, env) -> None:
  """Folds scalar constants through simple ops so loop bounds can be recognised."""
  if len(eqn.outvars) != 1 or eqn.outvars[0].aval.shape != ():
    return
  vals = []
  for v in eqn.invars:
    x = _read(v, env)
    if x is None:
      return
    vals.append(x)
  out = fold_scalar(eqn.primitive.name, vals, eqn.params)
  if out is not None:
    env[eqn.outvars[0]] = out
