"""The price, in ADD and MUL, of every operation that is not a single add or multiply.

Green AI defines FPO through two base operations, ADD and MUL; everything else is
priced as a recipe of those two. The defaults below are the operation counts of the
textbook evaluation each function gets in a vectorised math library (range reduction,
then a Horner polynomial or Newton iterations) at float32 accuracy. They are a
documented convention, not a measurement: override any of them per primitive.

Conventions (per output element):

* A subtraction, comparison, ``max``/``min`` or rounding is one ADD (same adder).
* A division is one MUL (as in Hunger, "Floating Point Operations in Matrix-Vector
  Calculus", TU Munich 2005, and as XLA's HloCostAnalysis counts it: one flop).
* ``select``/``where`` moves data and costs nothing by default.
* Negation, absolute value and copysign flip a sign bit: zero.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType

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


DEFAULT_PRICES: Mapping[str, Price] = MappingProxyType({
    # exact single operations
    "add": (1, 0), "sub": (1, 0), "add_any": (1, 0), "mul": (0, 1), "square": (0, 1),
    "div": _DIV,
    "rem": (1, 2),                                   # x - trunc(x/y)*y: div, mul, sub
    "max": (1, 0), "min": (1, 0),                    # one compare each
    "eq": (1, 0), "ne": (1, 0), "lt": (1, 0), "le": (1, 0), "gt": (1, 0), "ge": (1, 0),
    "eq_to": (1, 0), "lt_to": (1, 0), "le_to": (1, 0),
    "clamp": (2, 0),                                 # max then min
    "select_n": (0, 0),                              # data movement
    "neg": (0, 0), "abs": (0, 0), "sign": (0, 0),    # sign-bit operations
    "floor": (1, 0), "ceil": (1, 0), "round": (1, 0),  # one rounding add each
    "is_finite": (1, 0),                             # one compare against inf
    "nextafter": (1, 0),
    "reduce_precision": (1, 0),                      # one rounding
    # roots
    "rsqrt": _RSQRT,
    "sqrt": _add(_RSQRT, (0, 1)),                    # x * rsqrt(x)
    "cbrt": _add(_LOG, _EXP, (0, 1)),                # exp(log(x)/3)
    # exponentials and logarithms
    "exp": _EXP,
    "exp2": (6, 7),                                  # no ln2 reduction add: k = round(x)
    "expm1": _add(_EXP, (1, 0)),                     # exp(x) - 1 with a compensating add
    "log": _LOG,
    "log1p": _add(_LOG, (1, 0)),                     # log(1 + x)
    "logistic": _add(_EXP, (1, 0), _DIV),            # 1 / (1 + exp(-x))
    "tanh": _add(_EXP, (0, 1), (2, 0), _DIV),        # 1 - 2 / (exp(2x) + 1)
    "pow": _add(_LOG, _EXP, (0, 1)),                 # exp(y * log(x))
    # trigonometric and hyperbolic
    "sin": _SINCOS, "cos": _SINCOS,
    "tan": _add(_SINCOS, _SINCOS, _DIV),             # sin / cos
    "atan": _ATAN,
    "atan2": _add(_DIV, _ATAN, (1, 0)),              # atan(y/x) + quadrant fix-up
    "asin": _add(_ATAN, _RSQRT, (1, 2)),             # atan(x * rsqrt(1 - x^2))
    "acos": _add(_ATAN, _RSQRT, (2, 2)),             # pi/2 - asin(x)
    "sinh": _add(_EXP, _DIV, (1, 1)),                # (e^x - 1/e^x) / 2
    "cosh": _add(_EXP, _DIV, (1, 1)),                # (e^x + 1/e^x) / 2
    "asinh": _add(_LOG, _RSQRT, (0, 1), (2, 1)),     # log(x + sqrt(x^2 + 1))
    "acosh": _add(_LOG, _RSQRT, (0, 1), (2, 1)),     # log(x + sqrt(x^2 - 1))
    "atanh": _add(_LOG, _DIV, (2, 1)),               # log((1 + x) / (1 - x)) / 2
    # special functions (Abramowitz & Stegun / Numerical Recipes rational forms)
    # A&S 7.1.26: t = 1/(1+px), degree-5 poly, * exp(-x^2)
    "erf": _add(_EXP, _DIV, (7, 8)),
    "erfc": _add(_EXP, _DIV, (7, 8)),                # same form
    "erf_inv": (9, 10),                              # Giles (2010) degree-9 poly in w
    # Lanczos g=7: 8 terms (8 ADD, 8 div) + 2 logs + 1 MUL, 1 ADD
    "lgamma": _add(_LOG, _LOG, (9, 9)),
    "digamma": _add(_LOG, (10, 12)),                 # asymptotic series after recurrence shift
    "igamma": _add(_EXP, _LOG, (40, 40)),            # ~20-term series (Numerical Recipes 6.2)
    "igammac": _add(_EXP, _LOG, (40, 40)),
    "igamma_grad_a": _add(_EXP, _LOG, (60, 60)),
    "random_gamma_grad": _add(_EXP, _LOG, (60, 60)),
    "polygamma": _add(_LOG, (20, 24)),
    "zeta": (40, 40),                                # Euler-Maclaurin, ~12 terms
    "bessel_i0e": (10, 11),                          # Cephes Chebyshev, degree ~10
    "bessel_i1e": (10, 12),
    "regularized_incomplete_beta": _add(_EXP, _LOG, _LOG, (60, 60)),  # continued fraction
})

# Primitives XLA's HloCostAnalysis counts as "transcendentals" (hlo_cost_analysis.cc,
# HandleElementwiseOp), plus the special functions jax lowers through them.
TRANSCENDENTALS: frozenset[str] = frozenset({
    "exp", "exp2", "expm1", "log", "log1p", "logistic", "tanh", "pow", "sqrt", "rsqrt",
    "cbrt", "sin", "cos", "tan", "atan", "atan2", "asin", "acos", "sinh", "cosh", "asinh",
    "acosh", "atanh", "erf", "erfc", "erf_inv", "lgamma", "digamma", "igamma", "igammac",
    "igamma_grad_a", "random_gamma_grad", "polygamma", "zeta", "bessel_i0e", "bessel_i1e",
    "regularized_incomplete_beta",
})


@dataclasses.dataclass(frozen=True)
class CostModel:
  """Prices, in (ADD, MUL) per element, of operations that are not one add or multiply.

  Args:
    prices: overrides, primitive name -> ``(adds, muls)``; merged over
      :data:`DEFAULT_PRICES`.

  Example:
    >>> cm = jaxgreen.CostModel({"exp": (1, 1), "tanh": (1, 1)})
    >>> jaxgreen.count(f, cost_model=cm)(x)
  """

  prices: Mapping[str, Price] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    if not isinstance(self.prices, Mapping):
      raise TypeError(
          f"CostModel(prices=...) must be a mapping of primitive name to (adds, muls); "
          f"got {type(self.prices).__name__}: {self.prices!r}")
    merged = dict(DEFAULT_PRICES)
    for name, p in self.prices.items():
      ok = (isinstance(p, tuple | list) and len(p) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in p))
      if not isinstance(name, str) or not ok:
        raise ValueError(
            f"CostModel(prices={{{name!r}: {p!r}}}): each price must be a pair of "
            f"non-negative ints (adds, muls), e.g. {{'exp': (7, 7)}}")
      merged[name] = (int(p[0]), int(p[1]))
    object.__setattr__(self, "prices", MappingProxyType(merged))

  def price(self, name: str) -> Price | None:
    """The (ADD, MUL) price of one element of ``name``, or None if it has none."""
    return self.prices.get(name)

  def is_transcendental(self, name: str) -> bool:
    return name in TRANSCENDENTALS

  def overridden(self) -> dict[str, Price]:
    """The prices that differ from the defaults."""
    return {k: v for k, v in self.prices.items() if DEFAULT_PRICES.get(k) != v}


DEFAULT = CostModel()
