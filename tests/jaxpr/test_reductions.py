"""Reductions (n - 1 per output), cumulative ops and windowed reductions."""

import jax
import jax.numpy as jnp
import pytest
from jax import lax

import jaxgreen

S = jax.ShapeDtypeStruct
F32 = jnp.float32
CM = jaxgreen.CostModel()
X = S((4, 8, 16), F32)


@pytest.mark.parametrize("fn,field", [
    (jnp.sum, "adds"), (jnp.max, "adds"), (jnp.min, "adds"), (jnp.prod, "muls"),
], ids=["sum", "max", "min", "prod"])
@pytest.mark.parametrize("axis,n_out", [(1, 4 * 16), ((0, 2), 8), (None, 1)])
def test_reducing_n_elements_takes_n_minus_1(fn, field, axis, n_out):
  c = jaxgreen.count(lambda x: fn(x, axis=axis))(X)
  assert getattr(c, field) == 4 * 8 * 16 - n_out  # inputs - outputs = outputs·(n - 1)
  assert c.fpo == 4 * 8 * 16 - n_out


def test_argmax_counts_compares_on_floats():
  c = jaxgreen.count(lambda x: jnp.argmax(x, axis=-1))(X)
  assert c.adds == 4 * 8 * 15


def test_integer_sum_is_int_ops():
  c = jaxgreen.count(jnp.sum)(S((10,), jnp.int32))
  assert c.fpo == 0 and c.int_ops == 9


@pytest.mark.parametrize("fn,name", [
    (lax.cumsum, "add"), (lax.cumprod, "mul"), (lax.cummax, "max"), (lax.cummin, "min"),
])
def test_cumulative_ops_are_n_minus_1_per_row(fn, name):
  c = jaxgreen.count(lambda x: fn(x, axis=1))(S((4, 10), F32))
  adds, muls = CM.price(name)
  assert (c.adds, c.muls) == (4 * 9 * adds, 4 * 9 * muls)  # rows·(n - 1)


def test_cumlogsumexp():
  c = jaxgreen.count(lambda x: lax.cumlogsumexp(x, axis=1))(S((4, 10), F32))
  steps = 4 * 9
  # max(a, b) + log1p(exp(-|a - b|)), as jax evaluates it: compare, sub, the NaN guard
  # (a - b != a - b, then a + b), exp, log1p, add
  exp, log1p = CM.price("exp"), CM.price("log1p")
  assert c.adds == steps * (1 + 1 + 1 + 1 + exp[0] + log1p[0] + 1)
  assert c.muls == steps * (exp[1] + log1p[1])
  assert c.transcendentals == 2 * steps


@pytest.mark.parametrize("init,op,name", [
    (0.0, lax.add, "reduce_window_sum"), (-jnp.inf, lax.max, "reduce_window_max"),
    (jnp.inf, lax.min, "reduce_window_min"),
])
def test_reduce_window_counts_taps_minus_one_per_output(init, op, name):
  def pool(x):
    return lax.reduce_window(x, init, op, (1, 3, 3, 1), (1, 2, 2, 1), "SAME")

  c = jaxgreen.count(pool)(S((2, 9, 9, 3), F32))
  out = 2 * 5 * 5 * 3  # SAME padding, stride 2: ceil(9/2) = 5
  assert c.by_primitive[name].fpo == out * (3 * 3 - 1)  # padded taps included


def test_max_pool_gradient_select_and_scatter_add():
  def loss(x):
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID").sum()

  c = jaxgreen.count(jax.grad(loss))(S((1, 8, 8, 1), F32))
  src = 1 * 4 * 4 * 1  # one gradient per window
  sas = c.by_primitive["select_and_scatter_add"]
  assert sas.adds == src * (2 * 2 - 1) + src  # window compares + one add per source
  assert sas.muls == 0


def test_generic_reduce_walks_its_computation():
  def f(x):
    return lax.reduce(x, 0.0, lambda a, b: a * 2.0 + b, (1,))

  c = jaxgreen.count(f)(S((4, 8), F32))
  assert c.muls == 4 * 7 and c.adds == 4 * 7  # (n - 1) applications per output


@pytest.mark.parametrize("fn", [
    lambda x: jnp.sum(x, axis=1), lambda x: lax.reduce_max(x, (1,)),
    lambda x: jnp.prod(x, axis=1), lambda x: jnp.mean(x, axis=1),
    lambda x: lax.reduce(x, 0.0, lambda a, b: a * 2.0 + b, (1,)),
], ids=["sum", "max", "prod", "mean", "generic"])
def test_empty_reduction_costs_nothing_never_a_negative_count(fn):
  c = jaxgreen.count(fn)(S((3, 0), F32))
  assert c.adds == 0  # 0 inputs to 3 outputs: no operation, not 0 - 3
  assert all(v.adds >= 0 and v.muls >= 0 for v in c.by_primitive.values())


def test_empty_integer_and_boolean_reductions_cost_nothing():
  assert jaxgreen.count(lambda x: jnp.sum(x, axis=1))(S((3, 0), jnp.int32)).int_ops == 0
  assert jaxgreen.count(lambda x: jnp.any(x, axis=1))(S((3, 0), jnp.bool_)).int_ops == 0


def test_complex_max_is_three_compares_per_step():
  c = jaxgreen.count(lambda x: lax.reduce_max(x, (0,)))(S((5,), jnp.complex64))
  # (n - 1) steps, lexicographic as jax lowers it: real parts equal? then compare the
  # imaginary parts, else the real parts (eq + 2 gt)
  assert c.adds == (5 - 1) * 3
