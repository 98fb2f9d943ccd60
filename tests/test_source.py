"""FPO by the user's source line: ``Cost.by_stack`` / ``Cost.by_source``.

Each expected figure is the closed form of the line's work; every test also checks that
the stacks sum to the totals (no work lost or counted twice).
"""

from __future__ import annotations

import inspect
import os
import sys

import jax
import jax.numpy as jnp
import pytest

import jaxgreen
from jaxgreen._src import _source
from jaxgreen._src.cost import Cost, Counts

HERE = os.path.abspath(__file__)


def line_of(fn, text: str) -> str:
  """The frame ``file:line:function`` of the line of ``fn`` holding ``text``."""
  lines, first = inspect.getsourcelines(fn)
  hits = [first + i for i, s in enumerate(lines) if text in s]
  assert len(hits) == 1, (text, hits)
  return f"{HERE}:{hits[0]}:{fn.__qualname__}"


def check_sums(c: Cost) -> None:
  assert sum(c.by_site.values(), Counts()) == c.counts
  assert sum(c.by_stack.values(), Counts()) == c.counts
  assert sum(c.by_source.values(), Counts()) == c.counts


def mlp(w1, w2, x):
  h = jnp.tanh(x @ w1)
  return jnp.sum(h @ w2)


B, K, H, N = 3, 16, 8, 2


def _mlp_args():
  return (jax.ShapeDtypeStruct((K, H), jnp.float32), jax.ShapeDtypeStruct((H, N), jnp.float32),
          jax.ShapeDtypeStruct((B, K), jnp.float32))


def test_matmul_line_on_top_with_exact_fpo():
  c = jaxgreen.count(jax.jit(mlp))(*_mlp_args())
  check_sums(c)
  top, counts = next(iter(c.by_source.items()))
  assert top == line_of(mlp, "x @ w1")
  # dot B·H·(K MUL + K-1 ADD), then tanh on B·H elements at the cost model's price
  tanh_a, tanh_m = jaxgreen.CostModel().price("tanh")
  assert counts.muls == B * H * K + B * H * tanh_m
  assert counts.adds == B * H * (K - 1) + B * H * tanh_a
  assert counts.transcendentals == B * H
  second = c.by_source[line_of(mlp, "h @ w2")]
  assert second.fpo == B * N * (2 * H - 1) + (B * N - 1)  # dot, then the sum's ADDs


def test_stack_names_the_callers_and_folds_libraries():
  def outer(*args):
    return mlp(*args)

  c = jaxgreen.count(jax.grad(outer))(*_mlp_args())
  check_sums(c)
  for stack in c.by_stack:
    for frame in _source.frames(stack):
      file = _source.split_frame(frame)[0]
      assert _source.is_user_file(file), frame
      assert os.sep + "jax" + os.sep not in file and "site-packages" not in file, frame
  matmul = line_of(mlp, "x @ w1")
  stacks = [s for s in c.by_stack if s.endswith(matmul)]
  assert stacks
  # outermost first: outer(), then the line in mlp (jax records the frames below the
  # outermost transformation it was called through: here jax.grad)
  frames = _source.frames(stacks[0])
  assert len(frames) == 2 and frames[0].endswith("<locals>.outer")


def test_grad_adds_the_backward_pass_to_the_forward_line():
  c = jaxgreen.count(jax.grad(mlp, argnums=(0, 1)))(*_mlp_args())
  check_sums(c)
  dots = {_source.innermost(stack): n for stack, _, prim, n in c.sites()
          if prim == "dot_general"}
  first = dots[line_of(mlp, "x @ w1")]
  # forward x·w1: B·H·(K MUL + K-1 ADD); backward dL/dw1 = xᵀ·g: K·H·(B MUL + B-1 ADD)
  assert (first.muls, first.adds) == (B * H * K + K * H * B, B * H * (K - 1) + K * H * (B - 1))
  second = dots[line_of(mlp, "h @ w2")]
  # the forward h·w2 and the sum are dead under grad; dL/dw2 = hᵀ·1: H·N·(B MUL + B-1
  # ADD); dL/dh = 1·w2ᵀ: B·H·(N MUL + N-1 ADD)
  assert (second.muls, second.adds) == (H * N * B + B * H * N,
                                        H * N * (B - 1) + B * H * (N - 1))


