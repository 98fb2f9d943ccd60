"""One operation, one count, at every stage.

Each program below is a single operation of one primitive family. Its jaxpr (the jaxpr
rules), its lowered StableHLO and its compiled CPU HLO (both through the HLO walker)
must count the same ADDs, MULs and integer ops: every stage calls the same formula in
:mod:`jaxgreen._src.formulas` (complex prices, reductions, scans, sort keys, top-k, random
blocks), so a convention cannot drift between the two walkers. Nothing may be left
uncounted at either stage.

The compiled count is compared too, except where XLA's CPU compiler itself changes
the program; the reason is given with each such case. Then the lowered comparison is
the one that pins the convention: the compiled difference is XLA's, filed under
"compiler changes" by :func:`jaxgreen.reconcile`.
"""

import jax
import jax.numpy as jnp
import pytest
from jax import lax

import jaxgreen
from jaxgreen._src.hlo import count_hlo_text

S = jax.ShapeDtypeStruct
F32, BF16, C64, I32 = jnp.float32, jnp.bfloat16, jnp.complex64, jnp.int32
X = S((4, 16), F32)     # 4 rows of 16: 64 elements
XB = S((4, 16), BF16)
Z = S((4, 16), C64)
XI = S((4, 16), I32)
_JAX = tuple(int(v) for v in jax.__version__.split(".")[:3] if v.isdigit())

# Why the compiled CPU count may differ from the lowered one (the compiler's doing).
EXPANDED = "XLA expands the operation into a polynomial / real arithmetic"
EXPANDED_COMPLEX = "XLA expands the complex operation into real arithmetic"
SIMPLIFIED = "XLA simplifies the expanded random-number arithmetic"
RNG_EXPANDED = "XLA expands the random-bit generator into its own integer arithmetic"
TOPK_SORT = "XLA's CPU TopK custom call takes floats only: an integer top_k becomes a sort"


def _c(name, fn, *args, compiled=None, lowered_until=None):
  """A case: ``compiled`` is None when the compiled count must match too, else why it
  does not; ``lowered_until``: the jax version from which jax itself lowers the
  primitive to other operations (then only the compiled-free jaxpr count is kept)."""
  return pytest.param(fn, args, compiled, lowered_until, id=name)


def _unary(names, x, compiled=None):
  return [_c(f"{x.dtype.name} {n}", getattr(lax, n), x, compiled=compiled) for n in names]


def _binary(names, x):
  return [_c(f"{x.dtype.name} {n}", getattr(lax, n), x, x) for n in names]


