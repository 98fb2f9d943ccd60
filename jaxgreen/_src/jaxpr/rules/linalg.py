"""Contractions, convolutions, FFT and dense linear algebra.

Conventions (stated once, used everywhere):

* ``dot_general``: MUL = B*M*N*K and ADD = B*M*N*(K-1), B the product of batch dims,
  K the product of contracting dims. (A fused multiply-add is one MUL and one ADD; the
  first product of each output needs no ADD.)
* ``conv_general_dilated``: each output element multiplies the kernel taps of its
  window that land on a real input element or on edge padding (torchvision's
  forward convention: every window tap, padding included), times C_in / groups;
  ``rhs_dilation`` adds no taps. A transposed convolution (lhs-dilated, or at stride 1
  with an output longer than its input) counts each real input element times each
  kernel tap instead (torch's convention), so the input gradient of a convolution
  never counts more than its forward. Without lhs dilation, MUL = out * (C_in /
  groups) * prod(kernel_spatial); ADD = MUL - 1 per output. Exact per-dimension
  counts: :func:`jaxgreen._src.formulas.conv_counts`.
* Direct factorizations (Cholesky, LU, QR, triangular solve, Householder products,
  Hessenberg / tridiagonal reduction) use the exact multiplication and addition counts
  of LAPACK Working Note 41 (Blackford & Dongarra, "Installation Guide for LAPACK",
  Appendix "Operation counts"), rounded to the nearest integer.
* Iterative decompositions (eigh, eig, svd, schur) use the leading-order flop counts
  of Golub & Van Loan, "Matrix Computations", 4th ed. (Fig. 8.6.1 and §7.5.6), split
  evenly between ADD and MUL.
* FFT: a length-n complex transform is 5 n log2 n flops, 2 n log2 n MUL and
  3 n log2 n ADD (radix-2 Cooley-Tukey: n/2 log2 n butterflies of one complex MUL and
  two complex ADDs); real transforms are half of that.
"""

from __future__ import annotations

import math
from fractions import Fraction as F

from jax.extend.core import primitives as P

from jaxgreen._src.formulas import conv_counts, dot_counts, ragged_dot_counts
from jaxgreen._src.jaxpr.interpreter import RuleContext
from jaxgreen._src.jaxpr.registry import register
from jaxgreen._src.jaxpr.rules._util import is_complex, model_price, ops, size

# Real operations per complex multiply-accumulate: (a+bi)(c+di) is 4 MUL + 2 ADD, and
# accumulating it is 2 ADD.
COMPLEX_MAC = (4, 4)


def _int(x) -> int:
  return int(round(x))


# -- dot_general ------------------------------------------------------------------

@register(P.dot_general_p)
def _dot_general(ctx: RuleContext, lhs, rhs, *, dimension_numbers, **_):
  (lhs_contract, _), _ = dimension_numbers
  k = math.prod(lhs.shape[d] for d in lhs_contract)
  adds, muls = dot_counts(size(ctx.outs[0]), k, is_complex(lhs) or is_complex(rhs))
  return ops(adds=adds, muls=muls)


@register("ragged_dot_general")
def _ragged_dot_general(ctx: RuleContext, lhs, rhs, group_sizes, *,
                        ragged_dot_dimension_numbers, **_):
  """Every dimension-number form of ``lax.ragged_dot_general`` (formulas.ragged_dot_counts).

  Ragged non-contracting dimension (forward pass, input gradient) or ragged batch
  dimension: each output element is one length-K dot with its group's weights.
  Ragged contracting dimension (weight gradient): the output gains a group axis of
  size G (``group_sizes``' last dimension) and the groups partition the contracted
  rows, so the products are those of one dense dot, not G of them.
  """
  dn = ragged_dot_dimension_numbers
  (lhs_contract, _), _ = dn.dot_dimension_numbers
  k = math.prod(lhs.shape[d] for d in lhs_contract)
  ragged_contracting = any(d in lhs_contract for d in dn.lhs_ragged_dimensions)
  groups = group_sizes.shape[-1] if group_sizes.ndim else 1
  adds, muls = ragged_dot_counts(size(ctx.outs[0]), k, groups, ragged_contracting,
                                 is_complex(lhs) or is_complex(rhs))
  return ops(adds=adds, muls=muls)


