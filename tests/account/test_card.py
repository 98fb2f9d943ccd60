"""The report where it lands: a model card the Hub's own library parses, a LaTeX
appendix pdflatex compiles, Markdown, the NeurIPS answer and the EU AI Act's thresholds,
with every trial (completed, stopped, failed) counted."""

from __future__ import annotations

import shutil
import subprocess

import jax
import jax.numpy as jnp
import pytest

from jaxgreen._src.account import Experiment, carbon, track
from jaxgreen._src.account.card import FPO_IS_FLOP, report
from jaxgreen._src.cli import main

N = 8  # the toy step: 8 MUL + 8 ADD = 16 FPO per call
JPF = 1e-3  # given J/FLOP (a CPU has no published figure)


@pytest.fixture(autouse=True)
def _no_region(monkeypatch):
  monkeypatch.delenv(carbon.REGION_ENV, raising=False)
  monkeypatch.setenv(carbon.METADATA_ENV, "off")


def _ledger(tmp_path, region: str | None = "gcp:europe-west9"):
  path = tmp_path / "card.sqlite"
  step = track(jax.jit(lambda x: x * 2.0 + 1.0), examples="x")
  with Experiment("sweep", ledger=path, measure_energy=False, region=region) as exp:
    for i, lr in enumerate((0.1, 0.01, 10.0)):
      try:
        with exp.trial({"lr": lr}) as trial:
          for _ in range(3):
            step(jnp.ones(N))
          trial.log(3, val_acc=[0.8, 0.6, 0.1][i])
          if lr == 0.01:
            trial.stop_early("plateau")
          if lr == 10.0:
            raise FloatingPointError("diverged")
      except FloatingPointError:
        pass
  return path


def test_model_card_metadata_parses_with_huggingface_hub(tmp_path):
  hub = pytest.importorskip("huggingface_hub", reason="the [card] extra")
  rep = report(_ledger(tmp_path), joules_per_flop=JPF)
  text = rep.model_card()
  card = hub.ModelCard(text)
  co2 = card.data.co2_eq_emissions
  grams = 3 * 3 * 2 * N * JPF / 3.6e6 * 16.30 * 1.09  # 9 calls x 16 FPO x J/FLOP, kWh x g x PUE
  assert co2["emissions"] == pytest.approx(grams, rel=1e-5)
  assert co2["training_type"] == "pre-training" and co2["hardware_used"] == "1 x cpu"
  assert co2["geographical_location"] == "gcp:europe-west9"
  assert "region-carbon-info" in co2["source"] and "PUE 1.09" in co2["source"]
  # The text: FPO, E, D, H with failed and stopped trials, energy and CO2e with sources.
  assert "3 (1 completed, 1 stopped, 1 failed)" in text
  assert f"{9 * 2 * N:,}" in text and "E x D x H" in text and FPO_IS_FLOP in text
  assert "estimate" in text and "kWh" in text and "Ember" not in text


def test_without_a_region_the_card_has_no_emissions_and_says_why(tmp_path):
  hub = pytest.importorskip("huggingface_hub", reason="the [card] extra")
  rep = report(_ledger(tmp_path, region=None), joules_per_flop=JPF)
  text = rep.model_card()
  assert "co2_eq_emissions" not in hub.ModelCard(text).data.to_dict()
  assert "CO2e is not given in the metadata: unavailable: no region given" in text


def test_show_your_work_budget_curve_and_markdown(tmp_path):
  rep = report(_ledger(tmp_path), joules_per_flop=JPF)
  # 3 scored trials (0.8, 0.6, 0.1); E[max_1] = mean = 0.5, E[max_3] =
  # 0.1·(1/27) + 0.6·(8/27 − 1/27) + 0.8·(1 − 8/27) (Dodge et al. 2019, Eq. 1)
  assert [r["n_trials"] for r in rep.budget] == [1, 2, 3]
  assert rep.budget[0]["expected"] == pytest.approx(0.5)
  assert rep.budget[2]["expected"] == pytest.approx(0.1 / 27 + 0.6 * 7 / 27 + 0.8 * 19 / 27)
  assert rep.budget[0]["budget_fpo"] == pytest.approx(3 * 2 * N)  # mean FPO per trial
  md = rep.markdown()
  assert "expected best val_acc" in md and "Dodge et al. 2019" in md and "EU AI Act" in md


def test_latex_appendix_compiles(tmp_path):
  rep = report(_ledger(tmp_path), joules_per_flop=JPF)
  tex = rep.latex_document()
  assert r"\begin{tabular}" in tex and "Dodge et al. 2019" in tex and r"\_" in tex
  pdflatex = shutil.which("pdflatex")
  if pdflatex is None:
    pytest.skip("pdflatex is not installed (Debian: apt-get install texlive-latex-base)")
  (tmp_path / "a.tex").write_text(tex, encoding="utf-8")
  done = subprocess.run([pdflatex, "-interaction=nonstopmode", "-halt-on-error", "a.tex"],
                        cwd=tmp_path, capture_output=True, text=True, timeout=120)
  assert done.returncode == 0, done.stdout[-3000:]
  assert (tmp_path / "a.pdf").stat().st_size > 0


def test_neurips_answer_and_eu_ai_act_thresholds(tmp_path):
  rep = report(_ledger(tmp_path), joules_per_flop=JPF)
  answer = rep.neurips()
  assert answer.startswith("Compute resources. Answer: [Yes].")
  assert "3 trials (1 completed, 1 stopped, 1 failed)" in answer and "1 x cpu" in answer
  f = rep.threshold_figures()
  assert f["training_fpo"] == 9 * 2 * N  # every trial's calls, failed ones included
  assert f["gpai_share"] == 9 * 2 * N / 1e23 and not f["above_gpai"]
  assert f["systemic_risk_share"] == 9 * 2 * N / 1e25 and not f["above_systemic_risk"]
  text = rep.thresholds()
  assert "below (1.44e-21 of it) the 10^23 FLOP" in text  # 144 / 1e23
  assert "Art. 51(2)" in text and "2 FPO = 2 FLOP" in text


def test_cli_card_writes_every_format(tmp_path, capsys):
  path = str(_ledger(tmp_path))
  for fmt, expect in (("hf", "co2_eq_emissions:"), ("latex", r"\begin{tabular}"),
                      ("markdown", "## Compute and energy"), ("neurips", "Answer: [Yes]"),
                      ("thresholds", "EU AI Act"), ("json", '"co2e_g"')):
    assert main(["ledger", "card", path, "--format", fmt, "--joules-per-flop", "1e-3"]) == 0
    assert expect in capsys.readouterr().out, fmt
  out = tmp_path / "card.md"
  assert main(["ledger", "card", path, "-o", str(out), "--joules-per-flop", "1e-3"]) == 0
  assert out.read_text().startswith("---\nco2_eq_emissions:")