CASES = [
    # -- elementwise, float32 and bfloat16 -----------------------------------------
    *_unary(["neg", "abs", "sign", "floor", "ceil", "round", "is_finite", "square", "exp",
             "exp2", "expm1", "log", "log1p", "tanh", "logistic", "sin", "cos", "tan",
             "sqrt", "rsqrt", "cbrt", "erf"], X),
    *_unary(["digamma", "atan", "acos", "sinh", "cosh", "asinh", "acosh", "atanh"], X,
            compiled=EXPANDED),
    # jax 0.12.1 lowers these to polynomials (fused multiply-adds), counted as written
    _c("float32 erfc", lax.erfc, X, compiled=EXPANDED, lowered_until=(0, 12, 1)),
    _c("float32 erf_inv", lax.erf_inv, X, compiled=EXPANDED, lowered_until=(0, 12, 1)),
    _c("float32 lgamma", lax.lgamma, X, compiled=EXPANDED, lowered_until=(0, 12)),
    _c("float32 asin", lax.asin, X, compiled=EXPANDED, lowered_until=(0, 12)),
    *_binary(["add", "sub", "mul", "div", "rem", "pow", "max", "min", "atan2", "lt", "eq",
              "ne", "ge"], X),
    _c("float32 nextafter", lax.nextafter, X, X, compiled=EXPANDED),
    *_unary(["exp", "tanh", "sqrt", "log", "sin", "logistic", "erf"], XB),
    *_binary(["add", "mul", "div", "max"], XB),
    # -- elementwise, complex64 --------------------------------------------------------
    *_binary(["add", "sub", "mul", "div", "eq", "pow", "max"], Z),
    *_unary(["neg", "sign", "tanh", "sin", "cos", "tan", "rsqrt", "expm1"], Z),
    *_unary(["exp", "exp2", "log", "sqrt", "log1p", "square", "logistic", "sinh", "atan",
             "asin"], Z, compiled=EXPANDED_COMPLEX),
    _c("complex64 abs", lax.abs, Z, lowered_until=(0, 12)),
    _c("complex64 conj", jnp.conj, Z),
    _c("complex64 real", jnp.real, Z),
    _c("complex64 imag", jnp.imag, Z),
    _c("complex64 complex", lax.complex, X, X),
    # -- reductions --------------------------------------------------------------------
    _c("sum", lambda a: jnp.sum(a, axis=1), X),
    _c("bfloat16 sum", lambda a: lax.reduce_sum(a, (1,)), XB),
    _c("complex64 sum", lambda a: jnp.sum(a, axis=1), Z),
    _c("max", lambda a: jnp.max(a, axis=1), X),
    _c("complex64 max", lambda a: jnp.max(a, axis=1), Z),
    _c("min", lambda a: jnp.min(a, axis=0), X),
    _c("prod", lambda a: jnp.prod(a, axis=1), X),
    _c("argmax", lambda a: jnp.argmax(a, axis=1), X),
    _c("argmin", lambda a: jnp.argmin(a, axis=0), X),
    _c("int32 argmax", lambda a: jnp.argmax(a, axis=1), XI),
    _c("max pool", lambda a: lax.reduce_window(a, -jnp.inf, lax.max, (2, 2), (2, 2),
                                               "VALID"), X),
    _c("sum pool SAME", lambda a: lax.reduce_window(a, 0.0, lax.add, (3, 3), (1, 1),
                                                    "SAME"), X),
    # -- cumulative ops ----------------------------------------------------------------
    *[_c(n, lambda a, n=n: getattr(lax, n)(a, axis=1), X)
      for n in ("cumsum", "cumprod", "cummax", "cummin", "cumlogsumexp")],
    _c("cumsum reverse", lambda a: lax.cumsum(a, axis=0, reverse=True), X),
    _c("complex64 cumsum", lambda a: lax.cumsum(a, axis=1), Z),
    _c("int32 cumsum", lambda a: lax.cumsum(a, axis=1), XI),
    # -- sorting and selection ---------------------------------------------------------
    _c("sort", lambda a: jnp.sort(a, axis=1), X),
    _c("int32 sort", lambda a: jnp.sort(a, axis=1), XI),
    _c("argsort", lambda a: jnp.argsort(a, axis=1), X),
    _c("sort 2 keys", lambda a, b: lax.sort((a, b), dimension=1, num_keys=2), X, X),
    _c("sort key-value", lambda a, b: lax.sort((a, b), dimension=1, num_keys=1), X, X),
    _c("top_k", lambda a: lax.top_k(a, 4), X),
    _c("int32 top_k", lambda a: lax.top_k(a, 4), XI, compiled=TOPK_SORT),
    _c("approx_max_k", lambda a: lax.approx_max_k(a, 4), X),
    # -- contractions ------------------------------------------------------------------
    _c("dot", lambda a, b: a @ b, X, S((16, 8), F32)),
    _c("bfloat16 dot", lambda a, b: a @ b, XB, S((16, 8), BF16)),
    _c("complex64 dot", lambda a, b: a @ b, Z, S((16, 8), C64)),
    _c("batched dot", lambda a, b: jnp.einsum("bij,bjk->bik", a, b), S((2, 4, 16), F32),
       S((2, 16, 8), F32)),
    # -- integer_pow, clamp, select, rounding --------------------------------------------
    *[_c(f"x**{y}", lambda a, y=y: lax.integer_pow(a, y), X) for y in (2, 3, 7, -2)],
    _c("complex64 x**3", lambda a: lax.integer_pow(a, 3), Z),
    _c("clamp", lambda a: lax.clamp(0.0, a, 1.0), X),
    _c("select", lax.select, S((4, 16), jnp.bool_), X, X),
    _c("where", lambda a, b: jnp.where(a > 0, a, b), X, X),
    _c("reduce_precision", lambda a: lax.reduce_precision(a, 8, 7), X),
    _c("convert", lambda a: a.astype(BF16), X),
    # -- random bits: integer ops only -----------------------------------------------------
    _c("rng_bit_generator", lambda k: lax.rng_bit_generator(k, (64,))[1],
       S((4,), jnp.uint32), compiled=RNG_EXPANDED),
    _c("rng_bit_generator threefry", lambda k: lax.rng_bit_generator(
        k, (64,), algorithm=lax.RandomAlgorithm.RNG_THREE_FRY)[1], S((4,), jnp.uint32),
       compiled=RNG_EXPANDED),
    _c("random bits", lambda k: jax.random.bits(k, (64,)), jax.random.key(0),
       compiled=RNG_EXPANDED),
    _c("random uniform", lambda k: jax.random.uniform(k, (64,)), jax.random.key(0),
       compiled=SIMPLIFIED),
    _c("random split", lambda k: jax.random.split(k, 3), jax.random.key(0),
       compiled=RNG_EXPANDED),
    _c("random fold_in", lambda k: jax.random.fold_in(k, 3), jax.random.key(0),
       compiled=RNG_EXPANDED),
    _c("rbg bits", lambda k: jax.random.bits(k, (64,)), jax.random.key(0, impl="rbg"),
       compiled=RNG_EXPANDED),
    _c("rng_uniform", lambda a, b: lax.rng_uniform(a, b, (64,)), S((), F32), S((), F32),
       compiled=RNG_EXPANDED),
]

