"""A small Flax transformer train step, sharded data x tensor parallel, for pod reports.

Attention and MLP weights are split Megatron-style over the ``model`` mesh axis (the
first matrix of each block by columns, the second by rows), the batch over ``data``.
Nothing is allocated: parameters are ``jax.eval_shape`` structs.

Python:
  >>> from examples.sharded_transformer import setup
  >>> s = setup()
  >>> cmp = jaxgreen.compare(s.fn, ["tpu:v5e:4x4", "gpu:h100x8"], mesh_axes=s.mesh_axes,
  ...                        in_specs=s.in_specs)(*s.args)

Module by module (redundancy, collectives, HBM bytes and step-time share per module):
  >>> cmp = jaxgreen.compare(s.fn, ["tpu:v5e:4x4", "gpu:h100x8"], mesh_axes=s.mesh_axes,
  ...                        in_specs=s.in_specs, by_module=True)(*s.args)
  >>> print(cmp.modules(max_depth=3).table())

Command line:
  jaxgreen compare examples/sharded_transformer.py:setup --setup --target tpu:v5e:4x4 \
      --target gpu:h100x8 [--by-module [--max-depth 3]]
  python examples/sharded_transformer.py --target tpu:v5e:4x4 --target gpu:h100x8 \
      [--by-module [--max-depth 3]]
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# jaxgreen first: it imports jax with the CUDA plugin's start-up messages kept quiet.
import jaxgreen  # noqa: E402, F401, I001
import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402


@dataclass(frozen=True)
class Config:
  vocab: int = 512
  d_model: int = 128
  n_head: int = 4
  d_ff: int = 512
  n_layer: int = 2
  seq: int = 64
  batch: int = 16
  dtype: object = jnp.bfloat16


class Block(nn.Module):
  c: Config

  @nn.compact
  def __call__(self, x):
    c = self.c
    hd = c.d_model // c.n_head
    h = nn.RMSNorm(dtype=c.dtype, name="attn_norm")(x)
    qkv = nn.Dense(3 * c.d_model, use_bias=False, dtype=c.dtype, name="qkv")(h)
    q, k, v = jnp.split(qkv.reshape(*x.shape[:2], 3 * c.n_head, hd), 3, axis=2)
    scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / jnp.sqrt(hd).astype(c.dtype)
    mask = jnp.tril(jnp.ones((x.shape[1], x.shape[1]), bool))
    probs = jax.nn.softmax(jnp.where(mask, scores, -1e9).astype(jnp.float32), -1)
    attn = jnp.einsum("bhqk,bkhd->bqhd", probs.astype(c.dtype), v).reshape(x.shape)
    x = x + nn.Dense(c.d_model, use_bias=False, dtype=c.dtype, name="out")(attn)
    h = nn.RMSNorm(dtype=c.dtype, name="mlp_norm")(x)
    h = jax.nn.gelu(nn.Dense(c.d_ff, use_bias=False, dtype=c.dtype, name="up")(h))
    return x + nn.Dense(c.d_model, use_bias=False, dtype=c.dtype, name="down")(h)


class Transformer(nn.Module):
  c: Config

  @nn.compact
  def __call__(self, tokens):
    c = self.c
    x = nn.Embed(c.vocab, c.d_model, dtype=c.dtype, name="embed")(tokens)
    for i in range(c.n_layer):
      x = Block(c, name=f"block_{i}")(x)
    x = nn.RMSNorm(dtype=c.dtype, name="final_norm")(x)
    return nn.Dense(c.vocab, use_bias=False, dtype=c.dtype, name="lm_head")(x)


def _spec(path: tuple[str, ...]) -> P:
  """Megatron tensor parallelism over "model": column-split in, row-split out."""
  if path[-1] == "embedding":
    return P(None, "model")
  if path[-1] != "kernel":
    return P()
  if path[-2] in ("qkv", "up", "lm_head"):
    return P(None, "model")
  if path[-2] in ("out", "down"):
    return P("model", None)
  return P()


def param_specs(params) -> object:
  """A PartitionSpec per parameter (a pytree like ``params``)."""
  return jax.tree_util.tree_map_with_path(
      lambda kp, _: _spec(tuple(getattr(k, "key", str(k)) for k in kp)), params)


def make_train_step(c: Config):
  model = Transformer(c)
  tx = optax.adam(1e-3)

  def loss_fn(params, tokens):
    logits = model.apply({"params": params}, tokens[:, :-1])
    return optax.softmax_cross_entropy_with_integer_labels(
        logits.astype(jnp.float32), tokens[:, 1:]).mean()

  def train_step(params, opt_state, tokens):
    loss, grads = jax.value_and_grad(loss_fn)(params, tokens)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  return model, tx, train_step


def setup(c: Config | None = None):
  """A ``jaxgreen.Setup``: train step, abstract arguments, shardings."""
  from jaxgreen._src.comparison import Setup

  c = c or Config()
  model, tx, step = make_train_step(c)
  tokens = jax.ShapeDtypeStruct((c.batch, c.seq + 1), jnp.int32)
  params = jax.eval_shape(lambda t: model.init(jax.random.key(0), t)["params"], tokens)
  opt_state = jax.eval_shape(tx.init, params)
  pspecs = param_specs(params)
  # Adam's moments are sharded like the parameters; its step counter is replicated.
  ospecs = (optax.ScaleByAdamState(P(), pspecs, pspecs), optax.EmptyState())
  return Setup(step, (params, opt_state, tokens), (pspecs, ospecs, P("data")),
               {"data": -1, "model": 2}, "sharded Flax transformer train step")


def main(argv=None) -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--target", action="append", default=[])
  ap.add_argument("--format", default="table", choices=("table", "markdown", "json"))
  ap.add_argument("--plot", default=None, help="save a bar plot here (needs matplotlib)")
  ap.add_argument("--by-module", action="store_true", help="add the per-module report")
  ap.add_argument("--max-depth", type=int, default=None,
                  help="with --by-module, aggregate module paths to this many segments")
  args = ap.parse_args(argv)
  from jaxgreen._src.comparison import compare, print_report

  s = setup()
  cmp = compare(s.fn, args.target or ["tpu:v5e:4x4", "gpu:h100x8"], mesh_axes=s.mesh_axes,
                in_specs=s.in_specs, name=s.name, by_module=args.by_module,
                max_depth=args.max_depth)(*s.args)
  print_report(cmp, fmt=args.format, plot=args.plot)


if __name__ == "__main__":
  main()
