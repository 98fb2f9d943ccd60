"""Reductions, cumulative ops and windowed reductions.

Convention: reducing n elements to one takes n - 1 operations: ADDs for sum, compares
(priced as ADD) for max/min/argmax/argmin, MULs for prod. Cumulative ops follow the
serial formula (n - 1 per row). Windowed reductions count every tap of the window,
padding included (dense convention, as for convolutions).
"""

from __future__ import annotations

import math

from jax import lax
from jax.extend.core import primitives as P

from jaxgreen.cost import Counts
from jaxgreen.jaxpr.registry import register
from jaxgreen.jaxpr.rules._util import is_complex, ops, size

# (price name, is it a MUL?) per reduction primitive
_REDUCE = {"reduce_sum": "add", "reduce_max": "max", "reduce_min": "min",
           "reduce_prod": "mul", "argmax": "max", "argmin": "min"}


def _priced(ctx, price_name: str, n: int, complex_: bool = False) -> Counts:
  a, m = ctx.model.price(price_name)
  if complex_ and price_name == "add":
    a *= 2
  elif complex_ and price_name == "mul":
    a, m = 2, 4
  return ops(adds=a * n, muls=m * n)


def _reduce(ctx, x, **_):
  n_in, n_out = size(x), size(ctx.outs[0])
  return _priced(ctx, _REDUCE[ctx.eqn.primitive.name], n_in - n_out, is_complex(x))


def _reduce_bits(ctx, x, **_):
  return ops(int_ops=size(x) - size(ctx.outs[0]))


def _reduce_generic(ctx, *args, computation, jaxpr=None, dimensions, **_):
  """lax.reduce with a user computation: (n - 1) applications per output."""
  del computation
  n_ops = len(args) // 2
  steps = size(args[0]) - size(ctx.outs[0])
  body = ctx.walk(jaxpr)
  del n_ops
  return body * steps


def _cumulative(ctx, x, *, axis, **_):
  rows_steps = size(x) - size(x) // max(1, x.shape[axis]) if x.shape[axis] else 0
  name = ctx.eqn.primitive.name
  if name == "cumlogsumexp":
    # log(e^a + e^b) = max(a, b) + log1p(exp(-|a - b|)): compare, sub, exp, log1p, add
    ea, em = ctx.model.price("exp")
    la, lm = ctx.model.price("log1p")
    ca, _ = ctx.model.price("max")
    per = (ca + 1 + ea + la + 1, em + lm)
    return ops(adds=per[0] * rows_steps, muls=per[1] * rows_steps,
               transcendentals=2 * rows_steps)
  price = {"cumsum": "add", "cumprod": "mul", "cummax": "max", "cummin": "min"}[name]
  return _priced(ctx, price, rows_steps, is_complex(x))


def _window_taps(window_dimensions) -> int:
  return math.prod(window_dimensions)


def _reduce_window_prim(ctx, x, *, window_dimensions, **_):
  price = {"reduce_window_sum": "add", "reduce_window_max": "max",
           "reduce_window_min": "min"}[ctx.eqn.primitive.name]
  steps = size(ctx.outs[0]) * (_window_taps(window_dimensions) - 1)
  return _priced(ctx, price, steps, is_complex(x))


def _reduce_window_generic(ctx, *args, jaxpr, window_dimensions, **_):
  steps = size(ctx.outs[0]) * (_window_taps(window_dimensions) - 1)
  return ctx.walk(jaxpr) * steps


def _select_and_scatter_add(ctx, source, operand, *, window_dimensions, **_):
  """Max-pool gradient: pick each window's max (taps - 1 compares), add the source."""
  ca, cm = ctx.model.price("ge")
  compares = size(source) * (_window_taps(window_dimensions) - 1)
  adds = size(source)
  return ops(adds=ca * compares + adds, muls=cm * compares)


def _select_and_gather_add(ctx, tangents, operand, *, window_dimensions, **_):
  """Max-pool JVP: pick each window's max (taps - 1 compares), gather its tangent."""
  ca, cm = ctx.model.price("ge")
  compares = size(ctx.outs[0]) * (_window_taps(window_dimensions) - 1)
  return ops(adds=ca * compares, muls=cm * compares)


def _select_and_scatter(ctx, *args, select_jaxpr, scatter_jaxpr, window_dimensions, **_):
  source = args[0]
  taps = _window_taps(window_dimensions)
  sel = ctx.walk(select_jaxpr) * (size(source) * (taps - 1))
  sca = ctx.walk(scatter_jaxpr) * size(source)
  return sel + sca


register(P.reduce_sum_p, P.reduce_max_p, P.reduce_min_p, P.reduce_prod_p, P.argmax_p,
         P.argmin_p)(_reduce)
register(P.reduce_and_p, P.reduce_or_p, P.reduce_xor_p)(_reduce_bits)
register(P.reduce_p)(_reduce_generic)
register(P.cumsum_p, P.cumprod_p, P.cummax_p, P.cummin_p, P.cumlogsumexp_p)(_cumulative)
register(P.reduce_window_sum_p, P.reduce_window_max_p, P.reduce_window_min_p)(
    _reduce_window_prim)
register(P.reduce_window_p)(_reduce_window_generic)
register(P.select_and_scatter_add_p)(_select_and_scatter_add)
register(P.select_and_gather_add_p)(_select_and_gather_add)
register(P.select_and_scatter_p)(_select_and_scatter)
del lax
