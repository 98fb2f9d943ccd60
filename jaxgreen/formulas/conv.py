"""Convolutions: the window taps counted per output, exact in integer arithmetic."""

from __future__ import annotations

import itertools
import math

from jaxgreen.formulas.contraction import contraction_counts

# The convention, for every stage: a convolution multiplies, for each output element,
# the kernel taps of its window that land on a real input element or on edge padding
# (torchvision's forward convention: every window tap, padding included). Taps that
# land on the holes ``lhs_dilation`` inserts between input elements are never counted,
# since no implementation multiplies them (the input gradient of a strided convolution
# and ``conv_transpose`` are such lhs-dilated convolutions). ``rhs_dilation`` spreads
# the kernel's taps apart and adds none. Per output element, MUL = the taps counted
# x (C_in / feature_group_count) and ADD = MUL - 1 (none for an output with no tap).
# The count factorizes over spatial dimensions, so it is exact in integer arithmetic:
# per dimension, the taps summed over output positions, multiplied across dimensions.


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
  # Outputs whose whole window lies on real-or-hole positions: 0 <= c and c + span <= last,
  # c = i * stride - lo the position of tap 0 of output i.
  i1 = min(o, max(0, _cdiv(lo, s)))
  i2 = max(i1, min(o, (last + lo - span) // s + 1)) if last >= span else i1
  fits = (o - 1) * s - lo + span <= last + hi  # every window in the padded input
  if b == 1 and fits:
    # No holes: every tap is real or padding; the real ones are the (i, j) with
    # lo <= i*stride + j*rhs_dilation <= last + lo, counted in closed form.
    valid = _box_below(last + lo, o, k, s, r) - _box_below(lo - 1, o, k, s, r)
    return o * k, valid, o

  taps = valid = live = 0

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
  if i2 > i1:  # inside, the count repeats with the position modulo b
    period = b // math.gcd(s, b)
    per = [position(i)[1] for i in range(i1, min(i2, i1 + period))]
    full, rest = divmod(i2 - i1, period)
    real = full * sum(per) + sum(per[:rest])
    taps += real
    valid += real
    live += full * sum(1 for v in per if v) + sum(1 for v in per[:rest] if v)
  return taps, valid, live


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
  """ADD and MUL of a convolution, in the convention above.

  Args:
    out_elems: elements of the output (batch x output features x output positions).
    in_features: input features each output reads: the kernel's input-feature size,
      C_in / feature_group_count (with ``batch_group_count`` it is C_in).
    dims: per spatial dimension, ``(n, k, o, stride, lo, hi, lhs_dilation,
      rhs_dilation)`` as in :func:`conv_dim_taps`.
    complex_: complex operands (each product 4 MUL + 2 ADD, each accumulation 2 ADD).
  """
  per = [conv_dim_taps(*d) for d in dims]
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

