"""Which grid points of a Pallas kernel cost the same: the grouping behind the
``pallas_call`` rule (:mod:`jaxgreen._src.jaxpr.rules.pallas`).

A backward pass over the kernel finds the scalars its cost can depend on: cond indices,
the operands that set loop trip counts, and the scalar folds (the ones the walker itself
evaluates) they are computed from. A forward pass evaluates those folds with numpy over
all grid points at once, with each ``program_id`` an array of its coordinate, and
collects the decisive values at every depth of the kernel. Grid points whose decisive
values all agree cost the same; :func:`plan` returns one representative per group and
the group's size.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
from jax.extend import core as jcore

from jaxgreen._src.jaxpr.fold import FOLD_CALLS, FOLDS, KnownTable, known_scalar, read
from jaxgreen._src.jaxpr.rules.control_flow import scan_num_consts

# -- which scalars the cost depends on --------------------------------------------------

# The walker's scalar folds (a read of a known table is handled on its own).
_FOLDABLE = frozenset(FOLDS) - {"get"}
_CALLS = FOLD_CALLS
_PID = ("program_id", "num_programs")


@dataclasses.dataclass
class _Relevance:
  """Backward analysis result: what a kernel's cost depends on."""

  nested_axes: set[int] = dataclasses.field(default_factory=set)  # program ids in sub-jaxprs
  unresolved: bool = False  # a decision rests on a value no fold can provide
  tables: frozenset = frozenset()  # kernel refs holding known constant tables


def _relevant(jaxpr, seeds: set[int], rel: _Relevance, nested: bool) -> set:
  """Vars of ``jaxpr`` whose values can change its cost, given relevant outputs ``seeds``.

  Sinks are cond indices and the operands that decide loop trip counts; relevance flows
  backward through scalar folds (the ones the walker can evaluate). A relevant value made
  by anything else (a ref read, an array op) is unresolved.
  """
  live = {v for i, v in enumerate(jaxpr.outvars) if i in seeds and isinstance(v, jcore.Var)}
  for eqn in reversed(jaxpr.eqns):
    outs = {i for i, v in enumerate(eqn.outvars) if v in live}
    for i in _relevant_inputs(eqn, outs, rel, nested):
      v = eqn.invars[i]
      if isinstance(v, jcore.Var):
        live.add(v)
  return live


def _relevant_inputs(eqn, outs: set[int], rel: _Relevance,  # noqa: C901 - one case per kind
                     nested: bool) -> Iterator[int]:
  name = eqn.primitive.name
  p = eqn.params
  if name in _PID:
    if outs and nested:
      rel.nested_axes.add(p["axis"])
    return
  if name in _FOLDABLE:
    if outs:
      yield from range(len(eqn.invars))
    return
  if name == "get" and eqn.invars and eqn.invars[0] in rel.tables:
    if outs:  # a read of a known table: decided by the indices
      yield from range(1, len(eqn.invars))
    return
  if name == "cond":
    yield 0
    for br in p["branches"]:
      yield from (1 + i for i in _sub(br, outs, rel))
    return
  if name == "while":
    yield from _while_inputs(eqn, outs, rel)
    return
  if name == "scan":
    yield from _scan_inputs(eqn, outs, rel)
    return
  subs = list(jcore.jaxprs_in_params(p))
  if len(subs) == 1 and _arity(subs[0]) == len(eqn.invars):
    yield from _sub(subs[0], outs, rel)
    return
  if subs:  # a structure this analysis does not know: every input may matter
    for s in subs:
      _sub(s, set(), rel)
    yield from range(len(eqn.invars))
    return
  if outs:
    rel.unresolved = True


def _arity(j) -> int:
  inner = getattr(j, "jaxpr", j)
  return len(inner.invars)


def _sub(j, outs: set[int], rel: _Relevance) -> set[int]:
  """Relevant invar positions of a sub-jaxpr (consts excluded)."""
  inner = getattr(j, "jaxpr", j)
  live = _relevant(inner, outs, rel, nested=True)
  return {i for i, v in enumerate(inner.invars) if v in live}


