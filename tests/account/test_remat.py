"""MFU and HFU as PaLM defines them (Chowdhery et al. 2022, appendix B): the model FPO
of a rematerialised step is the FPO of the same step without rematerialisation, so
HFU / MFU is exactly its recompute ratio."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

import jaxgreen
from jaxgreen._src.account import Experiment, Ledger, throughput, track
from jaxgreen._src.account.remat import recompute_fpo

MS = 1e-3


def _mlp(remat: bool, layers: int = 3):
  def layer(x, w):
    return jnp.tanh(x @ w)

  f = jax.checkpoint(layer) if remat else layer

  def loss(ws, x):
    for w in ws:
      x = f(x, w)
    return jnp.sum(x * x)

  return jax.value_and_grad(loss)


def _args(layers: int = 3, n: int = 16, b: int = 8):
  return [jnp.ones((n, n))] * layers, jnp.ones((b, n))


@pytest.mark.parametrize("layers", [1, 3])
def test_model_fpo_is_the_count_of_the_step_without_remat(layers):
  ws, x = _args(layers)
  hardware = jaxgreen.count(_mlp(True, layers))(ws, x).fpo
  plain = jaxgreen.count(_mlp(False, layers))(ws, x).fpo
  recompute, notes = recompute_fpo(jax.make_jaxpr(_mlp(True, layers))(ws, x))
  assert notes == ()
  # Each layer's x @ w and tanh run again in the backward: every layer's forward is
  # live (value_and_grad returns the loss), so all `layers` are recomputed.
  fwd = jaxgreen.count(lambda x, w: jnp.tanh(x @ w))(x, ws[0]).fpo
  assert recompute == layers * fwd
  assert hardware - recompute == plain  # PaLM's model FLOPs: as if nothing were remat'd


def test_no_checkpoint_nothing_recomputed_and_grad_alone_drops_the_dead_forward():
  ws, x = _args(1)
  assert recompute_fpo(jax.make_jaxpr(_mlp(False))(ws, x)) == (0, ())
  # jax.grad of a one-layer checkpoint: the forward's output is unused, so DCE drops
  # it; the backward's computation of it is the only one, hence model work.
  g = jax.grad(jax.checkpoint(lambda w, x: jnp.sum(jnp.tanh(x @ w))))
  assert recompute_fpo(jax.make_jaxpr(g)(ws[0], x))[0] == 0


def test_flax_remat_under_jit_matches_the_plain_model():
  nn = pytest.importorskip("flax.linen")

  class Block(nn.Module):
    @nn.compact
    def __call__(self, x):
      return jnp.tanh(nn.Dense(16)(x))

  class MLP(nn.Module):
    remat: bool

    @nn.compact
    def __call__(self, x):
      block = nn.remat(Block) if self.remat else Block
      for _ in range(2):  # tanh's backward needs its output: the block is recomputed
        x = block()(x)
      return x

  x = jnp.ones((4, 16))

  def step(remat):
    m = MLP(remat)
    params = m.init(jax.random.key(0), x)
    return jax.jit(jax.value_and_grad(lambda p, x: jnp.sum(m.apply(p, x) ** 2))), params

  (fn, params), (plain_fn, plain_params) = step(True), step(False)
  hardware = jaxgreen.count(fn)(params, x).fpo
  plain = jaxgreen.count(plain_fn)(plain_params, x).fpo
  recompute, _ = recompute_fpo(jax.make_jaxpr(fn)(params, x))
  assert recompute > 0 and hardware - recompute == plain


class _Clock:
  def __init__(self):
    self.t = -MS

  def __call__(self):
    self.t += MS
    return self.t


def test_a_remat_step_shows_mfu_below_hfu_by_exactly_the_recompute_ratio(tmp_path,
                                                                          monkeypatch):
  monkeypatch.setattr(throughput, "clock", _Clock())
  ws, x = _args(3)
  step = track(jax.jit(_mlp(True)), examples=8, peak=1e9)
  path = tmp_path / "r.sqlite"
  with Experiment("remat", ledger=path, measure_energy=False) as exp, exp.trial():
    for _ in range(5):
      step(ws, x)
  tp = step.tracker.throughput()
  hardware = jaxgreen.count(_mlp(True))(ws, x).fpo
  model = jaxgreen.count(_mlp(False))(ws, x).fpo
  assert (tp.fpo, tp.model_fpo) == (4 * hardware, 4 * model)  # 4 timed steps
  assert tp.hfu == pytest.approx(4 * hardware / (4 * MS) / 1e9)  # FPO/s / peak
  assert tp.mfu == pytest.approx(4 * model / (4 * MS) / 1e9)
  assert tp.mfu < tp.hfu and tp.hfu / tp.mfu == pytest.approx(hardware / model)
  with Ledger(path, readonly=True) as led:  # stored, and in the report
    (t,) = led.price_tag("remat").trials
    row = led.rows("SELECT timed_fpo, timed_model_fpo FROM trials")[0]
  assert (int(row["timed_fpo"]), int(row["timed_model_fpo"])) == (4 * hardware, 4 * model)
  assert t.hfu / t.mfu == pytest.approx(hardware / model) and t.model_fpo_known
  with Ledger(path, readonly=True) as led:
    table = led.price_tag("remat").table()
  assert "HFU" in table and "PaLM" in table
  assert "HFU" in tp.line() and "MFU" in tp.line()


def test_transformers_bert_with_gradient_checkpointing_matches_the_plain_model():
  transformers = pytest.importorskip("transformers")
  if not hasattr(transformers, "FlaxBertForMaskedLM"):
    pytest.skip("transformers without Flax models (install transformers<4.58)")
  import optax

  cfg = transformers.BertConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=4,
                                intermediate_size=128, vocab_size=128,
                                max_position_embeddings=32)

  def step(remat):
    model = transformers.FlaxBertForMaskedLM(cfg, _do_init=False)
    if remat:
      model.enable_gradient_checkpointing()  # flax remat around each layer

    def loss(p, ids):
      logits = model(ids, params=p).logits
      return optax.softmax_cross_entropy_with_integer_labels(logits, ids).mean()

    args = (model.params_shape_tree, jax.ShapeDtypeStruct((2, 16), jnp.int32))
    return jax.value_and_grad(loss), args

  (fn, args), (plain_fn, plain_args) = step(True), step(False)
  closed = jax.make_jaxpr(fn)(*args)
  hardware = jaxgreen.count_jaxpr(closed).fpo
  recompute, _ = recompute_fpo(closed)
  assert recompute > 0
  assert hardware - recompute == jaxgreen.count(plain_fn)(*plain_args).fpo  # model FLOPs
