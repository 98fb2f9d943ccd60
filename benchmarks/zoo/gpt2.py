"""GPT-2-style decoder (Radford et al., 2019) in Flax linen, with an optax AdamW step.

Architecture: learned token and position embeddings, ``n_layer`` pre-LayerNorm blocks
(causal multi-head self-attention, 4x GELU MLP), a final LayerNorm and an output
projection tied to the token embedding. Parameter count of ``small()`` is 124.44 M
(124,439,808), the figure usually quoted for GPT-2 small with tied embeddings.

``GPT2Config(scan_layers=True, remat=True)`` builds the same network as one block under
``nn.scan`` (parameters stacked on a leading layer axis) with ``nn.remat``.

Example:
  >>> step, args = make_train_step(small(), batch_size=8)
  >>> cost = jaxgreen.count(step)(*args)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax


@dataclasses.dataclass(frozen=True)
class GPT2Config:
  """Shape of a GPT-2-style decoder.

  Attributes:
    n_layer: number of transformer blocks.
    d_model: width of the residual stream.
    n_head: attention heads (``d_model`` must divide evenly).
    vocab: vocabulary size.
    seq_len: context length T (also the size of the position table).
    mlp_ratio: hidden width of the MLP as a multiple of ``d_model``.
    scan_layers: stack the blocks with ``nn.scan`` instead of a Python loop.
    remat: rematerialise each block in the backward pass (``nn.remat``).
  """

  n_layer: int = 12
  d_model: int = 768
  n_head: int = 12
  vocab: int = 50257
  seq_len: int = 1024
  mlp_ratio: int = 4
  scan_layers: bool = False
  remat: bool = False

  def __post_init__(self):
    if self.d_model % self.n_head:
      raise ValueError(f"GPT2Config(d_model={self.d_model}, n_head={self.n_head}): "
                       f"d_model must be a multiple of n_head")


def small(**kw) -> GPT2Config:
  """GPT-2 small: 12 layers, d=768, 12 heads, vocab 50257, T=1024."""
  return GPT2Config(**kw)


def medium(**kw) -> GPT2Config:
  """GPT-2 medium: 24 layers, d=1024, 16 heads."""
  return GPT2Config(**{"n_layer": 24, "d_model": 1024, "n_head": 16} | kw)


def tiny(**kw) -> GPT2Config:
  """A test-sized decoder: 2 layers, d=64, 4 heads, vocab 256, T=32."""
  return GPT2Config(**{"n_layer": 2, "d_model": 64, "n_head": 4, "vocab": 256,
                       "seq_len": 32} | kw)


class CausalSelfAttention(nn.Module):
  """Multi-head causal self-attention: fused QKV projection, softmax(QK^T/sqrt(d))V."""

  config: GPT2Config

  @nn.compact
  def __call__(self, x):
    cfg = self.config
    b, t, d = x.shape
    h, hd = cfg.n_head, d // cfg.n_head
    qkv = nn.Dense(3 * d, name="c_attn")(x)
    q, k, v = jnp.split(qkv.reshape(b, t, 3, h, hd), 3, axis=2)
    q, k, v = (a[:, :, 0] for a in (q, k, v))  # [B, T, H, hd]
    scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / jnp.sqrt(hd).astype(x.dtype)
    mask = jnp.tril(jnp.ones((t, t), dtype=bool))
    scores = jnp.where(mask, scores, jnp.finfo(x.dtype).min)
    probs = jax.nn.softmax(scores, axis=-1)
    y = jnp.einsum("bhqk,bkhd->bqhd", probs, v).reshape(b, t, d)
    return nn.Dense(d, name="c_proj")(y)


class MLP(nn.Module):
  config: GPT2Config

  @nn.compact
  def __call__(self, x):
    d = self.config.d_model
    x = nn.Dense(self.config.mlp_ratio * d, name="c_fc")(x)
    x = nn.gelu(x)
    return nn.Dense(d, name="c_proj")(x)


class Block(nn.Module):
  """Pre-LayerNorm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

  config: GPT2Config

  @nn.compact
  def __call__(self, x):
    x = x + CausalSelfAttention(self.config, name="attn")(nn.LayerNorm(name="ln_1")(x))
    x = x + MLP(self.config, name="mlp")(nn.LayerNorm(name="ln_2")(x))
    return x