# Expected jaxpr counts (adds, muls, int ops) of a few cases, as arithmetic.
EXPECTED = {
    # (ac + bd) + (bc - ad)i over c^2 + d^2: 3 ADD, 6 MUL + 2 divisions (1 MUL each)
    "complex64 div": (64 * 3, 64 * (6 + 2), 0),
    # e^a (cos b + i sin b): exp (7, 7) + sin (6, 8) + cos (6, 8) + 2 MUL
    "complex64 exp": (64 * (7 + 6 + 6), 64 * (7 + 8 + 8 + 2), 0),
    # sqrt(a^2 + b^2): 1 ADD + 2 MUL + sqrt (2, 7)
    "complex64 abs": (64 * (1 + 2), 64 * (2 + 7), 0),
    "complex64 real": (0, 0, 0),
    # 4 rows, n - 1 = 15 steps each, as a sequential scan
    "cumsum": (4 * 15, 0, 0),
    "argmax": (4 * 15, 0, 0),  # one compare per step
    # 4 rows x 16 x ceil(log2 16) compares x 2 keys
    "sort 2 keys": (4 * 16 * 4 * 2, 0, 0),
    "argsort": (4 * 16 * 4, 0, 0),  # the indices are not a key
    # per row: (n - k)(1 + ceil(log2 k)) + k ceil(log2 k) = 12 * 3 + 4 * 2
    "top_k": (4 * (12 * 3 + 4 * 2), 0, 0),
    # 64 words = 16 Philox-4x32 blocks of 10 rounds x 10 ops
    "rng_bit_generator": (0, 0, 16 * 100),
    # 64 words = 32 Threefry-2x32 blocks of 20 x 5 + 5 x 3 ops
    "rng_bit_generator threefry": (0, 0, 32 * 115),
    "x**7": (0, 64 * 4, 0),  # x^2, x^4, x^4 * x^2, * x: floor(log2 7) + popcount(7) - 1
}


def _counts(c):
  return c.adds, c.muls, c.int_ops


@pytest.mark.parametrize("fn, args, compiled, lowered_until", CASES)
def test_every_stage_counts_one_operation_the_same(request, fn, args, compiled,
                                                   lowered_until, rolled_threefry):
  name = request.node.callspec.id
  jaxpr = jaxgreen.count(fn)(*args)
  assert not jaxpr.uncounted and jaxpr.exact, name
  if name in EXPECTED:
    assert _counts(jaxpr) == EXPECTED[name]
  lowered = jaxgreen.count(fn, stage="lowered")(*args)
  assert not lowered.uncounted, lowered.uncounted
  if lowered_until is not None and _JAX >= lowered_until:
    # This jax lowers the operation to a different formula (e.g. an overflow-safe |z|):
    # the lowered stage counts that formula, which differs from the primitive's price.
    assert lowered.fpo > 0 and lowered.exact, name
    return
  if rolled_threefry(fn, *args):
    # This jax writes Threefry as a rolled loop of 5 trips (jax 0.12.1 on the CPU): the
    # lowered program does the rounds the jaxpr counts plus the loop's own scalar integer
    # work (its counters, compares and rotation lookups). ADD and MUL agree.
    stages = [lowered] + ([jaxgreen.count(fn, stage="compiled")(*args)] if compiled is None
                          else [])
    for c in stages:
      assert (c.adds, c.muls) == (jaxpr.adds, jaxpr.muls), name
      assert c.int_ops > jaxpr.int_ops and c.exact, name
    return
  assert _counts(lowered) == _counts(jaxpr)
  if not any(getattr(a, "dtype", None) == C64 for a in args):
    # (a complex function jax evaluates through several real ones is one evaluation
    # in the jaxpr and several in the lowered program; its ADD/MUL agree)
    assert lowered.transcendentals == jaxpr.transcendentals
  if compiled is None:
    assert _counts(jaxgreen.count(fn, stage="compiled")(*args)) == _counts(jaxpr)


