"""Pallas kernels at the jaxpr stage: each count against its closed form.

Only tracing is needed (no kernel runs). A "unit" below is the MULs of one dot of a
(block_q x D) by (D x block_k) block pair, 128 * 128 * D for blocks of 128.
"""

import functools
import importlib
import warnings

import jax
import jax.numpy as jnp
import pytest
from jax import lax
from jax.experimental import pallas as pl

import jaxgreen
from jaxgreen._src.cost_model import DEFAULT
from jaxgreen._src.jaxpr.interpreter import Walker
from jaxgreen._src.jaxpr.rules.pallas import kernel_estimates

S = jax.ShapeDtypeStruct
F32 = jnp.float32


def _module(name):
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", DeprecationWarning)
      return importlib.import_module(name)
  except ImportError as e:  # pragma: no cover - depends on the jax release
    pytest.skip(f"{name} is not in jax {jax.__version__}: {e}")


def _dot_muls(cost):
  row = cost.by_primitive.get("dot_general")
  return row.muls if row else 0


def _walk_every_point(fn, *args):
  """The count with the grid grouping off: every grid point walked on its own."""
  closed = jax.make_jaxpr(fn)(*args)
  return Walker(cost_model=DEFAULT, memo=False).walk(closed.jaxpr,
                                                     [None] * len(closed.jaxpr.invars))


# -- hand-written kernels -----------------------------------------------------------------

def _matmul(kernel, name):
  # (128 x 128) @ (128 x 128) on a grid (2, 2): i picks 64 rows, k one of two 64-wide
  # slices of the contraction; the output block is revisited for k = 0, 1.
  def mm(x, y):
    return pl.pallas_call(
        kernel, grid=(2, 2), name=name,
        in_specs=[pl.BlockSpec((64, 64), lambda i, k: (i, k)),
                  pl.BlockSpec((64, 128), lambda i, k: (k, 0))],
        out_specs=pl.BlockSpec((64, 128), lambda i, k: (i, 0)),
        out_shape=S((128, 128), F32))(x, y)

  return mm


def _mm_first_block_writes(x_ref, y_ref, o_ref):
  d = jnp.dot(x_ref[...], y_ref[...])

  @pl.when(pl.program_id(1) == 0)
  def _():
    o_ref[...] = d

  @pl.when(pl.program_id(1) > 0)
  def _():
    o_ref[...] += d


def _mm_zero_init(x_ref, y_ref, o_ref):
  @pl.when(pl.program_id(1) == 0)
  def _():
    o_ref[...] = jnp.zeros_like(o_ref)

  o_ref[...] += jnp.dot(x_ref[...], y_ref[...])


X128 = S((128, 128), F32)


def test_tiled_matmul_is_exactly_one_matmul():
  c = jaxgreen.count(_matmul(_mm_first_block_writes, "mm"))(X128, X128)
  # MUL: 4 points x 64*128 outputs x 64 products = 128**3.
  assert c.muls == 4 * 64 * 128 * 64 == 128**3
  # ADD: each block dot adds 63 products per output (4 x 64*128*63 = 128**2 * 126), and
  # the k = 1 points add their partial sum to the k = 0 one (2 x 64*128 = 128**2):
  # 128**2 * 127, a single 128-long dot's ADDs. The k = 0 branch is resolved exactly.
  assert c.adds == 4 * 64 * 128 * 63 + 2 * 64 * 128 == 128**2 * 127
  assert c.exact and set(c.by_scope) == {"mm"}


def test_zero_initialised_accumulator_adds_onto_zeros():
  c = jaxgreen.count(_matmul(_mm_zero_init, "mm0"))(X128, X128)
  assert c.muls == 128**3
  # Every point adds its partial sum to the accumulator, also onto the zeros at k = 0:
  # 128**2 * 127 + 128**2 (one ADD per output more than an unblocked dot).
  assert c.adds == 4 * 64 * 128 * 63 + 4 * 64 * 128 == 128**2 * 127 + 128**2
  assert c.exact


def _causal_blocks(x_ref, y_ref, o_ref):
  q, k = pl.program_id(0), pl.program_id(1)

  @pl.when(k <= q)  # skip the blocks above the diagonal
  def _():
    o_ref[...] += jnp.dot(x_ref[...], y_ref[...])


def _causal(x, y):
  return pl.pallas_call(
      _causal_blocks, grid=(4, 4), name="causal",
      in_specs=[pl.BlockSpec((32, 32), lambda q, k: (q, k)),
                pl.BlockSpec((32, 32), lambda q, k: (k, 0))],
      out_specs=pl.BlockSpec((32, 32), lambda q, k: (q, 0)),
      out_shape=S((128, 32), F32))(x, y)


