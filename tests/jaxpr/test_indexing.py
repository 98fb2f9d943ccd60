"""Gather and scatter, sorting and selection, random bits."""

import jax
import jax.numpy as jnp
import pytest
from jax import lax

import jaxgreen

S = jax.ShapeDtypeStruct
F32 = jnp.float32
IDX = S((5,), jnp.int32)


def test_gather_moves_data_only():
  c = jaxgreen.count(lambda x, i: x[i])(S((10, 4), F32), IDX)
  assert c.fpo == 0 and c.bytes > 0


@pytest.mark.parametrize("method,field", [
    ("add", "adds"), ("multiply", "muls"), ("max", "adds"), ("min", "adds"),
])
def test_scatter_with_arithmetic_counts_one_op_per_update(method, field):
  def f(x, i, u):
    return getattr(x.at[i], method)(u)

  c = jaxgreen.count(f)(S((10, 4), F32), IDX, S((5, 4), F32))
  assert getattr(c, field) == 5 * 4  # update elements
  assert c.fpo == 5 * 4


def test_plain_scatter_is_free():
  c = jaxgreen.count(lambda x, i, u: x.at[i].set(u))(S((10, 4), F32), IDX, S((5, 4), F32))
  assert c.fpo == 0


def test_embedding_gradient_is_a_scatter_add():
  def loss(table, ids):
    return table[ids].sum()

  c = jaxgreen.count(jax.grad(loss))(S((100, 8), F32), IDX)
  assert c.by_primitive["scatter-add"].adds == 5 * 8


def test_sort_n_log_n_compares():
  c = jaxgreen.count(lambda x: jnp.sort(x, axis=-1))(S((3, 16), F32))
  assert c.adds == 3 * 16 * 4  # rows·n·ceil(log2 n)
  c = jaxgreen.count(lambda x: jnp.sort(x))(S((16,), jnp.int32))
  assert c.fpo == 0 and c.int_ops == 16 * 4


def test_top_k_heap_compares():
  n, k = 64, 8
  c = jaxgreen.count(lambda x: lax.top_k(x, k))(S((2, n), F32))
  # (n - k)(1 + ceil(log2 k)) + k·ceil(log2 k) per row
  assert c.by_primitive["top_k"].adds == 2 * ((n - k) * (1 + 3) + k * 3)


def test_random_bits_are_int_ops_not_fpo():
  c = jaxgreen.count(lambda k: jax.random.bits(k, (8,)))(jax.random.key(0))
  assert c.fpo == 0
  assert c.int_ops > 0
  assert c.exact


def test_random_normal_counts_float_transform_as_fpo():
  c = jaxgreen.count(lambda k: jax.random.normal(k, (8,)))(jax.random.key(0))
  assert c.int_ops > 0 and c.fpo > 0
  assert c.exact


def test_random_gamma_is_counted_from_its_sampler_and_inexact():
  c = jaxgreen.count(lambda k, a: jax.random.gamma(k, a))(jax.random.key(0), S((4,), F32))
  assert not c.uncounted
  assert c.fpo > 0
  assert not c.exact  # rejection sampling: a data-dependent loop


def test_mulhi_is_integer_work():
  c = jaxgreen.count(lax.mulhi)(S((6,), jnp.uint32), S((6,), jnp.uint32))
  assert c.fpo == 0 and c.int_ops == 6


def test_rng_uniform_float_adds_scale_and_shift():
  c = jaxgreen.count(lambda a, b: lax.rng_uniform(a, b, (8,)))(S((), F32), S((), F32))
  assert (c.adds, c.muls) == (8, 8)  # one scale and one shift per element
  assert c.int_ops > 0


def test_top_k_of_zero_elements_compares_nothing():
  c = jaxgreen.count(lambda x: lax.top_k(x, 0))(S((3, 8), F32))
  assert c.fpo == 0  # k = 0: nothing to select


@pytest.mark.parametrize("n", [0, 1, 3])
def test_random_split_is_one_threefry_block_per_new_key(n):
  c = jaxgreen.count(lambda k: jax.random.split(k, n))(jax.random.key(0))
  assert c.int_ops == n * (20 * 5 + 5 * 3)  # keys·(20 rounds of 5 ops + 5 injections of 3)


def test_rng_uniform_low_precision_float_adds_scale_and_shift():
  bf16 = jnp.bfloat16
  c = jaxgreen.count(lambda a, b: lax.rng_uniform(a, b, (8,)))(S((), bf16), S((), bf16))
  assert (c.adds, c.muls) == (8, 8)  # one scale and one shift per element