# -- convolution ------------------------------------------------------------------

@register(P.conv_general_dilated_p)
def _conv(ctx: RuleContext, lhs, rhs, *, dimension_numbers, window_strides, padding,
          lhs_dilation=None, rhs_dilation=None, **_):
  """Taps on real input or edge padding; a transposed convolution, input elements x
  kernel taps (formulas.conv_counts)."""
  lhs_spec, rhs_spec, out_spec = dimension_numbers  # (batch/out feat, feat, *spatial)
  out = ctx.outs[0]
  nd = len(rhs_spec) - 2
  lhs_dil = tuple(lhs_dilation or (1,) * nd)
  rhs_dil = tuple(rhs_dilation or (1,) * nd)
  dims = [(lhs.shape[lhs_spec[2 + d]], rhs.shape[rhs_spec[2 + d]], out.shape[out_spec[2 + d]],
           window_strides[d], padding[d][0], padding[d][1], lhs_dil[d], rhs_dil[d])
          for d in range(nd)]
  c = conv_counts(size(out), rhs.shape[rhs_spec[1]], dims, is_complex(lhs) or is_complex(rhs))
  return ops(adds=c.adds, muls=c.muls)


# -- FFT ----------------------------------------------------------------------------

@register(P.fft_p)
def _fft(ctx: RuleContext, x, *, fft_type, fft_lengths, **_):
  kind = getattr(fft_type, "name", str(fft_type)).upper()
  real = "RFFT" in kind  # RFFT and IRFFT
  n_total = math.prod(fft_lengths)
  batch = size(x) // max(1, math.prod(x.shape[-len(fft_lengths):]))
  log_sum = sum(math.log2(n) for n in fft_lengths if n > 1)
  muls = 2 * n_total * log_sum * batch
  adds = 3 * n_total * log_sum * batch
  if real:
    muls, adds = muls / 2, adds / 2
  return ops(adds=_int(adds), muls=_int(muls))


# -- LAPACK-style factorizations (LAWN 41) -------------------------------------------

def _batch(x, core_dims: int = 2) -> int:
  return math.prod(x.shape[:-core_dims])


def potrf(n: int):
  """Cholesky of n x n: MUL = n(n+1)(n+2)/6 (incl. n sqrt), ADD = (n-1)n(n+1)/6."""
  return (n - 1) * n * (n + 1) // 6, n * (n + 1) * (n + 2) // 6


def getrf(m: int, n: int):
  """LU with partial pivoting of m x n, right-looking: at step k one reciprocal of
  the pivot, (m-k) multipliers and an (m-k) x (n-k) rank-1 update.

  MUL = sum_{k=1}^{min(m,n)} 1 + (m-k)(n-k+1) and ADD = sum_k (m-k)(n-k); for m >= n
  these are LAWN 41's 1/2 mn^2 - 1/6 n^3 + 1/2 mn - 1/2 n^2 + 2/3 n and
  1/2 mn^2 - 1/6 n^3 - 1/2 mn + 1/6 n.
  """
  r = min(m, n)
  # Closed forms of the sums above (exact integers).
  s1 = r * (r + 1) // 2                   # sum k
  s2 = r * (r + 1) * (2 * r + 1) // 6     # sum k^2
  adds = r * m * n - (m + n) * s1 + s2    # sum (m-k)(n-k)
  muls = r + adds + r * m - s1            # + sum (m-k) multipliers + r reciprocals
  return adds, muls


def geqrf(m: int, n: int):
  """Householder QR of m x n (LAWN 41)."""
  if m > n:
    mul = n * (n * (F(1, 2) - F(n) / 3 + m) + m + F(23, 6))
    add = n * (n * (F(1, 2) - F(n) / 3 + m) + F(5, 6))
  else:
    mul = m * (m * (F(-1, 2) - F(m) / 3 + n) + 2 * n + F(23, 6))
    add = m * (m * (F(-1, 2) - F(m) / 3 + n) + n + F(5, 6))
  return _int(add), _int(mul)


def orgqr(m: int, n: int, k: int):
  """Forming m x n Q from k Householder reflectors (LAWN 41)."""
  mul = k * (2 * m * n + 2 * n - F(5, 3) + k * (F(2, 3) * k - (m + n) - 1))
  add = k * (2 * m * n + n - m + F(1, 3) + k * (F(2, 3) * k - (m + n)))
  return max(0, _int(add)), max(0, _int(mul))


