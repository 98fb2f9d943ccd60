"""Elementwise arithmetic: priced per output element (after broadcasting).

Every primitive priced in :data:`jaxgreen._src.formulas.DEFAULT_PRICES` gets the same
rule: ``price(name) * output elements``; transcendentals are also counted raw. So a new
elementwise primitive is one line of :data:`jaxgreen._src.formulas.elementwise.PRICE_TABLE`
and nothing here; an integer one, a name in :data:`jaxgreen._src.formulas.BITWISE`.

Complex operands, in real operations per element (z = a + bi, w = c + di):

* ``add``/``sub``: 2 ADD. ``mul``: (ac - bd) + (ad + bc)i, 4 MUL + 2 ADD.
* ``square``: (a^2 - b^2) + 2ab i, 3 MUL + 2 ADD (2ab as ab + ab).
* ``div``: ((ac + bd) + (bc - ad)i) / (c^2 + d^2), 6 MUL + 3 ADD + 2 divisions.
* ``abs``: sqrt(a^2 + b^2), 2 MUL + 1 ADD + one sqrt. ``sign``: z / |z|, abs + 2 div.
* ``exp``: e^a (cos b + i sin b), one exp, sin, cos + 2 MUL.
* ``log``: log(a^2 + b^2) / 2 + i atan2(b, a): 2 MUL + 1 ADD, log, 1 MUL, atan2.
* other transcendental functions: the real recipe on each part, plus one complex
  multiply to combine them (2 x price + 2 ADD + 4 MUL); other operations act on each
  part (2 x price).

The complex prices live in :func:`jaxgreen._src.formulas.complex_price`, shared with
reductions, scatters and the HLO walker (which prices complex HLO opcodes with it).
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax
from jax.extend.core import primitives as P

from jaxgreen._src.formulas import BITWISE, DEFAULT_PRICES
from jaxgreen._src.formulas import integer_pow_muls as integer_pow_muls  # re-exported
from jaxgreen._src.jaxpr.interpreter import RuleContext
from jaxgreen._src.jaxpr.registry import register
from jaxgreen._src.jaxpr.rules._util import complex_price as complex_price  # re-exported
from jaxgreen._src.jaxpr.rules._util import is_complex, model_price, ops, price, size


def _elementwise(ctx: RuleContext, *args, **_):
  name = ctx.name
  n = size(ctx.outs[0])
  a, m = price(ctx.model, name, any(is_complex(x) for x in args))
  t = n if ctx.model.is_transcendental(name) else 0
  return ops(adds=a * n, muls=m * n, transcendentals=t)


def _integer_op(ctx: RuleContext, *args, **_):
  return ops(int_ops=size(ctx.outs[0]))


def _integer_pow(ctx: RuleContext, x, *, y, **_):
  n = size(ctx.outs[0])
  k = integer_pow_muls(y)
  ma, mm = price(ctx.model, "mul", is_complex(x))
  adds, muls = k * ma, k * mm
  da, dm = price(ctx.model, "div", is_complex(x))
  if y < 0:  # 1 / x**|y|: one division more
    adds, muls = adds + da, muls + dm
  return ops(adds=adds * n, muls=muls * n)


def _reduce_precision(ctx: RuleContext, x, *, exponent_bits, mantissa_bits, **_):
  """Rounding to a narrower format costs one rounding (priced as "reduce_precision");
  rounding to the operand's own format is the identity (jax inserts those to pin
  rematerialised values) and costs nothing."""
  try:
    fi = jnp.finfo(x.dtype)
    same = (exponent_bits, mantissa_bits) == (fi.nexp, fi.nmant)
  except ValueError:
    same = False
  if same:
    return ops()
  n = size(ctx.outs[0])
  a, m = model_price(ctx.model, "reduce_precision")
  return ops(adds=a * n, muls=m * n)


def _polynomial(ctx: RuleContext, x, *coeffs, **_):
  """Horner's rule on ``len(coeffs)`` coefficients: one MUL and one ADD per coefficient
  after the first, per output element (as jax lowers ``lax.polynomial``)."""
  n = size(ctx.outs[0])
  steps = max(0, len(coeffs) - 1)
  ma, mm = price(ctx.model, "mul", is_complex(x))
  aa, am = price(ctx.model, "add", is_complex(x))
  return ops(adds=(ma + aa) * steps * n, muls=(mm + am) * steps * n)


# Priced by their own rule, not per element.
_OWN_RULE = ("reduce_precision",)


def _price_names():
  by_name = {p.name: p for p in vars(P).values() if hasattr(p, "bind") and hasattr(p, "name")}
  priced = [n for n in DEFAULT_PRICES if n not in _OWN_RULE]
  return ([by_name[n] for n in sorted(priced) if n in by_name],
          [n for n in priced if n not in by_name])


_prims, _by_name_only = _price_names()
register(*_prims, *_by_name_only)(_elementwise)
register(*(getattr(P, f"{n}_p") for n in BITWISE if hasattr(P, f"{n}_p")))(_integer_op)
register(lax.integer_pow_p)(_integer_pow)
register(P.reduce_precision_p)(_reduce_precision)
register("mulhi")(_integer_op)  # high half of an integer product
register("polynomial")(_polynomial)  # jax >= 0.12
