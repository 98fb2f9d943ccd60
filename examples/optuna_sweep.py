"""An Optuna study as a jaxgreen experiment: validation accuracy vs training FPO.

Each Optuna trial trains the two-layer MLP of ``examples/trials.py`` and is one trial
of H; the study has two objectives, validation accuracy (maximize) and training FPO
(minimize), so its Pareto front is the cheapest model for each accuracy. Several
worker processes share the study through its storage (SQLite here; any Optuna RDB or
journal storage works) and write one jaxgreen ledger. The price tag is printed twice:
from the study's storage and from the ledger; they agree.

  JAX_PLATFORMS=cpu python examples/optuna_sweep.py [--trials 12] [--workers 3]
      [--storage sqlite:///optuna.db] [--ledger green.sqlite] [--out curves/]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import jax
import optax
import optuna
from trials import _has_matplotlib, init, make_data, make_steps  # examples/trials.py

from jaxgreen import Experiment, Ledger
from jaxgreen._src.account.optuna import objective, plot, price_tag_from_study

STUDY = "mlp-optuna"


def train(trial: optuna.Trial) -> float:
  """One trial: a learning rate, a width and a number of epochs; returns val accuracy."""
  lr = trial.suggest_float("lr", 1e-3, 1.0, log=True)
  hidden = trial.suggest_int("hidden", 8, 128, log=True)
  epochs = trial.suggest_int("epochs", 1, 8)
  x, y = make_data(2560)
  (x_train, y_train), (x_val, y_val) = (x[:2048], y[:2048]), (x[2048:], y[2048:])
  tx = optax.sgd(lr)
  train_step, accuracy = make_steps(tx)
  params = init(jax.random.PRNGKey(trial.number), x_train.shape[1], hidden, 4)
  opt_state = tx.init(params)
  for _ in range(epochs):
    for i in range(0, len(x_train), 64):
      params, opt_state = train_step(params, opt_state,
                                     (x_train[i:i + 64], y_train[i:i + 64]))
  return float(accuracy(params, (x_val, y_val)))


def worker(args: argparse.Namespace) -> None:
  optuna.logging.set_verbosity(optuna.logging.WARNING)
  exp = Experiment(STUDY, ledger=args.ledger)
  study = optuna.load_study(study_name=STUDY, storage=args.storage)
  # fpo_objective: the trial's training FPO is the study's second objective.
  study.optimize(objective(exp, train, fpo_objective=True), n_trials=args.trials)
  exp.close()


def main() -> None:
  ap = argparse.ArgumentParser()
  ap.add_argument("--storage", default="sqlite:///optuna.db")
  ap.add_argument("--ledger", default="green.sqlite")
  ap.add_argument("--out", default="curves")
  ap.add_argument("--trials", type=int, default=12, help="trials in all")
  ap.add_argument("--workers", type=int, default=3, help="processes sharing the study")
  ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
  args = ap.parse_args()
  if args.worker:
    return worker(args)

  optuna.logging.set_verbosity(optuna.logging.WARNING)
  study = optuna.create_study(study_name=STUDY, storage=args.storage, load_if_exists=True,
                              directions=["maximize", "minimize"])
  study.set_metric_names(["val_acc", "train_fpo"])
  share = [args.trials // args.workers + (i < args.trials % args.workers)
           for i in range(args.workers)]
  procs = [subprocess.Popen([sys.executable, __file__, "--worker", "--trials", str(n),
                             "--storage", args.storage, "--ledger", args.ledger],
                            env=dict(os.environ, JAX_PLATFORMS="cpu"))
           for n in share if n]
  if any(p.wait() for p in procs):
    sys.exit("a worker failed")

  tag = price_tag_from_study(study)
  print(tag.table())
  print("\nPareto front (val_acc vs train FPO):")
  for t in sorted(study.best_trials, key=lambda t: t.values[1]):
    print(f"  trial {t.number}: val_acc {t.values[0]:.3f}, train FPO "
          f"{t.user_attrs['train_fpo']:,}, {t.params}")
  print("\nstudy.trials_dataframe():")
  print(study.trials_dataframe()[["number", "state", "values_val_acc", "user_attrs_train_fpo"]])
  with Ledger(args.ledger, readonly=True) as ledger:
    same = ledger.price_tag(STUDY).train_fpo == tag.train_fpo
  print(f"\nthe ledger's price tag agrees: {same}")
  paths = plot(study, args.out, png=_has_matplotlib())
  print("wrote", ", ".join(str(p) for p in paths))


if __name__ == "__main__":
  main()
