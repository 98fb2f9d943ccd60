"""The price tag before training: hours, kWh, CO2e and $ per target and region, from
the roofline of a deviceless compile (every figure an estimate, labelled so)."""

from __future__ import annotations

import json
import types

import jax
import jax.numpy as jnp
import pytest

from jaxgreen import chips
from jaxgreen._src.account.forecast import forecast, from_comparison


def _result(target: str, chip: str, devices: int, flops: float):
  return types.SimpleNamespace(target=target, pod=types.SimpleNamespace(devices=devices),
                               roofline=chips.roofline(chip, flops=flops, hbm_bytes=0))


def test_hours_kwh_co2e_and_dollars_are_the_stated_products():
  # 1 s per step on an H100 (989e12 FLOP at its bf16 peak), 4 devices, 7200 steps.
  f = from_comparison([_result("gpu:h100x4", "h100", 4, 989e12)], steps=7200,
                      regions=["gcp:us-central1", "FR"], utilization=0.5)
  us, fr = f.row("gpu:h100x4", "gcp:us-central1"), f.row("gpu:h100x4", "FR")
  assert us.step_s == pytest.approx(2.0)  # roofline 1 s / utilization 0.5
  assert us.hours == pytest.approx(7200 * 2.0 / 3600)  # 4 h
  assert us.kwh == pytest.approx(700 * 4 * 4 / 1000)  # TDP x devices x hours = 11.2 kWh
  assert us.co2e_kg == pytest.approx(11.2 * 412.72 * 1.09 / 1000)  # kWh x g/kWh x PUE
  assert fr.co2e_kg == pytest.approx(11.2 * 44 * 1.56 / 1000)
  assert us.usd == pytest.approx(4 * 4 * 88.49 / 8)  # chip-hours x a3-highgpu-8g / 8
  assert "cloud.google.com/compute/gpus-pricing" in us.price_source
  assert "region-carbon-info" in us.carbon_source and "TDP 700 W" in us.energy_source


def test_a_chip_without_published_tdp_or_region_is_unavailable_and_says_the_fix():
  f = from_comparison([_result("tpu:v5e:2x2", "v5e", 4, 197e12)], steps=3600,
                      regions=["mars-north1"])
  r = f.rows[0]
  assert r.hours == pytest.approx(1.0)  # 197e12 FLOP / 197 TFLOP/s bf16 = 1 s x 3600
  assert r.usd == pytest.approx(4 * 1.20)  # 4 chip-hours x $1.20 (Cloud TPU pricing)
  assert r.kwh is None and "tdp_watts={'v5e': W}" in r.energy_source
  assert r.co2e_kg is None and r.carbon_source.startswith("unavailable")
  given = from_comparison([_result("tpu:v5e:2x2", "v5e", 4, 197e12)], steps=3600,
                          regions=["FR"], tdp_watts={"v5e": 200.0},
                          usd_per_chip_hour={"v5e": 1.0}).rows[0]
  assert given.kwh == pytest.approx(200 * 4 * 1 / 1000)  # given W x devices x hours
  assert given.usd == pytest.approx(4.0) and given.price_source == "given"
  text = f.table()
  assert "Forecast (estimate)" in text and "unavailable" in text and "estimate:" in text


@pytest.mark.parametrize("kw,match", [({"steps": 0}, "steps"), ({"steps": 1.5}, "steps"),
                                      ({"steps": 10, "utilization": 0}, "utilization"),
                                      ({"steps": 10, "regions": "FR"}, "regions")])
def test_bad_arguments_name_the_fix(kw, match):
  with pytest.raises(ValueError, match=match):
    from_comparison([], **kw)


@pytest.mark.slow
def test_gpt2_step_forecast_on_tpu_and_gpu(gpu_targets):
  pytest.importorskip("libtpu", reason="TPU targets need the tpu extra")
  transformers = pytest.importorskip("transformers")
  if not hasattr(transformers, "FlaxGPT2LMHeadModel"):
    pytest.skip("transformers without Flax models (install transformers<4.58)")
  import optax

  cfg = transformers.GPT2Config(vocab_size=256, n_embd=64, n_layer=2, n_head=4,
                                n_positions=32)
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
  args = (params, jax.eval_shape(tx.init, params), jax.ShapeDtypeStruct((8, 32), jnp.int32))
  f = forecast(train_step, ["tpu:v5e:2x2", "gpu:h100x4"], steps=10_000,
               regions=["gcp:us-central1"])(*args)
  tpu, gpu = f.row("tpu:v5e:2x2"), f.row("gpu:h100x4")
  for r in (tpu, gpu):
    assert r.hours > 0 and r.usd == pytest.approx(
        r.hours * r.devices * chips.PRICES[r.chip].usd_per_chip_hour)
  assert gpu.kwh == pytest.approx(700 * 4 * gpu.hours / 1000)  # H100 TDP x 4 x hours
  assert gpu.co2e_kg == pytest.approx(gpu.kwh * 412.72 * 1.09 / 1000)
  assert tpu.kwh is None  # v5e: Google publishes no TDP
  d = json.loads(f.to_json())
  assert [r["target"] for r in d["rows"]] == ["tpu:v5e:2x2", "gpu:h100x4"]
  assert d["label"].startswith("estimate")


def test_cli_compare_forecasts_with_steps_and_regions(tmp_path, capsys, gpu_targets):
  from jaxgreen._src.cli import main

  (tmp_path / "m.py").write_text("import jax.numpy as jnp\n\n"
                                 "def step(x, w):\n  return jnp.tanh(x @ w).sum()\n")
  assert main(["compare", f"{tmp_path}/m.py:step", "--arg", "f32[64,256]", "--arg",
               "f32[256,256]", "--target", "gpu:h100", "--steps", "1000", "--region", "FR",
               "--region", "aws:us-east-1"]) == 0
  out = capsys.readouterr().out
  assert "Forecast (estimate)" in out and "FR" in out and "aws:us-east-1" in out
  assert "cloud.google.com/compute/gpus-pricing" in out
