"""The price tag as plain data: Equation 1's figures and the three renderings."""

from __future__ import annotations

import json

import pytest

from jaxgreen._src.account.pricetag import PriceTag, TrialCost, build, check_joules_per_flop


def _trial(name: str, train_fpo: int, examples: int, **kw) -> TrialCost:
  fields = dict(id=name, experiment="e", name=name, hparams={}, status="completed",
                train_steps=1, train_examples=examples, train_fpo=train_fpo, eval_steps=0,
                eval_examples=0, eval_fpo=0, wall_s=1.0, device_kind="cpu", device_count=1,
                exact=True, energy_j=None, energy_source=None)
  return TrialCost(**(fields | kw))


def test_e_d_h_multiply_to_the_training_fpo():
  tag = PriceTag("e", (_trial("a", 300, 3), _trial("b", 500, 5, status="failed")))
  assert (tag.h, tag.train_fpo, tag.train_examples) == (2, 800, 8)
  assert tag.e * tag.d * tag.h == pytest.approx(tag.train_fpo)


def test_renderings_agree():
  tag = PriceTag("e", (_trial("a", 300, 3),), joules_per_flop=1e-12)
  text, md = tag.table(), tag.markdown()
  assert text.startswith("Price tag: e") and md.startswith("## Price tag: e")
  assert "E x D x H" in text and "E x D x H" in md
  d = json.loads(tag.to_json())
  assert (d["H_trials"], d["train_fpo"], d["energy_j"]) == (1, 300, pytest.approx(3e-10))


def test_build_sums_step_rows_exactly_and_collects_why_inexact():
  trials = [dict(id="t", experiment="e", name=None, hparams='{"lr": 1}', status="stopped",
                 started=1.0, ended=3.0, device_kind="cpu", device_count=1, run_host=None,
                 run_pid=None, run_started=None, energy_j=None, energy_source=None,
                 error="early", run_id="r")]
  big = str(2**70)  # beyond int64: FPO is exact integer text in the ledger
  steps = [dict(trial_id="t", kind="train", steps=2, examples=4, fpo=big, exact=0),
           dict(trial_id="t", kind="eval", steps=1, examples=1, fpo="5", exact=1)]
  inexact = [dict(function="f", cost='{"uncounted": {"custom_call": 2}}')]
  tag = build("e", trials, steps, inexact, ["g"], [("r", 0.0)])
  (t,) = tag.trials
  assert (t.name, t.train_fpo, t.eval_fpo, t.wall_s, t.exact) == ("t", 2 * 2**70, 5, 2.0,
                                                                    False)
  assert tag.inexact_notes == ("f: no rule for custom_call (x2)",)
  assert tag.no_examples == ("g",)


@pytest.mark.parametrize("bad", [0, -1.0, True, "1e-12"])
def test_joules_per_flop_must_be_a_positive_number(bad):
  with pytest.raises(ValueError, match="joules_per_flop"):
    check_joules_per_flop(bad)


def _shown_equation(tag: PriceTag) -> str:
  return next(line for line in tag.table().splitlines() if line.startswith("E x D x H"))


def test_shown_factors_multiply_to_the_shown_product():
  # E = 762,429,888 / (4 x 27,648) = 6,894.097... FPO per example, D = 27,648 examples.
  fpo, examples = 762_429_888, 27_648
  tag = PriceTag("e", tuple(_trial(f"t{i}", fpo // 4, examples) for i in range(4)))
  line = _shown_equation(tag)
  assert "6,894.1 x 27,648 x 4 = 762,429,888 (E rounded to 0.1)" in line  # D: no ".0"
  # Integers: nothing rounded, and the factors give the product.
  tag = PriceTag("e", (_trial("a", 300, 3), _trial("b", 500, 5)))
  line = _shown_equation(tag)
  assert line.split(None, 5)[-1].strip() == "100 x 4 x 2 = 800"
  assert 100 * 4 * 2 == tag.train_fpo
  # A factor exact at one decimal is not called rounded: 61,212 / 24 = 2,550.5.
  tag = PriceTag("e", (_trial("a", 61_212, 24),))
  assert _shown_equation(tag).endswith("2,550.5 x 24 x 1 = 61,212")


def test_notebook_and_pandas_views():
  tag = PriceTag("exp <1>", (_trial("a", 300, 3), _trial("b", 500, 5, status="failed")))
  out = tag._repr_html_()
  assert "Price tag: exp &lt;1&gt;" in out and "<table" in out and "800" in out
  assert "E x D x H" in out and "<script" not in out
  assert repr(tag).startswith("PriceTag(experiment='exp <1>', H=2,") and len(repr(tag)) < 200
  pd = pytest.importorskip("pandas", reason="to_pandas needs the [pandas] extra")
  df = tag.to_pandas()
  assert isinstance(df, pd.DataFrame) and list(df["train_fpo"]) == [300, 500]
  assert df["fpo"].sum() == tag.fpo
