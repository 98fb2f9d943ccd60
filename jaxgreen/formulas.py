"""The counting conventions, one formula each, shared by every stage.

The jaxpr rules (:mod:`jaxgreen.jaxpr.rules`) and the HLO walker
(:mod:`jaxgreen.hlo.compiled`, which also counts the lowered StableHLO) read shapes and
attributes in their own way, then call these functions for the arithmetic. A
convention changes here, once, and every stage follows; ``tests/test_stage_parity.py``
checks that single-operation programs count the same at every stage.

Every function is pure integer arithmetic on shapes (no jax import), so it is exact.
"""

from __future__ import annotations


def clog2(n: int) -> int:
  """ceil(log2(n)) for n >= 1 (0 for n <= 1)."""
  return max(0, (int(n) - 1).bit_length())


def dot_counts(out_elems: int, k: int, complex_: bool = False) -> tuple[int, int]:
  """(ADD, MUL) of ``out_elems`` dot products of length ``k``.

  Real: MUL = out * K, ADD = out * (K - 1) (a fused multiply-add is one MUL and one
  ADD; the first product of each output needs no ADD). Complex: each product is
  4 MUL + 2 ADD and accumulating it 2 ADD.
  """
  if k <= 0 or out_elems <= 0:
    return 0, 0
  if complex_:
    return out_elems * (2 * k + 2 * (k - 1)), out_elems * 4 * k
  return out_elems * (k - 1), out_elems * k
