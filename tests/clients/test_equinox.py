"""Equinox models counted as Equinox users write them: modules with non-array leaves
(activation functions, dropout flags), ``eqx.filter_jit`` steps, no partitioning by hand.

Closed forms use jaxgreen's conventions (README): a dot of M×K by K×N is M·N·K MULs and
M·N·(K-1) ADDs, a bias is one ADD per output, relu (``max(x, 0)``) one ADD per element,
a VALID convolution Cout·Ho·Wo·Cin·k² MULs and Cout·Ho·Wo·(Cin·k² - 1) ADDs.
"""

import jax
import jax.numpy as jnp
import optax
import pytest

import jaxgreen

eqx = pytest.importorskip("equinox", reason="the Equinox tests need the equinox extra")

KEY = jax.random.PRNGKey(0)
B, D_IN, W, D_OUT = 8, 5, 16, 3  # batch, in, hidden width, out


def _mlp():
  return eqx.nn.MLP(D_IN, D_OUT, W, depth=2, key=KEY)  # D_IN -> W -> W -> D_OUT, relu between


def _batched(model, x):
  return jax.vmap(model)(x)


MLP_DOT_MULS = B * (W * D_IN + W * W + D_OUT * W)  # 8·384 = 3072
MLP_DOT_ADDS = B * (W * (D_IN - 1) + W * (W - 1) + D_OUT * (W - 1))  # 8·349 = 2792
MLP_BIAS_ADDS = B * (W + W + D_OUT)  # 280
MLP_RELU_ADDS = B * 2 * W  # 256: two hidden layers


def test_mlp_forward_closed_form():
  # eqx.nn.MLP holds jax.nn.relu (a custom_jvp) as a leaf: arrays traced, it fixed.
  c = jaxgreen.count(_batched)(_mlp(), jnp.ones((B, D_IN)))
  assert c.exact and not c.uncounted
  assert c.by_primitive["dot_general"].muls == MLP_DOT_MULS
  assert c.by_primitive["dot_general"].adds == MLP_DOT_ADDS
  assert c.muls == MLP_DOT_MULS
  assert c.adds == MLP_DOT_ADDS + MLP_BIAS_ADDS + MLP_RELU_ADDS


def test_filter_jit_function_and_shape_dtype_structs():
  # An eqx.filter_jit function, its model given as ShapeDtypeStructs (nothing allocated).
  f = eqx.filter_jit(_batched)
  model = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype) if eqx.is_array(a)
                       else a, _mlp())
  c = jaxgreen.count(f)(model, jax.ShapeDtypeStruct((B, D_IN), jnp.float32))
  assert c.muls == MLP_DOT_MULS
  assert c.adds == MLP_DOT_ADDS + MLP_BIAS_ADDS + MLP_RELU_ADDS


T, D, H = 6, 8, 2  # tokens, model width, heads (head width D // H = 4)
DH = D // H
ATTN_DOT_MULS = 4 * T * D * D + 2 * H * T * T * DH  # q, k, v, o projections + scores, mix
ATTN_DOT_ADDS = (4 * T * D * (D - 1)  # projections
                 + H * T * T * (DH - 1)  # scores: q·k over the head width
                 + H * T * DH * (T - 1))  # mix: weights·v over the keys


def _softmax_fpo():
  # The softmax over the keys of each head, as jaxgreen counts jax.nn.softmax.
  return jaxgreen.count(lambda s: jax.nn.softmax(s, axis=-1))(
      jax.ShapeDtypeStruct((T, H, T), jnp.float32)).fpo


