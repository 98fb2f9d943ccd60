"""Elementwise operations: the default price table and the complex-operand recipes.

Green AI defines FPO through two base operations, ADD and MUL; everything else is
priced as a recipe of those two. The defaults below are the operation counts of the
textbook evaluation each function gets in a vectorised math library (range reduction,
then a Horner polynomial or Newton iterations) at float32 accuracy. They are a
documented convention, not a measurement: :class:`jaxgreen.CostModel` overrides any of
them per primitive.

Conventions (per output element):

* A subtraction, comparison, ``max``/``min`` or rounding is one ADD (same adder).
* A division is one MUL (as in Hunger, "Floating Point Operations in Matrix-Vector
  Calculus", TU Munich 2005, and as XLA's HloCostAnalysis counts it: one flop).
* ``select``/``where`` moves data and costs nothing by default.
* Negation, absolute value and copysign flip a sign bit: zero.

Adding an elementwise primitive is one line of :data:`PRICE_TABLE`: the jaxpr counter
registers a rule for every name in it that jax has as a primitive.

>>> DEFAULT_PRICES["tanh"], DEFAULT_PRICES["add"]
((9, 9), (1, 0))
>>> integer_pow_muls(5)  # x**5 = (x**2)**2 * x
3
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Protocol


class PriceModel(Protocol):
  """What the price formulas read from a cost model (:class:`jaxgreen.CostModel`)."""

  def price(self, name: str) -> tuple[int, int] | None: ...

  def is_transcendental(self, name: str) -> bool: ...


Price = tuple[int, int]  # (ADD, MUL) per element

# Building blocks, each a (ADD, MUL) recipe. Sources in the comments.
_EXP = (7, 7)      # Cody-Waite reduction x = k ln2 + r (1 ADD, 1 MUL) + degree-6 Horner in r (6, 6)
_LOG = (9, 9)      # frexp split (free) + degree-8 Horner (8, 8) + k*ln2 added back (1, 1)
_RSQRT = (2, 6)    # 2 Newton steps y <- y*(1.5 - 0.5*x*y*y): each 3 MUL + 1 ADD
_DIV = (0, 1)      # one division = one MUL-class op
# Cody-Waite reduction (2, 2) + odd degree-7 poly in x^2: x^2 (0, 1), 4 Horner (4, 4), *x (0, 1)
_SINCOS = (6, 8)
# |x|>1 -> 1/x (0, 1) + odd degree-9 poly: x^2 (0, 1), 5 Horner (5, 5), *x (0, 1),
# pi/2 fix-up (1, 0)
_ATAN = (6, 8)


def _add(*ps: Price) -> Price:
  return (sum(p[0] for p in ps), sum(p[1] for p in ps))


# (names, (ADD, MUL) per element, how the price is derived). The README's cost-model
# table is generated from this list (`python -m jaxgreen._src.cost_model`).
PRICE_TABLE: tuple[tuple[tuple[str, ...], Price, str], ...] = (
    (("add", "sub", "add_any"), (1, 0), "one ADD"),
    (("mul", "square"), (0, 1), "one MUL"),
    (("div",), _DIV, "one MUL-class operation (Hunger 2005; XLA: one flop)"),
    (("rem",), (1, 2), "x - trunc(x/y)*y: division, MUL, ADD"),
    (("max", "min"), (1, 0), "one compare"),
    (("eq", "ne", "lt", "le", "gt", "ge", "eq_to", "lt_to", "le_to"), (1, 0), "one compare"),
    (("clamp",), (2, 0), "max then min"),
    (("select_n",), (0, 0), "data movement"),
    (("neg", "abs", "sign"), (0, 0), "sign-bit operations"),
    (("floor", "ceil", "round"), (1, 0), "one rounding ADD"),
    (("is_finite", "nextafter"), (1, 0), "one compare"),
    (("reduce_precision",), (1, 0), "one rounding"),
    (("rsqrt",), _RSQRT, "2 Newton steps y <- y(1.5 - 0.5xy^2), each 3 MUL + 1 ADD"),
    (("sqrt",), _add(_RSQRT, (0, 1)), "x * rsqrt(x)"),
    (("cbrt",), _add(_LOG, _EXP, (0, 1)), "exp(log(x) / 3)"),
    (("exp",), _EXP, "Cody-Waite reduction (1, 1) + degree-6 Horner (6, 6)"),
    (("exp2",), _add(_EXP, (0, 1)), "exp(x * ln 2), as jax evaluates it"),
    (("expm1",), _add(_EXP, (1, 0)), "exp(x) - 1 with a compensating ADD"),
    (("log",), _LOG, "frexp split + degree-8 Horner (8, 8) + k*ln2 added back (1, 1)"),
    (("log1p",), _add(_LOG, (1, 0)), "log(1 + x)"),
    (("log2",), _add(_LOG, _DIV), "log(x) / ln 2"),
    (("one_minus_square",), (2, 1), "(1 + x)(1 - x)"),
    (("logistic",), _add(_EXP, (1, 0), _DIV), "1 / (1 + exp(-x))"),
    (("tanh",), _add(_EXP, (0, 1), (2, 0), _DIV), "1 - 2 / (exp(2x) + 1)"),
    (("pow",), _add(_LOG, _EXP, (0, 1)), "exp(y * log(x))"),
    (("sin", "cos"), _SINCOS, "Cody-Waite reduction (2, 2) + odd degree-7 polynomial (4, 6)"),
    (("tan",), _add(_SINCOS, _SINCOS, _DIV), "sin / cos"),
    (("atan",), _ATAN, "1/x reduction + odd degree-9 polynomial + pi/2 fix-up"),
    (("atan2",), _add(_DIV, _ATAN, (1, 0)), "atan(y / x) + quadrant fix-up"),
    (("asin",), _add(_ATAN, _RSQRT, (1, 2)), "atan(x * rsqrt(1 - x^2))"),
    (("acos",), _add(_ATAN, _RSQRT, (2, 2)), "pi/2 - asin(x)"),
    # jax >= 0.12.1: the pi-scaled and base-2 forms, and fused multiply-adds
    (("sinpi", "cospi"), _add(_SINCOS, (0, 1)), "sin(pi x): one MUL, then as sin"),
    (("tanpi",), _add(_SINCOS, _SINCOS, _DIV, (0, 1)), "tan(pi x): one MUL, then as tan"),
    (("atanpi",), _add(_ATAN, (0, 1)), "atan(x) / pi"),
    (("atan2pi",), _add(_DIV, _ATAN, (1, 0), (0, 1)), "atan2(y, x) / pi"),
    (("asinpi",), _add(_ATAN, _RSQRT, (1, 2), (0, 1)), "asin(x) / pi"),
    (("acospi",), _add(_ATAN, _RSQRT, (2, 2), (0, 1)), "acos(x) / pi"),
    (("exp2m1",), _add(_EXP, (0, 1), (1, 0)), "exp2(x) - 1 with a compensating ADD"),
    (("log2p1",), _add(_LOG, (1, 0), _DIV), "log1p(x) / ln 2"),
    (("fma", "fmuladd"), (1, 1), "a * b + c: one MUL, one ADD"),
    (("sinh", "cosh"), _add(_EXP, _DIV, (1, 1)), "(e^x -/+ 1/e^x) / 2"),
    (("asinh", "acosh"), _add(_LOG, _RSQRT, (0, 1), (2, 1)), "log(x + sqrt(x^2 +/- 1))"),
    (("atanh",), _add(_LOG, _DIV, (2, 1)), "log((1 + x) / (1 - x)) / 2"),
    (("erf", "erfc"), _add(_EXP, _DIV, (7, 8)),
     "Abramowitz & Stegun 7.1.26: t = 1/(1+px), degree-5 polynomial, * exp(-x^2)"),
    (("erf_inv",), (9, 10), "Giles (2010): degree-9 polynomial in w = -log(1 - x^2)"),
    (("lgamma",), _add(_LOG, _LOG, (9, 9)), "Lanczos g=7: 8 terms (8 ADD, 8 div) + 2 logs"),
    (("digamma",), _add(_LOG, (10, 12)), "recurrence shift + asymptotic series"),
    (("igamma", "igammac"), _add(_EXP, _LOG, (40, 40)),
     "~20-term series / continued fraction (Numerical Recipes 6.2)"),
    (("igamma_grad_a", "random_gamma_grad"), _add(_EXP, _LOG, (60, 60)),
     "series for the derivative in a (~30 terms)"),
    (("polygamma",), _add(_LOG, (20, 24)), "recurrence + asymptotic series"),
    (("zeta",), (40, 40), "Euler-Maclaurin, ~12 terms"),
    (("bessel_i0e",), (10, 11), "Cephes Chebyshev series, degree ~10"),
    (("bessel_i1e",), (10, 12), "Cephes Chebyshev series, degree ~10"),
    (("regularized_incomplete_beta",), _add(_EXP, _LOG, _LOG, (60, 60)),
     "continued fraction (Numerical Recipes 6.4), ~30 terms"),
)

DEFAULT_PRICES: Mapping[str, Price] = MappingProxyType(
    {name: price for names, price, _ in PRICE_TABLE for name in names})


def markdown_table() -> str:
  """The default prices as a Markdown table (the README's cost-model table)."""
  lines = ["| primitive | ADD | MUL | derivation |", "| :--- | ---: | ---: | :--- |"]
  for names, (a, m), why in PRICE_TABLE:
    lines.append(f"| {', '.join(f'`{n}`' for n in names)} | {a} | {m} | {why} |")
  return "\n".join(lines)


# Primitives XLA's HloCostAnalysis counts as "transcendentals" (hlo_cost_analysis.cc,
# HandleElementwiseOp), plus the special functions jax lowers through them.
TRANSCENDENTALS: frozenset[str] = frozenset({
    "exp", "exp2", "expm1", "log", "log1p", "log2", "logistic", "tanh", "pow", "sqrt", "rsqrt",
    "cbrt", "sin", "cos", "tan", "atan", "atan2", "asin", "acos", "sinh", "cosh", "asinh",
    "acosh", "atanh", "erf", "erfc", "erf_inv", "lgamma", "digamma", "igamma", "igammac",
    "igamma_grad_a", "random_gamma_grad", "polygamma", "zeta", "bessel_i0e", "bessel_i1e",
    "regularized_incomplete_beta", "sinpi", "cospi", "tanpi", "atanpi", "atan2pi", "asinpi",
    "acospi", "exp2m1", "log2p1",
})


# Integer and bitwise primitives: one integer operation per element (never FPO).
BITWISE: tuple[str, ...] = ("and", "or", "xor", "not", "shift_left", "shift_right_logical",
                            "shift_right_arithmetic", "population_count", "clz")

# Operations that only split, join or conjugate complex numbers (a sign flip): zero at
# every stage, on real and complex operands alike.
ZERO_ELEMENTWISE: frozenset[str] = frozenset({"real", "imag", "complex", "conj"})


def _padd(*ps) -> tuple[int, int]:
  return (sum(p[0] for p in ps), sum(p[1] for p in ps))


class _Complex(str):
  """In a recipe: the complex price of this operation (a plain str is the real price)."""

  __slots__ = ()


# Complex operands, z = a + bi, w = c + di: (ADD, MUL) per element as a sum of parts,
# each a fixed (ADD, MUL), the real price of an operation (a name) or the complex price
# of one (_Complex). Operations not listed: the real recipe on each part, plus one
# complex multiply to combine them for transcendental functions.
_COMPLEX_RECIPES: dict[str, tuple[Price | str, ...]] = {
    "add": ((2, 0),), "sub": ((2, 0),), "add_any": ((2, 0),),
    "mul": ((2, 4),),  # (ac - bd) + (ad + bc)i
    "square": ((2, 3),),  # (a^2 - b^2) + 2ab i
    "div": ((3, 6), "div", "div"),  # ((ac + bd) + (bc - ad)i) / (c^2 + d^2)
    "abs": ((1, 2), "sqrt"),  # sqrt(a^2 + b^2)
    "sign": ((1, 2), "sqrt", "div", "div"),  # z / |z|
    "exp": ("exp", "sin", "cos", (0, 2)),  # e^a (cos b + i sin b)
    "log": ((1, 2), "log", (0, 1), "atan2"),  # log(a^2 + b^2) / 2 + i atan2(b, a)
    # exp(z ln 2), as jax evaluates it: one complex exp and multiply
    "exp2": (_Complex("exp"), (2, 4)),
    # 1 / (1 + exp(-z)): complex exp, add and division
    "logistic": (_Complex("exp"), (2, 0), _Complex("div")),
    # lexicographic, as jax lowers it: real parts equal? then compare the imaginary
    # parts, else the real parts (one eq and two gt / lt)
    "max": ("eq", "gt", "gt"), "min": ("eq", "lt", "lt"),
    # As jax evaluates them: sin(a) cosh(b) + i cos(a) sinh(b) (cos: cos(a) cosh(b) -
    # i sin(a) sinh(b)), sinh and cosh from expm1(b) and expm1(-b): sin, cos, two
    # expm1, (e1 - e2) / 2, (e1 + e2 + 2) / 2, two MUL and the a == 0 check.
    "sin": ("sin", "cos", "expm1", "expm1", "sub", "div", "add", "add", "div", "mul", "mul",
            "eq"),
}
_COMPLEX_RECIPES["cos"] = _COMPLEX_RECIPES["sin"]


def _part(model: PriceModel, part: Price | str) -> Price:
  if isinstance(part, _Complex):
    return complex_price(model, str(part))
  if isinstance(part, str):
    p = model.price(part)
    if p is None:
      raise TypeError(f"the cost model has no price for {part!r}")
    return p
  return part


def complex_price(model: PriceModel, name: str) -> tuple[int, int]:
  """(ADD, MUL) per element of ``name`` on complex operands (z = a + bi, w = c + di).

  ``model`` is a :class:`jaxgreen.CostModel` (``price(name)`` and
  ``is_transcendental(name)``). ``add``/``sub``: 2 ADD. ``mul``: (ac - bd) + (ad + bc)i,
  4 MUL + 2 ADD. ``square``: (a^2 - b^2) + 2ab i, 3 MUL + 2 ADD. ``div``:
  ((ac + bd) + (bc - ad)i) / (c^2 + d^2), 6 MUL + 3 ADD + 2 divisions. ``abs``:
  sqrt(a^2 + b^2). ``sign``: z / |z|. ``exp``: e^a (cos b + i sin b). ``log``:
  log(a^2 + b^2) / 2 + i atan2(b, a). ``exp2``: exp(z ln 2). ``sin``/``cos``: from
  sin, cos and expm1 of the parts, as jax evaluates them. ``logistic``:
  1 / (1 + exp(-z)). ``max``/``min``: lexicographic (eq + 2 compares). Other
  transcendental functions: the real recipe on each part plus one complex multiply
  (2 x price + 2 ADD + 4 MUL); other operations act on each part (2 x price).
  ``real``/``imag``/``complex``/``conj``: zero.

  >>> from types import SimpleNamespace  # any object with the two methods of PriceModel
  >>> model = SimpleNamespace(price=DEFAULT_PRICES.get,
  ...                         is_transcendental=TRANSCENDENTALS.__contains__)
  >>> complex_price(model, "mul"), complex_price(model, "tanh")
  ((2, 4), (20, 22))
  """
  if name in ZERO_ELEMENTWISE:
    return (0, 0)
  recipe = _COMPLEX_RECIPES.get(name)
  if recipe is not None:
    return _padd(*(_part(model, part) for part in recipe))
  a, m = _part(model, name)
  if model.is_transcendental(name):
    return (2 * a + 2, 2 * m + 4)
  return (2 * a, 2 * m)


def elementwise_price(model: PriceModel, name: str,
                      complex_: bool = False) -> tuple[int, int] | None:
  """(ADD, MUL) of one element of the elementwise operation ``name`` (the jaxpr
  primitive name; the HLO walker maps its opcodes to these), on complex operands when
  ``complex_``; (0, 0) for :data:`ZERO_ELEMENTWISE`; None when the cost model has no
  price for ``name``.
  """
  if name in ZERO_ELEMENTWISE:
    return (0, 0)
  price = model.price(name)
  if price is None:
    return None
  return complex_price(model, name) if complex_ else price


def integer_pow_muls(y: int) -> int:
  """MULs of x**y by repeated squaring: floor(log2 |y|) squarings + popcount(|y|) - 1
  (x**-y is one division more, counted by the caller)."""
  y = abs(int(y))
  if y <= 1:
    return 0
  return (y.bit_length() - 1) + (bin(y).count("1") - 1)


def logaddexp_price(model: PriceModel) -> tuple[int, int]:
  """(ADD, MUL) of one step of cumlogsumexp, log(e^a + e^b), as jax evaluates it:
  max(a, b) + log1p(exp(-|a - b|)), with the NaN guard a - b != a - b choosing a + b:
  max, sub, ne, add, exp, log1p and add (abs, negation and select are free)."""
  return _padd(*(_part(model, n) for n in ("max", "sub", "ne", "add", "exp", "log1p", "add")))
