"""Optuna studies as jaxgreen experiments (jaxgreen/_src/account/optuna.py)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import pytest

from jaxgreen._src.account import Experiment, Ledger, merge, track

optuna = pytest.importorskip("optuna", reason="the optional [optuna] extra is not installed")
from jaxgreen._src.account import optuna as jg_optuna  # noqa: E402 - after the skip

optuna.logging.set_verbosity(optuna.logging.WARNING)

# The step: one gradient step of 0.5 * ||x w||^2 for w (4 x 3), x (8 x 4):
#   x @ w:          8*3 outputs * (4 MUL + 3 ADD) = 168
#   x.T @ (x @ w):  4*3 outputs * (8 MUL + 7 ADD) = 180
#   0.1 * g, w - .: 12 MUL + 12 ADD                =  24
STEP_FPO = 168 + 180 + 24  # = 372 per call, 8 examples per call


def _step():
  return track(jax.jit(lambda w, x: w - 0.1 * (x.T @ (x @ w))), examples=8)


def _train(step, trial, *, prune_at=None, fail=False):
  n = trial.suggest_int("steps", 1, 4)
  w, x = jnp.ones((4, 3)), jnp.full((8, 4), 0.1)
  for i in range(n):
    w = step(w, x)
    if prune_at is not None and i == prune_at:
      trial.report(float(i), i)
      raise optuna.TrialPruned("plateau")
  if fail:
    raise RuntimeError("diverged")
  return float(n)  # the "validation score": more steps score higher


def test_statuses_attrs_and_price_tag():
  step = _step()
  exp = Experiment("optuna", ledger=None)
  plans = iter([{}, {"prune_at": 1}, {"fail": True}, {}])
  fn = jg_optuna.objective(exp, lambda t: _train(step, t, **next(plans)),
                           suggest=lambda t: t.suggest_int("steps", 1, 4))
  study = optuna.create_study(direction="maximize",
                              sampler=optuna.samplers.RandomSampler(seed=0))
  for steps in (3, 4, 2, 1):
    study.enqueue_trial({"steps": steps})
  study.optimize(fn, n_trials=4, catch=(RuntimeError,))
  states = [t.state.name for t in study.trials]
  assert states == ["COMPLETE", "PRUNED", "FAIL", "COMPLETE"]
  # FPO per trial: steps run * STEP_FPO (the pruned one ran 2 steps, i = 0 and 1).
  want = [3 * STEP_FPO, 2 * STEP_FPO, 2 * STEP_FPO, 1 * STEP_FPO]
  assert [t.user_attrs["train_fpo"] for t in study.trials] == want
  df = study.trials_dataframe()
  assert list(df["user_attrs_train_fpo"]) == want

  ledger_tag = exp.price_tag()
  assert [t.status for t in ledger_tag.trials] == ["completed", "stopped", "failed",
                                                   "completed"]
  assert ledger_tag.trials[1].error == "pruned by Optuna: plateau"
  assert [t.hparams for t in ledger_tag.trials] == [{"steps": s} for s in (3, 4, 2, 1)]
  tag = jg_optuna.price_tag_from_study(study)
  assert tag.h == ledger_tag.h == 4
  assert tag.train_fpo == ledger_tag.train_fpo == sum(want)
  assert tag.train_examples == 8 * 8  # 3 + 2 + 2 + 1 steps of 8 examples
  assert [t.status for t in tag.trials] == [t.status for t in ledger_tag.trials]
  assert [t.id for t in tag.trials] == [t.id for t in ledger_tag.trials]
  assert tag.exact and tag.inexact_notes == ()
  exp.close()


def test_nan_value_is_failed_in_both():
  exp = Experiment("optuna-nan", ledger=None)
  study = optuna.create_study()
  study.optimize(jg_optuna.objective(exp, lambda t: math.nan), n_trials=1)
  assert study.trials[0].state.name == "FAIL"
  assert exp.price_tag().trials[0].status == "failed"
  assert jg_optuna.price_tag_from_study(study).trials[0].status == "failed"
  exp.close()


def test_multi_objective_fpo_pareto_and_budget(tmp_path):
  step = _step()
  exp = Experiment("optuna-mo", ledger=None)

  @jg_optuna.objective(exp, fpo_objective=True)
  def fn(trial):
    return _train(step, trial)

  study = optuna.create_study(directions=["maximize", "minimize"])
  for steps in (1, 2, 3, 3):
    study.enqueue_trial({"steps": steps})
  study.optimize(fn, n_trials=4)
  assert [t.values for t in study.trials] == [[s, s * STEP_FPO] for s in (1.0, 2.0, 3.0, 3.0)]
  front = jg_optuna.pareto_front(study)
  # Each extra step costs more and scores more: 1, 2 and the first 3-step trial are on
  # the front, the second 3-step trial ties (not strictly better) and is not.
  assert [(r["number"], r["pareto"]) for r in front] == [(0, True), (1, True), (2, True),
                                                         (3, False)]
  assert {t.number for t in study.best_trials} == {0, 1, 2, 3}  # Optuna keeps ties
  rows = jg_optuna.budget_curve_from_study(study)
  # Scores 1, 2, 3, 3: E[max_1] = mean = 9/4; budget per trial = mean FPO = 9/4 * 372.
  assert rows[0]["expected"] == pytest.approx(9 / 4)
  assert rows[0]["budget_fpo"] == pytest.approx(9 / 4 * STEP_FPO)
  assert rows[0]["mode"] == "max"
  paths = jg_optuna.plot(study, tmp_path / "curves")
  assert [p.name for p in paths] == ["budget_curve.csv", "pareto.csv", "budget_curve.png",
                                     "pareto.png"]
  assert all(p.stat().st_size > 0 for p in paths)
  exp.close()


def test_errors_name_the_argument():
  with pytest.raises(TypeError, match=r"objective\(exp="):
    jg_optuna.objective("green.sqlite", lambda t: 0.0)
  exp = Experiment("optuna-errors", ledger=None)
  with pytest.raises(TypeError, match=r"objective\(fn="):
    jg_optuna.objective(exp, 3)
  with pytest.raises(TypeError, match="study="):
    jg_optuna.price_tag_from_study("study")
  study = optuna.create_study()
  with pytest.raises(ValueError, match="objective=1"):
    jg_optuna.budget_curve_from_study(study, 1)
  study.optimize(lambda t: 1.0, n_trials=1)  # not through objective(): no jaxgreen record
  tag = jg_optuna.price_tag_from_study(study)
  assert tag.h == 1 and not tag.exact and "no jaxgreen record" in tag.inexact_notes[0]
  exp.close()


_WORKER = textwrap.dedent("""
    import os, sys
    os.environ["JAX_PLATFORMS"] = "cpu"
    import jax, jax.numpy as jnp, optuna
    from jaxgreen._src.account import Experiment, track
    from jaxgreen._src.account.optuna import objective
    storage, ledger = sys.argv[1], sys.argv[2]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    step = track(jax.jit(lambda w, x: w - 0.1 * (x.T @ (x @ w))), examples=8)
    exp = Experiment("distributed", ledger=ledger)

    def train(trial):
        n = trial.suggest_int("steps", 1, 4)
        w, x = jnp.ones((4, 3)), jnp.full((8, 4), 0.1)
        for _ in range(n):
            w = step(w, x)
        return float(n)

    study = optuna.load_study(study_name="dist", storage=storage)
    study.optimize(objective(exp, train, fpo_objective=True), n_trials=2)
    exp.close()