def test_multihead_attention_closed_form():
  # MultiheadAttention holds a Dropout with Python leaves (p, inference): they stay static.
  mha = eqx.nn.MultiheadAttention(H, D, key=KEY)
  x = jnp.ones((T, D))
  c = jaxgreen.count(lambda m, x: m(x, x, x))(mha, x)
  assert c.exact and not c.uncounted
  assert c.by_primitive["dot_general"].muls == ATTN_DOT_MULS  # 1536 + 576
  assert c.by_primitive["dot_general"].adds == ATTN_DOT_ADDS  # 1344 + 216 + 240
  # + the query scaled by 1/sqrt(DH) (T·D MULs) + the softmax.
  assert c.fpo == ATTN_DOT_MULS + ATTN_DOT_ADDS + T * D + _softmax_fpo()


class Block(eqx.Module):
  """A pre-norm transformer block: x + attn(ln(x)), then + mlp(ln(x))."""

  ln1: eqx.nn.LayerNorm
  attn: eqx.nn.MultiheadAttention
  ln2: eqx.nn.LayerNorm
  up: eqx.nn.Linear
  down: eqx.nn.Linear
  act: object  # a function leaf, as Equinox models hold them

  def __init__(self, key):
    k1, k2, k3 = jax.random.split(key, 3)
    self.ln1, self.ln2 = eqx.nn.LayerNorm(D), eqx.nn.LayerNorm(D)
    self.attn = eqx.nn.MultiheadAttention(H, D, key=k1)
    self.up, self.down = eqx.nn.Linear(D, 4 * D, key=k2), eqx.nn.Linear(4 * D, D, key=k3)
    self.act = jax.nn.gelu

  def __call__(self, x):
    h = jax.vmap(self.ln1)(x)
    x = x + self.attn(h, h, h)
    h = jax.vmap(self.ln2)(x)
    return x + jax.vmap(lambda v: self.down(self.act(self.up(v))))(h)


def test_transformer_block_closed_form():
  block = Block(KEY)
  x = jax.ShapeDtypeStruct((T, D), jnp.float32)
  c = jaxgreen.count(lambda m, x: m(x))(block, x)
  assert c.exact and not c.uncounted
  mlp_muls = T * (4 * D * D + D * 4 * D)  # up and down projections
  mlp_adds = T * (4 * D * (D - 1) + D * (4 * D - 1))
  assert c.by_primitive["dot_general"].muls == ATTN_DOT_MULS + mlp_muls
  assert c.by_primitive["dot_general"].adds == ATTN_DOT_ADDS + mlp_adds
  # The whole block is its parts, each counted on its own, plus two residual ADDs per
  # element: nothing is lost or counted twice by the partition.
  fpo = lambda f, *a: jaxgreen.count(f)(*a).fpo
  rows = jax.ShapeDtypeStruct((T, D), jnp.float32)
  wide = jax.ShapeDtypeStruct((T, 4 * D), jnp.float32)
  parts = (2 * fpo(lambda m, v: jax.vmap(m)(v), block.ln1, rows)
           + fpo(lambda m, v: m(v, v, v), block.attn, rows)
           + fpo(lambda m, v: jax.vmap(m)(v), block.up, rows)
           + fpo(jax.nn.gelu, wide)
           + fpo(lambda m, v: jax.vmap(m)(v), block.down, wide))
  assert c.fpo == parts + 2 * T * D


def test_conv_net_closed_form():
  k1, k2 = jax.random.split(KEY)
  net = eqx.nn.Sequential([eqx.nn.Conv2d(3, 4, 3, key=k1), eqx.nn.Lambda(jax.nn.relu),
                           eqx.nn.Conv2d(4, 8, 3, key=k2)])
  n, hw = 2, 8  # batch, map side: 8 -> 6 -> 4 (VALID 3×3)
  c = jaxgreen.count(_batched)(net, jax.ShapeDtypeStruct((n, 3, hw, hw), jnp.float32))
  assert c.exact and not c.uncounted
  conv1, conv2 = n * 4 * 6 * 6, n * 8 * 4 * 4  # outputs of each conv
  assert c.by_primitive["conv_general_dilated"].muls == conv1 * 3 * 9 + conv2 * 4 * 9
  assert c.by_primitive["conv_general_dilated"].adds == conv1 * (3 * 9 - 1) + conv2 * (4 * 9 - 1)
  assert c.adds == (conv1 * (3 * 9 - 1) + conv2 * (4 * 9 - 1)
                    + conv1 + conv2  # biases
                    + conv1)  # relu


