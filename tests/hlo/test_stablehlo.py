"""The StableHLO walker counts the lowered program with the jaxpr counter's conventions."""

import jax
import jax.numpy as jnp
import pytest
from jax import lax

import jaxgreen
from jaxgreen._src.hlo import count_lowered
from jaxgreen._src.hlo.mlir import attr_ints as _attr_ints
from jaxgreen._src.hlo.mlir import type_text as _type_text
from jaxgreen._src.hlo.stablehlo import count_lowered_detail

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
  module = jax.jit(f).lower(*args)
  lowered = count_lowered(module)
  if name == "erf_inv" and "chlo.erf_inv" not in module.as_text():
    # jax >= 0.12.1 lowers erf_inv to its polynomial (fused multiply-adds): the lowered
    # stage counts that program, the jaxpr the primitive's price
    assert lowered.exact and lowered.muls > ours.muls > 0
    return
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


def test_unknown_chlo_operation_is_uncounted_not_an_error(lowered_text):
  text = """
module @m attributes {mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32} {
  func.func public @main(%arg0: tensor<4xf32>) -> tensor<4xf32> {
    %0 = chlo.broadcast_add %arg0, %arg0 : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
    return %0 : tensor<4xf32>
  }
}
"""
  c = count_lowered(lowered_text(text))  # a CHLO operation the walker has no rule for
  assert "chlo.broadcast_add" in c.uncounted
  assert not c.exact


def test_chlo_top_k_is_counted_as_the_jaxpr_top_k():
  x = jax.ShapeDtypeStruct((8, 16), F32)
  c = count_lowered(jax.jit(lambda a: lax.top_k(a, 3)[0]).lower(x))  # chlo.top_k
  assert not c.uncounted and c.exact
  assert c.adds == jaxgreen.count(lambda a: lax.top_k(a, 3)[0])(x).adds == 8 * (
      13 * (1 + 2) + 3 * 2)  # rows x ((n - k)(1 + ceil(log2 k)) + k ceil(log2 k))


@pytest.mark.parametrize("text, groups", [
    ("dense<[[0, 1], [2, 3]]> : tensor<2x2xi64>", 2),
    ("dense<[[0, 1, 2, 3]]> : tensor<1x4xi64>", 4),
    ("dense<> : tensor<0x0xi64>", None),  # empty: every device
    ("", None),
])
def test_replica_group_size(text, groups):
  from jaxgreen._src.hlo.mlir import dense_group_size

  assert dense_group_size(text) == groups


def test_type_text_drops_an_encoding_that_holds_brackets():
  assert _type_text("tensor<8x4xf32, #sdy.sharding<@mesh, [{}, {}]>>") == "f32[8,4]"
  assert _type_text("tensor<3xcomplex<f32>>") == "c64[3]"


def test_lowered_module_devices_from_num_partitions():
  pytest.importorskip("libtpu", reason="a 4-device mesh needs the tpu extra")
  from jax.sharding import NamedSharding
  from jax.sharding import PartitionSpec as P

  from jaxgreen._src.hlo.stablehlo import lowered_module

  m = jaxgreen.mesh("tpu:v5e:2x2", (4,), ("x",))
  x = jax.ShapeDtypeStruct((8, 16), F32, sharding=NamedSharding(m, P("x")))
  assert lowered_module(jax.jit(jnp.sum).lower(x)).devices == 4  # 2x2 chips


# -- case / if, captured values, complex constants, shard_map --------------------------

def _switch3(i, x):
  return lax.switch(i, [lambda y: y @ y.T, lambda y: jnp.exp(y) @ y.T,
                        lambda y: y[:, :4] * 3.0], x)


@pytest.mark.parametrize("cond", ["max", "min", "mean"])
def test_case_counted_with_the_cond_policy_as_the_jaxpr(cond):
  # stablehlo.case branches take no arguments: they read x from the enclosing block.
  args = (jax.ShapeDtypeStruct((), jnp.int32), jax.ShapeDtypeStruct((4, 8), F32))
  ours = jaxgreen.count(_switch3, cond=cond)(*args)
  lowered = count_lowered(jax.jit(_switch3).lower(*args), cond=cond)
  assert (lowered.adds, lowered.muls) == (ours.adds, ours.muls)
  assert lowered.transcendentals == ours.transcendentals
  assert lowered.exact and not lowered.uncounted


def test_cond_of_a_constant_index_takes_its_branch():
  f = lambda x: _switch3(jnp.int32(2), x)  # noqa: E731  (folded: y[:, :4] * 3)
  x = jax.ShapeDtypeStruct((4, 8), F32)
  assert jaxgreen.count(f, stage="lowered")(x).muls == jaxgreen.count(f)(x).muls == 16


_IF = """
module @m attributes {mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32} {
  func.func public @main(%arg0: tensor<i1>, %arg1: tensor<8x8xf32>) -> tensor<8x8xf32> {
    PRED
    %0 = "stablehlo.if"(%p) ({
      %1 = stablehlo.dot_general %arg1, %arg1, contracting_dims = [1] x [0] : (tensor<8x8xf32>, tensor<8x8xf32>) -> tensor<8x8xf32>
      stablehlo.return %1 : tensor<8x8xf32>
    }, {
      %1 = stablehlo.add %arg1, %arg1 : tensor<8x8xf32>
      stablehlo.return %1 : tensor<8x8xf32>
    }) : (tensor<i1>) -> tensor<8x8xf32>
    return %0 : tensor<8x8xf32>
  }
}
"""  # noqa: E501


