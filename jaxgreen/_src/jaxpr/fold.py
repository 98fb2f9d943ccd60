"""Scalar folding: the Python values of the small constants a jaxpr computes.

Loop bounds, branch indices and Pallas grid bounds are often computed in the program
from literals and constants (``n // 2``, ``i + 1``, a cast). The walker folds such
scalar values equation by equation into an environment (jaxpr variable -> Python
value), so the rules can read them (:meth:`RuleContext.known`) and recognise counted
loops and constant branches. Small constant integer arrays (a Pallas kernel's
scalar-prefetch tables) are kept as :class:`KnownTable`; scalar reads of them fold too.

Example:
  >>> import jax, jax.numpy as jnp
  >>> closed = jax.make_jaxpr(lambda n: (n * 3 + 1) // 2)(5)
  >>> fold_outputs(closed.jaxpr, [5])
  [8]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from jax.extend import core as jcore

Env = dict[Any, Any]  # jaxpr variable -> its folded Python value


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


def read(v, env: Mapping[Any, Any]) -> Any:
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
FOLDS: dict[str, Callable[..., Any]] = {
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
  return [read(v, env) for v in jaxpr.outvars]


def _fold_eqns(eqns, env) -> None:
  for eqn in eqns:
    if eqn.primitive.name in FOLDS:
      propagate_known(eqn, env)
    elif eqn.primitive.name in FOLD_CALLS:
      propagate_call(eqn, env)


# Calls whose scalar results are folded through: primitive name -> jaxpr param.
FOLD_CALLS = {"jit": "jaxpr", "closed_call": "call_jaxpr", "custom_jvp_call": "call_jaxpr"}


def propagate_call(eqn, env: Env) -> None:
  vals = [read(v, env) for v in eqn.invars]
  if all(x is None for x in vals):
    return
  sub = eqn.params[FOLD_CALLS[eqn.primitive.name]]
  inner = getattr(sub, "jaxpr", sub)
  consts = [known_scalar(c) for c in getattr(sub, "consts", ())]
  if len(consts) + len(vals) != len(inner.constvars) + len(inner.invars):
    return
  for v, x in zip(eqn.outvars, fold_outputs(inner, consts + vals), strict=True):
    if x is not None and getattr(v.aval, "shape", None) == ():
      env[v] = x


def fold_scalar(name: str, vals: Sequence[Any], params: Mapping[str, Any]) -> Any:
  """``name`` applied to known Python scalars, or None when it cannot be folded."""
  f = FOLDS.get(name)
  if f is None:
    return None
  try:
    return f(*vals, **params)
  except (TypeError, ValueError, ZeroDivisionError, IndexError):
    return None


def propagate_known(eqn, env: Env) -> None:
  """Folds scalar constants through simple ops so loop bounds can be recognised."""
  if len(eqn.outvars) != 1 or eqn.outvars[0].aval.shape != ():
    return
  vals = []
  for v in eqn.invars:
    x = read(v, env)
    if x is None:
      return
    vals.append(x)
  out = fold_scalar(eqn.primitive.name, vals, eqn.params)
  if out is not None:
    env[eqn.outvars[0]] = out