def _while_inputs(eqn, outs: set[int], rel: _Relevance) -> set[int]:
  p = eqn.params
  nc, nb = p["cond_nconsts"], p["body_nconsts"]
  n = len(eqn.invars) - nc - nb
  carry = set(outs)
  c_in = _sub(p["cond_jaxpr"], {0}, rel)
  body_in: set[int] = set()
  for _ in range(n + 1):  # fixpoint over the carries
    carry |= {i - nc for i in c_in if i >= nc}
    body_in = _sub(p["body_jaxpr"], carry, rel)
    new = carry | {i - nb for i in body_in if i >= nb}
    if new == carry:
      break
    carry = new
  # A decision inside the body (not the trip count, which the while rule proves from
  # the counter's step) that reads a carry the body changes varies between iterations.
  bj = p["body_jaxpr"].jaxpr
  decisions = _sub(p["body_jaxpr"], set(), rel)
  if any(bj.outvars[i - nb] is not bj.invars[i] for i in decisions if i >= nb):
    rel.unresolved = True
  return ({i for i in c_in if i < nc} | {nc + i for i in body_in if i < nb}
          | {nc + nb + i for i in carry})


def _scan_split(params) -> tuple[int, int]:
  """(consts, carries) of a scan: ``num_consts``/``num_carry`` up to jax 0.11, the first
  two groups of ``ft_in`` (consts, carry, xs) from jax 0.12."""
  if "num_carry" in params:
    return params["num_consts"], params["num_carry"]
  _, carry, _ = params["ft_in"].unpack()
  return scan_num_consts(params), len(list(carry))


def _scan_inputs(eqn, outs: set[int], rel: _Relevance) -> set[int]:
  p = eqn.params
  nconst, ncarry = _scan_split(p)
  carry = {i for i in outs if i < ncarry}
  ys = {i for i in outs if i >= ncarry}
  body_in: set[int] = set()
  for _ in range(ncarry + 1):  # fixpoint over the carries
    body_in = _sub(p["jaxpr"], carry | ys, rel)
    new = carry | {i - nconst for i in body_in if nconst <= i < nconst + ncarry}
    if new == carry:
      break
    carry = new
  if any(i >= nconst for i in _sub(p["jaxpr"], set(), rel)):
    rel.unresolved = True  # a decision in the body reads the carry or the scanned slice
  return {i for i in body_in if i < nconst} | {nconst + i for i in carry}


# -- the same folds over all grid points at once -----------------------------------------

def _is_int(x) -> bool:
  return np.asarray(x).dtype.kind in "iub"


def _vdiv(a, b):
  if _is_int(a) and _is_int(b):  # C semantics, as lax.div and the scalar fold
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    q = np.abs(a) // np.abs(b)
    return np.where((a >= 0) == (b >= 0), q, -q)
  return np.true_divide(a, b)


def _vrem(a, b):
  if _is_int(a) and _is_int(b):
    return np.asarray(a, np.int64) - _vdiv(a, b) * np.asarray(b, np.int64)
  return np.fmod(a, b)


def _vconvert(a, *, new_dtype=None, **_):
  kind = getattr(new_dtype, "kind", "")
  if kind == "b":
    return np.asarray(a).astype(bool)
  if kind in ("i", "u"):
    return np.trunc(a).astype(np.int64) if np.asarray(a).dtype.kind == "f" \
        else np.asarray(a).astype(np.int64)
  if kind == "f":
    return np.asarray(a, np.float64)
  return a


def _vnot(a, **_):
  return np.logical_not(a) if np.asarray(a).dtype.kind == "b" else np.invert(a)


_VFOLD: dict[str, Callable[..., Any]] = {
    "add": lambda a, b, **_: np.add(a, b), "sub": lambda a, b, **_: np.subtract(a, b),
    "mul": lambda a, b, **_: np.multiply(a, b), "div": lambda a, b, **_: _vdiv(a, b),
    "rem": lambda a, b, **_: _vrem(a, b), "max": lambda a, b, **_: np.maximum(a, b),
    "min": lambda a, b, **_: np.minimum(a, b), "neg": lambda a, **_: np.negative(a),
    "convert_element_type": _vconvert, "copy": lambda a, **_: a,
    "lt": lambda a, b, **_: np.less(a, b), "le": lambda a, b, **_: np.less_equal(a, b),
    "gt": lambda a, b, **_: np.greater(a, b), "ge": lambda a, b, **_: np.greater_equal(a, b),
    "eq": lambda a, b, **_: np.equal(a, b), "ne": lambda a, b, **_: np.not_equal(a, b),
    "select_n": lambda p, *cases, **_: np.choose(np.asarray(p, np.int64), cases),
    "clamp": lambda lo, a, hi, **_: np.minimum(np.maximum(a, lo), hi),
    "sign": lambda a, **_: np.sign(a), "abs": lambda a, **_: np.abs(a),
    "and": lambda a, b, **_: np.bitwise_and(a, b), "or": lambda a, b, **_: np.bitwise_or(a, b),
    "not": _vnot,
}


