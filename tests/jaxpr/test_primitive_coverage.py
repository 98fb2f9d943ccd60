"""Every primitive the installed jax emits for the suite's programs is priced or reviewed.

The programs below stand for what the tests count: the MNIST CNN and MLP train steps,
small linen and nnx models, jax's Pallas kernels (forward and gradient), control flow,
linear algebra, random numbers and sorting. Their jaxprs are walked to the bottom (call
bodies, loop bodies, branches, kernel bodies, the expansion of high-level primitives)
and each primitive must have a cost rule or sit on the reviewed zero-cost list. A jax
release that adds a primitive fails here, naming it, before any count misses it.
"""

import functools
import importlib
import warnings

import jax
import jax.numpy as jnp
import optax
import pytest
from flax import linen as nn
from flax import nnx
from jax import lax
from jax.extend import core as jcore

import jaxgreen
from jaxgreen._src.examples import mnist
from jaxgreen._src.jaxpr import registry
from jaxgreen._src.jaxpr.rules.control_flow import _expansion

S = jax.ShapeDtypeStruct
F32 = jnp.float32


def _jaxprs_in(value):
  if isinstance(value, jcore.ClosedJaxpr):
    yield value.jaxpr
  elif isinstance(value, jcore.Jaxpr):
    yield value
  elif isinstance(value, tuple | list):  # branches; custom_linear_solve's namedtuple
    for v in value:
      yield from _jaxprs_in(v)


def primitives(jaxpr, seen=None) -> set[str]:
  """The names of every primitive in ``jaxpr`` and everything it calls."""
  seen = set() if seen is None else seen
  names: set[str] = set()
  if id(jaxpr) in seen:
    return names
  seen.add(id(jaxpr))
  for eqn in jaxpr.eqns:
    names.add(eqn.primitive.name)
    for value in eqn.params.values():
      for sub in _jaxprs_in(value):
        names |= primitives(sub, seen)
    if eqn.primitive.name == "call_hi_primitive":
      closed = _expansion(eqn.primitive, eqn.params["_prim"], [v.aval for v in eqn.invars])
      names |= primitives(closed.jaxpr, seen)
  return names


# -- the programs ---------------------------------------------------------------------------

def _mnist(model):
  tx, step, _ = mnist.make_train_step(model)
  return step, mnist.abstract_train_args(model, tx, batch=4)


class _Linen(nn.Module):
  @nn.compact
  def __call__(self, x, train: bool = True):
    x = nn.Conv(8, (3, 3), strides=2)(x)
    x = nn.BatchNorm(use_running_average=not train)(x)
    x = nn.gelu(x).reshape(x.shape[0], -1, 8)
    x = nn.LayerNorm()(x)
    x = nn.MultiHeadDotProductAttention(num_heads=2)(x, x)
    x = nn.Dropout(0.1, deterministic=not train)(x)
    x = nn.remat(nn.Dense)(16)(x)
    return nn.RMSNorm()(x).mean()


def _linen_step():
  model = _Linen()
  x = S((2, 8, 8, 3), F32)
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(x.shape),
                                                train=False))

  def step(variables, x, key):
    def loss(params):
      y, _ = model.apply({**variables, "params": params}, x, rngs={"dropout": key},
                         mutable=["batch_stats"])
      return y
    return jax.grad(loss)(variables["params"])

  return step, (variables, x, jax.eval_shape(lambda: jax.random.key(1)))


class _Nnx(nnx.Module):
  def __init__(self, rngs):
    self.emb = nnx.Embed(32, 16, rngs=rngs)
    self.att = nnx.MultiHeadAttention(2, 16, decode=False, rngs=rngs)
    self.conv = nnx.Conv(16, 16, (3,), rngs=rngs)
    self.out = nnx.Linear(16, 32, rngs=rngs)

  def __call__(self, ids):
    h = self.emb(ids)
    h = self.att(h, mask=nnx.make_causal_mask(ids))
    h = self.conv(h)
    return self.out(jax.nn.silu(h))


def _nnx_step():
  model = _Nnx(nnx.Rngs(0))
  graphdef, state = nnx.split(model)

  def step(state, ids):
    def loss(state):
      logits = nnx.merge(graphdef, state)(ids)
      return optax.softmax_cross_entropy_with_integer_labels(logits, ids).mean()
    return jax.value_and_grad(loss)(state)

  return step, (state, S((2, 8), jnp.int32))


