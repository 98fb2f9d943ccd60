"""Counting a Llama-70B-shaped train step on a laptop: time and memory of `jaxgreen.count`.

The model is given only as `jax.ShapeDtypeStruct`s (nothing is allocated): 80 layers,
d_model 8192, grouped-query attention with 64 query and 8 key/value heads (head 128),
SwiGLU FFN 28672, vocab 128256, bf16, RMSNorm, rotary embeddings, layers under
`lax.scan` with `jax.checkpoint` (as large models are trained), optax.adamw.
Shapes from Meta's published Llama 3 70B configuration.

Targets: the jaxpr count takes < 30 s and < 4 GB RSS.

Analytic check: the forward pass's matmul MULs equal the architecture's formula exactly;
the train step is compared with the 4-pass rule of thumb (forward, remat recompute, and
a backward of twice the forward).

Run from the repository root:  python benchmarks/llama70b.py [--batch 1] [--seq 4096]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from dataclasses import dataclass

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

import jaxgreen  # noqa: E402


@dataclass(frozen=True)
class LlamaConfig:
  n_layer: int = 80
  d_model: int = 8192
  n_head: int = 64
  n_kv_head: int = 8
  d_ff: int = 28672
  vocab: int = 128256
  dtype: object = jnp.bfloat16

  @property
  def head_dim(self) -> int:
    return self.d_model // self.n_head


def param_shapes(c: LlamaConfig):
  L, d, h, kv, hd, f = c.n_layer, c.d_model, c.n_head, c.n_kv_head, c.head_dim, c.d_ff
  s = lambda *shape: jax.ShapeDtypeStruct(shape, c.dtype)  # noqa: E731
  return {
      "embed": s(c.vocab, d),
      "layers": {
          "attn_norm": s(L, d), "wq": s(L, d, h * hd), "wk": s(L, d, kv * hd),
          "wv": s(L, d, kv * hd), "wo": s(L, h * hd, d),
          "ffn_norm": s(L, d), "w_gate": s(L, d, f), "w_up": s(L, d, f), "w_down": s(L, f, d),
      },
      "final_norm": s(d),
      "lm_head": s(d, c.vocab),
  }


def n_params(c: LlamaConfig) -> int:
  return sum(x.size for x in jax.tree.leaves(param_shapes(c)))


def _rms_norm(x, w):
  x32 = x.astype(jnp.float32)
  y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + 1e-5)
  return (y * w.astype(jnp.float32)).astype(x.dtype)


def _rope(x, positions):
  hd = x.shape[-1]
  freqs = 1.0 / (500000.0 ** (jnp.arange(0, hd, 2, dtype=jnp.float32) / hd))
  angles = positions[:, None].astype(jnp.float32) * freqs[None, :]
  cos, sin = jnp.cos(angles)[None, :, None, :], jnp.sin(angles)[None, :, None, :]
  x1, x2 = jnp.split(x.astype(jnp.float32), 2, axis=-1)
  return jnp.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1).astype(x.dtype)


def forward(params, tokens, c: LlamaConfig):
  B, T = tokens.shape
  x = params["embed"][tokens]
  positions = jnp.arange(T)
  mask = jnp.tril(jnp.ones((T, T), bool))

  @jax.checkpoint
  def layer(x, p):
    h = _rms_norm(x, p["attn_norm"])
    q = (h @ p["wq"]).reshape(B, T, c.n_head, c.head_dim)
    k = (h @ p["wk"]).reshape(B, T, c.n_kv_head, c.head_dim)
    v = (h @ p["wv"]).reshape(B, T, c.n_kv_head, c.head_dim)
    q, k = _rope(q, positions), _rope(k, positions)
    g = c.n_head // c.n_kv_head
    q = q.reshape(B, T, c.n_kv_head, g, c.head_dim)
    scores = jnp.einsum("btkgh,bskh->bkgts", q, k) / jnp.sqrt(c.head_dim).astype(x.dtype)
    scores = jnp.where(mask, scores, jnp.finfo(scores.dtype).min)
    probs = jax.nn.softmax(scores.astype(jnp.float32), axis=-1).astype(x.dtype)
    attn = jnp.einsum("bkgts,bskh->btkgh", probs, v).reshape(B, T, c.d_model)
    x = x + attn @ p["wo"]
    h = _rms_norm(x, p["ffn_norm"])
    x = x + (jax.nn.silu(h @ p["w_gate"]) * (h @ p["w_up"])) @ p["w_down"]
    return x, None

  x, _ = jax.lax.scan(layer, x, params["layers"])
  x = _rms_norm(x, params["final_norm"])
  return x @ params["lm_head"]


def make_train_step(c: LlamaConfig):
  tx = optax.adamw(1e-4)

  def loss_fn(params, tokens):
    logits = forward(params, tokens[:, :-1], c)
    return optax.softmax_cross_entropy_with_integer_labels(
        logits.astype(jnp.float32), tokens[:, 1:]).mean()

  def train_step(params, opt_state, tokens):
    loss, grads = jax.value_and_grad(loss_fn)(params, tokens)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  return tx, train_step


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--batch", type=int, default=1)
  ap.add_argument("--seq", type=int, default=4096)
  args = ap.parse_args(argv)
  c = LlamaConfig()
  tx, step = make_train_step(c)
  params = param_shapes(c)
  opt_state = jax.eval_shape(tx.init, params)
  tokens = jax.ShapeDtypeStruct((args.batch, args.seq + 1), jnp.int32)

  rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
  t0 = time.perf_counter()
  cost = jaxgreen.count(step)(params, opt_state, tokens)
  dt = time.perf_counter() - t0
  rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20

  N = n_params(c)
  B, T, d, L, f, V = args.batch, args.seq, c.d_model, c.n_layer, c.d_ff, c.vocab
  kv = c.n_kv_head * c.head_dim
  # Forward matmul MACs per token, from the architecture: q, k, v, o projections,
  # the three SwiGLU matrices, QK^T and AV (each T·d per token), and the LM head.
  per_layer = d * d + 2 * d * kv + d * d + 3 * d * f + 2 * T * d
  fwd_macs = B * T * (L * per_layer + d * V)
  fwd = jaxgreen.count(lambda p, t: forward(p, t, c))(
      params, jax.ShapeDtypeStruct((B, T), jnp.int32))
  print(f"Llama-70B-shaped train step, B={B}, T={T}: {N / 1e9:.2f} B parameters")
  fwd_muls = fwd.by_primitive["dot_general"].muls
  verdict = "exact" if fwd_muls == fwd_macs else "MISMATCH"
  print(f"forward dot_general MUL {fwd_muls:,} vs architecture formula {fwd_macs:,}: {verdict}")
  print(f"train step FPO {cost.fpo:,} ({cost.fpo / 1e15:.3f} PFPO), exact={cost.exact}")
  # Rule of thumb: forward + remat forward + 2x backward = 4 forward passes of the layers,
  # 3 of the LM head. The real program does less: the remat recompute drops the products
  # its backward does not need (attn @ wo and the w_down output), as XLA would.
  estimate = 2 * B * T * (4 * L * per_layer + 3 * d * V)
  print(f"4-pass rule of thumb {estimate / 1e15:.3f} PFPO (ratio {cost.fpo / estimate:.3f})")
  print(f"count time {dt:.2f} s (target < 30 s); peak RSS {rss:.2f} GB "
        f"(before counting {rss0:.2f} GB; target < 4 GB)")


if __name__ == "__main__":
  main()
