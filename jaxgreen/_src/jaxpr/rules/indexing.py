"""Scatter with arithmetic, sorting and selection.

* ``scatter-add``/``scatter-sub``: one ADD per update element; ``scatter-mul``: one MUL;
  ``scatter-max``/``scatter-min``: one compare. ``gather`` and a plain ``scatter``
  (``x.at[i].set``: no update computation) move data only; a ``scatter`` with an update
  computation (``x.at[i].apply(f)``, ``lax.scatter_apply``) runs it once per update
  element, as XLA's scatter runs its ``to_apply``.
* ``sort``: n * ceil(log2 n) compares per sorted row (merge-sort bound), one per key
  (``num_keys``); the other operands (argsort's indices) cost nothing.
* ``top_k``: (n - k) * (1 + ceil(log2 k)) + k * ceil(log2 k) compares per row (a
  size-k heap: each remaining element is compared with the heap's minimum and, when
  it enters, sifted down; the heap is sorted at the end).
* ``approx_top_k``: counted as the exact ``top_k`` it approximates.

The formulas live in :mod:`jaxgreen._src.formulas` (``sort_compares``, ``top_k_compares``),
shared with the HLO walker.
"""

from __future__ import annotations

from jax.extend.core import primitives as P

from jaxgreen._src.cost import Cost, Counts
from jaxgreen._src.formulas import sort_compares, top_k_compares
from jaxgreen._src.jaxpr.interpreter import RuleContext, dtype_info
from jaxgreen._src.jaxpr.registry import register
from jaxgreen._src.jaxpr.rules._util import is_complex, model_price, ops, priced, size

_SCATTER_PRICE = {"scatter-add": "add", "scatter-sub": "sub", "scatter-mul": "mul",
                  "scatter-max": "max", "scatter-min": "min"}


def _scatter(ctx: RuleContext, operand, indices, updates, **_):
  return priced(ctx.model, _SCATTER_PRICE[ctx.name], size(updates),
                is_complex(updates))


register(P.scatter_add_p, P.scatter_mul_p, P.scatter_max_p, P.scatter_min_p,
         "scatter-sub")(_scatter)


@register(P.scatter_p)
def _scatter_update(ctx: RuleContext, operand, indices, updates, *, update_jaxpr=None, **_):
  """``scatter``: its update computation (jax's ``update_jaxpr``, a scalar function of
  the operand element and the update) once per update element; none for an overwrite."""
  if update_jaxpr is None:
    return ops()
  b = ctx.bytes  # the scatter's own traffic, as for any counted equation
  own = Cost(bytes=b, by_primitive={"scatter": Counts(bytes=b)}, by_scope={"": Counts(bytes=b)})
  return ctx.walk(update_jaxpr) * size(updates) + own


def _compares(ctx: RuleContext, n: int, dtype_float: bool):
  a, m = model_price(ctx.model, "lt")
  return ops(adds=a * n, muls=m * n) if dtype_float else ops(int_ops=n)


@register(P.sort_p)
def _sort(ctx: RuleContext, *operands, dimension, num_keys, **_):
  keys = operands[:num_keys]
  x = operands[0]
  n = x.shape[dimension] if x.ndim else 1
  compares = sort_compares(size(x), n, num_keys)
  is_float = any(dtype_info(k.dtype)[0] for k in keys)
  return _compares(ctx, compares, is_float)


@register(P.top_k_p)
def _top_k(ctx: RuleContext, x, *args, k=None, axis=-1, **_):
  if k is None:  # k given as an operand
    k = ctx.outs[0].shape[axis]
  n = x.shape[axis] if x.ndim else 1
  rows = size(x) // max(1, n)
  return _compares(ctx, rows * top_k_compares(n, k), dtype_info(x.dtype)[0])


@register(P.approx_top_k_p)
def _approx_top_k(ctx: RuleContext, x, *args, k, reduction_dimension=-1, **_):
  n = x.shape[reduction_dimension]
  rows = size(x) // max(1, n)
  return _compares(ctx, rows * top_k_compares(n, k), dtype_info(x.dtype)[0])