def test_scan_body_line_is_scaled_by_its_trip_count():
  def f(c, w):
    def body(c, _):
      return jnp.tanh(c @ w), None

    return jax.lax.scan(body, c, None, length=7)[0]

  c = jaxgreen.count(f)(jnp.ones((B, H)), jnp.ones((H, H)))
  check_sums(c)
  line = [k for k in c.by_source if k.endswith(".<locals>.f.<locals>.body")]
  assert len(line) == 1
  tanh_a, tanh_m = jaxgreen.CostModel().price("tanh")
  per_step = B * H * (2 * H - 1) + B * H * (tanh_a + tanh_m)
  assert c.by_source[line[0]].fpo == 7 * per_step  # length · (dot + tanh)
  assert c.by_source[line[0]].fpo == c.fpo


def test_vmap_remat_and_custom_vjp_keep_every_line():
  @jax.custom_vjp
  def square(x):
    return x * x

  def square_fwd(x):
    return x * x, x

  def square_bwd(x, g):
    return (2.0 * x * g,)

  square.defvjp(square_fwd, square_bwd)

  def f(x):
    y = jax.checkpoint(lambda v: jnp.sin(v) * 3.0)(x)
    return jnp.sum(jax.vmap(square)(y))

  n = 5
  c = jaxgreen.count(jax.grad(f))(jax.ShapeDtypeStruct((n,), jnp.float32))
  check_sums(c)
  # jax traces a custom_vjp's backward rule under the call's own traceback: its work
  # (2·x·g, two MULs on each of n elements) lands on the line that calls square
  call = c.by_source[line_of(f, "jax.vmap(square)(y)")]
  assert call.muls == 2 * n and call.adds == 0
  remat = [k for k in c.by_source if k.endswith(".<locals>.f.<locals>.<lambda>")]
  assert remat and sum(c.by_source[k].transcendentals for k in remat) >= 2 * n  # sin, cos


def test_flax_linen_dense_line():
  nn = pytest.importorskip("flax.linen", reason="flax is a dependency; linen must import")

  class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
      x = nn.relu(nn.Dense(H)(x))
      return nn.Dense(N)(x)

  x = jnp.ones((B, K))
  params = jax.eval_shape(MLP().init, jax.random.key(0), x)
  c = jaxgreen.count(MLP().apply)(params, x)
  check_sums(c)
  top, counts = next(iter(c.by_source.items()))
  assert top == line_of(MLP.__call__, "nn.Dense(H)")
  # dot B·H·(K MUL + K-1 ADD), the bias B·H ADD, relu B·H max (an ADD)
  assert counts.fpo == B * H * (2 * K - 1) + B * H + B * H
  assert c.by_source[line_of(MLP.__call__, "nn.Dense(N)")].fpo == 2 * B * H * N  # dot+bias


def test_flax_nnx_linear_line():
  nnx = pytest.importorskip("flax.nnx", reason="flax is a dependency; nnx must import")

  class Net(nnx.Module):
    def __init__(self, rngs):
      self.lin = nnx.Linear(K, H, rngs=rngs)

    def __call__(self, x):
      return self.lin(x)

  net = Net(nnx.Rngs(0))
  c = jaxgreen.count(lambda m, x: m(x))(net, jnp.ones((B, K)))
  check_sums(c)
  assert c.by_source[line_of(Net.__call__, "self.lin(x)")].fpo == 2 * B * K * H  # dot+bias


