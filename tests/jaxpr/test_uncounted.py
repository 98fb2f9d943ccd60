"""Never a silent zero: unknown primitives are listed, warned about once, or raise; and
every jax primitive is either priced, on the reviewed zero list, or deliberately left
uncounted below."""

import importlib
import warnings

import jax
import jax.numpy as jnp
import pytest
from jax import lax
from jax.extend import core as jcore

import jaxgreen
from jaxgreen._src.jaxpr import registry

S = jax.ShapeDtypeStruct
X = S((4,), jnp.float32)

fake_p = jcore.Primitive("my_fake_op")
fake_p.def_abstract_eval(lambda x: x)
other_p = jcore.Primitive("my_other_fake_op")
other_p.def_abstract_eval(lambda x: x)


def _uses_fakes(x):
  y = fake_p.bind(fake_p.bind(x)) * 2.0
  z = lax.scan(lambda c, _: (fake_p.bind(c), None), y, None, length=3)[0]
  return other_p.bind(z)


def test_unknown_primitive_is_listed_and_the_rest_still_counted():
  with pytest.warns(jaxgreen.UncountedPrimitiveWarning):
    c = jaxgreen.count(_uses_fakes)(X)
  assert c.uncounted == {"my_fake_op": 2 + 3, "my_other_fake_op": 1}  # 2 direct, 3 in scan
  assert not c.exact
  assert c.muls == 4  # the multiply is still counted


def test_one_warning_per_primitive_per_count_call():
  with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter("always")
    jaxgreen.count(_uses_fakes)(X)
    first = [str(x.message) for x in w if issubclass(x.category,
                                                      jaxgreen.UncountedPrimitiveWarning)]
    jaxgreen.count(_uses_fakes)(X)
    both = [str(x.message) for x in w if issubclass(x.category,
                                                     jaxgreen.UncountedPrimitiveWarning)]
  assert len(first) == 2  # my_fake_op and my_other_fake_op, once each
  assert any("'my_fake_op'" in m for m in first)
  assert any("'my_other_fake_op'" in m for m in first)
  assert len(both) == 4  # a new count() warns again


def test_warning_points_at_the_caller_not_into_jaxgreen():
  with pytest.warns(jaxgreen.UncountedPrimitiveWarning) as record:
    jaxgreen.count(_uses_fakes)(X)
  assert {w.filename for w in record} == {__file__}


def test_strict_raises_naming_the_primitive():
  with pytest.raises(jaxgreen.UncountedPrimitiveError, match="my_fake_op"):
    jaxgreen.count(_uses_fakes, strict=True)(X)


def test_registered_rule_for_the_fake_primitive_is_used():
  p = jcore.Primitive("my_priced_fake_op")
  p.def_abstract_eval(lambda x: x)

  @jaxgreen.register_rule(p)
  def _rule(ctx, x, **_):
    return jaxgreen.Counts(adds=3 * x.shape[0])

  c = jaxgreen.count(p.bind)(X)
  assert c.adds == 3 * 4 and c.exact


def test_a_rule_reads_the_documented_context():
  p = jcore.Primitive("my_fake_context_op")
  p.def_abstract_eval(lambda x, n: x)
  seen = {}

  @jaxgreen.register_rule(p)
  def _rule(ctx, x, n, **_):
    seen.update(name=ctx.name, primitive=ctx.primitive, outs=ctx.outs, bytes=ctx.bytes,
                cond=ctx.cond, scope=ctx.scope, axes=dict(ctx.axis_sizes), n=ctx.known(1),
                trips=ctx.trip_count("nowhere"))
    a, m = ctx.model.price("exp")
    return jaxgreen.Counts(adds=a * x.size, muls=m * x.size)

  c = jaxgreen.count(lambda x: p.bind(x, 3), cond="min")(X)
  a, m = jaxgreen.CostModel().price("exp")
  assert (c.adds, c.muls) == (a * 4, m * 4)  # exp's price x 4 elements
  assert seen["name"] == "my_fake_context_op" and seen["primitive"] is p
  assert [o.shape for o in seen["outs"]] == [(4,)]
  assert seen["bytes"] == 4 * 4 + 4 + 4 * 4  # f32[4] in, the int32 literal, f32[4] out
  assert seen["cond"] == "min" and seen["axes"] == {} and seen["trips"] is None
  assert seen["n"] == 3  # a literal operand is known


def test_a_rule_written_against_the_old_context_still_works_with_a_warning():
  p = jcore.Primitive("my_fake_old_style_op")
  p.def_abstract_eval(lambda x: x)

  @jaxgreen.register_rule(p)
  def _rule(ctx, x, **_):
    n = len(ctx.eqn.outvars) + len(ctx.env) * 0
    return jaxgreen.Counts(muls=n * x.shape[0] * (ctx.walker.cond == "max"))

  with pytest.warns(DeprecationWarning) as got:
    c = jaxgreen.count(p.bind)(X)
  assert c.muls == 1 * 4  # one output x 4 elements
  assert {str(w.message).split(" is ")[0] for w in got} == {
      "RuleContext.eqn", "RuleContext.env", "RuleContext.walker"}


def test_registration_fails_loudly():
  with pytest.raises(ValueError, match="already registered"):
    jaxgreen.register_rule(lax.add_p)(lambda ctx, *a, **k: None)
  with pytest.raises(ValueError, match="already registered"):
    jaxgreen.register_rule("reshape")(lambda ctx, *a, **k: None)
  with pytest.raises(TypeError):
    jaxgreen.register_rule(42)


