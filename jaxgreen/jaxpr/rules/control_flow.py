"""Loops, branches and calls: walk the body and scale it.

* ``scan``: body x length (nested scans multiply).
* ``while``: when the loop is a counted loop (a carry compared against a constant bound
  and stepped by a constant, as ``fori_loop`` and hand-written counters produce), the
  body is counted x trip count and the condition x (trip count + 1). Otherwise the body
  and condition are counted once, ``Cost.inexact`` names the loop, and
  ``trip_counts={scope: n}`` supplies the count.
* ``cond``/``switch``: the branch chosen by the ``cond`` policy (max / min / mean FPO);
  a constant index selects its branch exactly.
* Calls (jit, closed_call, custom_jvp/vjp, checkpoint/remat, custom_linear_solve,
  linear_call): the callee, as if inlined.
"""

from __future__ import annotations

import math

from jax.extend import core as jcore
from jax.extend.core import primitives as P

from jaxgreen.cost import Cost
from jaxgreen.jaxpr.registry import register


# -- calls ---------------------------------------------------------------------------

def _call(param: str):
  def rule(ctx, *args, **params):
    return ctx.walk(params[param], known=[ctx.known(i) for i in range(len(args))])

  return rule


register(P.jit_p)(_call("jaxpr"))
register(P.closed_call_p, P.call_p, P.custom_jvp_call_p, P.custom_vjp_call_p)(
    _call("call_jaxpr"))
register(P.remat_p)(_call("jaxpr"))
register(P.linear_call_p if hasattr(P, "linear_call_p") else "linear_call")(_call("callee"))


@register(P.linear_solve_p)
def _custom_linear_solve(ctx, *args, const_lengths, jaxprs, **_):
  # Executing the forward program runs `solve` (with its consts); matvec is only used
  # for transposition and the residual check is not part of the primitive.
  return ctx.walk(jaxprs.solve)


# -- scan ------------------------------------------------------------------------------

@register(P.scan_p)
def _scan(ctx, *args, jaxpr, length, num_consts, **_):
  known = [ctx.known(i) for i in range(num_consts)] + [None] * (len(args) - num_consts)
  return ctx.walk(jaxpr, known=known) * length


# -- while ----------------------------------------------------------------------------

_CMP = ("lt", "le", "gt", "ge", "ne")
_MIRROR = {"lt": "gt", "le": "ge", "gt": "lt", "ge": "le", "ne": "ne"}


def _trip_count(ctx, cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts):
  """Trip count of a counted while loop, or None when it cannot be proven."""
  cj, bj = cond_jaxpr.jaxpr, body_jaxpr.jaxpr
  if len(cj.outvars) != 1 or not cj.eqns:
    return None
  n_carry = len(bj.outvars)
  carry_at = {v: i for i, v in enumerate(cj.invars[cond_nconsts:])}
  const_at = {v: i for i, v in enumerate(cj.invars[:cond_nconsts])}
  init = [ctx.known(cond_nconsts + body_nconsts + i) for i in range(n_carry)]
  body_in = bj.invars[body_nconsts:]
  body_const_known = [ctx.known(cond_nconsts + i) for i in range(body_nconsts)]
  body_consts = dict(zip(bj.invars[:body_nconsts], body_const_known))

  cmp = cj.eqns[-1]
  if cmp.outvars[0] is not cj.outvars[0] or cmp.primitive.name not in _CMP:
    return None
  if len(cj.eqns) != 1:  # the condition must be one comparison; anything else is data-dependent
    return None

  def side(v):
    """('carry', i) | ('const', value) | None"""
    if isinstance(v, jcore.Literal):
      return ("const", _scalar(v.val))
    if v in carry_at:
      return ("carry", carry_at[v])
    if v in const_at:
      val = ctx.known(const_at[v])
      return ("const", val) if val is not None else None
    return None

  lhs, rhs = side(cmp.invars[0]), side(cmp.invars[1])
  op = cmp.primitive.name
  if lhs is None or rhs is None:
    return None
  if lhs[0] != "carry":
    lhs, rhs, op = rhs, lhs, _MIRROR[op]
  if lhs[0] != "carry":
    return None
  i = lhs[1]
  if rhs[0] == "carry":  # bound held in a carry that the body passes through unchanged
    j = rhs[1]
    if bj.outvars[j] is not body_in[j] or init[j] is None:
      return None
    bound = init[j]
  else:
    bound = rhs[1]
  step = _step(bj, body_in[i], bj.outvars[i], body_consts)
  start = init[i]
  if None in (step, start, bound) or step == 0:
    return None
  return _count(op, start, bound, step)


def _step(bj, var_in, var_out, body_consts):
  """The constant added to the counter each iteration, or None."""
  for eqn in bj.eqns:
    if eqn.outvars[0] is not var_out:
      continue
    name = eqn.primitive.name
    if name not in ("add", "sub"):
      return None
    a, b = eqn.invars
    if b is var_in and name == "add":
      a, b = b, a
    if a is not var_in:
      return None
    val = _scalar(b.val) if isinstance(b, jcore.Literal) else body_consts.get(b)
    if val is None:
      return None
    return val if name == "add" else -val
  return None


def _count(op, start, bound, step):
  span = bound - start
  if op == "lt" and step > 0:
    return max(0, math.ceil(span / step))
  if op == "le" and step > 0:
    return max(0, math.floor(span / step) + 1)
  if op == "gt" and step < 0:
    return max(0, math.ceil(span / step))
  if op == "ge" and step < 0:
    return max(0, math.floor(span / step) + 1)
  if op == "ne" and span % step == 0 and span / step >= 0:
    return span // step
  return None


def _scalar(val):
  try:
    return val.item() if hasattr(val, "item") else val
  except (ValueError, TypeError):
    return None


@register(P.while_p)
def _while(ctx, *args, cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts, **_):
  body_known = ([ctx.known(cond_nconsts + i) for i in range(body_nconsts)]
                + [None] * (len(args) - cond_nconsts - body_nconsts))
  cond_known = ([ctx.known(i) for i in range(cond_nconsts)]
                + [None] * (len(args) - cond_nconsts - body_nconsts))
  body = ctx.walk(body_jaxpr, known=body_known)
  cond = ctx.walk(cond_jaxpr, known=cond_known)
  trips = ctx.walker.trip_count_override(ctx.scope)
  if trips is None:
    trips = _trip_count(ctx, cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts)
  if trips is None:
    where = ctx.scope or "<top level>"
    why = (f"while loop at scope {where!r}: trip count unknown, body counted once "
           f"(pass trip_counts={{{where!r}: n}} to count it exactly)")
    return body + cond + Cost(inexact=(why,), cond=ctx.walker.cond)
  return body * trips + cond * (trips + 1)


# -- cond / switch ------------------------------------------------------------------

@register(P.cond_p)
def _cond(ctx, index, *args, branches, **_):
  known = [ctx.known(1 + i) for i in range(len(args))]
  idx = ctx.known(0)
  if idx is not None:
    return ctx.walk(branches[max(0, min(int(idx), len(branches) - 1))], known=known)
  costs = [ctx.walk(b, known=known) for b in branches]
  policy = ctx.walker.cond
  if policy == "max":
    return max(costs, key=lambda c: (c.fpo, c.int_ops))
  if policy == "min":
    return min(costs, key=lambda c: (c.fpo, c.int_ops))
  return sum(costs[1:], costs[0]) * (1 / len(costs))
