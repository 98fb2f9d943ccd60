"""The compiled-HLO walker: conventions, trip counts, scopes, XLA replay."""

import jax
import jax.numpy as jnp
import pytest
from jax import lax

import jaxgreen
from jaxgreen._src._scope import clean_scope
from jaxgreen._src.hlo import count_compiled, count_hlo_text
from jaxgreen._src.hlo.ir import parse_type
from jaxgreen._src.hlo.parse import parse_instr
from jaxgreen._src.hlo.pricing import hlo_scope
from jaxgreen._src.hlo.xla import FMA

F32 = jnp.float32

# A while loop as a TPU compiler emits it: no known_trip_count; the bound is a
# loop-invariant tuple element, the step a constant inside a fusion.
_LOOP = """
HloModule m, entry_computation_layout={(f32[8,16]{1,0}, f32[16,16]{1,0})->f32[8,16]{1,0}}

%fused_add (p0: s32[]) -> s32[] {
  %p0 = s32[] parameter(0)
  %c = s32[] constant(@step@)
  ROOT %a = s32[] add(%p0, %c), metadata={op_name="jit(f)/while/body/add"}
}

%body (t: (s32[], f32[8,16], f32[16,16], s32[])) -> (s32[], f32[8,16], f32[16,16], s32[]) {
  %t = (s32[]{:T(128)}, f32[8,16]{1,0}, f32[16,16]{1,0}, s32[]) parameter(0)
  %i = s32[] get-tuple-element(%t), index=0
  %x = f32[8,16]{1,0} get-tuple-element(%t), index=1
  %w = f32[16,16]{1,0} get-tuple-element(%t), index=2
  %n = s32[] get-tuple-element(%t), index=3
  %next = s32[] fusion(%i), kind=kLoop, calls=%fused_add
  %d = f32[8,16]{1,0} dot(%x, %w), lhs_contracting_dims={1}, rhs_contracting_dims={0}, @meta@
  ROOT %out = (s32[], f32[8,16]{1,0}, f32[16,16]{1,0}, s32[]) tuple(%next, %d, %w, %n)
}

%cond (t2: (s32[], f32[8,16], f32[16,16], s32[])) -> pred[] {
  %t2 = (s32[], f32[8,16]{1,0}, f32[16,16]{1,0}, s32[]) parameter(0)
  %i2 = s32[] get-tuple-element(%t2), index=0
  %n2 = s32[] get-tuple-element(%t2), index=3
  ROOT %lt = pred[] compare(@cmp_operands@), direction=@direction@
}

ENTRY %main (x0: f32[8,16], w0: f32[16,16]) -> f32[8,16] {
  %x0 = f32[8,16]{1,0} parameter(0)
  %w0 = f32[16,16]{1,0} parameter(1)
  %zero = s32[] constant(@start@)
  %bound = s32[] constant(@bound@)
  %init = (s32[], f32[8,16]{1,0}, f32[16,16]{1,0}, s32[]) tuple(%zero, %x0, %w0, %bound)
  %loop = (s32[], f32[8,16]{1,0}, f32[16,16]{1,0}, s32[]) while(%init), condition=%cond, body=%body
  ROOT %r = f32[8,16]{1,0} get-tuple-element(%loop), index=1
}
"""


_META = 'metadata={op_name="jit(f)/Net/while/body/closed_call/Dense_0/dot_general"}'


def _loop(**fields) -> str:
  text = _LOOP.replace("@meta@", _META)
  for k, v in fields.items():
    text = text.replace(f"@{k}@", str(v))
  return text


