"""Dot products and other contractions: multiply-adds summed into outputs."""

from __future__ import annotations


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



def ragged_dot_counts(out_elems: int, k: int, groups: int, ragged_contracting: bool,
                      complex_: bool = False) -> tuple[int, int]:
  """(ADD, MUL) of ``ragged_dot_general``.

  A ragged non-contracting or batch dimension (the forward pass and the input
  gradient of a mixture of experts) makes each output element one length-``k`` dot
  with its group's weights: :func:`dot_counts`. A ragged contracting dimension (the
  weight gradient) gives the output a leading group axis of size ``groups``, and the
  groups partition the ``k`` contracted positions: each of the ``out_elems / groups``
  (group-free) outputs does ``k`` products in all and ``k - groups`` accumulating ADDs
  (every group non-empty; data-dependent otherwise).
  """
  if not ragged_contracting:
    return dot_counts(out_elems, k, complex_)
  per_group = out_elems // max(1, groups)
  return contraction_counts(per_group * k, per_group * min(groups, k), complex_)


def contraction_counts(products: int, outputs: int, complex_: bool = False) -> tuple[int, int]:
  """(ADD, MUL) of ``products`` multiply-adds summed into ``outputs`` non-empty sums
  (each sum's first product needs no ADD); complex: 4 MUL + 2 ADD per product, 2 ADD
  per accumulation."""
  if products <= 0:
    return 0, 0
  sums = max(0, products - outputs)
  if complex_:
    return 2 * products + 2 * sums, 4 * products
  return sums, products