def test_causal_block_skip_counts_only_the_lower_triangle():
  a, b = S((128, 128), F32), S((128, 32), F32)
  c = jaxgreen.count(_causal)(a, b)
  blocks = 4 * 5 // 2  # on or below the diagonal of a 4 x 4 grid
  assert c.muls == blocks * 32 * 32 * 32
  assert c.adds == blocks * (32 * 32 * 31 + 32 * 32)  # the dot, then += into o_ref
  assert c.exact
  assert c == _walk_every_point(_causal, a, b)  # grouping == one walk per grid point


def _triangular_loop(x_ref, o_ref):
  i = pl.program_id(0)

  def body(_, acc):
    return acc * 2.0

  o_ref[...] = lax.fori_loop(0, i + 1, body, x_ref[...])


def test_loop_bound_from_the_program_id_is_multiplied_out():
  def f(x):
    return pl.pallas_call(_triangular_loop, grid=(4,), name="tri",
                          in_specs=[pl.BlockSpec((8,), lambda i: (i,))],
                          out_specs=pl.BlockSpec((8,), lambda i: (i,)),
                          out_shape=S((32,), F32))(x)

  c = jaxgreen.count(f)(S((32,), F32))
  assert c.muls == 8 * (1 + 2 + 3 + 4)  # point i runs i + 1 iterations of 8 MULs
  assert c.exact
  assert c == _walk_every_point(f, S((32,), F32))


def _last_block_skips(x_ref, o_ref):
  o_ref[...] = x_ref[...]

  @pl.when(pl.program_id(0) < pl.num_programs(0) - 1)  # every block but the last
  def _():
    j = pl.program_id(0)  # read again inside the branch

    @pl.loop(0, j + 2)
    def _(t):
      o_ref[...] = o_ref[...] * 2.0

    @pl.when(j == 1)
    def _():
      o_ref[...] = o_ref[...] + 1.0


def _last_block(x, interpret=False):
  return pl.pallas_call(_last_block_skips, grid=(4,), interpret=interpret,
                        in_specs=[pl.BlockSpec((8,), lambda i: (i,))],
                        out_specs=pl.BlockSpec((8,), lambda i: (i,)),
                        out_shape=S((32,), F32))(x)


@pytest.mark.parametrize("interpret", [False, True])
def test_pl_loop_num_programs_and_nested_program_ids(interpret):
  x = S((32,), F32)
  c = jaxgreen.count(functools.partial(_last_block, interpret=interpret))(x)
  # Points 0, 1, 2 run j + 2 = 2, 3, 4 iterations of 8 MULs; point 1 adds 8; point 3
  # (the last) only copies.
  assert (c.muls, c.adds) == (8 * (2 + 3 + 4), 8)
  assert c.exact and c == _walk_every_point(_last_block, x)


def test_vmapped_kernel_repeats_per_batch_element():
  # vmap adds a grid dimension of 3 in front; the kernel's program_id(0) still numbers
  # its own 4 blocks, so each batch element costs what one call does.
  c = jaxgreen.count(jax.vmap(_last_block))(S((3, 32), F32))
  assert (c.muls, c.adds) == (3 * 8 * (2 + 3 + 4), 3 * 8)


def test_atomic_updates_price_their_operation():
  plgpu = _module("jax.experimental.pallas.triton")

  def kernel(x_ref, o_ref):
    plgpu.atomic_add(o_ref, (pl.dslice(0, 8),), x_ref[...])
    plgpu.atomic_max(o_ref, (pl.dslice(0, 8),), x_ref[...])

  def f(x):
    return pl.pallas_call(kernel, grid=(4,), in_specs=[pl.BlockSpec((8,), lambda i: (i,))],
                          out_specs=pl.BlockSpec((8,), lambda i: (0,)),
                          out_shape=S((8,), F32))(x)

  c = jaxgreen.count(f)(S((32,), F32))
  assert c.adds == 4 * (8 + 8) and c.muls == 0 and c.exact  # an add and a compare each


def _prefetch_kernel(s_ref, x_ref, o_ref):
  @pl.when(s_ref[pl.program_id(0)] > 0)  # a runtime value decides
  def _():
    o_ref[...] = x_ref[...] * 3.0


def test_branch_on_scalar_prefetch_is_a_marked_bound():
  def f(s, x):
    spec = pltpu.PrefetchScalarGridSpec(
        num_scalar_prefetch=1, grid=(4,),
        in_specs=[pl.BlockSpec((8,), lambda i, s: (i,))],
        out_specs=pl.BlockSpec((8,), lambda i, s: (i,)))
    return pl.pallas_call(_prefetch_kernel, grid_spec=spec, name="pf",
                          out_shape=S((32,), F32))(s, x)

  pltpu = _module("jax.experimental.pallas.tpu")
  c = jaxgreen.count(f)(S((4,), jnp.int32), S((32,), F32))
  assert c.muls == 4 * 8  # the cond policy "max": every point takes the branch
  assert not c.exact and any("'pf'" in why and "run time" in why for why in c.inexact)
  assert jaxgreen.count(f, cond="min")(S((4,), jnp.int32), S((32,), F32)).muls == 0