@pytest.mark.parametrize("start, bound, step, cmp_operands, direction, trips", [
    (0, 10, 1, "%i2, %n2", "LT", 10),
    (0, 10, 3, "%i2, %n2", "LT", 4),    # 0, 3, 6, 9
    (0, 6, 2, "%i2, %n2", "LE", 4),     # 0, 2, 4, 6
    (0, 7, 2, "%n2, %i2", "GT", 4),     # 7 > i: 0, 2, 4, 6
    (10, 0, -1, "%i2, %n2", "GT", 10),  # counting down
    (0, 5, 1, "%i2, %n2", "NE", 5),
])
def test_tpu_trip_count_from_induction_variable(start, bound, step, cmp_operands, direction,
                                               trips):
  text = _loop(start=start, bound=bound, step=step, cmp_operands=cmp_operands,
                      direction=direction)
  h = count_hlo_text(text)
  (loop,) = h.loops
  assert (loop.trips, loop.how) == (trips, "induction variable")
  assert h.cost.muls == trips * 8 * 16 * 16  # trips·M·N·K
  assert h.cost.adds == trips * 8 * 16 * 15  # trips·M·N·(K-1)
  assert h.xla_flops == 2 * 8 * 16 * 16 + 1 + 1  # one body (dot, counter add) + condition
  assert h.cost.by_scope["Net/Dense_0"].muls == trips * 8 * 16 * 16


def test_underivable_trip_count_is_inexact():
  text = _loop(start=0, bound=10, step=1, cmp_operands="%i2, %i2", direction="LT")
  h = count_hlo_text(text)
  assert h.loops[0].trips is None
  assert not h.cost.exact
  assert h.cost.muls == 8 * 16 * 16  # body counted once
  assert "trip count unknown" in h.cost.inexact[0]


def test_parse_instruction_with_tuple_type_and_layout_tiles():
  ins = parse_instr('  ROOT %w = (s32[]{:T(128)}, f32[64,64]{1,0:T(8,128)S(1)}) while(%t), '
                    'condition=%c, body=%b, metadata={op_name="jit(f)/while" a=1}, '
                    'backend_config={"known_trip_count":{"n":"10"}}')
  assert ins.root and ins.opcode == "while" and ins.operands == ["t"]
  assert [a.dims for a in ins.arrays] == [(), (64, 64)]
  assert ins.called("body") == ["b"]
  assert ins.op_name == "jit(f)/while"
  assert parse_type("bf16[2,<=8]{1,0}")[0].dims == (2, 8)


@pytest.mark.parametrize("op_name, scope", [
    ("jit(step)/jit(main)/jvp(MLP)/Dense_1/dot_general", "MLP/Dense_1"),
    ("jit(f)/Net/while/body/closed_call/Block_0/Dense_0/dot_general", "Net/Block_0/Dense_0"),
    # the backward pass of a rematerialised module: one scope, as clean_scope keys it
    ("jit(loss)/transpose(jvp(MLP))/jvp(MLP)/checkpoint/Dense_0/dot_general",
     clean_scope("transpose(jvp(MLP))/jvp(MLP)/Dense_0")),
    ("jit(f)/reduce_sum", ""),
    ("x", ""),
    ("jit(f)/A/mul;jit(f)/B/add", "A"),
])
def test_hlo_scope(op_name, scope):
  assert hlo_scope(op_name) == scope


def _compile(f, *args):
  return jax.jit(f).lower(*args).compile()


def test_dot_and_tanh_match_jaxpr_count():
  a = jax.ShapeDtypeStruct((8, 16), F32)
  b = jax.ShapeDtypeStruct((16, 4), F32)
  f = lambda a, b: jnp.tanh(a @ b)
  h = count_compiled(_compile(f, a, b))
  ours = jaxgreen.count(f)(a, b)
  assert h.cost.muls == ours.muls == 8 * 4 * 16 + 8 * 4 * 9  # M·N·K + tanh's 9 MUL/element
  assert h.cost.adds == ours.adds
  assert h.cost.transcendentals == 8 * 4  # one tanh per output
  assert h.causes[FMA] == -8 * 4  # XLA: 2·M·N·K; ours one ADD fewer per output


