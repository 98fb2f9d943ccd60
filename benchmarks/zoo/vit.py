"""ViT-B/16 (Dosovitskiy et al., 2021) in Flax linen, torchvision's layout.

16x16 patch embedding (a strided convolution with bias), a class token, learned
position embeddings for 197 tokens, 12 pre-LayerNorm encoder blocks (12-head attention
with a fused QKV projection, 3072-wide GELU MLP), a final LayerNorm and a 1000-way head
on the class token. Parameter count 86,567,656, as torchvision's ``vit_b_16``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ._common import classifier_train_step

# torchvision vit_b_16 metadata: 86,567,656 parameters, 17.56 "GFLOPS" (multiply-
# accumulates), https://pytorch.org/vision/stable/models/generated/torchvision.models.vit_b_16.html
PUBLISHED = {"vit_b_16": {"params_pub": 86_567_656, "gmacs": 17.56}}


@dataclasses.dataclass(frozen=True)
class ViTConfig:
  name: str = "vit_b_16"
  image_size: int = 224
  patch: int = 16
  n_layer: int = 12
  d_model: int = 768
  n_head: int = 12
  mlp_dim: int = 3072
  num_classes: int = 1000


def vit_b_16(**kw) -> ViTConfig:
  return ViTConfig(**kw)


def tiny(**kw) -> ViTConfig:
  return ViTConfig(**{"name": "vit_tiny", "image_size": 32, "patch": 8, "n_layer": 2,
                      "d_model": 64, "n_head": 4, "mlp_dim": 128, "num_classes": 10} | kw)


class SelfAttention(nn.Module):
  """softmax(QK^T / sqrt(head_dim)) V over all tokens, fused QKV projection."""

  n_head: int

  @nn.compact
  def __call__(self, x):
    b, t, d = x.shape
    hd = d // self.n_head
    qkv = nn.Dense(3 * d, name="in_proj")(x).reshape(b, t, 3, self.n_head, hd)
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / jnp.sqrt(hd).astype(x.dtype)
    y = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(scores, axis=-1), v)
    return nn.Dense(d, name="out_proj")(y.reshape(b, t, d))


class EncoderBlock(nn.Module):
  n_head: int
  mlp_dim: int

  @nn.compact
  def __call__(self, x):
    x = x + SelfAttention(self.n_head, name="attn")(nn.LayerNorm(1e-6, name="ln_1")(x))
    y = nn.LayerNorm(1e-6, name="ln_2")(x)
    y = nn.Dense(self.mlp_dim, name="mlp_0")(y)
    y = nn.Dense(x.shape[-1], name="mlp_1")(nn.gelu(y, approximate=False))
    return x + y


class ViT(nn.Module):
  """``__call__(images float[B, H, W, 3]) -> logits float[B, classes]``."""

  config: ViTConfig

  @nn.compact
  def __call__(self, x):
    cfg = self.config
    p = cfg.patch
    x = nn.Conv(cfg.d_model, (p, p), (p, p), padding="VALID", name="conv_proj")(x)
    b, h, w, d = x.shape
    x = x.reshape(b, h * w, d)
    cls = self.param("class_token", nn.initializers.zeros, (1, 1, d))
    x = jnp.concatenate([jnp.broadcast_to(cls, (b, 1, d)), x], axis=1)
    pos = self.param("pos_embedding", nn.initializers.normal(0.02), (1, h * w + 1, d))
    x = x + pos
    for i in range(cfg.n_layer):
      x = EncoderBlock(cfg.n_head, cfg.mlp_dim, name=f"encoder_layer_{i}")(x)
    x = nn.LayerNorm(1e-6, name="ln")(x)
    return nn.Dense(cfg.num_classes, name="head")(x[:, 0])


def model_and_input(config: ViTConfig, batch_size: int = 1):
  s = config.image_size
  return ViT(config), jax.ShapeDtypeStruct((batch_size, s, s, 3), jnp.float32)


def make_train_step(config: ViTConfig, batch_size: int, **kw: Any):
  """``(train_step, (variables, opt_state, images, labels))``, all abstract (AdamW)."""
  s = config.image_size
  return classifier_train_step(ViT(config), (s, s, 3), batch_size, **kw)
