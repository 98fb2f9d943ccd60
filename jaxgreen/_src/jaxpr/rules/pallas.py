"""Pallas kernels: ``pallas_call`` counted as its kernel body once per grid point.

A ``pallas_call`` runs its kernel (an open jaxpr over refs) once for every point of its
grid. The rule counts the body at each point with ``program_id`` / ``num_programs``
known, so branches on program ids (``pl.when``, ``lax.cond``: causal block skipping,
first/last block initialisation) take their real branch and ``fori_loop`` / ``pl.loop``
bounds that depend on program ids are proven by the ``while`` rule.

Walking every point of a 32k-token attention grid would be slow, so the rule first finds
the scalar values the cost can depend on (cond indices, loop bounds and the values they
are folded from), evaluates them with numpy over all grid points at once, groups the
points by the outcome vector, and walks the body once per group, scaled by its size
(:mod:`jaxgreen._src.jaxpr.rules._pallas_grid`). ``Walker(memo=False)`` walks every grid
point instead (used to check the grouping).

* Ref reads and writes (``ref[...]``, ``pl.load``/``pl.store``, DMAs, semaphores) move
  data and cost no FPO; ``addupdate`` (``ref[...] += x`` of the state discharge) and
  ``atomic_rmw`` are priced as their add / max / min per element, ``pl.reciprocal`` as a
  ``div`` per element; arithmetic uses the same rules and cost model as elsewhere.
* Scalar-prefetch refs the caller fills with small constant tables (splash attention's
  block masks: numpy arrays baked into the program) are read at each grid point, so
  branches on them take their real branch: only the computed blocks count.
* A branch or loop bound that depends on runtime data (a scalar-prefetch ref given at
  run time, a ref read, a loop-varying value) is counted by the ``cond`` policy / the
  ``while`` rule and named in ``Cost.inexact``. A grid dimension given at run time (a
  dynamic grid bound) is read when it is a constant, else taken from
  ``trip_counts={"<kernel scope>:grid<d>": n}`` (``"pallas_call:grid1"`` for dimension 1
  of an unnamed kernel at the top level; noted in ``Cost.assumed``) or counted as 1 and
  named in ``Cost.inexact``.
* Under ``vmap`` the added grid dimensions repeat the kernel; its program ids number
  the other dimensions, as pallas lowers them.
* The kernel's work is reported under its scope, which jax names after the kernel.
* The kernel author's ``cost_estimate`` is not part of the count; :func:`kernel_estimates`
  lists it beside jaxgreen's count for every ``pallas_call`` of a program.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jax
import numpy as np
from jax.extend import core as jcore

from jaxgreen._src._scope import clean_scope, join
from jaxgreen._src.cost import Cost
from jaxgreen._src.cost_model import DEFAULT, CostModel
from jaxgreen._src.jaxpr.fold import KnownTable, known_scalar, read
from jaxgreen._src.jaxpr.interpreter import RuleContext, Walker
from jaxgreen._src.jaxpr.registry import register
from jaxgreen._src.jaxpr.rules._pallas_grid import plan
from jaxgreen._src.jaxpr.rules._util import is_complex, ops, priced, size

# The grid point being walked, innermost last (program_id reads it).
_POINTS: list[tuple[int, ...]] = []
_GRIDS: list[tuple[int | None, ...]] = []


# -- kernel primitives -----------------------------------------------------------------

@register("program_id")
def _program_id(ctx: RuleContext, *, axis, **_):
  """No cost; inside a ``pallas_call`` the id of the grid point being walked becomes a
  known value (written to the walk's environment, as the scalar folds do), so conds
  and loop bounds computed from it are resolved. Elsewhere it stays unknown."""
  if _POINTS and axis < len(_POINTS[-1]):
    ctx.set_known(_POINTS[-1][axis])
  return Cost(cond=ctx.cond)


@register("num_programs")
def _num_programs(ctx: RuleContext, *, axis, **_):
  """No cost; the grid's size along ``axis`` becomes known when it is static."""
  if _GRIDS and axis < len(_GRIDS[-1]) and _GRIDS[-1][axis] is not None:
    ctx.set_known(_GRIDS[-1][axis])
  return Cost(cond=ctx.cond)


def _moves_data(ctx: RuleContext, *args, **_):
  """Loads, stores, DMAs, semaphores and hints: no arithmetic."""
  return ops()


register("masked_load", "masked_swap", "multiple_of", "max_contiguous", "dma_start",
         "dma_wait", "semaphore_read", "semaphore_signal", "semaphore_wait", "delay",
         "get_global", "roll")(_moves_data)


@register("reciprocal")
def _reciprocal(ctx: RuleContext, x, **_):
  return priced(ctx.model, "div", size(x), is_complex(x))


_ATOMIC_PRICE = {"add": "add", "max": "max", "min": "min", "and": "and", "or": "or",
                 "xor": "xor"}


@register("atomic_rmw")
def _atomic_rmw(ctx: RuleContext, *args, atomic_type=None, args_tree=None, **_):
  """``plgpu.atomic_add`` & co.: one application per updated element (``xchg`` none)."""
  op = getattr(atomic_type, "name", str(atomic_type)).lower()
  # The operands are the flattened (ref, indexers, value, mask).
  val = jax.tree_util.tree_unflatten(args_tree, args)[2] if args_tree else args[-1]
  name = _ATOMIC_PRICE.get(op)
  if name is None or ctx.model.price(name) is None:
    return ops()
  return priced(ctx.model, name, size(val), is_complex(val))


@register("atomic_cas")
def _atomic_cas(ctx: RuleContext, ref, cmp, val, **_):
  return ops(adds=size(val))  # one compare per element


def _walk_body(*names: str):  # run_scoped: the body, with its scratch refs
  def rule(ctx: RuleContext, *args, **params):
    body = next(params[n] for n in names if n in params)
    inner = getattr(body, "jaxpr", body)
    n_in = len(inner.constvars) + len(inner.invars)
    consts = [known_scalar(c) for c in getattr(body, "consts", ())]
    known = consts + [ctx.known(i) for i in range(len(args))]
    return ctx.walk(inner, known=known if len(known) == n_in else None)

  return rule


register("run_scoped")(_walk_body("jaxpr"))


# -- the rule --------------------------------------------------------------------------

def _grid(ctx: RuleContext, gm, scope: str) -> tuple[tuple[int | None, ...], tuple[int, ...], Cost]:
  """(grid with None for unknown dynamic sizes, sizes used to count, notes)."""
  grid: list[int | None] = []
  sizes: list[int] = []
  inexact: list[str] = []
  assumed: list[str] = []
  k = 0
  for d, g in enumerate(gm.grid):
    if isinstance(g, int | np.integer):
      grid.append(int(g))
      sizes.append(int(g))
      continue
    val = ctx.known(k) if k < gm.num_dynamic_grid_bounds else None
    k += 1
    if isinstance(val, int | np.integer):
      grid.append(int(val))
      sizes.append(int(val))
      continue
    key = f"{scope}:grid{d}"
    given = ctx.trip_count(key)
    grid.append(given)
    if given is None:
      sizes.append(1)
      inexact.append(f"pallas_call at scope {scope!r}: grid dimension {d} is a runtime "
                     f"value, counted as 1 (pass trip_counts={{{key!r}: n}} to count it)")
    else:
      sizes.append(int(given))
      assumed.append(f"pallas_call at scope {scope!r}: grid dimension {d} = {given}, as "
                     f"given by trip_counts=")
  notes = Cost(inexact=tuple(inexact), assumed=tuple(assumed), cond=ctx.cond)
  return tuple(grid), tuple(sizes), notes


def kernel_label(name: Any) -> str:
  """The scope a kernel's work is reported under: its ``name`` param."""
  return str(name) if name else "pallas_call"


def _prefetch_tables(ctx: RuleContext, kernel, grid_mapping) -> list[Any] | None:
  """Known values for the kernel's constvars + invars: its scalar-prefetch refs where
  the caller passes small constant tables (splash attention's block masks), so reads of
  them at a grid point fold to their values; None when there are none."""
  ndyn = getattr(grid_mapping, "num_dynamic_grid_bounds", 0)
  nidx = getattr(grid_mapping, "num_index_operands", 0)
  tables = [ctx.known(ndyn + i) for i in range(nidx)]
  if not any(isinstance(t, KnownTable) for t in tables):
    return None
  tables = [t if isinstance(t, KnownTable) else None for t in tables]
  rest = len(kernel.invars) - len(tables)
  return [None] * len(kernel.constvars) + tables + [None] * rest


@register("pallas_call")
def _pallas_call(ctx: RuleContext, *args, jaxpr, grid_mapping, name=None, **_):
  kernel = getattr(jaxpr, "jaxpr", jaxpr)
  scope = ctx.scope or kernel_label(name)  # jax names the equation's scope after the kernel
  grid, sizes, notes = _grid(ctx, grid_mapping, scope)
  # Under vmap, pallas adds grid dimensions the kernel cannot see: its program ids
  # number the other dimensions, and each vmapped one repeats the whole kernel.
  vmapped = set(getattr(grid_mapping, "vmapped_dims", ()))
  visible = [d for d in range(len(grid)) if d not in vmapped]
  repeats = math.prod(sizes[d] for d in vmapped)
  grid = tuple(grid[d] for d in visible)
  known = _prefetch_tables(ctx, kernel, grid_mapping)
  groups = plan(kernel, grid, tuple(sizes[d] for d in visible),
                exhaustive=not ctx.memo, known=known)
  cond = ctx.cond
  total = Cost(cond=cond)
  for point, n in groups.groups:
    n *= repeats
    _POINTS.append(point)
    _GRIDS.append(grid)
    try:  # memoized results are valid for one grid point only: a memo of its own
      c = ctx.walk_fresh(kernel, known, scope)
    finally:
      _POINTS.pop()
      _GRIDS.pop()
    total = total + c * n
  if groups.unresolved:
    notes = notes + Cost(inexact=(
        f"pallas_call at scope {scope!r}: a branch or loop bound in the kernel depends on "
        f"values known only at run time (scalar prefetch, a ref read or a loop-varying "
        f"value); it is counted by the cond policy {cond!r}",), cond=cond)
  return total + notes


# -- the kernel author's estimate beside the count ---------------------------------------

@dataclasses.dataclass(frozen=True)
class KernelEstimate:
  """One ``pallas_call`` of a program: jaxgreen's count beside its ``cost_estimate``.

  Attributes:
    name: the kernel's name (``pallas_call(..., name=)``, else the kernel function's).
    scope: where the call sits in the program.
    grid: the grid (None for a dimension known only at run time).
    cost: jaxgreen's count of one call (every grid point).
    flops, transcendentals, bytes_accessed: the author's ``pl.CostEstimate``, or None
      when the kernel gives none. Its ``flops`` counts a fused multiply-add as 2, like
      jaxgreen's FPO (ADD + MUL).
    shapes: the shapes of the call's operands, in order (how the HLO stages find the
      kernel's custom call).
  """

  name: str
  scope: str
  grid: tuple[int | None, ...]
  cost: Cost
  flops: int | None = None
  transcendentals: int | None = None
  bytes_accessed: int | None = None
  shapes: tuple[tuple[int, ...], ...] = ()


def kernel_estimates(fn: Callable, *args, cost_model: CostModel | None = None,
                     cond: str = "max", **kwargs) -> list[KernelEstimate]:
  """Every ``pallas_call`` traced by ``fn(*args, **kwargs)``, in program order, each
  counted once (a kernel inside a loop is listed once, not per iteration).

  Example:
    >>> import jax, jax.numpy as jnp
    >>> from jax.experimental import pallas as pl
    >>> def double(x_ref, o_ref):
    ...   o_ref[...] = x_ref[...] * 2.0
    >>> def f(x):
    ...   return pl.pallas_call(double, grid=(4,), name="double",
    ...       in_specs=[pl.BlockSpec((8,), lambda i: (i,))],
    ...       out_specs=pl.BlockSpec((8,), lambda i: (i,)),
    ...       out_shape=jax.ShapeDtypeStruct((32,), jnp.float32),
    ...       cost_estimate=pl.CostEstimate(flops=32, transcendentals=0,
    ...                                     bytes_accessed=256))(x)
    >>> [k] = kernel_estimates(f, jax.ShapeDtypeStruct((32,), jnp.float32))
    >>> k.name, k.grid, k.cost.muls, k.flops  # 4 points x 8 MULs; the author's 32
    ('double', (4,), 32, 32)
  """
  closed = jax.make_jaxpr(fn)(*args, **kwargs)
  return jaxpr_kernels(closed.jaxpr, cost_model=cost_model, cond=cond)


def jaxpr_kernels(jaxpr, *, cost_model: CostModel | None = None, cond: str = "max",
                  trip_counts: Mapping[str, int] | int | None = None) -> list[KernelEstimate]:
  """Every ``pallas_call`` of an already traced jaxpr (see :func:`kernel_estimates`);
  ``trip_counts`` as for :func:`jaxgreen.count` (runtime grid dimensions, loops)."""
  walker = Walker(cost_model=cost_model or DEFAULT, cond=cond, trip_counts=trip_counts)
  inner = getattr(jaxpr, "jaxpr", jaxpr)
  env = _known_env(inner, getattr(jaxpr, "consts", ()), ())
  return list(_estimates(inner, walker, "", env))


def _known_env(jaxpr, consts, vals) -> dict[Any, Any]:
  """Known values of a jaxpr's constvars and invars (small constant tables, scalars)."""
  pairs = list(zip(jaxpr.constvars, [known_scalar(c) for c in consts], strict=False))
  pairs += list(zip(jaxpr.invars, vals, strict=False))
  return {v: k for v, k in pairs if k is not None}


def _estimates(jaxpr, walker: Walker, outer: str, env: dict) -> Iterator[KernelEstimate]:
  for eqn in jaxpr.eqns:
    scope = join(outer, clean_scope(str(eqn.source_info.name_stack)))
    if eqn.primitive.name != "pallas_call":
      vals = [read(v, env) for v in eqn.invars]
      for sub in jcore.jaxprs_in_params(eqn.params):
        inner = getattr(sub, "jaxpr", sub)
        passed = vals if len(inner.invars) == len(vals) else ()  # a call: its operands
        yield from _estimates(inner, walker, scope,
                              _known_env(inner, getattr(sub, "consts", ()), passed))
      continue
    ctx = RuleContext(walker, eqn, env, {}, scope)
    cost = _pallas_call(ctx, *[v.aval for v in eqn.invars], **eqn.params)
    grid, _, _ = _grid(ctx, eqn.params["grid_mapping"], scope)
    est = eqn.params.get("cost_estimate")
    yield KernelEstimate(
        name=kernel_label(eqn.params.get("name")), scope=scope, grid=grid, cost=cost,
        flops=getattr(est, "flops", None), transcendentals=getattr(est, "transcendentals", None),
        bytes_accessed=getattr(est, "bytes_accessed", None),
        shapes=tuple(tuple(int(d) for d in getattr(v.aval, "shape", ())) for v in eqn.invars))