def test_conv_counts_padding_taps_that_xla_skips():
  x = jax.ShapeDtypeStruct((1, 2, 5, 5), F32)
  w = jax.ShapeDtypeStruct((3, 2, 3, 3), F32)
  f = lambda x, w: lax.conv_general_dilated(x, w, (1, 1), "SAME")
  h = count_compiled(_compile(f, x, w))
  assert h.cost.muls == 3 * 5 * 5 * (2 * 3 * 3)  # out·(C_in·kh·kw)
  assert h.cost.adds == 3 * 5 * 5 * (2 * 3 * 3 - 1)
  # XLA: 2·C_out·C_in·(valid (kernel, output) position pairs: 3·5 - 2 = 13 per dimension)
  assert h.xla_flops == 2 * 3 * 2 * 13 * 13
  assert h.causes["padded conv taps"] == 2 * 3 * 5 * 5 * 18 - h.xla_flops


def test_conv_transpose_counts_inputs_times_taps_at_every_stage():
  y = jax.ShapeDtypeStruct((1, 2, 6, 6), F32)
  k = jax.ShapeDtypeStruct((3, 3, 2, 4), F32)
  f = lambda y, k: lax.conv_transpose(y, k, (2, 2), "SAME",
                                      dimension_numbers=("NCHW", "HWIO", "NCHW"))
  h = count_compiled(_compile(f, y, k))
  # A transposed convolution: every input element times every kernel tap, 6 x 3 = 18 per
  # dim (torch's conv_transpose convention). Of those, 17 land on an output window (6
  # inputs dilated by 2 at 0..10, padded (2, 1) by jax's SAME, 12 windows of 3: input
  # 10's third tap falls past the last window); the dense count was 12 x 3 = 36 per dim.
  assert h.cost.muls == jaxgreen.count(f)(y, k).muls == 4 * 2 * 18**2
  assert h.xla_flops == 2 * 4 * 2 * 17**2  # XLA: taps on real input only
  assert h.causes["padded conv taps"] == 2 * 4 * 2 * (18**2 - 17**2)


_RAGGED_HLO = """
HloModule m
ENTRY %main (x: f32[12,4], w: f32[3,4,6], dy: f32[12,6], s: s32[3]) -> (f32[12,6], f32[3,4,6]) {
  %x = f32[12,4]{1,0} parameter(0)
  %w = f32[3,4,6]{2,1,0} parameter(1)
  %dy = f32[12,6]{1,0} parameter(2)
  %s = s32[3]{0} parameter(3)
  %y = f32[12,6]{1,0} ragged-dot(%x, %w, %s), @FWD@
  %dw = f32[3,4,6]{2,1,0} ragged-dot(%x, %dy, %s), @DW@
  ROOT %t = (f32[12,6]{1,0}, f32[3,4,6]{2,1,0}) tuple(%y, %dw)
}
"""


def test_ragged_dot_instruction_counts_as_the_jaxpr_rule():
  h = count_hlo_text(_RAGGED_HLO.replace(
      "@FWD@", "lhs_contracting_dims={1}, rhs_contracting_dims={1}, lhs_ragged_dims={0}, "
      "rhs_group_dims={0}").replace(
      "@DW@", "lhs_contracting_dims={0}, rhs_contracting_dims={0}, lhs_ragged_dims={0}"))
  m, k, n, g = 12, 4, 6, 3
  assert not h.cost.uncounted
  # forward M·N·K; weight gradient (ragged contracting M): M·K·N products, K·N·(M - G) ADD
  assert h.cost.muls == 2 * m * k * n
  assert h.cost.adds == m * n * (k - 1) + k * n * (m - g)
  # XLA's HandleRaggedDot: a dot whose result loses its first len(rhs_group_dims) dims
  # (the forward's M) -> 2·N·K; the weight gradient, no group dim -> 2·G·K·N·M.
  assert h.xla_flops == 2 * n * k + 2 * g * k * n * m


