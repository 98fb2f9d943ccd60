"""The counting conventions, one formula each, shared by every stage.

The jaxpr rules (:mod:`jaxgreen.jaxpr.rules`) and the HLO walker
(:mod:`jaxgreen.hlo.compiled`, which also counts the lowered StableHLO) read shapes and
attributes in their own way, then call these functions for the arithmetic. A
convention changes here, once, and every stage follows; ``tests/test_stage_parity.py``
checks that single-operation programs count the same at every stage.

Every function is pure integer arithmetic on shapes (no jax import), so it is exact.
"""

from __future__ import annotations

import itertools
import math


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


# -- control flow (while loops, cond/switch) ------------------------------------------

# The comparison that holds when the operands of ``a <op> b`` are swapped (b <op'> a).
MIRROR = {"lt": "gt", "le": "ge", "gt": "lt", "ge": "le", "eq": "eq", "ne": "ne"}


def loop_trips(op: str, start, bound, step) -> int | None:
  """Iterations of ``for (i = start; i <op> bound; i += step)``; None if unbounded.

  ``op`` is the comparison that keeps the loop going: lt, le, gt, ge or ne (any case).
  """
  op = op.lower()
  span = bound - start
  exact = all(isinstance(v, int) for v in (start, bound, step))

  def ceil_div(a, b):
    return -(-a // b) if exact else math.ceil(a / b)

  def floor_div(a, b):
    return a // b if exact else math.floor(a / b)

  if op == "lt" and step > 0:
    return max(0, ceil_div(span, step))
  if op == "le" and step > 0:
    return max(0, floor_div(span, step) + 1)
  if op == "gt" and step < 0:
    return max(0, ceil_div(span, step))
  if op == "ge" and step < 0:
    return max(0, floor_div(span, step) + 1)
  if op == "ne" and span % step == 0 and span / step >= 0:
    return int(span // step)
  if op in ("lt", "le", "gt", "ge"):
    # The step moves away from the bound: either no iteration, or an infinite loop.
    first = {"lt": start < bound, "le": start <= bound, "gt": start > bound,
             "ge": start >= bound}[op]
    return 0 if not first else None
  return None


def counted_loop_trips(op: str, counter_first: bool, offset, bound, start,
                       step) -> int | None:
  """Trips of a counted loop, as both induction-variable evaluators recognise it.

  The condition is ``counter + offset <op> bound`` (``bound <op> counter + offset``
  when ``counter_first`` is False), the counter starts at ``start`` and the body adds
  the constant ``step``. None when the step is zero, a value is not a number or the
  loop never ends.
  """
  op = op.lower()
  if not counter_first:
    op = MIRROR.get(op, "")
  if op not in MIRROR or not step:
    return None
  try:
    # counter + offset <op> bound  <=>  counter <op> bound - offset
    return loop_trips(op, start, bound - offset, step)
  except (TypeError, ValueError, ZeroDivisionError, OverflowError):
    return None


def loop_factors(trips: int | None) -> tuple[int, int]:
  """(body multiplier, condition multiplier) of a while loop, at every stage.

  A loop of ``trips`` iterations runs its body ``trips`` times and evaluates its
  condition ``trips + 1`` times (the last evaluation exits). When the trip count is
  unknown the body is counted once, so the condition is counted twice: the loop is
  counted as if it ran one iteration (and the count is marked inexact).
  """
  n = 1 if trips is None else int(trips)
  return n, n + 1


def pick_branches(costs, policy: str) -> list[tuple[int, float]]:
  """The branches a ``cond``/``switch``/``conditional`` is counted as, with weights.

  ``costs`` holds one ``(fpo, int_ops)`` per branch. ``"max"``/``"min"``: the branch
  of largest/smallest FPO (integer work breaks ties, then the first branch);
  ``"mean"``: every branch with weight 1/n.
  """
  costs = list(costs)
  if not costs:
    return []
  if policy == "mean":
    return [(i, 1 / len(costs)) for i in range(len(costs))]
  pick = min if policy == "min" else max
  best = pick(costs)
  return [(costs.index(best), 1)]


# -- elementwise prices, real and complex ---------------------------------------------

# Operations that only split, join or conjugate complex numbers (a sign flip): zero at
# every stage, on real and complex operands alike.
ZERO_ELEMENTWISE: frozenset[str] = frozenset({"real", "imag", "complex", "conj"})


def _padd(*ps) -> tuple[int, int]:
  return (sum(p[0] for p in ps), sum(p[1] for p in ps))


def complex_price(model, name: str) -> tuple[int, int]:
  """(ADD, MUL) per element of ``name`` on complex operands (z = a + bi, w = c + di).

  ``model`` is a :class:`jaxgreen.CostModel` (``price(name)`` and
  ``is_transcendental(name)``). ``add``/``sub``: 2 ADD. ``mul``: (ac - bd) + (ad + bc)i,
  4 MUL + 2 ADD. ``square``: (a^2 - b^2) + 2ab i, 3 MUL + 2 ADD. ``div``:
  ((ac + bd) + (bc - ad)i) / (c^2 + d^2), 6 MUL + 3 ADD + 2 divisions. ``abs``:
  sqrt(a^2 + b^2). ``sign``: z / |z|. ``exp``: e^a (cos b + i sin b). ``log``:
  log(a^2 + b^2) / 2 + i atan2(b, a). ``exp2``: exp(z ln 2). ``sin``/``cos``: from
  sin, cos and expm1 of the parts, as jax evaluates them. ``logistic``:
  1 / (1 + exp(-z)). ``max``/``min``: lexicographic (eq + 2 compares). Other
  transcendental
  functions: the real recipe
  on each part plus one complex multiply (2 x price + 2 ADD + 4 MUL); other operations
  act on each part (2 x price). ``real``/``imag``/``complex``/``conj``: zero.
  """
  p = model.price
  if name in ZERO_ELEMENTWISE:
    return (0, 0)
  if name in ("add", "sub", "add_any"):
    return (2, 0)
  if name == "mul":
    return (2, 4)
  if name == "square":
    return (2, 3)
  if name == "div":
    return _padd((3, 6), p("div"), p("div"))
  if name == "abs":
    return _padd((1, 2), p("sqrt"))
  if name == "sign":
    return _padd((1, 2), p("sqrt"), p("div"), p("div"))
  if name == "exp":
    return _padd(p("exp"), p("sin"), p("cos"), (0, 2))
  if name == "log":
    return _padd((1, 2), p("log"), (0, 1), p("atan2"))
  if name == "exp2":  # exp(z ln 2), as jax evaluates it: one complex exp and multiply
    return _padd(complex_price(model, "exp"), (2, 4))
  if name == "logistic":  # 1 / (1 + exp(-z)): complex exp, add and division
    return _padd(complex_price(model, "exp"), (2, 0), complex_price(model, "div"))
  if name in ("max", "min"):
    # lexicographic, as jax lowers it: real parts equal? then compare the imaginary
    # parts, else the real parts (one eq and two gt / lt)
    c = p("gt" if name == "max" else "lt")
    return _padd(p("eq"), c, c)
  if name in ("sin", "cos"):
    # As jax evaluates them: sin(a) cosh(b) + i cos(a) sinh(b) (cos: cos(a) cosh(b) -
    # i sin(a) sinh(b)), sinh and cosh from expm1(b) and expm1(-b): sin, cos, two
    # expm1, (e1 - e2) / 2, (e1 + e2 + 2) / 2, two MUL and the a == 0 check.
    return _padd(p("sin"), p("cos"), p("expm1"), p("expm1"), p("sub"), p("div"),
                 p("add"), p("add"), p("div"), p("mul"), p("mul"), p("eq"))
  a, m = p(name)
  if model.is_transcendental(name):
    return (2 * a + 2, 2 * m + 4)
  return (2 * a, 2 * m)


def elementwise_price(model, name: str, complex_: bool = False) -> tuple[int, int] | None:
  """(ADD, MUL) of one element of the elementwise operation ``name`` (the jaxpr
  primitive name; the HLO walker maps its opcodes to these), on complex operands when
  ``complex_``; (0, 0) for :data:`ZERO_ELEMENTWISE`; None when the cost model has no
  price for ``name``.
  """
  if name in ZERO_ELEMENTWISE:
    return (0, 0)
  if model.price(name) is None:
    return None
  return complex_price(model, name) if complex_ else model.price(name)


def integer_pow_muls(y: int) -> int:
  """MULs of x**y by repeated squaring: floor(log2 |y|) squarings + popcount(|y|) - 1
  (x**-y is one division more, counted by the caller)."""
  y = abs(int(y))
  if y <= 1:
    return 0
  return (y.bit_length() - 1) + (bin(y).count("1") - 1)


# -- reductions, scans and windows ----------------------------------------------------

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


def logaddexp_price(model) -> tuple[int, int]:
  """(ADD, MUL) of one step of cumlogsumexp, log(e^a + e^b), as jax evaluates it:
  max(a, b) + log1p(exp(-|a - b|)), with the NaN guard a - b != a - b choosing a + b:
  max, sub, ne, add, exp, log1p and add (abs, negation and select are free)."""
  p = model.price
  return _padd(p("max"), p("sub"), p("ne"), p("add"), p("exp"), p("log1p"), p("add"))


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


# -- random bits: integer work only ---------------------------------------------------

# Threefry-2x32, 20 rounds (Salmon et al., SC 2011): each round an add, a rotate (two
# shifts and an or) and a xor on a pair of 32-bit words (5 ops); a key injection of 3
# adds every 4 rounds (5 injections). Threefry-4x32: 20 rounds of two mixes on 4 words
# (10 ops) + 5 injections of 5 adds. Philox-4x32, 10 rounds: two 32x32->64 multiplies
# (hi and lo: 4 ops), 4 xors and a 2-add key bump per round; Philox-2x32: one multiply
# (2), 2 xors and a 1-add bump.
THREEFRY_OPS_PER_PAIR = 20 * 5 + 5 * 3
THREEFRY4_OPS_PER_BLOCK = 20 * 10 + 5 * 5
PHILOX4_OPS_PER_BLOCK = 10 * 10
PHILOX2_OPS_PER_BLOCK = 10 * 5


def threefry_ops(pairs: int) -> int:
  """Integer ops of ``pairs`` Threefry-2x32 blocks (two 32-bit words each)."""
  return THREEFRY_OPS_PER_PAIR * max(0, int(pairs))


def rng_bit_generator_ops(algorithm: str, out_bytes: int) -> int:
  """Integer ops of ``rng_bit_generator`` producing ``out_bytes`` bytes of bits.

  ``algorithm`` is jax's ``RNG_DEFAULT``/``RNG_THREE_FRY``/``RNG_PHILOX`` or HLO's
  ``rng_default``/``rng_three_fry``/``rng_philox`` (any case): Philox-4x32 (XLA's
  default on every backend) is one block per four 32-bit words, Threefry-2x32 one
  block per pair of words.
  """
  words = -(-max(0, int(out_bytes)) // 4)
  if "three" in algorithm.lower():
    return threefry_ops(-(-words // 2))
  return PHILOX4_OPS_PER_BLOCK * -(-words // 4)


def rng_uniform_ops(out_bytes: int) -> int:
  """Integer ops of XLA's RngUniform (jax's ``rng_uniform``) filling ``out_bytes``
  bytes: one Threefry-2x32 block per pair of 32-bit words (float outputs add a scale
  and a shift per element, 1 ADD + 1 MUL, counted by the caller)."""
  words = -(-max(0, int(out_bytes)) // 4)
  return threefry_ops(-(-words // 2))


# -- convolution ----------------------------------------------------------------------
#
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


# -- ragged dot -----------------------------------------------------------------------

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
