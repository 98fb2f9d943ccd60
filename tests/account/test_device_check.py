"""benchmarks/device_check.py's logic on the CPU, with a fake energy meter and clock
(the script itself runs on a real GPU)."""

from __future__ import annotations

import importlib.util
import pathlib
import sys

import pytest

from jaxgreen._src.account import carbon, throughput

_PATH = pathlib.Path(__file__).parents[2] / "benchmarks" / "device_check.py"
_spec = importlib.util.spec_from_file_location("device_check", _PATH)
dc = importlib.util.module_from_spec(_spec)
sys.modules["device_check"] = dc  # dataclasses look their module up by name
_spec.loader.exec_module(dc)
MS = 1e-3


class FakeMeter:
  """12 J between start and stop."""

  name = "FAKE"
  available = True

  def start(self):
    pass

  def stop(self):
    return 12.0


class FakeClock:
  def __init__(self):
    self.t = -MS

  def __call__(self):
    self.t += MS
    return self.t


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
  monkeypatch.setenv(carbon.METADATA_ENV, "off")
  monkeypatch.setattr(throughput, "clock", FakeClock())


def test_chip_found_from_the_device_kind():
  ok = dc.chip_check("NVIDIA H100 80GB HBM3")
  assert ok.ok and "-> h100" in ok.line and "TDP 700.0 W" in ok.line
  assert not dc.chip_check("cpu").ok


def test_energy_and_utilisation_checks_with_a_fake_meter():
  step, args = dc.make_step(width=32, layers=2, batch=8)
  run = dc.tracked_run(step, args, 6, FakeMeter, peak=1e9, chip=None)
  assert run["joules"] == 12.0 and run["energy_label"] == "measured (FAKE)"
  assert dc.energy_check(run, on_gpu=True).ok
  no_energy = dict(run, joules=None, energy_label="unavailable")
  assert not dc.energy_check(no_energy, on_gpu=True).ok  # a GPU must measure
  assert dc.energy_check(no_energy, on_gpu=False).ok
  tp = run["throughput"]
  assert tp.steps == 5 and tp.seconds == pytest.approx(5 * MS)  # first call not timed
  assert run["model_fpo"] < run["hardware_fpo"]  # the checkpointed layers recompute
  check = dc.utilisation_check(run, measured_step_s=MS)
  assert check.ok and "(ratio 1.000)" in check.line  # tracked 1 ms vs timed 1 ms
  wrong = dict(run, model_fpo=run["hardware_fpo"])  # a ratio that is not the recompute's
  assert not dc.utilisation_check(wrong, measured_step_s=MS).ok


def test_timed_loop_and_count_comparison():
  step, args = dc.make_step(width=16, layers=1, batch=4)
  ticks = iter([0.0, 0.5])
  assert dc.timed_loop(step, args, 5, clock=lambda: next(ticks)) == pytest.approx(0.1)
  assert dc.counts_check(1000, 1005).ok  # within 1 %
  assert not dc.counts_check(1000, 1100).ok
  assert "ratio 1.1000" in dc.counts_check(1000, 1100).line


def test_roofline_check_against_the_deviceless_target(gpu_targets):
  step, args = dc.make_step(width=64, layers=1, batch=16)
  c = dc.roofline_check(step, args, "h100", measured_step_s=1e-3)
  assert c.ok and "measured / roofline" in c.line


def test_main_on_the_cpu_runs_every_check_that_applies(monkeypatch, capsys):
  small = dc.make_step
  monkeypatch.setattr(dc, "make_step", lambda: small(width=16, layers=1, batch=4))
  assert dc.main(["--steps", "3"]) == 1  # a CPU: no chip figures, so that check fails
  out = capsys.readouterr().out
  assert "FAIL chip: none found for device kind 'cpu'" in out
  assert "ok   energy:" in out and "ok   MFU" in out  # no GPU: energy may be absent