# -- jax's kernels --------------------------------------------------------------------

B, H, T, D = 1, 2, 512, 64


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("block", [128, 256])
def test_tpu_flash_attention(causal, block):
  fa = _module("jax.experimental.pallas.ops.tpu.flash_attention")
  sizes = fa.BlockSizes(block_q=block, block_k_major=block, block_k=block, block_b=1,
                        block_q_major_dkv=block, block_k_major_dkv=block, block_k_dkv=block,
                        block_q_dkv=block, block_k_major_dq=block, block_k_dq=block,
                        block_q_dq=block)
  f = functools.partial(fa.flash_attention, causal=causal, block_sizes=sizes)
  q = S((B, H, T, D), F32)
  n = T // block
  pairs = n * (n + 1) // 2 if causal else n * n  # T=512, 128: 10 of 16 causal
  unit = B * H * block * block * D
  fwd = jaxgreen.count(f)(q, q, q)
  # Forward: Q K^T and P V per computed block pair; non-causal 2 * B*H*T**2*D.
  assert _dot_muls(fwd) == 2 * pairs * unit
  if not causal:
    assert _dot_muls(fwd) == 2 * B * H * T**2 * D
  assert fwd.exact and not fwd.uncounted
  grad = jaxgreen.count(jax.grad(lambda q, k, v: f(q, k, v).sum(), argnums=(0, 1, 2)))(q, q, q)
  # Gradient: the forward with residuals (2 dots per pair), the dK/dV kernel (S again,
  # dV, dP, dK: 4) and the dQ kernel (S, dP, dQ: 3): 9 dots per computed pair.
  assert _dot_muls(grad) == 9 * pairs * unit
  assert grad.exact


def test_flash_attention_grouping_equals_a_walk_per_grid_point():
  fa = _module("jax.experimental.pallas.ops.tpu.flash_attention")
  f = functools.partial(fa.flash_attention, causal=True,
                        block_sizes=fa.BlockSizes(block_q=128, block_k_major=128,
                                                  block_k=128, block_b=1))
  q = S((B, H, T, D), F32)
  assert jaxgreen.count(f)(q, q, q) == _walk_every_point(f, q, q, q)


def test_flash_attention_32k_tokens_counts_exactly():
  fa = _module("jax.experimental.pallas.ops.tpu.flash_attention")
  t, block = 32768, 128
  f = functools.partial(fa.flash_attention, causal=True,
                        block_sizes=fa.BlockSizes(block_q=block, block_k_major=block,
                                                  block_k=block, block_b=1))
  q = S((1, 8, t, 128), jnp.bfloat16)
  n = t // block  # a 256 x 256 block grid per head: 32,896 pairs computed
  assert _dot_muls(jaxgreen.count(f)(q, q, q)) == 2 * 8 * n * (n + 1) // 2 * block**2 * 128


def _splash(mask_cls, **kw):
  sk = _module("jax.experimental.pallas.ops.tpu.splash_attention.splash_attention_kernel")
  sm = _module("jax.experimental.pallas.ops.tpu.splash_attention.splash_attention_mask")
  mask = sm.MultiHeadMask([getattr(sm, mask_cls)((T, T), **kw) for _ in range(H)])
  b = 128
  sizes = sk.BlockSizes(block_q=b, block_kv=b, block_kv_compute=b, block_q_dkv=b,
                        block_kv_dkv=b, block_kv_dkv_compute=b, block_q_dq=b, block_kv_dq=b)
  return sk.make_splash_mha(mask, head_shards=1, q_seq_shards=1, block_sizes=sizes)


@pytest.mark.parametrize("mask,kw,grid,true", [
    ("CausalMask", {}, 16, 10),
    ("LocalMask", {"window_size": (128, 0), "offset": 0}, 8, 7),
    ("FullMask", {}, 16, 16)])
def test_splash_attention_counts_only_the_computed_blocks(mask, kw, grid, true):
  # Splash skips blocks by reading its block mask from scalar-prefetch refs, which
  # make_splash_mha fills with small constant tables: they are read at every grid point,
  # so only the computed block pairs count (2 dots each), exactly. Its kv grid axis is
  # the widest row of the block mask: 4 x 4 causal (10 pairs computed), 4 x 2 local (the
  # diagonal block and the one left of it: 7), 4 x 4 full (16).
  kernel = _splash(mask, **kw)
  a = S((H, T, D), F32)
  unit = H * 128 * 128 * D
  c = jaxgreen.count(kernel)(a, a, a)
  assert _dot_muls(c) == 2 * true * unit <= 2 * grid * unit
  assert c.exact and not c.uncounted
  assert _dot_muls(jaxgreen.count(kernel, cond="min")(a, a, a)) == _dot_muls(c)  # decided
  grad = jaxgreen.count(jax.grad(lambda q, k, v: kernel(q, k, v).sum(), argnums=(0, 1, 2)))(
      a, a, a)
  # 9 dots per computed pair (as flash attention's), and rowsum(dO * O) as one
  # H x T x D contraction outside the kernels
  assert _dot_muls(grad) == 9 * true * unit + H * T * D
  assert grad.exact


