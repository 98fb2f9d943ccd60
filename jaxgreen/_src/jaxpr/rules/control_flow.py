"""Loops, branches and calls: walk the body and scale it.

* ``scan``: body x length (nested scans multiply).
* ``while``: when the loop is a counted loop (a carry, possibly cast or offset,
  compared by lt/le/gt/ge/ne against a constant bound and stepped by a constant, as
  ``fori_loop`` and hand-written counters produce), the body is counted x trip count
  and the condition x (trip count + 1). Bounds may be literals, constants, values
  folded from them (also through nested ``jit`` calls) or carries the body passes
  through unchanged. Otherwise the loop is counted as one iteration (body once,
  condition twice, as at the HLO stages: :func:`jaxgreen._src.formulas.loop_factors`),
  ``Cost.inexact`` names the loop, and ``trip_counts={scope: n}`` (or one int for
  every such loop) supplies the count; a proven count is never overridden.
* ``cond``/``switch``: the branch chosen by the ``cond`` policy (max / min / mean FPO);
  a constant index selects its branch exactly. Uncounted primitives and unknown loops
  of every branch are reported whichever branch is chosen.
* Calls (jit, closed_call, custom_jvp/vjp, checkpoint/remat, custom_linear_solve,
  linear_call, composite, compute_on, custom_vmap, custom_partitioning, run_state):
  the callee, as if inlined. ``remat_opt`` runs its forward program.
* ``call_hi_primitive`` (jax >= 0.12's high-level primitives, such as
  ``jnp.searchsorted``'s ``SearchSorted``): the program it expands to, traced once per
  primitive instance and walked as if inlined.
* ``addupdate`` (``ref[...] += x`` in stateful code): one ADD per element of ``x``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, cast

from jax.extend import core as jcore
from jax.extend.core import primitives as P

from jaxgreen._src.cost import Cost

# loop_trips is re-exported: it moved to jaxgreen._src.formulas, shared with the HLO walker.
from jaxgreen._src.formulas import counted_loop_trips, loop_factors, pick_branches
from jaxgreen._src.formulas import loop_trips as loop_trips  # noqa: PLC0414
from jaxgreen._src.jaxpr.fold import fold_scalar, known_scalar, read
from jaxgreen._src.jaxpr.interpreter import TOP_LEVEL, RuleContext
from jaxgreen._src.jaxpr.registry import register
from jaxgreen._src.jaxpr.rules._util import is_complex, priced, size

# -- calls ---------------------------------------------------------------------------

def _call(*names: str):
  """A rule that walks the callee held in the first of ``names`` present in the params
  (jax releases rename some of them: ``closed_call``'s ``call_jaxpr`` is ``jaxpr`` on
  ``eval_jaxpr``, which is the same primitive object in jax 0.12)."""

  def rule(ctx: RuleContext, *args, **params):
    callee = next((params[n] for n in names if n in params), None)
    if callee is None:
      raise KeyError(f"jaxgreen: {ctx.name!r} has none of the params "
                     f"{names}; this jax release is not supported yet")
    return ctx.walk(callee, known=[ctx.known(i) for i in range(len(args))])

  return rule


_CALLEE = _call("jaxpr", "call_jaxpr", "fun_jaxpr", "callee", "call")
register(P.jit_p, P.closed_call_p, P.call_p, P.custom_jvp_call_p, P.custom_vjp_call_p,
         P.remat_p, P.linear_call_p if hasattr(P, "linear_call_p") else "linear_call")(_CALLEE)
# Primitives jax does not export publicly, registered by name.
register("composite", "compute_on", "eval_jaxpr", "run_state", "custom_vmap_call",
         "custom_partitioning", "custom_jvp_call_jaxpr", "xla_metadata_call")(_CALLEE)
register("remat_opt")(_call("fwd_jaxpr"))

_EXPANDED: dict[int, tuple[object, jcore.ClosedJaxpr]] = {}


def _expansion(call_p: jcore.Primitive, prim, avals) -> jcore.ClosedJaxpr:
  """The jaxpr of the low-level program a high-level primitive expands to (its
  ``to_lojax`` rule, as jax lowers it), traced once per primitive instance."""
  hit = _EXPANDED.get(id(prim))
  if hit is not None and hit[0] is prim:
    return hit[1]
  import jax  # noqa: PLC0415 - traced only when such a primitive is met

  def lojax(*args):
    return call_p.to_lojax(*args, _prim=prim)

  closed = jax.make_jaxpr(lojax)(*[jax.ShapeDtypeStruct(a.shape, a.dtype) for a in avals])
  if len(_EXPANDED) > 256:
    _EXPANDED.clear()
  _EXPANDED[id(prim)] = (prim, closed)
  return closed


@register("call_hi_primitive")
def _call_hi(ctx: RuleContext, *args, _prim, **_):
  closed = _expansion(ctx.primitive, _prim, args)
  return ctx.walk(closed, known=[ctx.known(i) for i in range(len(args))])


@register("addupdate")
def _addupdate(ctx: RuleContext, ref, x, *indexers, **_):
  return priced(ctx.model, "add", size(x), is_complex(x))


@register(P.linear_solve_p)
def _custom_linear_solve(ctx: RuleContext, *args, const_lengths, jaxprs, **_):
  # Executing the forward program runs `solve` (with its consts); matvec is only used
  # for transposition and the residual check is not part of the primitive.
  return ctx.walk(jaxprs.solve)


# -- scan ------------------------------------------------------------------------------

def scan_num_consts(params) -> int:
  """Leading constant operands of a scan: ``num_consts`` up to jax 0.11, the length of
  the first group of ``ft_in`` (consts, carry, xs) from jax 0.12."""
  if "num_consts" in params:
    return params["num_consts"]
  consts, _, _ = params["ft_in"].unpack()  # a jax FlatTree of (consts, carry, xs)
  return len(list(consts))


@register(P.scan_p)
def _scan(ctx: RuleContext, *args, jaxpr, length, **params):
  num_consts = scan_num_consts(params)
  known = [ctx.known(i) for i in range(num_consts)] + [None] * (len(args) - num_consts)
  return ctx.walk(jaxpr, known=known) * length


# -- while ----------------------------------------------------------------------------

_CMP = ("lt", "le", "gt", "ge", "ne")
# Primitives a loop counter may pass through unchanged in value.
_IDENTITY = ("convert_element_type", "copy", "reduce_precision", "pvary")


class _Lin:
  """A loop counter plus a constant offset: carry[index] + offset."""

  __slots__ = ("index", "offset")

  def __init__(self, index: int, offset):
    self.index = index
    self.offset = offset


def _affine_eval(jaxpr, seed: dict) -> dict:
  """Evaluates ``jaxpr`` over constants and ``carry + offset`` values.

  ``seed`` maps input vars to a Python scalar or a :class:`_Lin`. Returns the map
  extended to every var whose value is known in that form; anything else is absent.
  Constants fold through the interpreter's scalar folds.
  """
  env = dict(seed)
  for eqn in jaxpr.eqns:
    if len(eqn.outvars) != 1:
      continue
    name = eqn.primitive.name
    vals = [read(v, env) for v in eqn.invars]
    if any(x is None for x in vals):
      continue
    lin = [isinstance(x, _Lin) for x in vals]
    out = None
    if not any(lin):
      out = fold_scalar(name, vals, eqn.params)
      if out is None and name in _IDENTITY and len(vals) == 1:
        out = vals[0]
    elif name in _IDENTITY and len(vals) == 1:
      out = vals[0] if _exact_cast(eqn) else None
    elif name in ("add", "sub") and lin == [True, False]:
      x, y = cast(_Lin, vals[0]), vals[1]
      out = _Lin(x.index, x.offset + y if name == "add" else x.offset - y)
    elif name == "add" and lin == [False, True]:
      c, lin_y = vals[0], cast(_Lin, vals[1])
      out = _Lin(lin_y.index, lin_y.offset + c)
    if out is not None:
      env[eqn.outvars[0]] = out
  return env


def _exact_cast(eqn) -> bool:
  """Whether a cast keeps a counter's value: not float -> integer (truncation)."""
  new = eqn.params.get("new_dtype")
  src = getattr(eqn.invars[0].aval, "dtype", None)
  return not (getattr(src, "kind", "") == "f" and getattr(new, "kind", "") in ("i", "u"))