_ABS = """
HloModule m
ENTRY %main (z: c64[4,16]) -> f32[4,16] {
  %z = c64[4,16]{1,0} parameter(0)
  ROOT %a = f32[4,16]{1,0} abs(%z)
}
"""


def test_complex_abs_in_hlo_is_priced_as_in_the_jaxpr():
  # Whatever jax lowers |z| to, an HLO abs of a complex operand is sqrt(a^2 + b^2).
  assert _counts(count_hlo_text(_ABS).cost) == _counts(jaxgreen.count(lax.abs)(Z))


def test_a_cost_model_override_moves_every_stage():
  cm = jaxgreen.CostModel({"exp": (1, 1), "sin": (2, 2), "cos": (3, 3)})
  counts = [_counts(jaxgreen.count(jnp.exp, stage=s, cost_model=cm)(Z))
            for s in ("jaxpr", "lowered")]
  assert counts[0] == counts[1] == (64 * (1 + 2 + 3), 64 * (1 + 2 + 3 + 2), 0)


_SCAN = """
module @m attributes {mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32} {
  func.func public @main(%arg0: tensor<4x16xf32>) -> tensor<4x16xf32> {
    %cst = stablehlo.constant dense<0.000000e+00> : tensor<f32>
    %0 = stablehlo.broadcast_in_dim %cst, dims = [] : (tensor<f32>) -> tensor<4xf32>
    %1:2 = chlo.scan(%arg0) inits (%0) dimension=1  attributes {is_associative = true,
        is_reverse = false} {
    ^bb0(%input: tensor<4xf32>, %carry: tensor<4xf32>):
      %2 = stablehlo.add %input, %carry : tensor<4xf32>
      stablehlo.return %2, %2 : tensor<4xf32>, tensor<4xf32>
    } : (tensor<4x16xf32>, tensor<4xf32>) -> (tensor<4x16xf32>, tensor<4xf32>)
    return %1#0 : tensor<4x16xf32>
  }
}
"""


def test_chlo_scan_is_counted_as_the_cumulative_op(lowered_text):
  # jax >= 0.12 lowers cumsum for GPUs to chlo.scan: n - 1 steps per row, as the jaxpr.
  from jaxgreen._src.hlo import count_lowered

  lowered = count_lowered(lowered_text(_SCAN))
  assert not lowered.uncounted
  assert _counts(lowered) == _counts(jaxgreen.count(lambda a: lax.cumsum(a, axis=1))(X)) \
      == (4 * 15, 0, 0)


_TOPK = """
HloModule m
ENTRY %main (x: f32[4,16]) -> (f32[4,4], s32[4,4]) {
  %x = f32[4,16]{1,0} parameter(0)
  ROOT %t = (f32[4,4]{1,0}, s32[4,4]{1,0}) custom-call(%x), custom_call_target="TARGET"
}
"""


@pytest.mark.parametrize("target", ["TopK", "__gpu$TopK"])
def test_compiled_top_k_custom_calls_are_heap_selection(target):
  # CPU and TPU compile top_k to "TopK", GPU (for long rows) to "__gpu$TopK".
  h = count_hlo_text(_TOPK.replace("TARGET", target))
  assert not h.cost.uncounted
  assert _counts(h.cost) == _counts(jaxgreen.count(lambda a: lax.top_k(a, 4))(X))
  assert sum(h.causes.values()) == h.cost.fpo - h.xla_flops_trips
