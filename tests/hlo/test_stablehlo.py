"""The StableHLO walker counts the lowered program with the jaxpr counter's conventions."""

import jax
import jax.numpy as jnp
import pytest
from jax import lax

import jaxgreen
from jaxgreen.hlo import count_lowered
from jaxgreen.hlo.stablehlo import _attr_ints, _type_text, count_lowered_detail

F32 = jnp.float32


@pytest.mark.parametrize("mlir, hlo", [
    ("tensor<64x64xf32>", "f32[64,64]"),
    ("tensor<f32>", "f32[]"),
    ("tensor<4xi1>", "pred[4]"),
    ("tensor<2x3xui8>", "u8[2,3]"),
    ("tensor<8xbf16>", "bf16[8]"),
    ("tensor<2xcomplex<f32>>", "c64[2]"),
    ("!stablehlo.token", "token[]"),
])
def test_type_text(mlir, hlo):
  assert _type_text(mlir) == hlo


@pytest.mark.parametrize("text, ints", [
    ("array<i64: 1, 2, 2, 1>", [1, 2, 2, 1]),
    ("dense<0> : tensor<2x2xi64>", [0, 0, 0, 0]),  # a splat is expanded
    ("dense<[[1, 1], [0, 2]]> : tensor<2x2xi64>", [1, 1, 0, 2]),
    ("3 : i64", [3]),
])
def test_attr_ints(text, ints):
  assert _attr_ints(text) == ints


def _conv(w, x):
  y = lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
  return lax.reduce_window(y, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")


def _attention(q, k):
  s = jnp.einsum("bqd,bkd->bqk", q, k) / 8.0
  return jax.nn.softmax(s, axis=-1) @ k


def _loop(w, x):
  return lax.fori_loop(0, 7, lambda i, c: jnp.tanh(c @ w), x)


_CASES = {
    "conv": (_conv, (jax.ShapeDtypeStruct((3, 3, 2, 4), F32),
                     jax.ShapeDtypeStruct((1, 6, 6, 2), F32))),
    "attention": (_attention, (jax.ShapeDtypeStruct((2, 4, 8), F32),
                               jax.ShapeDtypeStruct((2, 4, 8), F32))),
    "loop": (_loop, (jax.ShapeDtypeStruct((8, 8), F32), jax.ShapeDtypeStruct((4, 8), F32))),
    "erf_inv": (jax.scipy.special.erfinv, (jax.ShapeDtypeStruct((16,), F32),)),
}


@pytest.mark.parametrize("grad", [False, True], ids=["fwd", "grad"])
@pytest.mark.parametrize("name", sorted(_CASES))
def test_lowered_count_equals_jaxpr_count(name, grad):
  f, args = _CASES[name]
  if grad:
    f = jax.grad(lambda *a, f=f: jnp.sum(f(*a)))
  ours = jaxgreen.count(f)(*args)
  lowered = count_lowered(jax.jit(f).lower(*args))
  assert (lowered.adds, lowered.muls) == (ours.adds, ours.muls)
  assert lowered.transcendentals == ours.transcendentals


def test_loop_trips_derived_from_induction_variable():
  w = jax.ShapeDtypeStruct((8, 8), F32)
  x = jax.ShapeDtypeStruct((4, 8), F32)
  h = count_lowered_detail(jax.jit(_loop).lower(w, x))
  (loop,) = h.loops
  assert (loop.trips, loop.how) == (7, "induction variable")
  assert h.cost.by_primitive["dot_general"].muls == 7 * 4 * 8 * 8  # trips·M·N·K


def test_scopes_follow_flax_modules():
  import flax.linen as nn

  class Net(nn.Module):
    @nn.compact
    def __call__(self, x):
      return nn.Dense(3)(nn.relu(nn.Dense(5)(x)))

  x = jnp.ones((2, 4))
  p = Net().init(jax.random.PRNGKey(0), x)
  f = lambda p, x: Net().apply(p, x)
  lowered = count_lowered(jax.jit(f).lower(p, x))
  ours = jaxgreen.count(f)(p, x)
  # Dense(3) is constructed first, so it is Dense_0: batch·out·in = 2·3·5
  assert lowered.by_scope["Net/Dense_0"].muls == 2 * 3 * 5
  assert lowered.by_scope["Net/Dense_1"].muls == 2 * 5 * 4
  for scope in ("Net", "Net/Dense_0", "Net/Dense_1"):
    assert lowered.by_scope[scope].fpo == ours.by_scope[scope].fpo


def test_unknown_chlo_operation_is_uncounted_not_an_error():
  x = jax.ShapeDtypeStruct((8, 16), F32)
  c = count_lowered(jax.jit(lambda a: lax.top_k(a, 3)[0]).lower(x))  # chlo.top_k
  assert "chlo.top_k" in c.uncounted
  assert not c.exact


@pytest.mark.parametrize("text, groups", [
    ("dense<[[0, 1], [2, 3]]> : tensor<2x2xi64>", "{{0,1},{2,3}}"),
    ("dense<> : tensor<0x0xi64>", "{}"),  # empty: every device
    ("", "{}"),
])
def test_replica_groups_text(text, groups):
  from jaxgreen.hlo.stablehlo import _groups

  assert _groups(text) == groups


def test_type_text_drops_an_encoding_that_holds_brackets():
  assert _type_text("tensor<8x4xf32, #sdy.sharding<@mesh, [{}, {}]>>") == "f32[8,4]"
  assert _type_text("tensor<3xcomplex<f32>>") == "c64[3]"


def test_lowered_module_devices_from_num_partitions():
  pytest.importorskip("libtpu", reason="a 4-device mesh needs the tpu extra")
  from jax.sharding import NamedSharding
  from jax.sharding import PartitionSpec as P

  from jaxgreen.hlo.stablehlo import lowered_module

  m = jaxgreen.mesh("tpu:v5e:2x2", (4,), ("x",))
  x = jax.ShapeDtypeStruct((8, 16), F32, sharding=NamedSharding(m, P("x")))
  assert lowered_module(jax.jit(jnp.sum).lower(x)).devices == 4  # 2x2 chips
