"""Hugging Face transformers' Flax models, counted at every stage.

The programs are transformers' own code (BERT, GPT-2, T5, ViT built from small configs with
random init, nothing downloaded). For each, the forward pass and one AdamW train step
(loss, `jax.grad`, `optax.adamw`) must count exact, with nothing uncounted, and their
matmul work must equal a closed form written here from the architecture:

* one matmul with `out` outputs of K products is MUL = out·K, ADD = out·(K−1);
* a dense layer x[T, i] @ W[i, o] in the backward pass is two matmuls: the weight gradient
  xᵀ·g (i·o outputs, K = T tokens) and the input gradient g·Wᵀ (T·i outputs, K = o), the
  latter only where something upstream needs a gradient;
* attention softmax(Q·Kᵀ)·V over q queries, k keys and head size e is two matmuls forward
  (scores: q·k outputs, K = e; context: q·e outputs, K = k) and four backward (∂P, ∂V, ∂Q,
  ∂K), every operand being an activation that needs its gradient.

So a train step's matmul MULs are 3x the forward's, less the input gradients nobody
needs. At the jaxpr and lowered stages the dot_general counts must equal the closed form;
the compiled program (XLA's optimized HLO for the CPU) must stay within 2 % of it (XLA may
rewrite a matmul, e.g. one with K = 1 into a multiply).
"""

from __future__ import annotations

import dataclasses
import functools
import types

import jax
import jax.numpy as jnp
import optax
import pytest

import jaxgreen

transformers = pytest.importorskip("transformers")
if not hasattr(transformers, "FlaxBertForMaskedLM"):
  pytest.skip(f"transformers {transformers.__version__} has no Flax models (the last release "
              "with them is 4.57): install transformers<4.58", allow_module_level=True)

S = jax.ShapeDtypeStruct
I32, F32 = jnp.int32, jnp.float32
STAGES = ("jaxpr", "lowered", "compiled")


# -- closed forms -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MM:
  """MUL and ADD of matmuls."""

  muls: int = 0
  adds: int = 0

  def __add__(self, other: MM) -> MM:
    return MM(self.muls + other.muls, self.adds + other.adds)

  def __mul__(self, n: int) -> MM:
    return MM(self.muls * n, self.adds * n)

  __rmul__ = __mul__


def dot(out: int, k: int) -> MM:
  """One matmul: `out` outputs of K products each."""
  return MM(out * k, out * (k - 1))


def dense(t: int, i: int, o: int, *, train: bool, input_grad: bool = True) -> MM:
  """x[t, i] @ W[i, o]; with `train`, also ∂W = xᵀ·g and (if needed) ∂x = g·Wᵀ."""
  fwd = dot(t * o, i)
  if not train:
    return fwd
  return fwd + dot(i * o, t) + (dot(t * i, o) if input_grad else MM())


def attention(bh: int, q: int, k: int, e: int, *, train: bool) -> MM:
  """softmax(Q·Kᵀ)·V for bh (batch, head) pairs; with `train`, its four gradients."""
  fwd = dot(bh * q * k, e) + dot(bh * q * e, k)  # scores, context
  if not train:
    return fwd
  # ∂P = ∂C·Vᵀ, ∂V = Pᵀ·∂C, ∂Q = ∂S·K, ∂K = ∂Sᵀ·Q
  return fwd + dot(bh * q * k, e) + dot(bh * k * e, q) + dot(bh * q * e, k) + dot(bh * k * e, q)


