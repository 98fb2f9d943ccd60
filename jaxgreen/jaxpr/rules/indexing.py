"""Scatter with arithmetic, sorting and selection.

* ``scatter-add``/``scatter-sub``: one ADD per update element; ``scatter-mul``: one MUL;
  ``scatter-max``/``scatter-min``: one compare. Plain ``scatter`` and ``gather`` move
  data only (they are on the zero-cost list).
* ``sort``: n * ceil(log2 n) compares per sorted row (merge-sort bound), on the keys.
* ``top_k``: (n - k) * (1 + ceil(log2 k)) + k * ceil(log2 k) compares per row (a
  size-k heap: each remaining element is compared with the heap's minimum and, when
  it enters, sifted down; the heap is sorted at the end).
* ``approx_top_k``: counted as the exact ``top_k`` it approximates.
"""

from __future__ import annotations

from jax.extend.core import primitives as P

from jaxgreen.jaxpr.interpreter import dtype_info
from jaxgreen.jaxpr.registry import register
from jaxgreen.jaxpr.rules._util import clog2, is_complex, ops, priced, size

_SCATTER_PRICE = {"scatter-add": "add", "scatter-sub": "sub", "scatter-mul": "mul",
                  "scatter-max": "max", "scatter-min": "min"}


def _scatter(ctx, operand, indices, updates, **_):
  return priced(ctx.model, _SCATTER_PRICE[ctx.eqn.primitive.name], size(updates),
                is_complex(updates))


register(P.scatter_add_p, P.scatter_mul_p, P.scatter_max_p, P.scatter_min_p,
         "scatter-sub")(_scatter)


def _compares(ctx, n: int, dtype_float: bool):
  a, m = ctx.model.price("lt")
  return ops(adds=a * n, muls=m * n) if dtype_float else ops(int_ops=n)


@register(P.sort_p)
def _sort(ctx, *operands, dimension, num_keys, **_):
  keys = operands[:num_keys]
  x = operands[0]
  n = x.shape[dimension] if x.ndim else 1
  rows = size(x) // max(1, n)
  compares = rows * n * clog2(n) * num_keys
  is_float = any(dtype_info(k.dtype)[0] for k in keys)
  return _compares(ctx, compares, is_float)


def top_k_compares(n: int, k: int) -> int:
  """Compares to select the top ``k`` of ``n`` with a size-k heap (none when k = 0)."""
  if k <= 0 or n <= 0:
    return 0
  k = min(k, n)
  return (n - k) * (1 + clog2(k)) + k * clog2(k)


@register(P.top_k_p)
def _top_k(ctx, x, *args, k=None, **_):
  if k is None:  # k given as an operand
    k = ctx.outs[0].shape[-1]
  n = x.shape[-1]
  rows = size(x) // max(1, n)
  return _compares(ctx, rows * top_k_compares(n, k), dtype_info(x.dtype)[0])


@register(P.approx_top_k_p)
def _approx_top_k(ctx, x, *args, k, reduction_dimension=-1, **_):
  n = x.shape[reduction_dimension]
  rows = size(x) // max(1, n)
  return _compares(ctx, rows * top_k_compares(n, k), dtype_info(x.dtype)[0])