def trsm(m: int, n: int, unit_diagonal: bool = False):
  """Triangular solve with an m x m matrix and n right-hand sides (LAWN 41)."""
  mul = n * m * (m + 1) // 2
  if unit_diagonal:
    mul -= n * m
  return n * m * (m - 1) // 2, mul


def sytrd(n: int):
  """Reduction of a symmetric n x n matrix to tridiagonal form (LAWN 41)."""
  if n < 3:
    return 0, 0
  mul = n * (n * (F(2, 3) * n + F(5, 2)) - F(1, 6)) - 15
  add = n * (n * (F(2, 3) * n + 1) - F(8, 3)) - 4
  return max(0, _int(add)), max(0, _int(mul))


def gehrd(n: int):
  """Reduction of an n x n matrix to upper Hessenberg form (LAWN 41)."""
  if n < 3:
    return 0, 0
  mul = n * (n * (F(5, 3) * n + F(1, 2)) - F(7, 6)) - 13
  add = n * (n * (F(5, 3) * n - 1) - F(2, 3)) - 8
  return max(0, _int(add)), max(0, _int(mul))


def _split(flops) -> tuple[int, int]:
  """Half ADD, half MUL for iterative methods quoted as total flops."""
  total = _int(flops)
  return total - total // 2, total // 2


def _scaled(batch: int, am, complex_: bool = False):
  adds, muls = am
  if complex_:  # a complex MUL is 4 real MUL + 2 ADD, a complex ADD is 2 ADD
    adds, muls = 2 * adds + 2 * muls, 4 * muls
  return ops(adds=batch * adds, muls=batch * muls)


@register(P.cholesky_p)
def _cholesky(ctx: RuleContext, a, **_):
  return _scaled(_batch(a), potrf(a.shape[-1]), is_complex(a))


@register(P.lu_p)
def _lu(ctx: RuleContext, a, **_):
  return _scaled(_batch(a), getrf(*a.shape[-2:]), is_complex(a))


@register(P.triangular_solve_p)
def _triangular_solve(ctx: RuleContext, a, b, *, left_side, unit_diagonal, **_):
  m = a.shape[-1]
  n = b.shape[-1] if left_side else b.shape[-2]
  return _scaled(_batch(b), trsm(m, n, unit_diagonal), is_complex(a))


@register("geqrf")
def _geqrf(ctx: RuleContext, a, **_):
  return _scaled(_batch(a), geqrf(*a.shape[-2:]), is_complex(a))


@register("geqp3")
def _geqp3(ctx: RuleContext, a, *args, **_):
  # Column-pivoted QR: the Householder work of geqrf; pivot search is comparisons
  # over column norms, n per step, priced as ADD.
  m, n = a.shape[-2:]
  adds, muls = geqrf(m, n)
  return _scaled(_batch(a), (adds + n * min(m, n), muls), is_complex(a))


@register("householder_product")
def _householder_product(ctx: RuleContext, a, taus, **_):
  m, n = a.shape[-2:]
  return _scaled(_batch(a), orgqr(m, n, taus.shape[-1]), is_complex(a))


@register("ormqr")
def _ormqr(ctx: RuleContext, a, taus, c, *, left=True, **_):
  # Applying k reflectors to an m x n matrix C from the left (LAWN 41, xORMQR).
  m, n = c.shape[-2:]
  k = taus.shape[-1]
  if left:
    mul, add = n * k * (2 * m - k + 2), n * k * (2 * m - k + 1)
  else:
    mul = _int(k * (m * (2 * F(n) - k + 1) + n - F(k, 2) + F(1, 2)))
    add = m * k * (2 * n - k + 1)
  return _scaled(_batch(c), (add, mul), is_complex(c))


@register(P.qr_p)
def _qr(ctx: RuleContext, a, *, full_matrices, **_):
  m, n = a.shape[-2:]
  k = min(m, n)
  a1, m1 = geqrf(m, n)
  a2, m2 = orgqr(m, m if full_matrices else k, k)
  return _scaled(_batch(a), (a1 + a2, m1 + m2), is_complex(a))


