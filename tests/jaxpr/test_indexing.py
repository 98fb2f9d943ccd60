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


def test_scatter_apply_walks_its_update_computation_per_updated_element():
  # x.at[i].apply(f) is a scatter whose update_jaxpr is f: one sin per index (a
  # repeated index is applied twice, as lax.scatter_apply documents).
  sa, sm = jaxgreen.CostModel().price("sin")
  c = jaxgreen.count(lambda x, i: x.at[i].apply(jnp.sin))(S((10, 4), F32), IDX)
  assert (c.adds, c.muls) == (5 * 4 * sa, 5 * 4 * sm)  # 5 rows of 4 elements
  assert c.transcendentals == 5 * 4
  assert c.by_primitive["sin"].muls == 5 * 4 * sm
  assert c.bytes > 0  # the scatter's own traffic is kept
  # a cost model override reprices it: one sin per updated element
  model = jaxgreen.CostModel({"sin": (1, 2)})
  c = jaxgreen.count(lambda x, i: x.at[i].apply(jnp.sin), cost_model=model)(
      S((10, 4), F32), IDX)
  assert (c.adds, c.muls) == (20, 40)


def test_lax_scatter_apply_with_a_polynomial():
  dn = lax.ScatterDimensionNumbers(update_window_dims=(), inserted_window_dims=(0,),
                                   scatter_dims_to_operand_dims=(0,))

  def f(x, i):
    return lax.scatter_apply(x, i[:, None], lambda v: v * v + 1.0, dn, update_shape=(5,))

  c = jaxgreen.count(f)(S((10,), F32), IDX)
  assert (c.adds, c.muls) == (5, 5)  # v*v + 1: one MUL and one ADD per index


def test_no_zero_cost_primitive_carries_a_computation():
  from jax.extend import core as jcore

  from jaxgreen._src.jaxpr.registry import ZERO_COST

  assert "scatter" not in ZERO_COST  # it carries x.at[i].apply's function

  def programs(x, i):
    yield x.at[i].apply(jnp.sin)
    yield x.at[i].set(1.0)
    yield x[i]
    yield lax.pad(x, 0.0, ((2, 3, 1),))[::-1].reshape(-1, 4).T
    yield lax.dynamic_update_slice(x, x[:3], (2,))
    yield jnp.concatenate([x, lax.stop_gradient(x)])

  closed = jax.make_jaxpr(lambda x, i: list(programs(x, i)))(S((10,), F32), IDX)
  seen = set()
  for eqn in closed.jaxpr.eqns:
    if eqn.primitive.name in ZERO_COST:
      seen.add(eqn.primitive.name)
      carried = [k for k, v in eqn.params.items()
                 if isinstance(v, jcore.Jaxpr | jcore.ClosedJaxpr) and v.eqns]
      assert not carried, (eqn.primitive.name, carried)
  assert {"gather", "pad", "rev", "dynamic_update_slice"} <= seen


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
def test_random_split_is_one_threefry_block_per_new_key(n, rolled_threefry):
  c = jaxgreen.count(lambda k: jax.random.split(k, n))(jax.random.key(0))
  # jax's split program: per new key, one Threefry block (20 rounds of 5 ops + 5
  # injections of 3) on a counter (iota_2x32_shape: 2 ops per word)
  assert c.int_ops == n * (20 * 5 + 5 * 3 + 2)
  lowered = jaxgreen.count(lambda k: jax.random.split(k, n), stage="lowered")(
      jax.random.key(0)).int_ops
  if not rolled_threefry(lambda k: jax.random.split(k, n), jax.random.key(0)):
    assert lowered == c.int_ops
    return
  # A rolled Threefry loop (jax 0.12.1 on the CPU) adds its own control (counters,
  # compares, rotation lookups): more than the rounds, less than one more block.
  assert c.int_ops < lowered < c.int_ops + (20 * 5 + 5 * 3 + 2)


def test_rng_uniform_low_precision_float_adds_scale_and_shift():
  bf16 = jnp.bfloat16
  c = jaxgreen.count(lambda a, b: lax.rng_uniform(a, b, (8,)))(S((), bf16), S((), bf16))
  assert (c.adds, c.muls) == (8, 8)  # one scale and one shift per element
