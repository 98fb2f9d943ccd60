"""The price tag before training of GPT-2 small (124M, transformers' FlaxGPT2 from its
config, random init): one AdamW step at batch 8 x 1024 tokens, forecast for 100,000
steps on tpu:v5e:2x2 and gpu:h100x4 (deviceless compiles; every figure an estimate).

  python benchmarks/forecast_gpt2.py [--steps N] [--utilization U] [--small]

Needs the tpu, gpu and clients extras. ``--small`` uses a 2-layer, 64-wide GPT-2.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp


def main() -> None:
  import optax
  import transformers

  from jaxgreen._src.account.forecast import forecast

  p = argparse.ArgumentParser()
  p.add_argument("--steps", type=int, default=100_000)
  p.add_argument("--utilization", type=float, default=0.5)
  p.add_argument("--small", action="store_true")
  a = p.parse_args()
  cfg = (transformers.GPT2Config(vocab_size=256, n_embd=64, n_layer=2, n_head=4,
                                 n_positions=128) if a.small else transformers.GPT2Config())
  seq = cfg.n_positions
  model = transformers.FlaxGPT2LMHeadModel(cfg, _do_init=False)
  tx = optax.adamw(1e-4)

  def train_step(params, opt_state, ids):
    def loss(p):
      logits = model(ids, params=p).logits
      return optax.softmax_cross_entropy_with_integer_labels(logits[:, :-1], ids[:, 1:]).mean()

    value, grads = jax.value_and_grad(loss)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, value

  params = model.params_shape_tree
  args = (params, jax.eval_shape(tx.init, params), jax.ShapeDtypeStruct((8, seq), jnp.int32))
  t0 = time.perf_counter()
  f = forecast(train_step, ["tpu:v5e:2x2", "gpu:h100x4"], steps=a.steps,
               regions=["gcp:us-central1", "gcp:europe-west4", "aws:us-east-1", "FR"],
               utilization=a.utilization, name="GPT-2 small, AdamW, batch 8 x 1024")(*args)
  print(f.markdown())
  print(f"\n(compiled and forecast in {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
  main()
