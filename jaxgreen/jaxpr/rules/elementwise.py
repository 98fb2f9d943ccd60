"""Elementwise arithmetic: priced per output element (after broadcasting).

Every primitive priced in :data:`jaxgreen.cost_model.DEFAULT_PRICES` gets the same
rule: ``price(name) * output elements``; transcendentals are also counted raw.
Complex ``add``/``sub`` are 2 ADD and complex ``mul`` is 4 MUL + 2 ADD per element.
"""

from __future__ import annotations

from jax import lax
from jax.extend.core import primitives as P

from jaxgreen.cost_model import DEFAULT_PRICES
from jaxgreen.jaxpr.registry import register
from jaxgreen.jaxpr.rules._util import is_complex, ops, size

# Complex arithmetic in real operations: (a+bi)+(c+di) is 2 ADD;
# (a+bi)(c+di) = (ac-bd) + (ad+bc)i is 4 MUL + 2 ADD.
_COMPLEX = {"add": (2, 0), "sub": (2, 0), "add_any": (2, 0), "mul": (2, 4)}

# Integer and bitwise primitives: one integer operation per element.
_BITWISE = ("and", "or", "xor", "not", "shift_left", "shift_right_logical",
            "shift_right_arithmetic", "population_count", "clz")


def _elementwise(ctx, *args, **_):
  name = ctx.eqn.primitive.name
  out = ctx.outs[0]
  n = size(out)
  if name in _COMPLEX and any(is_complex(a) for a in args):
    a, m = _COMPLEX[name]
  else:
    a, m = ctx.model.price(name)  # type: ignore[misc]
  t = n if ctx.model.is_transcendental(name) else 0
  return ops(adds=a * n, muls=m * n, transcendentals=t)


def _integer_op(ctx, *args, **_):
  return ops(int_ops=size(ctx.outs[0]))


def integer_pow_muls(y: int) -> int:
  """MULs of x**y by repeated squaring: floor(log2 y) squarings + popcount(y) - 1."""
  y = abs(int(y))
  if y <= 1:
    return 0
  return (y.bit_length() - 1) + (bin(y).count("1") - 1)


def _integer_pow(ctx, x, *, y, **_):
  n = size(ctx.outs[0])
  adds, muls = 0, integer_pow_muls(y)
  if y < 0:  # 1 / x**|y|: one division more
    da, dm = ctx.model.price("div")
    adds, muls = adds + da, muls + dm
  return ops(adds=adds * n, muls=muls * n)


def _price_names():
  by_name = {p.name: p for p in vars(P).values() if hasattr(p, "bind") and hasattr(p, "name")}
  names = sorted(n for n in DEFAULT_PRICES if n in by_name)
  return [by_name[n] for n in names], [n for n in DEFAULT_PRICES if n not in by_name]


_prims, _by_name_only = _price_names()
register(*_prims, *_by_name_only)(_elementwise)
register(*(getattr(P, f"{n}_p") for n in _BITWISE if hasattr(P, f"{n}_p")))(_integer_op)
register(lax.integer_pow_p)(_integer_pow)
