"""Inputs that used to make a count or a ledger silently wrong are now clear errors."""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import jaxgreen
from jaxgreen._src.account import Experiment, Ledger, merge, track
from jaxgreen._src.cli import main
from jaxgreen._src.cost import Cost
from jaxgreen._src.cost_model import CostModel
from jaxgreen._src.jaxpr.registry import register


def test_empty_and_none_ledger_paths_are_errors(tmp_path, monkeypatch, capsys):
  monkeypatch.chdir(tmp_path)
  with pytest.raises(ValueError, match="ledger=''.*None to keep it in memory"):
    Experiment("x", ledger="")
  with pytest.raises(ValueError, match="path=''"):
    Ledger("")
  with pytest.raises(TypeError, match="path=None"):
    Ledger(None)
  assert not (tmp_path / "None").exists()  # no file named None
  src = tmp_path / "a.sqlite"
  Ledger(src).close()
  with pytest.raises(ValueError, match="dest=''"):
    merge([src], "")
  assert main(["ledger", "merge", str(src), "-o", ""]) == 2
  assert "dest=''" in capsys.readouterr().err
  assert sorted(p.name for p in tmp_path.iterdir()) == ["a.sqlite"]


def test_bad_track_options_fail_at_decoration():
  def f(x):
    return x * 2.0

  with pytest.raises(ValueError, match=r"track\(cond='avg'\)"):
    track(f, cond="avg")
  with pytest.raises(TypeError, match=r"track\(trip_counts=-1\)"):
    track(f, trip_counts=-1)
  with pytest.raises(TypeError, match="bogus"):
    track(f, bogus=1)
  with pytest.raises(ValueError, match="stage='jaxprs'"):
    track(cond="max", stage="jaxprs")(f)
  ok = track(f, examples=1, cond="mean", trip_counts=3)
  ok(jnp.ones(4))
  assert ok.tracker.fpo == 4  # 4 MUL: the options are passed on


@pytest.mark.parametrize("name", ["dot_general", "conv_general_dilated", "reduce_sum",
                                  "cumsum", "integer_pow"])
def test_cost_model_rejects_prices_it_never_consults(name):
  with pytest.raises(ValueError, match=f"'{name}'.*not priced by the cost model"):
    CostModel({name: (1, 1)})


def test_cost_model_prices_it_consults_still_apply():
  cm = CostModel({"exp": (1, 1)})
  x = jnp.ones(4)
  assert jaxgreen.count(jnp.exp, cost_model=cm)(x).fpo == 4 * 2


def test_register_rule_by_name_for_a_primitive_that_has_one_is_an_error():
  def mine(ctx, *args, **params):  # pragma: no cover - never registered
    raise AssertionError

  with pytest.raises(ValueError, match="'mul' is already registered"):
    register("mul")(mine)
  with pytest.raises(ValueError, match="'mul' is already registered"):
    register(lax.mul_p)(mine)
  x = jnp.ones(3)
  assert jaxgreen.count(lambda a: a * a)(x).fpo == 3  # the built-in rule still counts


def test_negative_dimensions_are_rejected():
  with pytest.raises(ValueError, match=r"shape \(-1, 16\).*negative"):
    jaxgreen.count(lambda a: a * 2.0)(jax.ShapeDtypeStruct((-1, 16), jnp.float32))


@pytest.mark.parametrize("field", ["adds", "muls", "transcendentals", "int_ops", "bytes"])
def test_cost_counts_must_be_non_negative_numbers(field):
  with pytest.raises(ValueError, match=f"Cost\\({field}=-5\\)"):
    Cost(**{field: -5})
  with pytest.raises(ValueError, match=f"Cost\\({field}=nan\\)"):
    Cost(**{field: float("nan")})
  with pytest.raises(TypeError, match=f"Cost\\({field}='3'\\)"):
    Cost(**{field: "3"})
  assert Cost(**{field: np.int64(3)}).to_dict()[field] == 3


def test_log_step_must_be_an_int(tmp_path):
  exp = Experiment("log", ledger=None)
  with exp.trial() as t:
    with pytest.raises(TypeError, match=r"log\(step=1.7\)"):
      t.log(1.7, val_acc=0.5)
    with pytest.raises(TypeError, match=r"log\(step=True\)"):
      t.log(True, val_acc=0.5)
    t.log(np.int64(2), val_acc=0.5)
  rows = exp.ledger.rows("SELECT step FROM metrics")
  assert rows == [{"step": 2}]


def test_sys_exit_zero_in_a_trial_is_completed():
  exp = Experiment("exit", ledger=None)
  for code in (0, None, 2):
    with pytest.raises(SystemExit), exp.trial({"code": code}):
      sys.exit(code)
  assert [t.status for t in exp.price_tag().trials] == ["completed", "completed", "failed"]
