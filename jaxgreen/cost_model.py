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
import difflib
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


# (names, (ADD, MUL) per element, how the price is derived). The README's cost-model
# table is generated from this list (`python -m jaxgreen.cost_model`).
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
    "regularized_incomplete_beta",
})


def _rule_names() -> set[str]:
  """Primitives with a rule registered by the user (such a rule may read its own price);
  jaxgreen's own rules read only the prices in :data:`DEFAULT_PRICES`."""
  from jaxgreen.jaxpr import registry

  own = "jaxgreen."
  rules = [*((p.name, r) for p, r in registry._RULES.items()),
           *registry._RULES_BY_NAME.items()]
  return {n for n, r in rules if not getattr(r, "__module__", "").startswith(own)}


def _builtin_rule(name: str) -> bool:
  from jaxgreen.jaxpr import registry

  return name in registry.registered_names()


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
      if not isinstance(name, str):
        raise ValueError(
            f"CostModel(prices={{{name!r}: {p!r}}}): keys are primitive names (str), "
            f"e.g. {{'exp': (7, 7)}}")
      ok = (isinstance(p, tuple | list) and len(p) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in p))
      if not ok:
        raise ValueError(
            f"CostModel(prices={{{name!r}: {p!r}}}): each price must be a pair of "
            f"non-negative ints (adds, muls), e.g. {{'exp': (7, 7)}}")
      if name not in DEFAULT_PRICES and name not in _rule_names():
        near = difflib.get_close_matches(name, DEFAULT_PRICES, n=3)
        hint = f"did you mean {', '.join(map(repr, near))}? " if near else ""
        why = (" (jaxgreen counts it from its shapes and never reads a price for it, so "
               "this price would be ignored)" if _builtin_rule(name) else "")
        raise ValueError(
            f"CostModel(prices={{{name!r}: ...}}): {name!r} is not priced by the cost "
            f"model{why}; {hint}the priced names are listed in "
            f"jaxgreen.cost_model.DEFAULT_PRICES (register a rule with "
            f"jaxgreen.register_rule first to price a primitive of your own)")
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


if __name__ == "__main__":
  print(markdown_table())
