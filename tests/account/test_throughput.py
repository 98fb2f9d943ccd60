"""Achieved FPO/s per device and MFU of tracked steps, with a fake clock."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

from jaxgreen import chips
from jaxgreen._src.account import Experiment, Ledger, throughput, track

# One step of x * 2.0 + 1.0 on f32[8]: 8 MUL + 8 ADD = 16 FPO.
STEP_FPO = 8 + 8
MS = 1e-3


class FakeClock:
  """Returns 0, 1 ms, 2 ms, ...: one call of the clock per tracked step."""

  def __init__(self, tick: float = MS):
    self.t, self.tick = -tick, tick

  def __call__(self) -> float:
    self.t += self.tick
    return self.t


@pytest.fixture
def clock(monkeypatch):
  c = FakeClock()
  monkeypatch.setattr(throughput, "clock", c)
  return c


def _step(**options):
  return track(jax.jit(lambda x: x * 2.0 + 1.0), examples="x", **options)


def test_exact_rate_and_mfu_with_a_given_peak(clock):
  step = _step(peak=1e6)
  x = jnp.ones(8)
  for _ in range(5):
    step(x)
  tp = step.tracker.throughput()
  # Calls end at 0, 1, 2, 3, 4 ms; the first (compile) is not timed: 4 steps in 4 ms.
  assert (tp.steps, tp.fpo) == (4, 4 * STEP_FPO)
  assert tp.seconds == pytest.approx(4 * MS)
  assert tp.fpo_per_s_per_device == pytest.approx(4 * 16 / (4 * MS))  # 16,000 FPO/s
  assert tp.mfu == pytest.approx(16_000 / 1e6)  # 0.016 of a 1 MFLOP/s peak
  assert step.tracker.totals()["fpo"] == 5 * STEP_FPO  # the totals still count every call


def test_named_chip_uses_its_published_peak(clock):
  step = _step(chip="h100")  # dtype bf16 by default
  for _ in range(3):
    step(jnp.ones(8))
  tp = step.tracker.throughput()
  # 2 timed steps x 16 FPO in 2 ms = 16,000 FPO/s; peak 989 TFLOP/s (NVIDIA H100 SXM
  # datasheet, as in jaxgreen.chips).
  assert tp.peak == chips.get_chip("h100").peak("bf16") == 989e12
  assert tp.mfu == pytest.approx(16_000 / 989e12)
  assert "h100 bf16" in tp.line()


def test_chip_without_a_published_dtype_peak_gives_no_mfu(clock):
  step = _step(chip="v5e", dtype="fp32")  # Google publishes no fp32 peak for v5e
  for _ in range(3):
    step(jnp.ones(8))
  tp = step.tracker.throughput()
  assert tp.mfu is None and tp.fpo_per_s_per_device == pytest.approx(16_000)
  assert "no published fp32 peak for v5e" in tp.peak_source


def test_default_chip_is_the_device_s_or_none(clock):
  step = _step()
  for _ in range(3):
    step(jnp.ones(8))
  tp = step.tracker.throughput()
  assert tp.fpo_per_s_per_device == pytest.approx(16_000)  # shown on any device
  if chips.chip_of_device_kind(jax.devices()[0].device_kind) is None:  # e.g. a CPU
    assert tp.mfu is None and tp.peak_source.startswith("unavailable")
    assert "unavailable" in tp.line()
  else:
    assert tp.mfu is not None and tp.mfu > 0


def test_first_call_of_each_signature_is_not_timed(clock):
  step = _step(peak=1e6)
  for n in (8, 8, 16, 16, 8):
    step(jnp.ones(n))
  tp = step.tracker.throughput()
  # Timed: the 2nd f32[8] call (16 FPO), the 2nd f32[16] call (32 FPO), the last f32[8]
  # (16 FPO); each 1 ms. Not timed: the first call of f32[8] and of f32[16].
  assert (tp.steps, tp.fpo) == (3, 16 + 32 + 16)
  assert tp.fpo_per_s == pytest.approx(64 / (3 * MS))


def test_per_device_divides_by_the_devices_of_the_step(clock, monkeypatch):
  monkeypatch.setattr(throughput, "devices_of", lambda leaves: 4)  # as if sharded on 4
  step = _step(peak=1e6)
  for _ in range(3):
    step(jnp.ones(8))
  tp = step.tracker.throughput()
  assert tp.fpo_per_s == pytest.approx(2 * 16 / (2 * MS))  # 16,000 FPO/s in all
  assert tp.fpo_per_s_per_device == pytest.approx(16_000 / 4)  # 4,000 per device
  assert tp.mfu == pytest.approx(4_000 / 1e6)


def test_devices_of_a_single_device_array():
  assert throughput.devices_of([jnp.ones(3), 1.0]) == 1


def test_trial_throughput_and_price_tag(clock):
  train = _step(peak=1e6)
  evaluate = track(jax.jit(lambda x: x * 3.0), examples="x", kind="eval", peak=1e6)
  exp = Experiment("tp", ledger=None)
  with exp.trial({"lr": 0.1}) as trial:
    for _ in range(3):
      train(jnp.ones(8))
    evaluate(jnp.ones(8))  # first call: not timed
    evaluate(jnp.ones(8))  # 8 MUL in the trial's next 1 ms
    live = trial.throughput
  # The trial times every step since its previous one: train steps 2, 3 and eval step
  # 2, 1 ms each: (16 + 16 + 8) FPO in 3 ms.
  assert live is not None and (live.steps, live.fpo) == (3, 40)
  assert live.fpo_per_s_per_device == pytest.approx(40 / (3 * MS))
  tag = exp.price_tag()
  (cost,) = tag.trials
  assert cost.fpo_per_s_per_device == pytest.approx(40 / (3 * MS))
  assert cost.mfu == pytest.approx(40 / (3 * MS) / 1e6)
  text = exp.report()
  assert "FPO/s/device" in text and f"{100 * 40 / 3e-3 / 1e6:.3g} %" in text  # 1.33 %
  assert tag.to_dict()["trials"][0]["mfu"] == pytest.approx(cost.mfu)
  exp.close()


def test_throughput_is_stored_in_the_ledger_and_a_resumed_trial_adds_to_it(clock, tmp_path):
  path = tmp_path / "g.sqlite"
  step = _step(peak=1e6)
  exp = Experiment("stored", ledger=path)
  with exp.trial() as trial:
    for _ in range(4):
      step(jnp.ones(8))  # calls end at 0..3 ms; 3 timed steps of 16 FPO in 3 ms
    saved = trial.id
  exp.close()
  with Ledger(path, readonly=True) as led:  # another process reads the report
    (cost,) = led.price_tag("stored").trials
    row = led.trial_row(saved)
  assert (row["timed_steps"], int(row["timed_fpo"])) == (3, 3 * STEP_FPO)
  assert cost.fpo_per_s_per_device == pytest.approx(3 * 16 / (3 * MS))  # 16,000 FPO/s
  assert cost.mfu == pytest.approx(16_000 / 1e6)

  exp = Experiment("stored", ledger=path)  # restarted: the clock goes on at 4 ms
  with exp.trial(resume=saved) as trial:
    for _ in range(3):
      step(jnp.ones(8))  # the tracker is warm: 3 more timed steps (4, 5, 6 ms), but the
      # trial's first call has no previous one: 2 intervals of 1 ms
  exp.close()
  with Ledger(path, readonly=True) as led:
    (cost,) = led.price_tag("stored").trials
    row = led.trial_row(saved)
  # Both runs: 3 + 2 timed steps, 5 x 16 FPO in 5 ms.
  assert (row["timed_steps"], int(row["timed_fpo"])) == (5, 5 * STEP_FPO)
  assert row["timed_seconds"] == pytest.approx(5 * MS)
  assert cost.fpo_per_s_per_device == pytest.approx(5 * 16 / (5 * MS))


def test_trial_without_timed_steps_shows_no_column(clock):
  exp = Experiment("none", ledger=None)
  step = _step()
  with exp.trial():
    step(jnp.ones(8))  # a compile only
  assert exp.price_tag().trials[0].fpo_per_s_per_device is None
  assert "FPO/s/device" not in exp.report()
  exp.close()


def test_log_every_prints_the_window(clock, capsys):
  step = _step(peak=1e6, log_every=2)
  for _ in range(4):
    step(jnp.ones(8))
  lines = capsys.readouterr().out.splitlines()
  # Step 2: 1 timed step (16 FPO in 1 ms = 16 kFPO/s); step 4: steps 3, 4 (same rate).
  assert len(lines) == 2
  assert "step 2: 1 timed steps, 16.00 kFPO/s/device, MFU 1.6 %" in lines[0]
  assert "step 4: 2 timed steps, 16.00 kFPO/s/device, MFU 1.6 %" in lines[1]


def test_sync_every_waits_every_n_steps(clock, monkeypatch):
  waited = []
  real = jax.block_until_ready
  monkeypatch.setattr(jax, "block_until_ready", lambda x: waited.append(1) or real(x))
  step = _step(sync_every=3)
  for _ in range(7):
    step(jnp.ones(8))
  assert len(waited) == 2  # at steps 3 and 6


def test_reset_clears_the_rate(clock):
  step = _step(peak=1e6)
  for _ in range(3):
    step(jnp.ones(8))
  step.tracker.reset()
  assert step.tracker.throughput().steps == 0
  assert step.tracker.throughput().fpo_per_s is None


@pytest.mark.parametrize("option, fix", [
    ({"peak": 0}, "peak=0"), ({"chip": "nope"}, "known chips"),
    ({"dtype": "int8"}, "dtype='int8'"), ({"sync_every": 0}, "sync_every=0"),
    ({"log_every": 1.5}, "log_every=1.5")])
def test_bad_options_name_the_argument(option, fix):
  with pytest.raises(ValueError, match=fix):
    _step(**option)


def test_notebook_and_ipython_views():
  t = throughput.Throughput(steps=10, seconds=0.5, fpo=10 * 2_000_000,
                            fpo_per_device=10 * 1e6, chip="h100", dtype="bf16", peak=1e9,
                            peak_source="given")
  out = t._repr_html_()
  # 10 x 1e6 FPO per device / 0.5 s = 20 MFPO/s; / 1e9 peak = 2 %.
  assert "20,000,000" in out and "20.00 MFPO/s" in out and "2 %" in out
  assert "1e+09 FLOP/s (given)" in out and "<script" not in out

  class Printer:
    out = ""

    def text(self, s):
      self.out += s

  p = Printer()
  t._repr_pretty_(p, False)
  assert p.out == t.line()
