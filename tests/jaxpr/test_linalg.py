"""Contractions, convolutions, FFT and factorizations."""

import math

import jax
import jax.numpy as jnp
import pytest
from jax import lax

import jaxgreen

S = jax.ShapeDtypeStruct
F32 = jnp.float32


def test_batched_dot_general():
  c = jaxgreen.count(lambda a, b: jnp.einsum("bmk,bkn->bmn", a, b))(
      S((3, 5, 7), F32), S((3, 7, 2), F32))
  assert c.muls == 3 * 5 * 2 * 7  # B·M·N·K
  assert c.adds == 3 * 5 * 2 * 6  # B·M·N·(K-1)


def test_multiple_contracting_dims_and_integer_dot():
  c = jaxgreen.count(lambda a, b: jnp.einsum("ijk,jkl->il", a, b))(
      S((2, 3, 4), F32), S((3, 4, 5), F32))
  assert c.muls == 2 * 5 * 12 and c.adds == 2 * 5 * 11
  c = jaxgreen.count(lambda a, b: a @ b)(S((2, 3), jnp.int8), S((3, 4), jnp.int8))
  assert c.fpo == 0 and c.int_ops == 2 * 4 * 3 + 2 * 4 * 2


# (lhs shape, rhs shape, dimension_numbers, strides, padding, lhs_dil, rhs_dil, fgc, bgc)
_CONVS = {
    "nchw": ((2, 4, 9, 9), (6, 4, 3, 3), ("NCHW", "OIHW", "NCHW"), (1, 1), "SAME", None,
             None, 1, 1),
    "nhwc-stride": ((2, 9, 9, 4), (3, 3, 4, 6), ("NHWC", "HWIO", "NHWC"), (2, 2), "VALID",
                    None, None, 1, 1),
    "rhs-dilated": ((1, 3, 12, 12), (5, 3, 3, 3), ("NCHW", "OIHW", "NCHW"), (1, 1),
                    ((1, 1), (2, 2)), None, (2, 2), 1, 1),
    "grouped": ((2, 8, 7, 7), (12, 2, 3, 3), ("NCHW", "OIHW", "NCHW"), (1, 1), "SAME",
                None, None, 4, 1),
    "depthwise": ((1, 7, 7, 6), (3, 3, 1, 6), ("NHWC", "HWIO", "NHWC"), (1, 1), "SAME",
                  None, None, 6, 1),
    "batch-grouped": ((4, 3, 6, 6), (8, 3, 2, 2), ("NCHW", "OIHW", "NCHW"), (1, 1),
                      "VALID", None, None, 1, 2),
    "1d": ((2, 5, 20), (7, 5, 4), ("NCH", "OIH", "NCH"), (3,), "VALID", None, None, 1, 1),
}