def _trip_count(cond_jaxpr, body_jaxpr, consts_c, consts_b, init, carry_known):
  """Trip count of a counted while loop, or None when it cannot be proven.

  A counted loop has a condition ``counter + a <cmp> bound`` where the bound is a
  constant (a literal, a known const or a carry the body passes through unchanged)
  and a body that adds a constant step to the counter. ``consts_c``/``consts_b`` are
  the known consts of the condition and body, ``init`` the known initial carries and
  ``carry_known`` those the body passes through unchanged (None elsewhere).
  """
  cj, bj = cond_jaxpr.jaxpr, body_jaxpr.jaxpr
  if len(cj.outvars) != 1:
    return None
  body_in = bj.invars[len(consts_b):]

  def carry_value(i):
    return carry_known[i] if carry_known[i] is not None else _Lin(i, 0)

  seed = _seed(cj.constvars, _closed_consts(cond_jaxpr))
  seed.update(_seed(cj.invars[:len(consts_c)], consts_c))
  seed.update({v: carry_value(i) for i, v in enumerate(cj.invars[len(consts_c):])})
  cenv = _affine_eval(cj, seed)
  out = cj.outvars[0]
  cmp = next((e for e in reversed(cj.eqns) if e.outvars and e.outvars[0] is out), None)
  if cmp is None or cmp.primitive.name not in _CMP:
    return None
  lhs, rhs = (read(v, cenv) for v in cmp.invars)
  op = cmp.primitive.name
  counter_first = isinstance(lhs, _Lin)
  if not counter_first:
    lhs, rhs = rhs, lhs
  if not isinstance(lhs, _Lin) or rhs is None or isinstance(rhs, _Lin):
    return None
  i = lhs.index
  start = init[i]
  if start is None:
    return None

  seed = _seed(bj.constvars, _closed_consts(body_jaxpr))
  seed.update(_seed(bj.invars[:len(consts_b)], consts_b))
  seed.update({v: carry_value(j) for j, v in enumerate(body_in)})
  benv = _affine_eval(bj, seed)
  new = benv.get(bj.outvars[i])
  if isinstance(bj.outvars[i], jcore.Literal) or not isinstance(new, _Lin) or new.index != i:
    return None
  return counted_loop_trips(op, counter_first, lhs.offset, rhs, start, new.offset)