def test_ragged_dot_lowered_for_gpu_counts_as_the_jaxpr():
  skip_without_gpu_plugin()
  from jaxgreen._src._quiet import quiet_stderr
  from jaxgreen._src.hlo.stablehlo import count_lowered
  from jaxgreen.targets import get_target

  args = (jax.ShapeDtypeStruct((12, 4), F32), jax.ShapeDtypeStruct((3, 4, 6), F32),
          jax.ShapeDtypeStruct((3,), jnp.int32))

  def step(x, w, s):
    return jax.value_and_grad(lambda x, w: lax.ragged_dot(x, w, s).sum(), (0, 1))(x, w)

  with quiet_stderr():
    lowered = jax.jit(step).lower(*get_target("gpu:h100").place(args))
  assert "chlo.ragged_dot" in lowered.as_text()  # on CPU jax lowers it densely instead
  c = count_lowered(lowered)
  assert not c.uncounted
  ours = jaxgreen.count(step)(*args)
  assert (c.muls, c.adds) == (ours.muls, ours.adds)
  assert c.by_primitive["ragged_dot_general"].muls == 3 * 12 * 4 * 6  # fwd + dx + dw


def test_ragged_dot_compiled_for_tpu_counts_as_the_jaxpr():
  pytest.importorskip("libtpu", reason="TPU targets need the tpu extra")
  # TPU runs a ragged dot as a convolution over all G groups, masking the rows outside
  # each group and skipping those iterations (is_ragged_dot in the fusion's config).
  m, k, n, g = 16, 8, 8, 4
  args = (jax.ShapeDtypeStruct((m, k), F32), jax.ShapeDtypeStruct((g, k, n), F32),
          jax.ShapeDtypeStruct((g,), jnp.int32))

  def step(x, w, s):
    return jax.value_and_grad(lambda x, w: lax.ragged_dot(x, w, s).sum(), (0, 1))(x, w)

  c = jaxgreen.count(step, stage="compiled", target="tpu:v5e:1x1")(*args)
  ours = jaxgreen.count(step)(*args)
  row, ref = c.by_primitive["ragged_dot_general"], ours.by_primitive["ragged_dot_general"]
  assert row.muls == ref.muls == 3 * m * k * n  # not 3·G·M·K·N
  assert row.adds == ref.adds


def test_scatter_apply_runs_its_update_computation_at_every_stage():
  x = jax.ShapeDtypeStruct((16,), F32)
  f = lambda x: x.at[jnp.array([1, 3, 3, 7])].apply(jnp.sin)
  sa, sm = jaxgreen.CostModel().price("sin")
  h = count_compiled(_compile(f, x))
  for c in (h.cost, jaxgreen.count(f, stage="lowered")(x), jaxgreen.count(f)(x)):
    assert (c.adds, c.muls, c.transcendentals) == (4 * sa, 4 * sm, 4)  # one sin per index


def test_scan_trips_on_cpu():
  w = jax.ShapeDtypeStruct((64, 64), F32)

  def f(w, x):
    return lax.scan(lambda c, _: (c @ w, None), x, None, length=10)[0]

  h = count_compiled(_compile(f, w, w))
  assert h.cost.muls == 10 * 64**3  # trips·M·N·K
  assert h.loops[0].how == "known_trip_count"
  assert h.xla_flops == 2 * 64**3 + 2  # XLA: one body (dot + counter add) + condition


def test_uncounted_custom_call_is_listed():
  text = """
HloModule m
ENTRY %main (p: f32[4]) -> f32[4] {
  %p = f32[4]{0} parameter(0)
  ROOT %c = f32[4]{0} custom-call(%p), custom_call_target="my_kernel"
}
"""
  h = count_hlo_text(text)
  assert h.cost.uncounted == {"custom-call my_kernel": 1}
  assert h.xla_flops == -1  # XLA marks a custom call's flops unknown
  assert h.causes["custom calls"] == 1


def test_empty_text_is_an_error():
  with pytest.raises(ValueError, match="compiled.as_text"):
    count_hlo_text("not hlo")