@register(P.eigh_p)
def _eigh(ctx: RuleContext, a, **_):
  n = a.shape[-1]
  return _scaled(_batch(a), _split(9 * n**3), is_complex(a))  # GVL: values + vectors ~ 9n^3


@register(P.eig_p)
def _eig(ctx: RuleContext, a, *, compute_left_eigenvectors=True,
         compute_right_eigenvectors=True, **_):
  n = a.shape[-1]
  vectors = compute_left_eigenvectors or compute_right_eigenvectors
  return _scaled(_batch(a), _split((25 if vectors else 10) * n**3), is_complex(a))


@register(P.svd_p)
def _svd(ctx: RuleContext, a, *, compute_uv=True, full_matrices=False, **_):
  m, n = a.shape[-2:]
  m, n = max(m, n), min(m, n)
  if not compute_uv:
    flops = 4 * m * n**2 - F(4, 3) * n**3  # GVL: singular values only
  elif full_matrices:
    flops = 4 * m**2 * n + 8 * m * n**2 + 9 * n**3  # GVL: U (m x m), S, V
  else:
    flops = 14 * m * n**2 + 8 * n**3  # GVL: thin U (m x n), S, V (Golub-Kahan-Reinsch)
  return _scaled(_batch(a), _split(flops), is_complex(a))


@register(P.schur_p)
def _schur(ctx: RuleContext, a, *, compute_schur_vectors=True, **_):
  n = a.shape[-1]
  return _scaled(_batch(a), _split((25 if compute_schur_vectors else 10) * n**3),
                 is_complex(a))


@register(P.hessenberg_p)
def _hessenberg(ctx: RuleContext, a, **_):
  return _scaled(_batch(a), gehrd(a.shape[-1]), is_complex(a))


@register(P.tridiagonal_p)
def _tridiagonal(ctx: RuleContext, a, **_):
  return _scaled(_batch(a), sytrd(a.shape[-1]), is_complex(a))


@register(P.tridiagonal_solve_p)
def _tridiagonal_solve(ctx: RuleContext, dl, d, du, b, **_):
  """Thomas algorithm: factor (n-1 ADD, n-1 MUL, n divisions), then per right-hand
  side a forward sweep (n-1 ADD, 2n-1 MUL) and back substitution (n-1 ADD, n-1 MUL)."""
  n, k = b.shape[-2], b.shape[-1]
  adds = (n - 1) + k * 2 * (n - 1)
  muls = (n - 1) + n + k * (3 * n - 2)
  return _scaled(_batch(b), (adds, muls), is_complex(b))


@register("cholesky_update")
def _cholesky_update(ctx: RuleContext, r, w, **_):
  """Rank-1 update of an n x n Cholesky factor: per column, a Givens rotation
  (2 MUL, 1 ADD, 1 sqrt, 2 div) applied to the n-k entries below (4 MUL, 2 ADD)."""
  n = r.shape[-1]
  sa, sm = model_price(ctx.model, "sqrt")
  below = n * (n - 1) // 2
  return _scaled(_batch(r), (n * (1 + sa) + 2 * below, n * (4 + sm) + 4 * below),
                 is_complex(r))


@register("lu_pivots_to_permutation")
def _lu_pivots_to_permutation(ctx: RuleContext, pivots, **_):
  return ops(int_ops=size(pivots))


@register("symmetric_product")
def _symmetric_product(ctx: RuleContext, a, c, **_):
  """alpha * A A^T + beta * C, A of n x k, computed dense as jax does: the n x n x k
  product, then n^2 MUL for each scale and n^2 ADD for the sum."""
  n, k = a.shape[-2:]
  adds, muls = dot_counts(n * n, k, is_complex(a))
  return _scaled(_batch(a), (adds + n * n, muls + 2 * n * n))


@register("scaled_dot")
def _scaled_dot(ctx: RuleContext, lhs, rhs, lhs_scale, rhs_scale, *, dimension_numbers, **_):
  """Block-scaled (microscaling) dot: each operand element is multiplied by its block
  scale (one MUL), then an ordinary dot_general."""
  (lhs_contract, _), _ = dimension_numbers
  k = math.prod(lhs.shape[d] for d in lhs_contract)
  adds, muls = dot_counts(size(ctx.outs[0]), k)
  return ops(adds=adds, muls=muls + size(lhs) + size(rhs))
