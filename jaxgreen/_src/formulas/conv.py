"""Convolutions: the window taps counted per output, exact in integer arithmetic."""

from __future__ import annotations

import itertools
import math

from jaxgreen._src.formulas.contraction import contraction_counts

# The convention, for every stage (torch's FlopCounterMode reading of a convolution):
#
# * An ordinary convolution multiplies, for each output element, every kernel tap of its
#   window that lands on a real input element or on edge padding (torchvision's forward
#   convention: every window tap, padding included); taps on the holes ``lhs_dilation``
#   inserts between input elements never count, and ``rhs_dilation`` spreads the taps
#   apart and adds none.
# * A transposed convolution counts each real input element times each kernel tap (the
#   scatter view: per spatial dimension, input elements x kernel taps), whatever the
#   padding crops. A convolution is read as transposed when it is lhs-dilated and its
#   kernel is no longer than its output in every dimension (``conv_transpose``; the input
#   gradient of a strided convolution).
# * Otherwise, where a convolution is lhs-dilated (the weight gradient of a transposed
#   one) or every stride is 1, each dimension counts the smaller of its taps and its
#   scatter count: an output longer than its input (padding beyond the kernel's extent,
#   as the input gradient of an unpadded convolution has) counts input x kernel.
#
# So the input gradient of a convolution counts exactly its forward's taps when it is a
# transposed convolution or when every stride is 1, and never more than them.
#
# Per output element, MUL = the products counted x (C_in / feature_group_count) and ADD =
# MUL - 1 (none for an output with no product; where the scatter count is used, outputs
# that no real input element reaches take none). The count factorizes over spatial
# dimensions, so it is exact in integer arithmetic: per dimension, the products,
# multiplied across them.