def _seed(variables, values) -> dict:
  return {v: k for v, k in zip(variables, values, strict=True) if k is not None}


def _closed_consts(closed):
  return [known_scalar(c) for c in getattr(closed, "consts", ())]


@register(P.while_p)
def _while(ctx: RuleContext, *args, cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts, **_):
  n_carry = len(args) - cond_nconsts - body_nconsts
  bj = body_jaxpr.jaxpr
  init = [ctx.known(cond_nconsts + body_nconsts + i) for i in range(n_carry)]
  # A carry the body passes through unchanged is a constant inside the loop too, so
  # nested counted loops bounded by it are recognised.
  carry_known = [init[i] if bj.outvars[i] is bj.invars[body_nconsts + i] else None
                 for i in range(n_carry)]
  consts_c = [ctx.known(i) for i in range(cond_nconsts)]
  consts_b = [ctx.known(cond_nconsts + i) for i in range(body_nconsts)]
  body = ctx.walk(body_jaxpr, known=consts_b + carry_known)
  cond = ctx.walk(cond_jaxpr, known=consts_c + carry_known)
  trips = _trip_count(cond_jaxpr, body_jaxpr, consts_c, consts_b, init, carry_known)
  given = None
  if trips is None:
    trips = given = ctx.trip_count(ctx.scope)
  k_body, k_cond = loop_factors(trips)  # unknown: body once, condition twice
  total = body * k_body + cond * k_cond
  if trips is None:
    where = ctx.scope or TOP_LEVEL
    why = (f"while loop at scope {where!r}: trip count unknown, body counted once "
           f"(pass trip_counts={{{where!r}: n}} to count it exactly)")
    return total + Cost(inexact=(why,), cond=ctx.cond)
  if given is not None:
    where = ctx.scope or TOP_LEVEL
    note = f"while loop at scope {where!r}: {given} trips, as given by trip_counts="
    return total + Cost(assumed=(note,), cond=ctx.cond)
  return total


# -- cond / switch ------------------------------------------------------------------

@register(P.cond_p)
def _cond(ctx: RuleContext, index, *args, branches, **_):
  known = [ctx.known(1 + i) for i in range(len(args))]
  idx = ctx.known(0)
  if idx is not None:
    return ctx.walk(branches[max(0, min(int(idx), len(branches) - 1))], known=known)
  costs = [ctx.walk(b, known=known) for b in branches]
  picked = pick_branches([(c.fpo, c.int_ops) for c in costs], ctx.cond)
  if len(picked) == 1:
    chosen = costs[picked[0][0]]
  else:  # mean
    chosen = sum(costs[1:], costs[0]) / len(costs)
  # Whatever branch the policy picks, a primitive without a rule or a loop of unknown
  # length in *any* branch makes the count inexact: never drop those notes.
  uncounted: dict[str, Any] = {}  # the largest occurrence count of each name over the branches
  for c in costs:
    for name, n in c.uncounted.items():
      uncounted[name] = max(uncounted.get(name, 0), n)
  inexact = tuple(dict.fromkeys(why for c in costs for why in c.inexact))
  assumed = tuple(dict.fromkeys(why for c in costs for why in c.assumed))
  return dataclasses.replace(chosen, uncounted=uncounted, inexact=inexact, assumed=assumed)
