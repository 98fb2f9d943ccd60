"""Small helpers shared by rule modules."""

from __future__ import annotations

import math

from jaxgreen._src.cost import Counts
from jaxgreen._src.formulas import clog2 as clog2
from jaxgreen._src.formulas import complex_price as complex_price
from jaxgreen._src.formulas import elementwise_price


def size(aval) -> int:
  return math.prod(aval.shape)


def is_complex(aval) -> bool:
  return getattr(getattr(aval, "dtype", None), "kind", "") == "c"


def ops(adds: int = 0, muls: int = 0, transcendentals: int = 0, int_ops: int = 0) -> Counts:
  return Counts(adds=adds, muls=muls, transcendentals=transcendentals, int_ops=int_ops)


# Complex prices live with the other shared formulas (the HLO walker uses them too).
def price(model, name: str, complex_: bool = False) -> tuple[int, int]:
  """(ADD, MUL) per element of ``name``, on complex operands when ``complex_``."""
  p = elementwise_price(model, name, complex_)
  if p is None:
    raise TypeError(f"the cost model has no price for {name!r}")
  return p


def model_price(model, name: str) -> tuple[int, int]:
  """``model.price(name)``: (ADD, MUL) per element; a TypeError when it has none."""
  p = model.price(name)
  if p is None:
    raise TypeError(f"the cost model has no price for {name!r}")
  return p


def priced(model, name: str, n: int, complex_: bool = False) -> Counts:
  """``n`` applications of ``name`` (n <= 0, as for an empty reduction, costs nothing)."""
  a, m = price(model, name, complex_)
  n = max(0, n)
  return ops(adds=a * n, muls=m * n)