class _Columns:
  """Evaluates a kernel's scalars over all grid points at once and collects, at every
  depth, the values its cost is decided by: cond indices and the operands of loops that
  can set their trip counts. Sub-jaxprs see what the walker lets them see: a branch its
  operands, a loop body its consts and the carries it passes through unchanged."""

  def __init__(self, ids: dict[int, np.ndarray], grid, rel: _Relevance):
    self.ids, self.grid, self.rel = ids, grid, rel
    self.cols: list[Any] = []

  def run(self, jaxpr, env: dict) -> dict:
    for eqn in jaxpr.eqns:
      self._eqn(eqn, env)
    return env

  def sub(self, closed, vals: Sequence[Any]) -> dict:
    inner = getattr(closed, "jaxpr", closed)
    env = {v: known_scalar(c) for v, c in zip(inner.constvars, getattr(closed, "consts", ()),
                                              strict=False) if known_scalar(c) is not None}
    env.update({v: x for v, x in zip(inner.invars, vals, strict=False) if x is not None})
    return self.run(inner, env)

  def _eqn(self, eqn, env: dict) -> None:  # noqa: C901 - one case per kind of equation
    name, p, out = eqn.primitive.name, eqn.params, eqn.outvars
    vals = [read(v, env) for v in eqn.invars]
    if name == "program_id":
      env[out[0]] = self.ids.get(p["axis"], 0)
    elif name == "num_programs":
      if p["axis"] < len(self.grid) and self.grid[p["axis"]] is not None:
        env[out[0]] = self.grid[p["axis"]]
    elif name == "get" and isinstance(vals[0], np.ndarray) and len(out) == 1:
      if all(x is not None for x in vals[1:]):
        got = _vtable(vals[0], vals[1:], p.get("tree"))
        if got is not None:
          env[out[0]] = got
    elif name in _VFOLD and len(out) == 1 and out[0].aval.shape == ():
      if all(x is not None for x in vals):
        with np.errstate(all="ignore"):
          env[out[0]] = _VFOLD[name](*vals, **p)
    elif name in _CALLS:
      callee = p[_CALLS[name]]
      senv = self.sub(callee, vals)
      for o, x in zip(out, getattr(callee, "jaxpr", callee).outvars, strict=True):
        val = read(x, senv)
        if val is not None and o.aval.shape == ():
          env[o] = val
    elif name == "cond":
      if vals[0] is None:
        self.rel.unresolved = True
      else:
        self.cols.append(vals[0])
      for br in p["branches"]:
        self.sub(br, vals[1:])
    elif name == "while":
      self._while(eqn, vals)
    elif name == "scan":
      nconst, _ = _scan_split(p)
      self._decided_by(_scan_inputs(eqn, set(), self.rel), vals)
      self.sub(p["jaxpr"], vals[:nconst])
    else:
      for sub in jcore.jaxprs_in_params(p):
        self.sub(sub, vals if _arity(sub) == len(vals) else ())

  def _while(self, eqn, vals) -> None:
    p = eqn.params
    nc, nb = p["cond_nconsts"], p["body_nconsts"]
    bj = p["body_jaxpr"].jaxpr
    carries = vals[nc + nb:]
    through = [x if bj.outvars[i] is bj.invars[nb + i] else None for i, x in enumerate(carries)]
    self._decided_by(_while_inputs(eqn, set(), self.rel), vals)
    self.sub(p["cond_jaxpr"], list(vals[:nc]) + through)
    self.sub(p["body_jaxpr"], list(vals[nc:nc + nb]) + through)

  def _decided_by(self, indices, vals) -> None:
    # An unknown one leaves the trip count unproven, and the while rule names that loop.
    self.cols.extend(vals[i] for i in sorted(indices) if vals[i] is not None)


