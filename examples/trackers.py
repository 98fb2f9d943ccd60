"""jaxgreen's FPO, examples, FPO/s per device and MFU beside your metrics in trackers.

A small learning-rate sweep of a linear classifier; each trial is one tracker run, and
every chart can use cumulative training FPO (``jaxgreen/train_pfpo``, in PFPO) as its
x-axis.

  JAX_PLATFORMS=cpu python examples/trackers.py --tensorboard runs   # tensorboard --logdir runs
  JAX_PLATFORMS=cpu python examples/trackers.py --wandb mlp --wandb-mode offline
  JAX_PLATFORMS=cpu python examples/trackers.py --mlflow sqlite:///mlflow.db
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

import jaxgreen


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--tensorboard", metavar="LOGDIR", help="write TensorBoard event files")
  ap.add_argument("--wandb", metavar="PROJECT", help="log to this W&B project")
  ap.add_argument("--wandb-mode", default=None, help="online, offline or disabled")
  ap.add_argument("--mlflow", metavar="URI", help="log to this MLflow tracking URI")
  ap.add_argument("--ledger", default=None, help="ledger file (default: in memory)")
  args = ap.parse_args()
  sinks: list = []
  if args.tensorboard:
    sinks.append(jaxgreen.sinks.TensorBoard(args.tensorboard))
  if args.wandb:
    sinks.append(jaxgreen.sinks.WandB(project=args.wandb, mode=args.wandb_mode))
  if args.mlflow:
    sinks.append(jaxgreen.sinks.MLflow(args.mlflow))
  if not sinks:  # no tracker named: print what a tracker would receive
    sinks.append(lambda event, trial, step, values: print(event, trial.name, step, values))

  rng = np.random.default_rng(0)
  x = rng.normal(size=(512, 16)).astype(np.float32)
  y = (x @ rng.normal(size=16) > 0).astype(np.float32)

  def loss(w, batch, labels):
    return jnp.mean(jax.nn.softplus(-(2 * labels - 1) * (batch @ w)))

  @jaxgreen.track(examples="batch")
  @jax.jit
  def train_step(w, batch, labels, lr):
    return w - lr * jax.grad(loss)(w, batch, labels)

  exp = jaxgreen.Experiment("trackers-demo", ledger=args.ledger, flush_steps=20,
                            sinks=sinks)
  for lr in (0.03, 0.3):
    with exp.trial({"lr": lr}) as trial:
      w = jnp.zeros(16)
      for epoch in range(5):
        for i in range(0, len(x), 64):
          w = train_step(w, x[i:i + 64], y[i:i + 64], lr)
        trial.log(epoch, train_loss=float(loss(w, x, y)))
  print(exp.report())
  exp.close()


if __name__ == "__main__":
  main()