class _ScanBlock(nn.Module):
  """A Block with the (carry, x) -> (carry, y) signature ``nn.scan`` expects."""

  config: GPT2Config

  @nn.compact
  def __call__(self, x, _):
    return Block(self.config, name="block")(x), None


class GPT2(nn.Module):
  """GPT-2-style decoder; ``__call__(tokens int[B, T]) -> logits float[B, T, vocab]``."""

  config: GPT2Config

  @nn.compact
  def __call__(self, tokens):
    cfg = self.config
    t = tokens.shape[1]
    wte = nn.Embed(cfg.vocab, cfg.d_model, name="wte")
    wpe = nn.Embed(cfg.seq_len, cfg.d_model, name="wpe")
    x = wte(tokens) + wpe(jnp.arange(t))[None]
    if cfg.scan_layers:
      body = nn.remat(_ScanBlock) if cfg.remat else _ScanBlock
      stack = nn.scan(body, variable_axes={"params": 0}, split_rngs={"params": True},
                      length=cfg.n_layer)
      x, _ = stack(cfg, name="h")(x, None)
    else:
      block = nn.remat(Block) if cfg.remat else Block
      for i in range(cfg.n_layer):
        x = block(cfg, name=f"h_{i}")(x)
    x = nn.LayerNorm(name="ln_f")(x)
    return wte.attend(x)  # output projection tied to the token embedding


def loss_fn(model: GPT2, params, tokens) -> jax.Array:
  """Mean next-token cross-entropy: predict tokens[:, 1:] from tokens[:, :-1]'s logits."""
  logits = model.apply({"params": params}, tokens)
  return optax.softmax_cross_entropy_with_integer_labels(logits[:, :-1], tokens[:, 1:]).mean()


def make_train_step(config: GPT2Config, batch_size: int, *, learning_rate: float = 3e-4,
                    weight_decay: float = 0.1) -> tuple[Callable, tuple[Any, ...]]:
  """An optax AdamW train step and abstract arguments to trace it with.

  Args:
    config: the model's shape.
    batch_size: sequences per step (B); each has ``config.seq_len`` tokens.
    learning_rate: AdamW learning rate.
    weight_decay: AdamW decoupled weight decay.

  Returns:
    ``(train_step, (params, opt_state, tokens))`` where
    ``train_step(params, opt_state, tokens) -> (params, opt_state, loss)`` and the
    arguments are ``jax.ShapeDtypeStruct`` pytrees (tokens int32[B, T]).

  Example:
    >>> step, args = make_train_step(tiny(), batch_size=2)
    >>> jax.eval_shape(step, *args)[2].shape
    ()
  """
  if batch_size < 1:
    raise ValueError(f"make_train_step(batch_size={batch_size}) must be >= 1")
  model = GPT2(config)
  tx = optax.adamw(learning_rate, weight_decay=weight_decay)
  tokens = jax.ShapeDtypeStruct((batch_size, config.seq_len), jnp.int32)
  params = jax.eval_shape(model.init, jax.random.key(0), tokens)["params"]
  opt_state = jax.eval_shape(tx.init, params)

  def train_step(params, opt_state, tokens):
    loss, grads = jax.value_and_grad(lambda p: loss_fn(model, p, tokens))(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  return train_step, (params, opt_state, tokens)


def model_and_input(config: GPT2Config, batch_size: int = 1):
  """``(model, tokens)`` for forward-pass profiling; tokens is a ShapeDtypeStruct."""
  return GPT2(config), jax.ShapeDtypeStruct((batch_size, config.seq_len), jnp.int32)