def _cdiv(a: int, b: int) -> int:
  return -(-a // b)


def _on_real(c: int, jl: int, jh: int, r: int, b: int) -> int:
  """The j in [jl, jh] with c + j*r a multiple of b (a real, not a hole, position)."""
  if jh < jl:
    return 0
  if b == 1:
    return jh - jl + 1
  g = math.gcd(r, b)
  if c % g:
    return 0
  p = b // g
  j0 = (-(c // g) * pow((r // g) % p, -1, p)) % p if p > 1 else 0
  return (jh - j0) // p - (jl - 1 - j0) // p


def _floor_sum(n: int, m: int, a: int, b: int) -> int:
  """sum_{i=0}^{n-1} floor((a*i + b) / m) for n >= 0, m >= 1, a >= 0, b >= 0, in
  O(log m) steps (the Euclid-like reduction of the AtCoder Library's floor_sum)."""
  total = 0
  while n > 0:
    if a >= m:
      total += n * (n - 1) // 2 * (a // m)
      a %= m
    if b >= m:
      total += n * (b // m)
      b %= m
    y = a * n + b
    if y < m:
      break
    n, b, m, a = y // m, y % m, a, m
  return total


def _box_below(t: int, o: int, k: int, s: int, r: int) -> int:
  """#{(i, j) : 0 <= i < o, 0 <= j < k, i*s + j*r <= t}."""
  if t < 0:
    return 0
  imax = min(o - 1, t // s)
  ifull = min(imax, (t - (k - 1) * r) // s) if t >= (k - 1) * r else -1
  count = (ifull + 1) * k  # rows where every j fits
  rows = imax - ifull  # then j <= (t - i*s) // r < k - 1, for i = imax, imax - 1, ...
  if rows > 0:
    count += _floor_sum(rows, r, s, t - imax * s) + rows
  return count


def conv_dim_taps(n: int, k: int, o: int, stride: int = 1, lo: int = 0, hi: int = 0,
                  lhs_dilation: int = 1, rhs_dilation: int = 1) -> tuple[int, int, int]:
  """(taps, valid, live) of one spatial dimension of a convolution window.

  The input has ``n`` elements, ``lhs_dilation - 1`` holes between neighbours and
  ``lo``/``hi`` edge padding (negative: cropping); the kernel ``k`` taps, spread
  ``rhs_dilation`` apart; the output ``o`` positions, ``stride`` apart.

  Returns:
    taps: (output position, kernel tap) pairs on a real element or on edge padding
      (jaxgreen's convention);
    valid: the pairs on a real element only (XLA's ``HloCostAnalysis`` count);
    live: output positions with at least one counted tap.

  Exact integer arithmetic: in closed form (a floor sum) without ``lhs_dilation``;
  with it, O(1) per output position whose window reaches past the real input, the
  others repeating with period ``lhs_dilation / gcd(stride, lhs_dilation)``.
  """
  n, k, o, s = int(n), int(k), int(o), max(1, int(stride))
  lo, hi, b, r = int(lo), int(hi), max(1, int(lhs_dilation)), max(1, int(rhs_dilation))
  if n <= 0 or k <= 0 or o <= 0:
    return 0, 0, 0
  last = (n - 1) * b  # position of the last real element (the first is 0)
  span = (k - 1) * r
  i1, i2 = _interior(n, k, o, s, lo, b, r)
  fits = (o - 1) * s - lo + span <= last + hi  # every window in the padded input
  if b == 1 and fits:
    # No holes: every tap is real or padding; the real ones are the (i, j) with
    # lo <= i*stride + j*rhs_dilation <= last + lo, counted in closed form.
    valid = _box_below(last + lo, o, k, s, r) - _box_below(lo - 1, o, k, s, r)
    return o * k, valid, o

  return _scan(n, k, o, s, lo, hi, b, r, i1, i2)[:3]


def _scan(n: int, k: int, o: int, s: int, lo: int, hi: int, b: int, r: int, i1: int,
          i2: int) -> tuple[int, int, int, int]:
  """(taps, valid, live, reached) of a dimension, position by position outside the
  interior [i1, i2) of windows wholly on real-or-hole positions, and periodically inside;
  ``reached``: outputs with at least one tap on a real element."""
  last = (n - 1) * b
  taps = valid = live = reached = 0

  def position(i: int) -> tuple[int, int]:
    c = i * s - lo
    ja, jb = max(0, _cdiv(-lo - c, r)), min(k - 1, (last + hi - c) // r)  # in the padded input
    jl, jh = max(0, _cdiv(-c, r)), min(k - 1, (last - c) // r)  # on real-or-hole positions
    real = _on_real(c, jl, jh, r, b)
    holes = max(0, jh - jl + 1) - real
    return max(0, jb - ja + 1) - holes, real

  for i in itertools.chain(range(i1), range(i2, o)):
    t, v = position(i)
    taps += t
    valid += v
    live += t > 0
    reached += v > 0
  if i2 > i1:  # inside, the count repeats with the position modulo b
    period = b // math.gcd(s, b)
    per = [position(i)[1] for i in range(i1, min(i2, i1 + period))]
    full, rest = divmod(i2 - i1, period)
    real = full * sum(per) + sum(per[:rest])
    taps += real
    valid += real
    inside = full * sum(1 for v in per if v) + sum(1 for v in per[:rest] if v)
    live += inside
    reached += inside
  return taps, valid, live, reached


def _interior(n: int, k: int, o: int, s: int, lo: int, b: int, r: int) -> tuple[int, int]:
  """[i1, i2): the outputs whose whole window lies on real-or-hole positions (0 <= c
  and c + span <= last, c = i * stride - lo the position of tap 0 of output i)."""
  last, span = (n - 1) * b, (k - 1) * r
  i1 = min(o, max(0, _cdiv(lo, s)))
  i2 = max(i1, min(o, (last + lo - span) // s + 1)) if last >= span else i1
  return i1, i2


def conv_dim_products(dim, kind: str = "") -> tuple[int, int, int]:
  """(products, valid, live) of one spatial dimension in jaxgreen's convention.

  ``dim`` is :func:`conv_dim_taps`'s ``(n, k, o, stride, lo, hi, lhs_dilation,
  rhs_dilation)``; ``kind`` how the convolution is read (:func:`transposed_kind`): ``""``
  its window taps, ``"scatter"`` ``n * k`` (every real input element times every tap),
  ``"cap"`` the smaller of the two. ``live`` is the outputs that take at least one
  product: with the scatter count, those a real input element reaches.
  """
  taps, valid, live = conv_dim_taps(*dim)
  n, k, o, stride, lo, hi, b, r = (int(x) for x in dim)
  scatter = max(0, n) * max(0, k)
  if not kind or (kind == "cap" and taps <= scatter):
    return taps, valid, live
  if n <= 0 or k <= 0 or o <= 0:
    return 0, 0, 0
  s, b, r = max(1, stride), max(1, b), max(1, r)
  i1, i2 = _interior(n, k, o, s, lo, b, r)
  return scatter, valid, _scan(n, k, o, s, lo, hi, b, r, i1, i2)[3]


def transposed_kind(dims) -> str:
  """How a convolution with these spatial ``dims`` (as :func:`conv_dim_taps` takes them)
  is counted: ``"scatter"``, a transposed convolution (lhs-dilated, its kernel no longer
  than its output in every dimension); ``"cap"``, window taps capped at the scatter
  count (lhs-dilated otherwise, or every stride 1); ``""``, window taps."""
  dims = [tuple(int(x) for x in d) for d in dims]
  if any(d[6] > 1 for d in dims):
    return "scatter" if all(d[1] <= d[2] for d in dims) else "cap"
  return "cap" if all(d[3] <= 1 for d in dims) else ""


class ConvCounts(tuple):
  """(adds, muls, products, valid) of a convolution: ``products`` real multiply-adds
  in jaxgreen's convention, ``valid`` those on real input only (XLA counts 2 flops
  each)."""

  __slots__ = ()

  def __new__(cls, adds: int, muls: int, products: int, valid: int):
    return super().__new__(cls, (adds, muls, products, valid))

  adds = property(lambda self: self[0])
  muls = property(lambda self: self[1])
  products = property(lambda self: self[2])
  valid = property(lambda self: self[3])


def conv_counts(out_elems: int, in_features: int, dims, complex_: bool = False) -> ConvCounts:
  """ADD and MUL of a convolution, in the convention above (transposed convolutions in
  the scatter view, :func:`transposed_kind`).

  Args:
    out_elems: elements of the output (batch x output features x output positions).
    in_features: input features each output reads: the kernel's input-feature size,
      C_in / feature_group_count (with ``batch_group_count`` it is C_in).
    dims: per spatial dimension, ``(n, k, o, stride, lo, hi, lhs_dilation,
      rhs_dilation)`` as in :func:`conv_dim_taps`.
    complex_: complex operands (each product 4 MUL + 2 ADD, each accumulation 2 ADD).
  """
  kind = transposed_kind(dims)
  per = [conv_dim_products(d, kind) for d in dims]
  positions = math.prod(int(d[2]) for d in dims)
  if out_elems <= 0 or positions <= 0 or in_features <= 0:
    return ConvCounts(0, 0, 0, 0)
  rest = out_elems // positions  # batch x output features
  products = rest * in_features * math.prod(p[0] for p in per)
  valid = rest * in_features * math.prod(p[1] for p in per)
  live = rest * math.prod(p[2] for p in per)  # outputs with at least one product
  return ConvCounts(*contraction_counts(products, live, complex_), products, valid)


def conv_input_grad_dim(n: int, k: int, o: int, stride: int = 1, lo: int = 0, hi: int = 0,
                        rhs_dilation: int = 1) -> tuple[int, ...]:
  """The window of the input gradient of a convolution dimension, as jax builds it.

  The forward dimension has input ``n``, kernel ``k`` (``rhs_dilation``), output
  ``o``, ``stride`` and padding ``lo``/``hi``. Its input gradient is the convolution of
  the output gradient, dilated by ``stride`` (``lhs_dilation``), with the reversed
  kernel, at stride 1, padded ``(k - 1) * rhs_dilation - lo`` before and
  ``n - (o - 1) * stride - 1 + lo`` after (``jax._src.lax.convolution``'s
  ``_conv_general_vjp_lhs_padding``). Returns the tuple :func:`conv_dim_taps` takes;
  cuDNN's backward-input calls are counted through it.
  """
  before = (k - 1) * rhs_dilation - lo
  after = n - (o - 1) * stride - 1 + lo
  return (o, k, n, 1, before, after, stride, rhs_dilation)



def conv_filter_grad_dim(n: int, k: int, o: int, stride: int = 1, lo: int = 0, hi: int = 0,
                         rhs_dilation: int = 1) -> tuple[int, ...]:
  """The window of the weight gradient of a convolution dimension, as jax builds it.

  The forward dimension is as in :func:`conv_input_grad_dim`. Its weight gradient is
  the convolution of the input with the output gradient, dilated by ``stride``
  (``rhs_dilation``), at stride ``rhs_dilation``, padded ``lo`` before and
  ``(o - 1) * stride + 1 - n + (k - 1) * rhs_dilation - lo`` after (jax's
  ``_conv_general_vjp_rhs_padding``), one output per kernel tap. Returns the tuple
  :func:`conv_dim_taps` takes; cuDNN's backward-filter calls are counted through it.
  """
  del hi  # the forward's high padding follows from the shapes
  after = (o - 1) * stride + 1 - n + (k - 1) * rhs_dilation - lo
  return (n, o, k, rhs_dilation, lo, after, 1, stride)