def _train_step():
  optim = optax.sgd(0.1)

  @eqx.filter_jit
  def step(model, opt_state, x, y):
    def loss(m):
      return jnp.mean((jax.vmap(m)(x) - y) ** 2)

    value, grads = eqx.filter_value_and_grad(loss)(model)
    updates, opt_state = optim.update(grads, opt_state, eqx.filter(model, eqx.is_array))
    return eqx.apply_updates(model, updates), opt_state, value

  model = _mlp()
  return step, model, optim.init(eqx.filter(model, eqx.is_array))


def test_train_step_counts_the_backward_pass():
  step, model, opt_state = _train_step()
  x, y = jnp.ones((B, D_IN)), jnp.ones((B, D_OUT))
  c = jaxgreen.count(step)(model, opt_state, x, y)
  assert c.exact and not c.uncounted
  # Forward dots, and two per layer backward (dW and dx) except the first layer's dx:
  # the input is not differentiated.
  assert c.by_primitive["dot_general"].muls == 3 * MLP_DOT_MULS - B * W * D_IN
  params = sum(a.size for a in jax.tree.leaves(eqx.filter(model, eqx.is_array)))
  # optax.sgd scales every gradient by -lr, eqx.apply_updates adds it to its parameter.
  assert c.by_primitive["add"].adds == MLP_BIAS_ADDS + params  # forward biases + update
  assert c.by_primitive["mul"].muls == params + 2 * B * D_OUT  # -lr·g; the loss's 2·r and 1/n


def test_tracked_step_records_e_exactly(tmp_path):
  step, model, opt_state = _train_step()
  x, y = jnp.ones((B, D_IN)), jnp.ones((B, D_OUT))
  e = jaxgreen.count(step)(model, opt_state, x, y).fpo
  tracked = jaxgreen.track(step, examples=B)
  exp = jaxgreen.Experiment("eqx", ledger=str(tmp_path / "green.sqlite"))
  with exp.trial({"lr": 0.1}):
    for _ in range(3):
      model, opt_state, loss = tracked(model, opt_state, x, y)
  assert float(loss) >= 0
  assert tracked.tracker.totals()["fpo"] == 3 * e
  (trial,) = exp.price_tag().trials
  assert (trial.train_steps, trial.train_examples, trial.train_fpo) == (3, 3 * B, 3 * e)
  assert trial.exact
  exp.close()


def test_reconcile_and_the_fpo_guard():
  rec = jaxgreen.reconcile(_batched, targets=["cpu"])(_mlp(), jnp.ones((B, D_IN)))
  r = rec["cpu"]
  assert r.jaxpr.muls == MLP_DOT_MULS
  assert r.compiled.muls == MLP_DOT_MULS  # the same program after XLA
  from jaxgreen.testing import FpoMismatch, assert_fpo

  fpo = MLP_DOT_MULS + MLP_DOT_ADDS + MLP_BIAS_ADDS + MLP_RELU_ADDS
  assert_fpo(_batched, _mlp(), jnp.ones((B, D_IN)), expected=fpo)
  with pytest.raises(FpoMismatch):
    assert_fpo(_batched, _mlp(), jnp.ones((B, D_IN)), expected=fpo + 1)


def test_compare_on_cpu():
  cmp = jaxgreen.compare(_batched, ["cpu"], progress=False)(_mlp(), jnp.ones((B, D_IN)))
  # The compiled program's FPO: the same as the jaxpr's for this MLP (see reconcile above).
  assert cmp["cpu"].global_fpo == (MLP_DOT_MULS + MLP_DOT_ADDS + MLP_BIAS_ADDS
                                   + MLP_RELU_ADDS)