@pytest.mark.parametrize("policy, expected_muls", [
    ("max", 8 * 8 * 8),            # the matmul branch: M·N·K
    ("min", 8 * 8),                # the scaling branch: one MUL per element
    ("mean", (8 * 8 * 8 + 8 * 8) // 2),
])
def test_conditional_policies_match_jaxpr(policy, expected_muls):
  x = jax.ShapeDtypeStruct((8, 8), F32)
  i = jax.ShapeDtypeStruct((), jnp.int32)
  f = lambda i, x: lax.cond(i > 0, lambda x: x @ x, lambda x: x * 2.0, x)
  h = count_hlo_text(_compile(f, i, x).as_text(), cond=policy)
  assert h.cost.muls == expected_muls
  assert h.cost.muls == jaxgreen.count(f, cond=policy)(i, x).muls


@pytest.mark.parametrize("text, nbytes", [
    ("f8e4m3fn[16,8]", 16 * 8 * 1),  # fp8: one byte per element
    ("f8e5m2[4]", 4 * 1),
    ("f4e2m1fn[16]", 16 // 2),  # two elements per byte
    ("s4[8]", 8 // 2),
    ("bf16[3,5]", 3 * 5 * 2),
])
def test_narrow_element_types_have_their_own_width(text, nbytes):
  assert parse_type(text)[0].nbytes == nbytes


_FP8_ALL_GATHER = """
HloModule m, num_partitions=4

ENTRY %main (p: f8e4m3fn[256]) -> f8e4m3fn[1024] {
  %p = f8e4m3fn[256]{0} parameter(0)
  ROOT %ag = f8e4m3fn[1024]{0} all-gather(%p), replica_groups={}, dimensions={0}
}
"""


def test_fp8_collective_bytes():
  from jaxgreen._src.pods import hlo_traffic

  ag = hlo_traffic(_FP8_ALL_GATHER).collectives["all-gather"]
  assert ag.operand_bytes == 256 * 1  # 256 fp8 elements
  assert ag.sent_bytes == 3 * 256  # (n - 1) S over the 4 devices of an empty group


def test_operands_after_xla_index_comments_are_found():
  # XLA prefixes every fifth operand of a long list with /*index=N*/; the operand is the
  # same instruction either way (a custom call's sixth operand was once missed).
  from jaxgreen._src.hlo.parse import parse_instr

  ins = parse_instr("%c = f32[2]{0} custom-call(f32[2]{0} %a, f32[2]{0} %b, f32[2]{0} %c1, "
                    "f32[2]{0} %d, f32[2]{0} %e, /*index=5*/f32[2]{0} %f, /*index=6*/%g), "
                    'custom_call_target="x"')
  assert ins.operands == ["a", "b", "c1", "d", "e", "f", "g"]


def test_lowered_hlo_text_of_this_jax_is_read():
  # jax >= 0.10 prints lowered HLO without %-names or signatures ("ENTRY main.1 {"); the
  # count of a scanned backward program equals the count of its optimized HLO.
  def loss(w, x):
    def body(c, _):
      return jnp.tanh(c @ w), None
    y, _ = lax.scan(body, x, None, length=5)
    return (y ** 2).sum()

  lowered = jax.jit(jax.grad(loss)).lower(jnp.ones((8, 8)), jnp.ones((4, 8)))
  got = count_hlo_text(lowered.as_text("hlo")).cost
  want = count_hlo_text(lowered.compile().as_text()).cost
  assert got.exact and (got.adds, got.muls) == (want.adds, want.muls)
  # 5 forward dots of (4x8)@(8x8): 5 * 4*8*8 = 1280 MUL; the backward has 2 dots per step.
  assert got.muls >= 3 * 1280


def skip_without_gpu_plugin():
  """GPU targets need the gpu extra's CUDA plugin, of the installed jaxlib's release."""
  from jaxgreen._src.devices import gpu_plugin_problem

  if (why := gpu_plugin_problem()) is not None:
    pytest.skip(why)
