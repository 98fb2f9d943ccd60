"""``jaxgreen demo``: count the bundled MNIST CNN's train step and print the report."""

from __future__ import annotations

import argparse


def add(sub: argparse._SubParsersAction) -> None:
  p = sub.add_parser("demo", help="count a bundled CNN train step and print the report",
                     description="Counts one optax train step of a small MNIST CNN and "
                                 "prints its FPO, per example and per epoch (E x D).")
  p.add_argument("--model", choices=("cnn", "mlp"), default="cnn")
  p.add_argument("--batch", type=int, default=32, help="examples per step (default 32)")
  p.add_argument("--epochs", type=int, default=10, help="for the E x D line (default 10)")
  p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
  from jaxgreen._src._quiet import quiet_stderr

  # The demo starts jax's backends; with the [tpu]/[gpu] extras on a machine without
  # those chips their plugins announce themselves on stderr. Other messages pass.
  with quiet_stderr():
    return _run(args)


def _run(args: argparse.Namespace) -> int:
  import jax
  import jax.numpy as jnp

  import jaxgreen
  from jaxgreen._src.examples import mnist
  from jaxgreen._src.report import human, table
  from jaxgreen.flax import xla_flops

  if args.batch < 1:
    raise ValueError(f"--batch must be >= 1, got {args.batch}")
  if args.epochs < 0:
    raise ValueError(f"--epochs must be >= 0, got {args.epochs}")
  model = mnist.CNN() if args.model == "cnn" else mnist.MLP()
  tx, train_step, predict = mnist.make_train_step(model)
  params, opt_state, images, labels = mnist.abstract_train_args(model, tx, args.batch)

  step = jaxgreen.count(train_step)(params, opt_state, images, labels)
  infer = jaxgreen.count(predict)(params, images)
  square = jax.ShapeDtypeStruct((64, 64), jnp.float32)
  scan = jaxgreen.count(_ten_matmuls)(square)
  xla = xla_flops(_ten_matmuls, square)  # best effort: a number or "unavailable"

  name = type(model).__name__
  print(f"jaxgreen {jaxgreen.__version__}: one optax train step of the MNIST {name}, "
        f"batch {args.batch}\n")
  print(step.table(top=8))
  b = args.batch
  d = 60_000 * args.epochs
  print("\nGreen AI price tag (Equation 1: cost = E x D x H)")
  print(table(["quantity", "value", "approx."], [
      ["E, train (FPO per example)", f"{step.fpo // b:,}", human(step.fpo / b)],
      ["E, inference (FPO per example)", f"{infer.fpo // b:,}", human(infer.fpo / b)],
      [f"D (60,000 examples x {args.epochs} epochs)", f"{d:,}", ""],
      ["E x D, one training run (H = 1)", f"{step.fpo * d // b:,}",
       human(step.fpo * d / b)],
  ], "lrr"))
  print("\nLoops are counted with their trip counts: a 10-step lax.scan of a 64x64 matmul")
  print(f"  jaxgreen: MUL {scan.muls:,} = 10*64^3, ADD {scan.adds:,} = 10*64*64*63")
  xla = xla if isinstance(xla, str) else f"{int(xla):,}"
  print(f"  XLA cost_analysis() flops: {xla} (the loop body once)")
  return 0


def _ten_matmuls(x):
  import jax

  def body(c, _):
    return c @ c, None

  return jax.lax.scan(body, x, None, length=10)[0]