@pytest.mark.parametrize("case", list(_CONVS), ids=list(_CONVS))
def test_conv_follows_the_dense_formula(case):
  # Without lhs dilation every window tap is real input or edge padding: all count.
  lhs, rhs, dn, strides, pad, lhs_dil, rhs_dil, fgc, bgc = _CONVS[case]

  def conv(a, b):
    return lax.conv_general_dilated(a, b, strides, pad, lhs_dilation=lhs_dil,
                                    rhs_dilation=rhs_dil, dimension_numbers=dn,
                                    feature_group_count=fgc, batch_group_count=bgc)

  out = jax.eval_shape(conv, S(lhs, F32), S(rhs, F32))
  c = jaxgreen.count(conv)(S(lhs, F32), S(rhs, F32))
  c_in = lhs[dn[0].index("C")]
  kernel = math.prod(rhs[i] for i, ch in enumerate(dn[1]) if ch not in "IO")
  per_out = (c_in // fgc) * kernel  # (C_in / feature_groups)·∏kernel_spatial
  assert c.muls == math.prod(out.shape) * per_out
  assert c.adds == math.prod(out.shape) * (per_out - 1)


def test_lhs_dilated_conv_counts_each_input_element_times_each_tap():
  c = jaxgreen.count(lambda a, b: lax.conv_general_dilated(
      a, b, (1, 1), ((2, 2), (2, 2)), lhs_dilation=(2, 2)))(
          S((1, 3, 5, 5), F32), S((5, 3, 3, 3), F32))
  # A transposed convolution (torch's convention): per spatial dimension, each of the 5
  # inputs times each of the 3 taps = 15. (The window view: 5 inputs dilated by 2 sit at
  # 0, 2, ..., 8, padded to -2..10, 11 windows over [i-2, i]: 15 taps on inputs, 6 on
  # the edge padding, 12 on holes.)
  per_dim = 5 * 3
  assert c.muls == 5 * 3 * per_dim**2  # C_out · C_in · (products per dim)² = 3,375
  # Every window holds an input element: ADD = MUL - outputs.
  assert c.adds == c.muls - 5 * 11 * 11


def test_conv_gradient_is_counted_from_the_backward_convs():
  def loss(w, x):
    return lax.conv(x, w, (1, 1), "SAME").sum()

  c = jaxgreen.count(jax.grad(loss))(S((6, 4, 3, 3), F32), S((2, 4, 8, 8), F32))
  # dW: each of the 6·4·3·3 weights sums over 2·8·8 (batch·spatial) positions
  assert c.by_primitive["conv_general_dilated"].muls == 6 * 4 * 3 * 3 * 2 * 8 * 8


# A mixture-of-experts layer: M tokens of K features, G experts of K x N weights.
M, K, N, G = 12, 4, 6, 3
_RAGGED = (S((M, K), F32), S((G, K, N), F32), S((G,), jnp.int32))


def _moe_loss(x, w, sizes):
  return lax.ragged_dot(x, w, sizes).sum()


def test_ragged_dot_forward_input_and_weight_gradients():
  c = jaxgreen.count(lax.ragged_dot)(*_RAGGED)
  # forward: each token's N outputs are one length-K dot with its expert's weights
  assert (c.muls, c.adds) == (M * N * K, M * N * (K - 1))
  dx = jaxgreen.count(jax.grad(_moe_loss, argnums=0))(*_RAGGED)
  assert (dx.muls, dx.adds) == (M * K * N, M * K * (N - 1))  # dy (M,N) against w[g]^T
  dw = jaxgreen.count(jax.grad(_moe_loss, argnums=1))(*_RAGGED)
  # d(w): ragged contracting dimension, output (G, K, N); the G groups partition the
  # M tokens, so M·K·N products in all (not G·M·K·N) and K·N·(M - G) ADDs.
  rd = dw.by_primitive["ragged_dot_general"]
  assert (rd.muls, rd.adds) == (M * K * N, K * N * (M - G))


def test_moe_training_step_is_three_dense_matmuls():
  grads = jaxgreen.count(jax.grad(_moe_loss, argnums=(0, 1)))(*_RAGGED)
  assert grads.by_primitive["ragged_dot_general"].muls == 2 * M * K * N  # dx + dw
  step = jaxgreen.count(jax.value_and_grad(_moe_loss, argnums=(0, 1)))(*_RAGGED)
  assert step.by_primitive["ragged_dot_general"].muls == 3 * M * K * N  # forward too


@pytest.mark.parametrize("mode", ["ragged_batch", "batched_noncontracting",
                                  "batched_contracting"])
def test_ragged_dot_general_batched_forms(mode):
  b, m, k, n, g = 2, 6, 4, 5, 3
  rd = lax.RaggedDotDimensionNumbers
  dn, rhs, sizes = {
      # [b,m,k] x [b,k,n], group_sizes [g] over b -> [b,m,n]
      "ragged_batch": (rd(dot_dimension_numbers=(([2], [1]), ([0], [0])),
                          lhs_ragged_dimensions=[0], rhs_group_dimensions=[]),
                       (b, k, n), (g,)),
      # [b,m,k] x [g,b,k,n], group_sizes [b,g] over m -> [b,m,n]
      "batched_noncontracting": (rd(dot_dimension_numbers=(([2], [2]), ([0], [1])),
                                    lhs_ragged_dimensions=[1], rhs_group_dimensions=[0]),
                                 (g, b, k, n), (b, g)),
      # [b,m,k] x [b,m,n], group_sizes [b,g] over the contracted m -> [g,b,k,n]
      "batched_contracting": (rd(dot_dimension_numbers=(([1], [1]), ([0], [0])),
                                 lhs_ragged_dimensions=[1], rhs_group_dimensions=[]),
                              (b, m, n), (b, g)),
  }[mode]
  c = jaxgreen.count(lambda x, y, s: lax.ragged_dot_general(x, y, s, dn))(
      S((b, m, k), F32), S(rhs, F32), S(sizes, jnp.int32))
  if mode == "batched_contracting":
    assert (c.muls, c.adds) == (b * m * k * n, b * k * n * (m - g))
  else:
    assert (c.muls, c.adds) == (b * m * k * n, b * m * n * (k - 1))


@pytest.mark.parametrize("fn,n,real", [
    (jnp.fft.fft, 8, False), (jnp.fft.ifft, 16, False), (jnp.fft.rfft, 8, True),
])
def test_fft_five_n_log_n(fn, n, real):
  dtype = F32 if real else jnp.complex64
  c = jaxgreen.count(fn)(S((3, n), dtype))
  logn = int(math.log2(n))
  muls, adds = 2 * n * logn * 3, 3 * n * logn * 3  # 2 n log2 n MUL, 3 n log2 n ADD, ×batch
  if real:
    muls, adds = muls // 2, adds // 2
  fft = c.by_primitive["fft"]
  assert (fft.muls, fft.adds) == (muls, adds)


def test_cholesky_lawn41():
  n = 6
  c = jaxgreen.count(lambda a: lax.linalg.cholesky(a, symmetrize_input=False))(
      S((2, n, n), F32))
  ch = c.by_primitive["cholesky"]
  assert ch.muls == 2 * (n**3 + 3 * n**2 + 2 * n) // 6  # n^3/6 + n^2/2 + n/3 (n sqrt incl.)
  assert ch.adds == 2 * (n**3 - n) // 6  # n^3/6 - n/6


@pytest.mark.parametrize("unit", [False, True])
def test_triangular_solve_lawn41(unit):
  m, n = 5, 3
  c = jaxgreen.count(lambda a, b: lax.linalg.triangular_solve(
      a, b, left_side=True, lower=True, unit_diagonal=unit))(S((m, m), F32), S((m, n), F32))
  ts = c.by_primitive["triangular_solve"]
  assert ts.muls == n * m * (m + 1) // 2 - (n * m if unit else 0)
  assert ts.adds == n * m * (m - 1) // 2


@pytest.mark.parametrize("m,n", [(6, 6), (9, 4), (3, 7)])
def test_lu_counts(m, n):
  c = jaxgreen.count(lax.linalg.lu)(S((m, n), F32))
  lu = c.by_primitive["lu"]
  r = min(m, n)
  assert lu.adds == sum((m - k) * (n - k) for k in range(1, r + 1))
  assert lu.muls == sum(1 + (m - k) * (n - k + 1) for k in range(1, r + 1))
  if m == n == 6:  # LAWN 41: n^3/3 + 2n/3 MUL, n^3/3 - n^2/2 + n/6 ADD
    assert (lu.muls, lu.adds) == (72 + 4, 72 - 18 + 1)


def test_qr_eigh_svd_leading_order():
  n = 64
  qr = jaxgreen.count(jnp.linalg.qr)(S((n, n), F32)).by_primitive
  fpo = sum(v.fpo for k, v in qr.items() if k in ("geqrf", "householder_product", "qr"))
  # Golub & Van Loan: Householder R 4/3 n^3, explicit Q 4/3 n^3
  assert fpo == pytest.approx(8 / 3 * n**3, rel=0.08)
  eigh = jaxgreen.count(lambda a: lax.linalg.eigh(a, symmetrize_input=False))(S((n, n), F32))
  assert eigh.by_primitive["eigh"].fpo == 9 * n**3  # GVL: values and vectors
  svd = jaxgreen.count(lambda a: jnp.linalg.svd(a, full_matrices=False))(S((2 * n, n), F32))
  m = 2 * n
  assert svd.by_primitive["svd"].fpo == 14 * m * n**2 + 8 * n**3  # GVL thin SVD


def test_complex_dot():
  z = jnp.complex64
  c = jaxgreen.count(lambda a, b: a @ b)(S((3, 5), z), S((5, 2), z))
  assert c.muls == 3 * 2 * 5 * 4  # 4 real MUL per complex product
  assert c.adds == 3 * 2 * (5 * 2 + 4 * 2)  # 2 per product + 2 per accumulation


def test_symmetric_product_dense():
  n, k = 5, 3
  c = jaxgreen.count(lambda a, s: lax.linalg.symmetric_product(a, s, alpha=2.0, beta=0.5))(
      S((n, k), F32), S((n, n), F32))
  sp = c.by_primitive["symmetric_product"]
  assert sp.muls == n * n * k + 2 * n * n  # A·A^T, then alpha and beta scaling
  assert sp.adds == n * n * (k - 1) + n * n  # dot accumulation, then the sum
