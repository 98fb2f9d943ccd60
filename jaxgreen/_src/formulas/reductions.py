"""Reductions, cumulative ops, windowed reductions, sorting and selection.

Counts of reducer applications and compares, from shapes.
"""

from __future__ import annotations

import math


def clog2(n: int) -> int:
  """ceil(log2(n)) for n >= 1 (0 for n <= 1)."""
  return max(0, (int(n) - 1).bit_length())



def reduce_steps(in_elems: int, out_elems: int) -> int:
  """Applications of the reducer to reduce ``in_elems`` to ``out_elems`` outputs: n - 1
  per output (inputs - outputs), none for an empty reduction (its outputs are the init
  value). Also argmax/argmin: one compare per step, whatever index bookkeeping the
  lowering adds."""
  return max(0, int(in_elems) - int(out_elems))


def scan_steps(elems: int, n: int) -> int:
  """Applications of the combiner in a cumulative op (cumsum, cumprod, cummax, cummin,
  cumlogsumexp) of ``elems`` elements along an axis of length ``n``: n - 1 per row, as
  a sequential scan does. XLA's reduce-window form (a window as long as the axis,
  n - 1 padding on one side) is counted by this formula too, not tap by tap."""
  if n <= 0:
    return 0
  return elems // n * (n - 1)


def prefix_window_axis(in_dims, window, strides=(), padding=(), base_dilation=(),
                       window_dilation=()) -> int | None:
  """The axis of a windowed reduction that is a prefix scan, else None.

  A prefix scan (what jax lowers cumsum & co. to): exactly one window dimension is not
  1, that window is as long as the axis, the axis is padded by its length - 1 on one
  side only, strides and dilations are 1. ``padding`` holds (lo, hi) pairs.
  """
  nd = len(window)
  if nd != len(in_dims):
    return None
  ones = (1,) * nd
  if tuple(strides or ones) != ones or tuple(base_dilation or ones) != ones \
      or tuple(window_dilation or ones) != ones:
    return None
  pads = list(padding) or [(0, 0)] * nd
  axes = [i for i, w in enumerate(window) if w != 1]
  if len(axes) != 1 or any(tuple(p) != (0, 0) for i, p in enumerate(pads) if i != axes[0]):
    return None
  i = axes[0]
  n = in_dims[i]
  if window[i] != n or n < 2 or tuple(pads[i]) not in ((n - 1, 0), (0, n - 1)):
    return None
  return i


def window_reduce_steps(in_dims, out_elems: int, window, strides=(), padding=(),
                        base_dilation=(), window_dilation=()) -> int:
  """Applications of the reducer in a windowed reduction: (taps - 1) per output, padded
  taps included (the dense convention, as for convolutions), except for a prefix scan
  (:func:`prefix_window_axis`), counted as the cumulative op it is (:func:`scan_steps`).
  """
  axis = prefix_window_axis(in_dims, window, strides, padding, base_dilation,
                            window_dilation)
  if axis is not None:
    return scan_steps(math.prod(in_dims), in_dims[axis])
  return max(0, int(out_elems)) * max(0, math.prod(window) - 1)


# -- sorting and selection ------------------------------------------------------------

def sort_compares(elems: int, n: int, num_keys: int = 1) -> int:
  """Compares of sorting ``elems`` elements in rows of ``n``: n * ceil(log2 n) per row
  (merge-sort bound), times the number of keys (a lexicographic comparison compares
  every key: one compare each). Operands that are not keys (argsort's indices, the
  values of a key-value sort) cost nothing. jaxpr: ``sort``'s ``num_keys``; HLO: the
  operands whose parameters the comparator reads."""
  if n <= 0:
    return 0
  return elems // n * n * clog2(n) * max(1, int(num_keys))


def top_k_compares(n: int, k: int) -> int:
  """Compares to select the top ``k`` of ``n`` with a size-k heap (none when k = 0):
  each of the n - k remaining elements is compared with the heap's minimum and sifted
  down when it enters (1 + ceil(log2 k)), then the heap is sorted (k ceil(log2 k)).
  ``top_k`` (jaxpr), ``chlo.top_k`` (lowered), the ``TopK``/``__gpu$TopK`` custom calls
  (compiled) and ``approx_top_k``/``ApproxTopK`` (counted as the exact top-k it
  approximates) all use it, per row."""
  if k <= 0 or n <= 0:
    return 0
  k = min(k, n)
  return (n - k) * (1 + clog2(k)) + k * clog2(k)