def encoder_layer(b: int, s: int, d: int, h: int, ff: int, *, train: bool,
                  fused_qkv: bool = False) -> MM:
  """A post- or pre-LN transformer layer (BERT, GPT-2, ViT): Q, K, V, attention, output
  projection, two-layer MLP. With `fused_qkv`, Q, K and V are one d x 3d matmul, whose input
  gradient is one matmul of K = 3d (separate ones are three of K = d, summed)."""
  t = b * s
  qkv = dense(t, d, 3 * d, train=train) if fused_qkv else 3 * dense(t, d, d, train=train)
  return (qkv + attention(b * h, s, s, d // h, train=train)
          + dense(t, d, d, train=train) + dense(t, d, ff, train=train)
          + dense(t, ff, d, train=train))


# -- the models ---------------------------------------------------------------------


B = 2  # batch


@dataclasses.dataclass(frozen=True)
class Client:
  model: object
  inputs: dict  # keyword arguments of the model's __call__, as ShapeDtypeStructs
  labels: S
  forward: MM  # closed-form matmul work of the forward pass
  train: MM  # ... and of the train step
  compiled_rewrites: MM = MM()  # matmuls XLA's CPU compiler rewrites into other ops


def _bert() -> Client:
  # FlaxBertForMaskedLM: embeddings, 2 post-LN layers, MLM head tied to the embeddings.
  v, s, d, h, ff, n = 128, 16, 64, 4, 128, 2
  cfg = transformers.BertConfig(vocab_size=v, hidden_size=d, num_hidden_layers=n,
                                num_attention_heads=h, intermediate_size=ff,
                                max_position_embeddings=32)
  model = transformers.FlaxBertForMaskedLM(cfg, _do_init=False)
  t = B * s

  def total(train: bool) -> MM:
    # transformers multiplies the attention probabilities by the head mask with
    # einsum("...hqk,h->...hqk"): a matmul with K = 1 (MUL only), whose gradient is one
    # more (the mask is a constant, it gets none).
    head_mask = dot(B * h * s * s, 1) * (2 if train else 1)
    mlm = dense(t, d, d, train=train) + dense(t, d, v, train=train)  # transform, tied decoder
    return n * (encoder_layer(B, s, d, h, ff, train=train) + head_mask) + mlm

  return Client(model, {"input_ids": S((B, s), I32)}, S((B, s), I32), total(False),
                total(True), compiled_rewrites=n * dot(B * h * s * s, 1))


def _gpt2() -> Client:
  # FlaxGPT2LMHeadModel: 2 pre-LN layers (c_attn: Q, K, V in one matmul), MLP 4d, LM head
  # tied to wte.
  v, s, d, h, n = 128, 16, 64, 4, 2
  cfg = transformers.GPT2Config(vocab_size=v, n_embd=d, n_layer=n, n_head=h, n_positions=32)
  model = transformers.FlaxGPT2LMHeadModel(cfg, _do_init=False)

  def total(train: bool) -> MM:
    # the causal mask is applied to the full s x s scores: no matmul is skipped
    return (n * encoder_layer(B, s, d, h, 4 * d, train=train, fused_qkv=True)
            + dense(B * s, d, v, train=train))

  return Client(model, {"input_ids": S((B, s), I32)}, S((B, s), I32), total(False),
                total(True))


def _t5() -> Client:
  # FlaxT5ForConditionalGeneration: 2 encoder + 2 decoder layers, heads of d_kv = 8 (so the
  # attention width h·d_kv = 32 differs from d = 64), ReLU MLP, LM head tied to the shared
  # embedding. Relative position biases are gathers and adds, no matmul.
  v, se, sd, d, h, dkv, ff, n = 128, 16, 8, 64, 4, 8, 128, 2
  cfg = transformers.T5Config(vocab_size=v, d_model=d, d_kv=dkv, d_ff=ff, num_layers=n,
                              num_heads=h, relative_attention_num_buckets=8,
                              decoder_start_token_id=0)
  model = transformers.FlaxT5ForConditionalGeneration(cfg, _do_init=False)
  te, td, inner = B * se, B * sd, h * dkv

  def total(train: bool) -> MM:
    def mlp(t):
      return dense(t, d, ff, train=train) + dense(t, ff, d, train=train)

    enc = (3 * dense(te, d, inner, train=train) + attention(B * h, se, se, dkv, train=train)
           + dense(te, inner, d, train=train) + mlp(te))
    dec = (3 * dense(td, d, inner, train=train) + attention(B * h, sd, sd, dkv, train=train)
           + dense(td, inner, d, train=train)  # causal self-attention
           + dense(td, d, inner, train=train) + 2 * dense(te, d, inner, train=train)
           + attention(B * h, sd, se, dkv, train=train)  # cross-attention: K, V of the encoder
           + dense(td, inner, d, train=train) + mlp(td))
    return n * enc + n * dec + dense(td, d, v, train=train)

  inputs = {"input_ids": S((B, se), I32), "decoder_input_ids": S((B, sd), I32)}
  return Client(model, inputs, S((B, sd), I32), total(False), total(True))


def _vit() -> Client:
  # FlaxViTForImageClassification: 8x8 patches of a 32x32 RGB image (16 patches + [CLS]),
  # 2 pre-LN layers, classifier on [CLS]. The patch embedding is a stride-8 convolution:
  # a matmul of K = 3·8·8 per patch and feature; the image needs no gradient, so the train
  # step has the convolution's weight gradient only.
  img, p, c, d, h, ff, n, labels = 32, 8, 3, 64, 4, 128, 2, 10
  cfg = transformers.ViTConfig(image_size=img, patch_size=p, num_channels=c, hidden_size=d,
                               num_hidden_layers=n, num_attention_heads=h,
                               intermediate_size=ff, num_labels=labels)
  model = transformers.FlaxViTForImageClassification(cfg, _do_init=False)
  patches = (img // p) ** 2
  s = patches + 1

  def total(train: bool) -> MM:
    patch_embed = dense(B * patches, c * p * p, d, train=train, input_grad=False)
    return (patch_embed + n * encoder_layer(B, s, d, h, ff, train=train)
            + dense(B, d, labels, train=train))

  return Client(model, {"pixel_values": S((B, c, img, img), F32)}, S((B,), I32), total(False),
                total(True))


BUILDERS = {"bert": _bert, "gpt2": _gpt2, "t5": _t5, "vit": _vit}


class _JnpClipKeywords(types.ModuleType):
  """jax.numpy with `clip(a_min=, a_max=)`: jax removed those keywords (use min=/max=), and
  transformers' Flax T5 still passes them when it buckets relative positions."""

  def __getattr__(self, name):
    return getattr(jnp, name)

  @staticmethod
  def clip(x, a_min=None, a_max=None, **kwargs):
    return jnp.clip(x, a_min, a_max, **kwargs)


def _clip_takes_a_max() -> bool:
  try:
    jnp.clip(0.0, a_max=1.0)
  except TypeError:
    return False
  return True


@pytest.fixture(scope="module")
def t5_clip_keywords():
  """Gives transformers' Flax T5 the clip keywords it uses, where this jax lacks them."""
  from transformers.models.t5 import modeling_flax_t5

  with pytest.MonkeyPatch.context() as mp:
    if not _clip_takes_a_max():
      mp.setattr(modeling_flax_t5, "jnp", _JnpClipKeywords("jax.numpy"))
    yield


@functools.cache
def _client(name: str) -> Client:
  return BUILDERS[name]()


def _programs(client: Client):
  model = client.model
  params = model.params_shape_tree  # shapes only: nothing is initialised or run
  tx = optax.adamw(1e-3)
  opt_state = jax.eval_shape(tx.init, params)
  key = S((2,), jnp.uint32)  # a raw PRNG key for dropout

  def forward(params, inputs):
    return model(**inputs, params=params).logits

  def loss(params, inputs, labels, key):
    logits = model(**inputs, params=params, dropout_rng=key, train=True).logits
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

  def train_step(params, opt_state, inputs, labels, key):
    value, grads = jax.value_and_grad(loss)(params, inputs, labels, key)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, value

  return {"forward": (forward, (params, client.inputs), client.forward),
          "train": (train_step, (params, opt_state, client.inputs, client.labels, key),
                    client.train)}


@functools.cache
def _count(name: str, program: str, stage: str) -> jaxgreen.Cost:
  fn, args, _ = _programs(_client(name))[program]
  return jaxgreen.count(fn, stage=stage)(*args)


def _matmuls(cost: jaxgreen.Cost) -> MM:
  """dot_general + conv_general_dilated work of a count."""
  rows = [cost.by_primitive[p] for p in ("dot_general", "conv_general_dilated")
          if p in cost.by_primitive]
  return MM(sum(r.muls for r in rows), sum(r.adds for r in rows))


# ids such as bert-train-lowered; compiling for the CPU takes seconds per train step
CASES = [pytest.param(n, p, s, id=f"{n}-{p}-{s}",
                      marks=[pytest.mark.slow] if s == "compiled" else [])
         for n in BUILDERS for p in ("forward", "train") for s in STAGES]


@pytest.mark.parametrize("name, program, stage", CASES)
def test_matmuls_match_the_closed_form(name, program, stage, t5_clip_keywords):
  expected = _programs(_client(name))[program][2]
  cost = _count(name, program, stage)
  assert cost.exact and not cost.uncounted and not cost.inexact
  got = _matmuls(cost)
  if stage == "compiled":
    assert got.muls == pytest.approx(expected.muls, rel=0.02)
    assert got.adds == pytest.approx(expected.adds, rel=0.02)
    # XLA may turn the matmuls listed as rewrites into other operations, no others
    rewrites = _client(name).compiled_rewrites * (2 if program == "train" else 1)
    assert got.muls >= expected.muls - rewrites.muls
  else:
    assert got == expected


@pytest.mark.parametrize("name", list(BUILDERS))
def test_train_step_matmuls_are_three_forwards(name, t5_clip_keywords):
  """The backward pass doubles every matmul that feeds a gradient: a train step's matmul
  MULs are 3x the forward's, less the input gradients nobody needs (ViT's image) and less
  the head-mask matmul's second gradient (BERT's mask is a constant)."""
  client = _client(name)
  fwd, train = _count(name, "forward", "jaxpr"), _count(name, "train", "jaxpr")
  ratio = _matmuls(train).muls / _matmuls(fwd).muls
  expected = {"bert": 3 - 2 * (2 * 4 * 16 * 16) / client.forward.muls,  # layers·(B·h·s·s)
              "gpt2": 3, "t5": 3,
              "vit": 3 - (2 * 16 * 64 * 192) / client.forward.muls}[name]  # B·patches·d·(3·8·8)
  assert ratio == pytest.approx(expected, rel=1e-12)
  assert ratio <= 3


@pytest.mark.parametrize("program", ["forward", "train"])
@pytest.mark.parametrize("name", list(BUILDERS))
def test_lowered_program_counts_like_its_jaxpr(name, program, t5_clip_keywords):
  # The whole program, not only its matmuls: the StableHLO jax hands to XLA is the
  # jaxpr, operation for operation (less the dead code jax may leave in it).
  jaxpr, lowered = _count(name, program, "jaxpr"), _count(name, program, "lowered")
  # Where jax itself lowers erfc (exact GELU: BERT, ViT) to its own polynomial (jax
  # 0.12.1), the lowered stage counts that polynomial: each evaluation differs from the
  # jaxpr's price by what one erfc differs, and by nothing else.
  evals = jaxpr.by_primitive["erfc"].transcendentals if "erfc" in jaxpr.by_primitive else 0
  one = [jaxgreen.count(jax.lax.erfc, stage=stage)(S((1,), jnp.float32))
         for stage in ("jaxpr", "lowered")]
  d_adds, d_muls = one[1].adds - one[0].adds, one[1].muls - one[0].muls
  assert (lowered.adds, lowered.muls) == (jaxpr.adds + evals * d_adds,
                                          jaxpr.muls + evals * d_muls)