@pytest.mark.parametrize("causal", [False, True])
def test_gpu_mha_forward_and_backward(causal):
  ga = _module("jax.experimental.pallas.ops.gpu.attention")
  sizes = ga.BlockSizes(block_q=128, block_k=128, block_q_dkv=128, block_kv_dkv=128,
                        block_q_dq=128, block_kv_dq=128)
  f = functools.partial(ga.mha, segment_ids=None, causal=causal, block_sizes=sizes)
  a = S((B, T, H, D), jnp.float16)
  n = T // 128
  pairs = n * (n + 1) // 2 if causal else n * n
  unit = B * H * 128 * 128 * D
  # The kv loop is a fori_loop whose bound, causal, depends on the program id.
  fwd = jaxgreen.count(f)(a, a, a)
  assert _dot_muls(fwd) == 2 * pairs * unit and fwd.exact
  grad = jaxgreen.count(jax.grad(lambda q, k, v: f(q, k, v).astype(F32).sum(),
                                 argnums=(0, 1, 2)))(a, a, a)
  assert _dot_muls(grad) == 9 * pairs * unit and grad.exact  # as for TPU flash above


def test_megablox_gmm_dynamic_grid():
  megablox = _module("jax.experimental.pallas.ops.tpu.megablox")
  m, k, n, groups = 512, 256, 256, 4

  def f(lhs, rhs, sizes):
    return megablox.gmm(lhs, rhs, sizes, tiling=(128, 128, 128))

  args = (S((m, k), F32), S((groups, k, n), F32), S((groups,), jnp.int32))
  # jax 0.12.1 traces gmm's jnp.searchsorted (outside the kernel) as a call_hi_primitive,
  # counted through the program it expands to.
  c = jaxgreen.count(f)(*args)
  given = jaxgreen.count(f, trip_counts={"pallas_call:grid1": 4})(*args)
  assert not c.uncounted and not given.uncounted
  # The number of active m-tiles is computed from group_sizes at run time: counted as
  # one and named; with the figure given (4 equal groups of 128 rows: 4 tiles), every
  # row meets one group's k x n weights: m * k * n MULs.
  assert not c.exact and any("grid dimension 1" in why for why in c.inexact)
  assert _dot_muls(c) == m * k * n // 4
  assert _dot_muls(given) == m * k * n
  assert any("grid dimension 1 = 4" in why for why in given.assumed)


def test_paged_attention_is_a_marked_bound():
  pa = _module("jax.experimental.pallas.ops.tpu.paged_attention")

  def f(q, k, v, lengths, pages):
    return pa.paged_attention(q, k, v, lengths, pages, pages_per_compute_block=4)

  c = jaxgreen.count(f)(S((2, 4, 64), F32), S((4, 64, 16, 64), F32), S((4, 64, 16, 64), F32),
                        S((2,), jnp.int32), S((2, 16), jnp.int32))
  # How many pages each sequence reads comes from `lengths` (runtime): named, not silent.
  assert not c.exact and not c.uncounted
  assert any("pallas_call" in why for why in c.inexact)


# -- the kernel author's estimate -------------------------------------------------------

def test_kernel_estimates_lists_the_authors_figure_beside_ours():
  def f(x, y):
    return pl.pallas_call(
        _mm_first_block_writes, grid=(2, 2), name="mm",
        in_specs=[pl.BlockSpec((64, 64), lambda i, k: (i, k)),
                  pl.BlockSpec((64, 128), lambda i, k: (k, 0))],
        out_specs=pl.BlockSpec((64, 128), lambda i, k: (i, 0)),
        out_shape=S((128, 128), F32),
        cost_estimate=pl.CostEstimate(flops=2 * 128**3, transcendentals=0,
                                      bytes_accessed=3 * 128 * 128 * 4))(x, y)

  first, second = kernel_estimates(lambda x, y: f(x, y) + f(y, x), X128, X128)
  assert (first.name, first.grid, first.flops) == ("mm", (2, 2), 2 * 128**3)
  # Ours: 128**3 MULs + 128**2 * 127 ADDs, 128**2 below the author's 2 * 128**3 (the
  # first product of each output needs no ADD).
  assert first.cost.fpo == 128**3 + 128**2 * 127 == 2 * 128**3 - 128**2
  assert second.cost == first.cost
