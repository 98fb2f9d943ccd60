"""BERT-base encoder (Devlin et al., 2019) in Flax linen, with a masked-LM train step.

Word, position (512) and token-type (2) embeddings summed and LayerNorm-ed, 12
post-LayerNorm encoder blocks (12-head attention with separate Q/K/V projections,
3072-wide GELU feed-forward), and the tanh pooler on the first token. Parameter count
of the encoder with pooler: 109,482,240, the figure of Hugging Face's bert-base-uncased.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

PUBLISHED = {"bert_base": {"params_pub": 109_482_240}}


@dataclasses.dataclass(frozen=True)
class BertConfig:
  n_layer: int = 12
  d_model: int = 768
  n_head: int = 12
  ffn_dim: int = 3072
  vocab: int = 30522
  max_len: int = 512
  type_vocab: int = 2
  seq_len: int = 128


def base(**kw) -> BertConfig:
  return BertConfig(**kw)


def tiny(**kw) -> BertConfig:
  return BertConfig(**{"n_layer": 2, "d_model": 64, "n_head": 4, "ffn_dim": 128,
                       "vocab": 128, "max_len": 64, "seq_len": 16} | kw)


class Attention(nn.Module):
  n_head: int

  @nn.compact
  def __call__(self, x, mask):
    b, t, d = x.shape
    hd = d // self.n_head
    q, k, v = (nn.Dense(d, name=n)(x).reshape(b, t, self.n_head, hd)
               for n in ("query", "key", "value"))
    scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / jnp.sqrt(hd).astype(x.dtype)
    scores = jnp.where(mask[:, None, None, :], scores, jnp.finfo(x.dtype).min)
    y = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(scores, axis=-1), v)
    return nn.Dense(d, name="output")(y.reshape(b, t, d))


class Layer(nn.Module):
  """Post-LayerNorm block: ln(x + attn(x)), then ln(x + ffn(x))."""

  config: BertConfig

  @nn.compact
  def __call__(self, x, mask):
    cfg = self.config
    x = nn.LayerNorm(1e-12, name="attention_ln")(x + Attention(cfg.n_head, name="attention")(
        x, mask))
    y = nn.Dense(cfg.d_model, name="output")(
        nn.gelu(nn.Dense(cfg.ffn_dim, name="intermediate")(x), approximate=False))
    return nn.LayerNorm(1e-12, name="output_ln")(x + y)


class Bert(nn.Module):
  """``__call__(tokens int[B, T], mask bool[B, T]) -> (hidden [B, T, d], pooled [B, d])``."""

  config: BertConfig

  @nn.compact
  def __call__(self, tokens, mask):
    cfg = self.config
    t = tokens.shape[1]
    word = nn.Embed(cfg.vocab, cfg.d_model, name="word_embeddings")
    x = word(tokens)
    x = x + nn.Embed(cfg.max_len, cfg.d_model, name="position_embeddings")(jnp.arange(t))[None]
    x = x + nn.Embed(cfg.type_vocab, cfg.d_model, name="token_type_embeddings")(
        jnp.zeros_like(tokens))
    x = nn.LayerNorm(1e-12, name="embeddings_ln")(x)
    for i in range(cfg.n_layer):
      x = Layer(cfg, name=f"layer_{i}")(x, mask)
    pooled = jnp.tanh(nn.Dense(cfg.d_model, name="pooler")(x[:, 0]))
    return x, pooled


def model_and_input(config: BertConfig, batch_size: int = 1):
  tokens = jax.ShapeDtypeStruct((batch_size, config.seq_len), jnp.int32)
  mask = jax.ShapeDtypeStruct((batch_size, config.seq_len), jnp.bool_)
  return Bert(config), (tokens, mask)


def make_train_step(config: BertConfig, batch_size: int, *, learning_rate: float = 1e-4):
  """Masked-LM step: logits from the word embedding (tied), loss on every position.

  ``train_step(params, opt_state, tokens, mask, labels) -> (params, opt_state, loss)``;
  returns ``(train_step, (params, opt_state, tokens, mask, labels))``, all abstract.
  """
  model, (tokens, mask) = model_and_input(config, batch_size)
  tx = optax.adamw(learning_rate, weight_decay=0.01)
  params = jax.eval_shape(model.init, jax.random.key(0), tokens, mask)["params"]
  opt_state = jax.eval_shape(tx.init, params)
  labels = tokens

  def loss_fn(params, tokens, mask, labels):
    hidden, _ = model.apply({"params": params}, tokens, mask)
    logits = hidden @ params["word_embeddings"]["embedding"].T
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

  def train_step(params, opt_state, tokens, mask, labels) -> tuple[Any, Any, jax.Array]:
    loss, grads = jax.value_and_grad(loss_fn)(params, tokens, mask, labels)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  return train_step, (params, opt_state, tokens, mask, labels)
