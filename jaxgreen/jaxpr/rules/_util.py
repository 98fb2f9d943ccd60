"""Small helpers shared by rule modules."""

from __future__ import annotations

import math

from jaxgreen.cost import Counts
from jaxgreen.formulas import clog2 as clog2


def size(aval) -> int:
  return math.prod(aval.shape)


def is_complex(aval) -> bool:
  return getattr(getattr(aval, "dtype", None), "kind", "") == "c"


def ops(adds: int = 0, muls: int = 0, transcendentals: int = 0, int_ops: int = 0) -> Counts:
  return Counts(adds=adds, muls=muls, transcendentals=transcendentals, int_ops=int_ops)


def _add(*ps):
  return (sum(p[0] for p in ps), sum(p[1] for p in ps))


def complex_price(model, name: str) -> tuple[int, int]:
  """(ADD, MUL) per element of ``name`` on complex operands (z = a + bi, w = c + di).

  ``add``/``sub``: 2 ADD. ``mul``: (ac - bd) + (ad + bc)i, 4 MUL + 2 ADD. ``square``:
  (a^2 - b^2) + 2ab i, 3 MUL + 2 ADD. ``div``: ((ac + bd) + (bc - ad)i) / (c^2 + d^2),
  6 MUL + 3 ADD + 2 divisions. ``abs``: sqrt(a^2 + b^2). ``sign``: z / |z|. ``exp``:
  e^a (cos b + i sin b). ``log``: log(a^2 + b^2) / 2 + i atan2(b, a). Other
  transcendental functions: the real recipe on each part plus one complex multiply
  (2 x price + 2 ADD + 4 MUL); other operations act on each part (2 x price).
  """
  p = model.price
  if name in ("add", "sub", "add_any"):
    return (2, 0)
  if name == "mul":
    return (2, 4)
  if name == "square":
    return (2, 3)
  if name == "div":
    return _add((3, 6), p("div"), p("div"))
  if name == "abs":
    return _add((1, 2), p("sqrt"))
  if name == "sign":
    return _add((1, 2), p("sqrt"), p("div"), p("div"))
  if name == "exp":
    return _add(p("exp"), p("sin"), p("cos"), (0, 2))
  if name == "log":
    return _add((1, 2), p("log"), (0, 1), p("atan2"))
  a, m = p(name)
  if model.is_transcendental(name):
    return (2 * a + 2, 2 * m + 4)
  return (2 * a, 2 * m)


def price(model, name: str, complex_: bool = False) -> tuple[int, int]:
  """(ADD, MUL) per element of ``name``, on complex operands when ``complex_``."""
  return complex_price(model, name) if complex_ else model.price(name)


def priced(model, name: str, n: int, complex_: bool = False) -> Counts:
  """``n`` applications of ``name`` (n <= 0, as for an empty reduction, costs nothing)."""
  a, m = price(model, name, complex_)
  n = max(0, n)
  return ops(adds=a * n, muls=m * n)


