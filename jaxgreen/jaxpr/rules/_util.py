"""Small helpers shared by rule modules."""

from __future__ import annotations

import math

from jaxgreen.cost import Counts


def size(aval) -> int:
  return math.prod(aval.shape)


def is_complex(aval) -> bool:
  return getattr(getattr(aval, "dtype", None), "kind", "") == "c"


def ops(adds: int = 0, muls: int = 0, transcendentals: int = 0, int_ops: int = 0) -> Counts:
  return Counts(adds=adds, muls=muls, transcendentals=transcendentals, int_ops=int_ops)


def clog2(n: int) -> int:
  """ceil(log2(n)) for n >= 1."""
  return max(0, (int(n) - 1).bit_length())