def _vtable(table: np.ndarray, indices: Sequence[Any], tree) -> np.ndarray | None:
  """``table[i, j, ...]`` at every grid point (indices: scalars or per-point arrays)."""
  if tree is None:
    return None
  import jax  # noqa: PLC0415 - jax.tree_util only here

  try:
    (indexer,) = jax.tree_util.tree_unflatten(tree, list(indices))
    idx = tuple(getattr(indexer, "indices", ()))
    if len(idx) != table.ndim or not all(np.asarray(i).dtype.kind in "iu" for i in idx):
      return None
    return table[tuple(np.asarray(i, np.int64) for i in idx)]
  except Exception:  # noqa: BLE001 - an indexer this analysis does not read: unknown
    return None


# -- grouping grid points by what their cost depends on ----------------------------------

@dataclasses.dataclass
class Plan:
  groups: list[tuple[tuple[int, ...], int]]  # (a representative grid point, points in group)
  unresolved: bool


def plan(kernel, grid: tuple[int | None, ...], sizes: tuple[int, ...],
          exhaustive: bool, known: Sequence[Any] | None = None) -> Plan:
  """Groups the grid points of ``kernel`` by the values of everything its cost reads.

  ``known``: values for the kernel's constvars + invars (:class:`KnownTable` for the
  scalar-prefetch refs that hold constant tables), or None.
  """
  seeds = {v: k.array for v, k in zip(list(kernel.constvars) + list(kernel.invars),
                                      known or (), strict=False)
           if isinstance(k, KnownTable)}
  rel = _Relevance(tables=frozenset(seeds))
  live = _relevant(kernel, set(), rel, nested=False)
  axes = set(rel.nested_axes)
  axes.update(e.params["axis"] for e in kernel.eqns
              if e.primitive.name == "program_id" and e.outvars[0] in live)
  enum = sorted(a for a in axes if a < len(sizes))
  npoints = math.prod(sizes[a] for a in enum)
  factor = math.prod(sizes) // npoints if npoints else 0
  if factor == 0:  # an empty grid
    return Plan([], rel.unresolved)
  if not enum:  # no program id decides anything: every point costs the same
    return Plan([((0,) * len(sizes), factor)], rel.unresolved)
  coords = np.indices([sizes[a] for a in enum]).reshape(len(enum), -1)
  ids = dict(zip(enum, coords, strict=True))

  def point(k: int) -> tuple[int, ...]:
    return tuple(int(ids[a][k]) if a in ids else 0 for a in range(len(sizes)))

  if exhaustive:
    return Plan([(point(k), factor) for k in range(npoints)], rel.unresolved)
  cols = _Columns(ids, grid, rel)
  cols.run(kernel, dict(seeds))
  key = _group_key([c for c in cols.cols if np.ndim(c)], npoints)
  _, first, counts = np.unique(key, return_index=True, return_counts=True)
  return Plan([(point(int(k)), factor * int(n)) for k, n in zip(first, counts, strict=True)],
               rel.unresolved)


def _group_key(columns: list[Any], npoints: int) -> np.ndarray:
  """One int64 per grid point, equal exactly where every column is equal (a mixed-radix
  number over the columns' value codes, renumbered before it could overflow)."""
  key = np.zeros(npoints, np.int64)
  radix = 1
  for c in columns:
    c = np.asarray(c)
    lo, hi = c.min(), c.max()
    if lo == hi:
      continue
    if c.dtype.kind in "iub" and int(hi) - int(lo) < 2**20:
      code, n = c.astype(np.int64) - int(lo), int(hi) - int(lo) + 1
    else:
      values, code = np.unique(c, return_inverse=True)
      code, n = code.reshape(-1).astype(np.int64), len(values)
    if radix * n >= 2**62:
      _, key = np.unique(key, return_inverse=True)
      key, radix = key.reshape(-1).astype(np.int64), int(np.max(key)) + 1
    key = key * n + code
    radix *= n
  return key
