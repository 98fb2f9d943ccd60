"""Elementwise arithmetic: per output element after broadcasting, priced by the model."""

import jax
import jax.numpy as jnp
import pytest
from jax import lax

import jaxgreen

S = jax.ShapeDtypeStruct
F32 = jnp.float32
CM = jaxgreen.CostModel()


@pytest.mark.parametrize("fn,name", [
    (lax.add, "add"), (lax.sub, "sub"), (lax.mul, "mul"), (lax.div, "div"),
    (lax.max, "max"), (lax.min, "min"), (lax.pow, "pow"), (lax.atan2, "atan2"),
    (lax.rem, "rem"), (lax.lt, "lt"), (lax.eq, "eq"), (lax.nextafter, "nextafter"),
])
def test_binary_ops_count_per_broadcast_output_element(fn, name):
  c = jaxgreen.count(lambda a, b: fn(jnp.broadcast_to(a, (8, 16)), b))(
      S((8, 1), F32), S((8, 16), F32))
  adds, muls = CM.price(name)
  assert (c.adds, c.muls) == (adds * 8 * 16, muls * 8 * 16)  # price·outputs
  assert c.exact


def test_scalar_operand_broadcasts_to_the_output():
  c = jaxgreen.count(lambda a: a * 3.0 + 1.0)(S((5, 7), F32))
  assert (c.muls, c.adds) == (5 * 7, 5 * 7)


@pytest.mark.parametrize("fn,name", [
    (jnp.exp, "exp"), (jnp.log, "log"), (jnp.tanh, "tanh"), (jax.nn.sigmoid, "logistic"),
    (jnp.sin, "sin"), (jnp.sqrt, "sqrt"), (lax.rsqrt, "rsqrt"), (jnp.log1p, "log1p"),
    (lax.erf, "erf"), (lax.lgamma, "lgamma"), (jnp.arctan, "atan"), (jnp.cosh, "cosh"),
])
def test_transcendentals_are_priced_and_counted_raw(fn, name):
  c = jaxgreen.count(fn)(S((3, 5), F32))
  adds, muls = CM.price(name)
  assert (c.adds, c.muls) == (adds * 15, muls * 15)
  assert c.transcendentals == 15  # one evaluation per element
  assert c.by_primitive[name].fpo == c.fpo


@pytest.mark.parametrize("y,muls", [
    (0, 0), (1, 0), (2, 1), (3, 2), (4, 2), (5, 3), (7, 4), (8, 3), (15, 6), (16, 4),
])
def test_integer_pow_by_repeated_squaring(y, muls):
  c = jaxgreen.count(lambda x: lax.integer_pow(x, y))(S((10,), F32))
  # floor(log2 y) squarings + (popcount(y) - 1) multiplies
  assert c.muls == muls * 10


def test_negative_integer_pow_adds_one_division():
  c = jaxgreen.count(lambda x: lax.integer_pow(x, -3))(S((10,), F32))
  assert c.muls == (2 + CM.price("div")[1]) * 10  # x·x·x, then 1/·


@pytest.mark.parametrize("fn", [jnp.negative, jnp.abs, jnp.sign, lambda x: -x])
def test_sign_bit_ops_are_free(fn):
  c = jaxgreen.count(fn)(S((10,), F32))
  assert c.fpo == 0
  assert c.bytes > 0  # still reads and writes memory


def test_select_n_with_bool_predicate_is_data_movement():
  c = jaxgreen.count(lambda p, a, b: jnp.where(p, a, b))(
      S((6,), jnp.bool_), S((6,), F32), S((6,), F32))
  assert c.fpo == 0 and c.int_ops == 0
  assert "select_n" in c.by_primitive  # listed with its bytes, not missing


def test_float_comparison_is_fpo_integer_ops_are_not():
  c = jaxgreen.count(lambda a, b: a < b)(S((6,), F32), S((6,), F32))
  assert c.adds == 6 and c.int_ops == 0  # a compare is an ADD
  c = jaxgreen.count(lambda a, b: (a < b) & (a * b > 0))(S((6,), jnp.int32),
                                                        S((6,), jnp.int32))
  assert c.fpo == 0
  assert c.int_ops == 6 * 4  # lt, mul, gt, and


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, jnp.float8_e4m3fn],
                         ids=["bf16", "f16", "fp8"])
def test_low_precision_floats_are_floating_point(dtype):
  c = jaxgreen.count(lambda a, b: a * b)(S((4,), dtype), S((4,), dtype))
  assert c.muls == 4 and c.int_ops == 0


@pytest.mark.parametrize("fn,adds,muls", [
    (lambda a, b: a + b, 2, 0),
    (lambda a, b: a * b, 2, 4),  # (ac - bd) + (ad + bc)i
    (lambda a, b: a / b, 3, 6 + 2),  # 6 MUL + 3 ADD + 2 divisions
], ids=["add", "mul", "div"])
def test_complex_arithmetic_in_real_operations(fn, adds, muls):
  z = S((3,), jnp.complex64)
  c = jaxgreen.count(fn)(z, z)
  assert (c.adds, c.muls) == (adds * 3, muls * 3)


def test_complex_abs_and_exp():
  z = S((3,), jnp.complex64)
  sqrt, exp, sin, cos = (CM.price(n) for n in ("sqrt", "exp", "sin", "cos"))
  c = jaxgreen.count(jnp.abs)(z)
  assert (c.adds, c.muls) == (3 * (1 + sqrt[0]), 3 * (2 + sqrt[1]))  # sqrt(a^2 + b^2)
  c = jaxgreen.count(jnp.exp)(z)
  assert c.adds == 3 * (exp[0] + sin[0] + cos[0])  # e^a (cos b + i sin b)
  assert c.muls == 3 * (exp[1] + sin[1] + cos[1] + 2)


def test_reduce_precision_to_own_format_is_free_narrower_is_a_rounding():
  x = S((10,), F32)
  assert jaxgreen.count(lambda v: lax.reduce_precision(v, 8, 23))(x).fpo == 0
  c = jaxgreen.count(lambda v: lax.reduce_precision(v, 8, 7))(x)  # to bfloat16
  assert c.adds == 10 * CM.price("reduce_precision")[0]


def test_cost_model_override_changes_only_that_primitive():
  cm = jaxgreen.CostModel({"exp": (1, 2)})
  c = jaxgreen.count(lambda x: jnp.exp(x) * x, cost_model=cm)(S((10,), F32))
  assert (c.adds, c.muls) == (10 * 1, 10 * 2 + 10)


def test_bytes_are_operands_plus_results():
  c = jaxgreen.count(lambda a, b: a + b)(S((10,), F32), S((10,), F32))
  assert c.bytes == 3 * 10 * 4  # two inputs, one output, float32
