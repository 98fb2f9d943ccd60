"""A small hyperparameter sweep with a price tag: E x D x H, recorded in a ledger.

Trains a two-layer MLP on a synthetic classification task for a few learning rates,
stops a trial early when validation accuracy stops improving, then prints the price
tag and writes the budget/performance curves.

  JAX_PLATFORMS=cpu python examples/trials.py [--ledger green.sqlite] [--out curves/]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxgreen
from jaxgreen import Experiment, curves, track


def make_data(n: int, dim: int = 20, classes: int = 4, seed: int = 0):
  rng = np.random.default_rng(seed)
  centers = rng.normal(size=(classes, dim)) * 0.5
  y = rng.integers(0, classes, size=n)
  x = centers[y] + rng.normal(size=(n, dim))
  return x.astype(np.float32), y.astype(np.int32)


def init(key, dim: int, hidden: int, classes: int):
  k1, k2 = jax.random.split(key)
  return {"w1": jax.random.normal(k1, (dim, hidden)) / dim**0.5, "b1": jnp.zeros(hidden),
          "w2": jax.random.normal(k2, (hidden, classes)) / hidden**0.5,
          "b2": jnp.zeros(classes)}


def logits(params, x):
  return jax.nn.relu(x @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]


def make_steps(tx):
  """A tracked train step (counted in E x D x H) and a tracked eval step (apart)."""

  @track(examples="batch")
  @jax.jit
  def train_step(params, opt_state, batch):
    def loss(p):
      x, y = batch
      return optax.softmax_cross_entropy_with_integer_labels(logits(p, x), y).mean()

    grads = jax.grad(loss)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  @track(examples="batch", kind="eval")
  @jax.jit
  def accuracy(params, batch):
    x, y = batch
    return jnp.mean(jnp.argmax(logits(params, x), -1) == y)

  return train_step, accuracy


def main() -> None:
  ap = argparse.ArgumentParser()
  ap.add_argument("--ledger", default="green.sqlite")
  ap.add_argument("--out", default="curves")
  ap.add_argument("--epochs", type=int, default=20)
  ap.add_argument("--batch", type=int, default=64)
  args = ap.parse_args()

  x, y = make_data(2560)
  (x_train, y_train), (x_val, y_val) = (x[:2048], y[:2048]), (x[2048:], y[2048:])
  exp = Experiment("mlp-sweep", ledger=args.ledger)

  for lr in (1.0, 0.1, 0.01, 0.001):
    tx = optax.sgd(lr)
    train_step, accuracy = make_steps(tx)
    params = init(jax.random.PRNGKey(0), x_train.shape[1], 64, 4)
    opt_state = tx.init(params)
    best, patience = 0.0, 0
    with exp.trial({"lr": lr}) as trial:
      step = 0
      for _ in range(args.epochs):
        for i in range(0, len(x_train), args.batch):
          batch = (x_train[i:i + args.batch], y_train[i:i + args.batch])
          params, opt_state = train_step(params, opt_state, batch)
          step += 1
        acc = float(accuracy(params, (x_val, y_val)))  # the one host read per epoch
        trial.log(step, val_acc=acc)
        if acc > best + 1e-3:
          best, patience = acc, 0
        else:
          patience += 1
        if patience >= 3:  # early stopping: the trial still counts in H and in cost
          trial.stop_early(f"no gain for 3 epochs (best {best:.3f})")
          break

  print(exp.report())
  paths = curves.plot(exp.ledger, args.out, "val_acc", experiment=exp.name,
                      png=_has_matplotlib())
  print("\nwrote", ", ".join(str(p) for p in paths))
  print(f"jaxgreen {jaxgreen.__version__}")


def _has_matplotlib() -> bool:
  try:
    import matplotlib  # noqa: F401
  except ImportError:
    return False
  return True


if __name__ == "__main__":
  main()
