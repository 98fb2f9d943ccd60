"""A trial resumed after a checkpoint restore: Trial.state() saved beside an orbax
checkpoint, experiment.trial(resume=state): FPO, examples and H continue, not restart."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgreen._src.account import Experiment, Ledger, merge, track

N = 8  # elements of the toy step's input: N MUL + N ADD per call
PER_STEP = 2 * N  # x * 2.0 + 1.0 on 8 floats: 8 MUL + 8 ADD


def _step():
  return track(jax.jit(lambda x: x * 2.0 + 1.0), examples="x")


def _checkpointer():
  ocp = pytest.importorskip("orbax.checkpoint")  # a dependency of flax: always there
  return ocp


def test_state_saved_with_an_orbax_checkpoint_resumes_the_trial(tmp_path):
  ocp = _checkpointer()
  path = tmp_path / "g.sqlite"
  step, x = _step(), jnp.ones(N)
  params = {"w": np.arange(4.0)}
  exp = Experiment("ckpt", ledger=path)
  with ocp.CheckpointManager(tmp_path / "ckpt") as mngr:
    with exp.trial({"lr": 0.1}) as t:
      for _ in range(3):
        step(x)
      mngr.save(3, args=ocp.args.Composite(model=ocp.args.StandardSave(params),
                                           jaxgreen=ocp.args.JsonSave(t.state())))
      mngr.wait_until_finished()
      step(x)  # run after the checkpoint, then the job is preempted: it still cost
      t.end("preempted", "SIGTERM")
  exp.close()

  exp = Experiment("ckpt", ledger=path)  # the job restarts and restores its checkpoint
  with ocp.CheckpointManager(tmp_path / "ckpt") as mngr:
    restored = mngr.restore(mngr.latest_step(), args=ocp.args.Composite(
        model=ocp.args.StandardRestore(params), jaxgreen=ocp.args.JsonRestore()))
  saved = restored["jaxgreen"]
  assert (saved["trial"], saved["train_fpo"], saved["steps"]) == (t.id, str(3 * PER_STEP), 3)
  with exp.trial(resume=saved) as again:
    # The ledger holds the trial: it goes on from all 4 steps run, not the 3 checkpointed.
    assert (again.id, again.hparams, again.steps, again.train_fpo) == (
        t.id, {"lr": 0.1}, 4, 4 * PER_STEP)
    step(x)
    again.log(5, loss=0.5)
  tag = exp.price_tag()
  (c,) = tag.trials
  assert tag.h == 1  # one trial over two runs: counted once in H
  assert (c.status, c.train_steps, c.train_fpo, c.train_examples) == (
      "completed", 5, 5 * PER_STEP, 5 * N)
  exp.close()


def test_state_resumes_into_a_ledger_that_never_saw_the_trial(tmp_path):
  step, x = _step(), jnp.ones(N)
  first = Experiment("moved", ledger=tmp_path / "host0.sqlite")
  with first.trial({"lr": 0.1}) as t:
    for _ in range(3):
      step(x)
    saved = t.state()
  first.close()

  # The job restarts on another host, with its own ledger file.
  second = Experiment("moved", ledger=tmp_path / "host1.sqlite")
  with pytest.warns(UserWarning, match="merge the ledgers"):
    again = second.trial(resume=saved)
  with again:
    assert (again.id, again.train_fpo, again.train_examples) == (t.id, 3 * PER_STEP, 3 * N)
    step(x)
    step(x)
    again.log(5, loss=0.5)
  rows = second.ledger.rows("SELECT train_fpo FROM metrics")
  assert [int(r["train_fpo"]) for r in rows] == [5 * PER_STEP]  # the curve continues
  (c,) = second.price_tag().trials
  assert c.train_steps == 2  # this file holds the steps run here
  second.close()

  merge([tmp_path / "host0.sqlite", tmp_path / "host1.sqlite"], tmp_path / "all.sqlite")
  with Ledger(tmp_path / "all.sqlite", readonly=True) as led:
    tag = led.price_tag("moved")
  (c,) = tag.trials
  assert tag.h == 1 and (c.train_steps, c.train_fpo) == (5, 5 * PER_STEP)  # 3 + 2 steps


def test_a_bad_state_gets_one_clear_error():
  exp = Experiment("bad", ledger=None)
  with exp.trial() as t:
    saved = t.state()
  with pytest.raises(ValueError, match="not a Trial.state"):
    exp.trial(resume={"trial": t.id})
  with pytest.raises(ValueError, match="experiment 'bad', not 'other'"):
    Experiment("other", ledger=None).trial(resume=saved)
  with pytest.raises(ValueError, match="damaged"):
    exp.trial(resume={**saved, "train_fpo": "many"})
  with pytest.raises(TypeError, match="state\\(\\) or id"):
    exp.trial(resume=3)  # type: ignore[arg-type]
  exp.close()