@pytest.mark.parametrize("pred, cond, adds, muls", [
    ("%p = stablehlo.and %arg0, %arg0 : tensor<i1>", "max", 8 * 8 * 7, 8 * 8 * 8),
    ("%p = stablehlo.and %arg0, %arg0 : tensor<i1>", "min", 64, 0),
    ("%p = stablehlo.and %arg0, %arg0 : tensor<i1>", "mean", (448 + 64) / 2, 256),
    ("%p = stablehlo.constant dense<false> : tensor<i1>", "max", 64, 0),  # false branch
    ("%p = stablehlo.constant dense<true> : tensor<i1>", "min", 448, 512),  # true branch
])
def test_stablehlo_if(pred, cond, adds, muls, lowered_text):
  c = count_lowered(lowered_text(_IF.replace("PRED", pred)), cond=cond)
  assert (c.adds, c.muls) == (adds, muls)
  assert c.exact


def test_complex_constants_are_counted_not_a_type_error():
  z = jax.ShapeDtypeStruct((4,), jnp.complex64)
  f = lambda z: z * (1 + 2j) + jnp.array([1 + 1j, 2, 3, 4j], jnp.complex64)  # noqa: E731
  c = count_lowered(jax.jit(f).lower(z))
  assert (c.adds, c.muls) == (4 * 2 + 4 * 2, 4 * 4)  # complex mul: 2 ADD 4 MUL; add: 2 ADD
  assert c.exact


def test_loop_bound_offset_in_the_condition():
  def f(x):  # condition i + 1 < 10 from i = 0: 9 trips
    return lax.while_loop(lambda c: c[0] + 1 < 10, lambda c: (c[0] + 1, c[1] * 2.0),
                          (0, x))[1]

  x = jax.ShapeDtypeStruct((4,), F32)
  for stage in ("jaxpr", "lowered", "compiled"):
    c = jaxgreen.count(f, stage=stage)(x)
    assert c.exact and c.muls == 9 * 4, stage


_MANUAL = """
module @m attributes {mhlo.num_partitions = 4 : i32, mhlo.num_replicas = 1 : i32} {
  sdy.mesh @mesh = <["d"=2, "e"=2]>
  func.func public @main(%arg0: tensor<8x64xf32>, %arg1: tensor<64x16xf32>) -> tensor<8x16xf32> {
    %0 = sdy.manual_computation(%arg0, %arg1) in_shardings=[<@mesh, [{}, {"d"}]>, <@mesh, [{"d"}, {}]>] out_shardings=[<@mesh, [{}, {}]>] manual_axes={"d"} (%arg2: tensor<8x32xf32>, %arg3: tensor<32x16xf32>) {
      %1 = stablehlo.dot_general %arg2, %arg3, contracting_dims = [1] x [0] : (tensor<8x32xf32>, tensor<32x16xf32>) -> tensor<8x16xf32>
      %2 = "stablehlo.all_reduce"(%1) <{channel_handle = #stablehlo.channel_handle<handle = 1, type = 1>, replica_groups = dense<[[0, 2], [1, 3]]> : tensor<2x2xi64>, use_global_device_ids}> ({
      ^bb0(%a: tensor<f32>, %b: tensor<f32>):
        %3 = stablehlo.add %a, %b : tensor<f32>
        stablehlo.return %3 : tensor<f32>
      }) : (tensor<8x16xf32>) -> tensor<8x16xf32>
      sdy.return %2 : tensor<8x16xf32>
    } : (tensor<8x64xf32>, tensor<64x16xf32>) -> tensor<8x16xf32>
    return %0 : tensor<8x16xf32>
  }
}
"""  # noqa: E501


def test_shard_map_body_counted_for_every_device_of_its_manual_axes(lowered_text):
  # Per device: an 8x16x32 dot and half of an 8x16 psum over 2 devices; the body runs
  # on the 2 devices of manual axis "d", so the lowered count is global (as the jaxpr's).
  c = count_lowered(lowered_text(_MANUAL))
  assert c.muls == 2 * 8 * 16 * 32
  assert c.adds == 2 * (8 * 16 * 31 + 8 * 16 // 2)


def test_replica_groups_of_mesh_axes():
  from jaxgreen._src.hlo.stablehlo import _Translator

  tr = _Translator.__new__(_Translator)
  tr.meshes = {"mesh_0": {"d": 2, "e": 4}}
  text = ('#stablehlo.replica_group_mesh_axes<mesh = @mesh_0, axes = '
          '[#stablehlo.axis_ref<name = "e">]>')
  assert tr.replica_group_size(text) == 4


def test_dead_code_jax_left_in_the_lowered_module_is_not_counted():
  # jax 0.12 lowers the gradient of erfc with an unused `exponential` beside the used
  # one; XLA removes it and so does every stage: per element, one exp.
  g = jax.grad(lambda x: jax.scipy.special.erfc(x).sum())
  x = jax.ShapeDtypeStruct((1000,), jnp.float32)
  jaxpr, lowered = (jaxgreen.count(g, stage=s)(x) for s in ("jaxpr", "lowered"))
  assert lowered.transcendentals == jaxpr.transcendentals
  assert (lowered.adds, lowered.muls) == (jaxpr.adds, jaxpr.muls)


def test_a_value_used_only_inside_a_branch_stays_live():
  def f(p, x, w):
    y = x @ w  # read by the branch region only
    return jax.lax.cond(p, lambda: jnp.tanh(y).sum(), lambda: x.sum())

  args = (jax.ShapeDtypeStruct((), jnp.bool_), jax.ShapeDtypeStruct((8, 8), jnp.float32),
          jax.ShapeDtypeStruct((8, 8), jnp.float32))
  costs = [jaxgreen.count(f, stage=s)(*args).fpo for s in ("jaxpr", "lowered", "compiled")]
  # 8·8·8 MUL + 8·8·7 ADD for the matmul, then the costlier branch
  assert costs[0] == costs[1] == costs[2] > 8 * 8 * 8 + 8 * 8 * 7
