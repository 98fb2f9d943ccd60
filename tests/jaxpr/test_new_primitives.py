"""Primitives new in jax 0.12.1, each counted (skipped on releases that lack them)."""

import jax
import jax.numpy as jnp
import pytest
from jax import lax

import jaxgreen
from jaxgreen._src.cost_model import DEFAULT
from jaxgreen._src.jaxpr.interpreter import Walker

S = jax.ShapeDtypeStruct
X = S((8,), jnp.float32)


def _needs(module, name):
  if not hasattr(module, name):
    pytest.skip(f"jax {jax.__version__} has no {name} (new in jax 0.12.1)")
  return getattr(module, name)


@pytest.mark.parametrize("name,adds,muls", [
    # sin(pi x): one MUL, then sin's Cody-Waite reduction (2, 2) + odd polynomial (4, 6)
    ("sinpi", 6, 8 + 1), ("cospi", 6, 8 + 1),
    ("tanpi", 6 + 6, 8 + 8 + 1 + 1),  # sin / cos, one MUL for pi x
    ("atanpi", 6, 8 + 1),  # atan, divided by pi
    ("exp2m1", 7 + 1, 7 + 1),  # exp (7, 7), x ln 2, a compensating ADD
    ("log2p1", 9 + 1, 9 + 1),  # log1p (10, 9), divided by ln 2
])
def test_pi_scaled_and_base_2_functions(name, adds, muls):
  f = _needs(lax, name)
  c = jaxgreen.count(f)(X)
  assert (c.adds, c.muls) == (8 * adds, 8 * muls)  # 8 elements
  assert c.exact and not c.uncounted
  assert c.transcendentals == 8


def test_atan2pi_and_fused_multiply_adds():
  atan2pi, fma, fmuladd = (_needs(lax, n) for n in ("atan2pi", "fma", "fmuladd"))
  c = jaxgreen.count(atan2pi)(X, X)
  assert (c.adds, c.muls) == (8 * (6 + 1), 8 * (1 + 8 + 1))  # y / x, atan, fix-up, / pi
  for f in (fma, fmuladd):
    c = jaxgreen.count(f)(X, X, X)
    assert (c.adds, c.muls) == (8, 8)  # a * b + c: one MUL and one ADD per element


def _walk(f, *args, axis_size=4):
  closed = jax.make_jaxpr(f, axis_env=[("i", axis_size)])(*args)
  return Walker(cost_model=DEFAULT).walk(closed.jaxpr, [None] * len(closed.jaxpr.invars),
                                         {"i": axis_size})


def test_max_and_min_scatter_and_integer_xor_allreduce():
  from jax._src.lax import parallel

  pmax_scatter = _needs(parallel, "pmax_scatter")
  _needs(parallel, "pxor_p")
  c = _walk(lambda x: pmax_scatter(x, "i"), S((4, 8), jnp.float32))
  # Like psum_scatter: (n - 1) / n of the elements, one compare each: 3/4 x 32
  assert (c.adds, c.muls, c.uncounted) == (24, 0, {})
  c = _walk(lambda x: parallel._pxor(x, "i"), S((8,), jnp.int32))
  assert (c.fpo, c.int_ops, c.uncounted) == (0, 6, {})  # 3/4 x 8 integer xors, no FPO


def test_poisson_sampler_and_raw_key_bits():
  from jax._src.random import prng

  raw_bits = _needs(prng, "raw_bits")
  key = jax.eval_shape(lambda: jax.random.key(0))
  c = jaxgreen.count(lambda k: jax.random.poisson(k, 3.0, (8,)))(key)
  assert not c.uncounted and c.fpo > 0
  assert not c.exact  # a rejection loop of data-dependent length, named
  c = jaxgreen.count(lambda k: raw_bits(k, (4,)))(key)
  # raw words of a threefry key: integer work only, never FPO
  assert not c.uncounted and c.fpo == 0 and c.int_ops > 0
  assert c.int_ops >= 2 * 115  # at least the 2 Threefry-2x32 blocks (115 ops) of 4 words