""")


@pytest.mark.slow
def test_three_processes_share_one_study(tmp_path):
  storage = f"sqlite:///{tmp_path / 'optuna.db'}"
  optuna.create_study(study_name="dist", storage=storage, directions=["maximize", "minimize"])
  script = tmp_path / "worker.py"
  script.write_text(_WORKER)
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=os.getcwd())
  ledgers = [tmp_path / f"worker{i}.sqlite" for i in range(3)]
  procs = [subprocess.Popen([sys.executable, str(script), storage, str(p)], env=env,
                            stderr=subprocess.PIPE, text=True) for p in ledgers]
  outs = [p.communicate(timeout=120)[1] for p in procs]
  assert [p.returncode for p in procs] == [0, 0, 0], outs

  study = optuna.load_study(study_name="dist", storage=storage)
  trials = study.trials
  assert [t.state.name for t in trials] == ["COMPLETE"] * 6
  # Each trial ran params["steps"] calls of the 372-FPO step.
  counts = [t.params["steps"] * STEP_FPO for t in trials]
  assert [t.user_attrs["train_fpo"] for t in trials] == counts
  assert [t.values[1] for t in trials] == counts
  tag = jg_optuna.price_tag_from_study(study)
  assert tag.h == 6
  assert tag.train_fpo == sum(counts)

  merged = tmp_path / "all.sqlite"
  merge(ledgers, merged)
  with Ledger(merged, readonly=True) as led:
    ledger_tag = led.price_tag("distributed")
  assert ledger_tag.h == 6 and ledger_tag.train_fpo == tag.train_fpo
  by_id = {t.id: t for t in ledger_tag.trials}
  assert {t.id for t in tag.trials} == set(by_id)
  for t in tag.trials:
    assert (t.train_fpo, t.train_examples, t.status) == (
        by_id[t.id].train_fpo, by_id[t.id].train_examples, by_id[t.id].status)
  fig = jg_optuna.pareto_figure(study)
  fig.savefig(tmp_path / "pareto.png")
  assert (tmp_path / "pareto.png").stat().st_size > 0


@pytest.mark.slow
def test_three_workers_write_one_server_ledger_live(tmp_path, postgres_url):
  # The same sweep with a shared ledger server: no merge, and the ledger agrees with
  # the study trial by trial while both are the record of all 3 workers.
  storage = f"sqlite:///{tmp_path / 'optuna.db'}"
  optuna.create_study(study_name="dist", storage=storage, directions=["maximize", "minimize"])
  script = tmp_path / "worker.py"
  script.write_text(_WORKER)
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=os.getcwd())
  procs = [subprocess.Popen([sys.executable, str(script), storage, postgres_url], env=env,
                            stderr=subprocess.PIPE, text=True) for _ in range(3)]
  outs = [p.communicate(timeout=120)[1] for p in procs]
  assert [p.returncode for p in procs] == [0, 0, 0], outs
  study = optuna.load_study(study_name="dist", storage=storage)
  counts = [t.params["steps"] * STEP_FPO for t in study.trials]  # 372 FPO per step
  with Ledger(postgres_url, readonly=True) as led:
    tag = led.price_tag("distributed")
  assert tag.h == 6 and len({t.run_id for t in tag.trials}) == 3  # 2 trials per worker
  assert tag.train_fpo == sum(counts) == jg_optuna.price_tag_from_study(study).train_fpo
  by_id = {t.id: t for t in tag.trials}
  for t in study.trials:
    mine = by_id[t.user_attrs["jaxgreen"]["trial"]]
    assert (mine.train_fpo, mine.hparams) == (t.user_attrs["train_fpo"], dict(t.params))


def test_price_tag_of_trials_added_to_a_study():
  # A trial recorded elsewhere (e.g. copied between storages) keeps its cost attributes.
  study = optuna.create_study()
  study.add_trial(optuna.trial.create_trial(
      params={"lr": 0.1}, distributions={"lr": optuna.distributions.FloatDistribution(0.01, 1)},
      value=0.5, user_attrs={"train_fpo": STEP_FPO, "train_examples": 8}))
  tag = jg_optuna.price_tag_from_study(study, experiment="demo")
  assert (tag.experiment, tag.h, tag.train_fpo, tag.e) == ("demo", 1, 372, 372 / 8)
  assert tag.trials[0].status == "completed" and tag.trials[0].hparams == {"lr": 0.1}


def test_parallel_threads_attribute_each_trial():
  # study.optimize(n_jobs=2) runs objectives in two threads at once; each thread's steps
  # go to its own trial.
  step = _step()
  exp = Experiment("optuna-threads", ledger=None)
  study = optuna.create_study(direction="maximize")
  for steps in (1, 2, 3, 4):
    study.enqueue_trial({"steps": steps})
  study.optimize(jg_optuna.objective(exp, lambda t: _train(step, t)), n_trials=4, n_jobs=2)
  for t in study.trials:
    assert t.user_attrs["train_fpo"] == t.params["steps"] * STEP_FPO
  tag, ledger_tag = jg_optuna.price_tag_from_study(study), exp.price_tag()
  assert tag.train_fpo == ledger_tag.train_fpo == (1 + 2 + 3 + 4) * STEP_FPO
  assert tag.h == ledger_tag.h == 4
  exp.close()


def test_suggested_parameters_reach_the_ledger_without_suggest(tmp_path):
  step = _step()
  exp = Experiment("optuna-hp", ledger=tmp_path / "g.sqlite")
  plans = iter([{}, {"prune_at": 0}, {"fail": True}])
  fn = jg_optuna.objective(exp, lambda t: _train(step, t, **next(plans)))
  study = optuna.create_study(direction="maximize",
                              sampler=optuna.samplers.RandomSampler(seed=1))
  study.optimize(fn, n_trials=3, catch=(RuntimeError,))
  tag = exp.price_tag()
  # Completed, pruned and failed trials alike: the ledger has what the study has.
  assert [t.hparams for t in tag.trials] == [dict(t.params) for t in study.trials]
  assert all("steps" in t.hparams for t in tag.trials)
  exp.close()