def _control_flow():
  @jax.custom_vjp
  def clip(x):
    return x

  clip.defvjp(lambda x: (x, None), lambda _, g: (jnp.clip(g, -1.0, 1.0),))

  def f(x, n):
    y = lax.scan(lambda c, v: (jnp.tanh(c * v), c), x, jnp.arange(3.0))[0]
    y = lax.fori_loop(0, 4, lambda i, c: c * 1.5, y)
    y = lax.cond(n > 0, jnp.sin, jnp.cos, y)
    y = lax.switch(n, [jnp.exp, jnp.log1p, jax.nn.relu], y)
    y = jax.checkpoint(lambda z: jnp.sin(z) ** 2)(clip(y))
    y = jax.vmap(lambda r: lax.associative_scan(jnp.add, r))(y.reshape(2, 4))
    return jnp.cumsum(y).sum() + jax.nn.logsumexp(y)

  def g(x, n):
    y = lax.while_loop(lambda c: c.sum() < n, lambda c: c + 1.0, x)  # not differentiable
    return jax.grad(f)(y, n)

  return g, (S((8,), F32), S((), jnp.int32))


def _numerics():
  def f(a, x, key):
    spd = a @ a.T + jnp.eye(8)
    q, r = jnp.linalg.qr(a)
    w, v = jnp.linalg.eigh(spd)
    u, s, vt = jnp.linalg.svd(a)
    sol = jax.scipy.linalg.solve_triangular(jnp.linalg.cholesky(spd), x)
    inv = jnp.linalg.solve(spd, x)
    spec = jnp.fft.rfft(x[:, 0]).real.sum() + jnp.fft.fft(x[:, 0]).imag.sum()
    noise = jax.random.normal(key, (8,)) + jax.random.bernoulli(key, 0.5, (8,))
    top = lax.top_k(x[:, 0], 3)[0].sum() + jnp.sort(x[:, 0])[0] + jnp.argmax(x)
    idx = jnp.searchsorted(jnp.sort(x[:, 0]), noise)
    ints = (jnp.arange(8) * 3 // 2 % 5).sum() + jnp.clip(idx, 0, 4).sum()
    extras = (jax.nn.softmax(x).sum() + lax.erf(x).sum() + lax.rsqrt(spd[0, 0])
              + jnp.linalg.det(spd) + jnp.linalg.slogdet(spd)[1] + jnp.median(x))
    return (q.sum() + r.sum() + w.sum() + v.sum() + u.sum() + s.sum() + vt.sum() + sol.sum()
            + inv.sum() + spec + top + ints + extras + x.at[idx].add(1.0).sum())

  return f, (S((8, 8), F32), S((8, 8), F32), jax.eval_shape(lambda: jax.random.key(0)))


def _optional(name):
  """A kernel module, or None where this jax release does not ship it."""
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", DeprecationWarning)
      return importlib.import_module(name)
  except ImportError:
    return None


def _kernel_programs():
  """jax's Pallas kernels that the tests count, forward and gradient (those this jax
  release ships)."""
  programs = {}
  b, h, t, d = 1, 2, 256, 64

  def grad_of(f):
    return jax.grad(lambda q, k, v: f(q, k, v).astype(F32).sum(), argnums=(0, 1, 2))

  ops = "jax.experimental.pallas.ops."
  if fa := _optional(ops + "tpu.flash_attention"):
    f = functools.partial(fa.flash_attention, causal=True, block_sizes=fa.BlockSizes(
        block_q=128, block_k_major=128, block_k=128, block_b=1, block_q_major_dkv=128,
        block_k_major_dkv=128, block_k_dkv=128, block_q_dkv=128, block_k_major_dq=128,
        block_k_dq=128, block_q_dq=128))
    programs["tpu_flash"] = (grad_of(f), (S((b, h, t, d), F32),) * 3)
  if ga := _optional(ops + "gpu.attention"):
    f = functools.partial(ga.mha, segment_ids=None, causal=True, block_sizes=ga.BlockSizes(
        block_q=128, block_k=128, block_q_dkv=128, block_kv_dkv=128, block_q_dq=128,
        block_kv_dq=128))
    programs["gpu_mha"] = (grad_of(f), (S((b, t, h, d), jnp.float16),) * 3)
  sk = _optional(ops + "tpu.splash_attention.splash_attention_kernel")
  sm = _optional(ops + "tpu.splash_attention.splash_attention_mask")
  if sk and sm:
    mask = sm.MultiHeadMask([sm.CausalMask((t, t)) for _ in range(h)])
    sizes = sk.BlockSizes(block_q=128, block_kv=128, block_kv_compute=128, block_q_dkv=128,
                          block_kv_dkv=128, block_kv_dkv_compute=128, block_q_dq=128,
                          block_kv_dq=128)
    splash = sk.make_splash_mha(mask, head_shards=1, q_seq_shards=1, block_sizes=sizes)
    programs["splash"] = (grad_of(splash), (S((h, t, d), F32),) * 3)
  if megablox := _optional(ops + "tpu.megablox"):
    programs["gmm"] = (lambda x, w, g: megablox.gmm(x, w, g, tiling=(128, 128, 128)),
                       (S((256, 128), F32), S((2, 128, 128), F32), S((2,), jnp.int32)))
  if pa := _optional(ops + "tpu.paged_attention"):
    programs["paged"] = (
        lambda q, k, v, n, p: pa.paged_attention(q, k, v, n, p, pages_per_compute_block=4),
        (S((2, 4, 64), F32), S((4, 64, 16, 64), F32), S((4, 64, 16, 64), F32),
         S((2,), jnp.int32), S((2, 16), jnp.int32)))
  return programs


PROGRAMS = {
    "mnist_cnn_train_step": lambda: _mnist(mnist.CNN()),
    "mnist_mlp_train_step": lambda: _mnist(mnist.MLP()),
    "linen_step": _linen_step,
    "nnx_step": _nnx_step,
    "control_flow": _control_flow,
    "numerics": _numerics,
}


def _unknown(names: set[str]) -> set[str]:
  return names - registry.registered_names() - registry.ZERO_COST


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_every_primitive_of_the_suites_programs_is_priced_or_reviewed(name):
  f, args = PROGRAMS[name]()
  names = primitives(jax.make_jaxpr(f)(*args).jaxpr)
  assert len(names) > 5  # the walk reached into the program
  assert not _unknown(names), (
      f"jax {jax.__version__} emits primitives with neither a cost rule nor a place on "
      f"jaxgreen._src.jaxpr.registry.ZERO_COST: {sorted(_unknown(names))}")


def test_every_primitive_of_jaxs_pallas_kernels_is_priced_or_reviewed():
  programs = _kernel_programs()
  if not programs:
    pytest.skip(f"jax {jax.__version__} ships none of the Pallas kernels the tests count")
  names: set[str] = set()
  for kernel, (f, args) in programs.items():
    found = primitives(jax.make_jaxpr(f)(*args).jaxpr)
    assert "pallas_call" in found, kernel
    names |= found
  assert {"program_id", "dot_general"} <= names  # the kernel bodies were walked
  assert not _unknown(names), (
      f"jax {jax.__version__}'s Pallas kernels emit primitives with neither a cost rule "
      f"nor a place on jaxgreen._src.jaxpr.registry.ZERO_COST: {sorted(_unknown(names))}")


def test_the_walk_finds_a_primitive_hidden_in_a_loop_body():
  fake = jcore.Primitive("coverage_fake_op")
  fake.def_abstract_eval(lambda x: x)

  def f(x):
    return lax.fori_loop(0, 3, lambda i, c: lax.cond(i > 0, fake.bind, jnp.sin, c), x)

  assert _unknown(primitives(jax.make_jaxpr(f)(S((4,), F32)).jaxpr)) == {"coverage_fake_op"}


def test_high_level_primitives_are_counted_through_their_expansion():
  # jax >= 0.12.1 traces jnp.searchsorted(method="scan") as one call_hi_primitive (on
  # older releases, as the loop itself): the count walks what it expands to, and agrees
  # with the lowered program's.
  def f(a, q):
    return jnp.searchsorted(a, q, method="scan").astype(F32) * q

  args = (S((64,), F32), S((16,), F32))
  c = jaxgreen.count(f)(*args)
  assert not c.uncounted and c.exact
  lowered = jaxgreen.count(f, stage="lowered")(*args)
  assert (c.adds, c.muls) == (lowered.adds, lowered.muls)
  assert c.muls >= 16  # the final product, one MUL per query