def test_json_round_trip_and_old_json():
  c = jaxgreen.count(mlp)(*_mlp_args())
  back = Cost.from_json(c.to_json())
  assert back.by_stack == c.by_stack and back == c
  assert back.by_site == c.by_site
  old = c.to_dict()
  del old["by_site"]  # JSON written before sites were recorded still loads
  legacy = Cost.from_dict(old)
  assert legacy.by_stack == {} and legacy.by_source == {} and legacy == c
  scaled = c * 3 + c
  assert scaled.by_stack == {k: v * 4 for k, v in c.by_stack.items()}
  assert (scaled / 4).by_site == c.by_site


def test_sites_name_scope_and_primitive():
  def f(w1, w2, x):
    with jax.named_scope("layer"):
      return mlp(w1, w2, x)

  c = jaxgreen.count(jax.jit(f))(*_mlp_args())
  rows = {(_source.innermost(stack), scope, prim): n for stack, scope, prim, n in c.sites()}
  dot = rows[(line_of(mlp, "x @ w1"), "layer", "dot_general")]
  assert dot.fpo == B * H * (2 * K - 1)  # B·H·(K MUL + K-1 ADD)
  assert rows[(line_of(mlp, "x @ w1"), "layer", "tanh")].transcendentals == B * H
  assert sum(n.fpo for n in rows.values()) == c.fpo


def test_source_table_lists_lines():
  c = jaxgreen.count(mlp)(*_mlp_args())
  text = c.source_table(top=1)
  assert "source line" in text and "... and 1 more" in text
  assert f"{os.path.basename(HERE)}:" in text or "test_source.py" in text
  assert "no source lines" in Cost(adds=1).source_table()


def test_user_file_rules():
  assert _source.is_user_file("<stdin>") and not _source.is_user_file("<frozen runpy>")
  assert not _source.is_user_file(jax.__file__)
  assert not _source.is_user_file(jaxgreen.__file__)
  assert _source.is_user_file(os.path.join(os.path.dirname(jaxgreen.__file__), "_src", "examples",
                                           "mnist.py"))
  assert not _source.is_user_file(os.path.join(sys.prefix, "lib", "site-packages", "x.py"))
  assert _source.short("") == _source.UNATTRIBUTED
  assert _source.short(f"{os.getcwd()}/a/b.py:3:f") == "a/b.py:3:f"


def test_gpt2_train_step_tops_with_its_logits_matmul():
  """A Flax GPT-2 with optax AdamW (the benchmarks' model, small): the tied LM head's
  matmul is the costliest line, with the exact FPO of its three matmuls."""
  from benchmarks.zoo import gpt2

  cfg = gpt2.GPT2Config(n_layer=2, d_model=64, n_head=4, vocab=1000, seq_len=32)
  step, example = gpt2.make_train_step(cfg, 2)
  c = jaxgreen.count(step)(*example)
  check_sums(c)
  top, counts = next(iter(c.by_source.items()))
  file, line, fn = _source.split_frame(top)
  assert file == os.path.abspath(gpt2.__file__) and fn == "GPT2.__call__"
  with open(file) as f:
    assert "wte.attend(x)" in f.read().splitlines()[line - 1]
  m, d, v = 2 * 32, 64, 1000  # M = B·T tokens, width, vocabulary
  # logits x·Eᵀ: M·V·(2d-1); its backward dx = g·E: M·d·(2V-1) and dE = gᵀ·x: V·d·(2M-1)
  assert counts.fpo == m * v * (2 * d - 1) + m * d * (2 * v - 1) + d * v * (2 * m - 1)


def test_equinox_module_line():
  eqx = pytest.importorskip("equinox", reason="Equinox is optional (not a dependency)")

  class Net(eqx.Module):
    lin: eqx.nn.Linear

    def __call__(self, x):
      return self.lin(x)

  net = Net(eqx.nn.Linear(K, H, key=jax.random.key(0)))
  c = jaxgreen.count(jax.vmap(net))(jnp.ones((B, K)))
  check_sums(c)
  # vmapped over B rows: a matvec H·(K MUL + K-1 ADD) and the bias H ADD per row
  assert c.by_source[line_of(Net.__call__, "self.lin(x)")].fpo == B * 2 * K * H