# Modules that define the primitives a traced JAX program can contain. Kernel languages
# (pallas, mosaic, triton) and vendor fusions (cudnn) are excluded: they are opaque
# custom calls by nature and listed below.
_MODULES = [
    "jax.extend.core.primitives", "jax.lax", "jax._src.lax.lax", "jax._src.lax.slicing",
    "jax._src.lax.parallel", "jax._src.lax.control_flow", "jax._src.lax.linalg",
    "jax._src.lax.special", "jax._src.lax.fft", "jax._src.lax.windowed_reductions",
    "jax._src.lax.convolution", "jax._src.lax.ann", "jax._src.lax.scaled_dot",
    "jax._src.lax.eval_jaxpr", "jax._src.ad_util", "jax._src.ad_checkpoint",
    "jax._src.custom_derivatives", "jax._src.custom_batching", "jax._src.pjit",
    "jax._src.shard_map", "jax._src.core", "jax._src.state.primitives",
    "jax._src.state.discharge", "jax._src.random.prng", "jax._src.random.core",
    "jax._src.random.threefry4x32", "jax._src.random.philox4x32",
    "jax._src.random.philox2x32", "jax._src.debugging", "jax._src.dispatch",
    "jax._src.compute_on", "jax._src.shard_alike", "jax._src.custom_partitioning",
    "jax._src.checkify", "jax._src.export.shape_poly", "jax._src.xla_metadata",
    "jax._src.interpreters.ad", "jax._src.callback", "jax._src.ffi",
    "jax._src.buffer_callback", "jax._src.hijax", "jax._src.export._export",
]

# Deliberately left uncounted: a program using them reports them in Cost.uncounted.
ALLOWED_UNCOUNTED = {
    "pure_callback", "io_callback", "buffer_callback",  # arbitrary host Python code
    "ffi_call",                # foreign (C++/CUDA) kernels: opaque to the jaxpr
    "call_exported",           # a serialized StableHLO module, no jaxpr to walk
    "custom_lin",              # transient inside linearize; never in a final jaxpr
    "call_hi_primitive_linearized",  # transient inside linearize of a hijax call
}


# Kernel-language modules (Pallas and its Mosaic, Mosaic GPU and Triton back ends): their
# primitives are real names for the rules of jaxgreen/_src/jaxpr/rules/pallas.py, but only a
# kernel body binds them, so the coverage tests above do not ask for them.
_KERNEL_MODULES = [
    "jax._src.pallas.primitives", "jax._src.pallas.pallas_call",
    "jax._src.pallas.mosaic.primitives", "jax._src.pallas.mosaic_gpu.primitives",
    "jax._src.pallas.triton.primitives",
]


def _all_primitives(modules=_MODULES):
  found = {}
  for name in modules:
    try:
      mod = importlib.import_module(name)
    except ImportError:  # a module moved in another jax version: covered elsewhere
      continue
    for v in vars(mod).values():
      if isinstance(v, jcore.Primitive):
        found[v.name] = v
  return found


def test_every_primitive_is_priced_zero_or_deliberately_uncounted():
  prims = _all_primitives()
  assert len(prims) > 150  # the enumeration itself works
  covered = registry.registered_names() | registry.ZERO_COST | ALLOWED_UNCOUNTED
  missing = sorted(set(prims) - covered)
  assert not missing, f"primitives with no rule and not on the zero list: {missing}"


def test_every_public_primitive_resolves_to_a_rule_or_the_zero_list():
  from jax.extend.core import primitives as P

  for p in vars(P).values():
    if isinstance(p, jcore.Primitive) and p.name not in ALLOWED_UNCOUNTED:
      assert registry.lookup(p) is not None or p.name in registry.ZERO_COST, p.name


def test_zero_list_and_rules_do_not_overlap():
  assert not (registry.registered_names() & registry.ZERO_COST)
  assert registry.NO_BYTES <= registry.ZERO_COST


# Names that exist in only some supported jax releases (0.10.2 .. 0.12): pmap's old
# call primitive, a sharding cast and a special function that 0.10 no longer binds;
# primitives new in 0.12; and 0.10's names that 0.12 renamed or removed.
_LEGACY = {"xla_pmap", "mesh_cast", "random_gamma_grad"}
_ONLY_0_12 = {"pbroadcast_dynamic", "reduced_vary_cast", "relayout", "vary_unreduced_cast",
              "with_memory_space_constraint", "log2", "one_minus_square", "polynomial",
              "unreduced_pmax", "unreduced_pmin", "xla_metadata_call"}
_ONLY_0_10 = {"box_get", "box_set", "log_extend", "log_read", "new_box", "new_log",
              "pbroadcast_done", "pbroadcast_start", "reduced_vary_cast_p", "shard_alike",
              "vary_unreduced_cast_p", "psum_start", "unreduced_psum_start",
              "unreduced_reduce_scatter_start", "jaxpr_call"}
# New in jax 0.12.1 (counted: tests/jaxpr/test_new_primitives.py).
_ONLY_0_12_1 = {"acospi", "asinpi", "atan2pi", "atanpi", "cospi", "exp2m1", "fma", "fmuladd",
                "log2p1", "pmax_scatter", "pmin_scatter", "pxor", "random_poisson",
                "raw_bits", "sinpi", "tanpi", "call_hi_primitive"}
_LEGACY |= _ONLY_0_12 | _ONLY_0_10 | _ONLY_0_12_1


def test_zero_list_and_rule_names_are_real_primitives():
  real = set(_all_primitives()) | set(_all_primitives(_KERNEL_MODULES))
  assert not (registry.ZERO_COST - real - _LEGACY), "typo on the zero list?"
  ours = {n for n in registry.registered_names() if "fake" not in n}  # minus this file's
  assert not (ours - real - _LEGACY), "rule for no primitive?"
