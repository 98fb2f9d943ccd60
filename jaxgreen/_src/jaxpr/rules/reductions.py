"""Reductions, cumulative ops and windowed reductions.

Convention: reducing n elements to one takes n - 1 operations: ADDs for sum, compares
(priced as ADD) for max/min/argmax/argmin, MULs for prod. Cumulative ops follow the
serial formula (n - 1 per row). Windowed reductions count every tap of the window,
padding included (dense convention, as for convolutions), except a prefix window (a
window as long as its axis, padded by n - 1 on one side: the form cumulative ops lower
to), counted as the cumulative op it is. The formulas live in :mod:`jaxgreen._src.formulas`,
shared with the HLO walker.
"""

from __future__ import annotations

import math

from jax.extend.core import primitives as P

from jaxgreen._src.formulas import logaddexp_price, reduce_steps, scan_steps, window_reduce_steps
from jaxgreen._src.jaxpr.interpreter import RuleContext
from jaxgreen._src.jaxpr.registry import register
from jaxgreen._src.jaxpr.rules._util import is_complex, model_price, ops, priced, size

# The element operation each reduction primitive repeats.
_REDUCE = {"reduce_sum": "add", "reduce_max": "max", "reduce_min": "min",
           "reduce_prod": "mul", "argmax": "max", "argmin": "min"}


def _steps(x, out) -> int:
  """Operations to reduce ``x`` to ``out``: inputs - outputs (n - 1 per output), and
  none for an empty reduction (its outputs are the init value)."""
  return reduce_steps(size(x), size(out))


def _reduce(ctx: RuleContext, x, **_):
  steps = _steps(x, ctx.outs[0])
  return priced(ctx.model, _REDUCE[ctx.name], steps, is_complex(x))


def _reduce_bits(ctx: RuleContext, x, **_):
  return ops(int_ops=_steps(x, ctx.outs[0]))


def _reduce_generic(ctx: RuleContext, *args, jaxpr, **_):
  """lax.reduce with a user computation: (n - 1) applications per output."""
  return ctx.walk(jaxpr) * _steps(args[0], ctx.outs[0])


def _cumulative(ctx: RuleContext, x, *, axis, **_):
  rows_steps = scan_steps(size(x), x.shape[axis])  # rows * (n - 1)
  name = ctx.name
  if name == "cumlogsumexp":
    a, m = logaddexp_price(ctx.model)  # max(a, b) + log1p(exp(-|a - b|)), NaN-guarded
    return ops(adds=a * rows_steps, muls=m * rows_steps, transcendentals=2 * rows_steps)
  price = {"cumsum": "add", "cumprod": "mul", "cummax": "max", "cummin": "min"}[name]
  return priced(ctx.model, price, rows_steps, is_complex(x))


def _window_taps(window_dimensions) -> int:
  return math.prod(window_dimensions)


def _window_steps(ctx: RuleContext, x, window_dimensions, params) -> int:
  return window_reduce_steps(x.shape, size(ctx.outs[0]), window_dimensions,
                             params.get("window_strides", ()), params.get("padding", ()),
                             params.get("base_dilation", ()),
                             params.get("window_dilation", ()))


def _reduce_window_prim(ctx: RuleContext, x, *, window_dimensions, **params):
  price = {"reduce_window_sum": "add", "reduce_window_max": "max",
           "reduce_window_min": "min"}[ctx.name]
  steps = _window_steps(ctx, x, window_dimensions, params)
  return priced(ctx.model, price, steps, is_complex(x))


def _reduce_window_generic(ctx: RuleContext, *args, jaxpr, window_dimensions, **params):
  steps = _window_steps(ctx, args[0], window_dimensions, params)
  return ctx.walk(jaxpr) * steps


def _select_and_scatter_add(ctx: RuleContext, source, operand, *, window_dimensions, **_):
  """Max-pool gradient: pick each window's max (taps - 1 compares), add the source."""
  ca, cm = model_price(ctx.model, "ge")
  aa, am = model_price(ctx.model, "add")
  compares = size(source) * (_window_taps(window_dimensions) - 1)
  n = size(source)  # one scatter-add of each source element
  return ops(adds=ca * compares + aa * n, muls=cm * compares + am * n)


def _select_and_gather_add(ctx: RuleContext, tangents, operand, *, window_dimensions, **_):
  """Max-pool JVP: pick each window's max (taps - 1 compares), gather its tangent."""
  ca, cm = model_price(ctx.model, "ge")
  compares = size(ctx.outs[0]) * (_window_taps(window_dimensions) - 1)
  return ops(adds=ca * compares, muls=cm * compares)


def _select_and_scatter(ctx: RuleContext, *args, select_jaxpr, scatter_jaxpr, window_dimensions,
                        **_):
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
