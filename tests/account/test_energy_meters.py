"""Energy beyond NVML: the CPU's RAPL counters read from a fake powercap folder, behind
the same Meter protocol, and recorded with their meter's name."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

from jaxgreen._src.account import Experiment, Ledger, carbon, track
from jaxgreen._src.account.energy import RaplMeter

WRAP = 262_143_328_850  # a package's max_energy_range_uj, as Linux reports it


def _zone(root, name, uj, wrap=WRAP):
  d = root / name
  d.mkdir()
  (d / "energy_uj").write_text(f"{uj}\n")
  (d / "max_energy_range_uj").write_text(f"{wrap}\n")
  (d / "name").write_text("package-0\n")
  return d


def test_rapl_sums_packages_in_joules_and_handles_a_wrap(tmp_path):
  p0 = _zone(tmp_path, "intel-rapl:0", 1_000_000)
  p1 = _zone(tmp_path, "intel-rapl:1", WRAP - 500_000)  # about to wrap
  _zone(tmp_path, "intel-rapl:0:0", 0)  # a subzone (cores): inside package 0, not added
  m = RaplMeter(str(tmp_path))
  assert m.available and m.name == "RAPL"
  m.start()
  (p0 / "energy_uj").write_text("3500000\n")  # +2.5 J
  (p1 / "energy_uj").write_text("1500000\n")  # wrapped: +0.5 J + 1.5 J
  assert m.stop() == pytest.approx(2.5 + 2.0)


def test_rapl_is_inert_without_readable_zones(tmp_path):
  assert not RaplMeter(str(tmp_path)).available
  m = RaplMeter(str(tmp_path / "missing"))
  m.start()
  assert m.stop() is None


def test_an_experiment_records_rapl_energy_and_its_co2e(tmp_path, monkeypatch):
  monkeypatch.setenv(carbon.METADATA_ENV, "off")
  zone = _zone(tmp_path, "intel-rapl:0", 0)

  class Meter(RaplMeter):
    def stop(self):
      zone.joinpath("energy_uj").write_text(f"{3_600_000_000_000}\n")  # 3.6e6 J = 1 kWh
      return super().stop()

  path = tmp_path / "e.sqlite"
  step = track(jax.jit(lambda x: x + 1.0), examples="x")
  with Experiment("rapl", ledger=path, region="FR",
                  measure_energy=lambda: Meter(str(tmp_path))) as exp, exp.trial():
    step(jnp.ones(4))
  with Ledger(path, readonly=True) as led:
    tag = led.price_tag("rapl")
  assert tag.energy() == (pytest.approx(3.6e6), "measured (RAPL)")
  grams, label = tag.co2e()
  assert grams == pytest.approx(44 * 1.56)  # 1 kWh x France 2024 x industry PUE
  assert label.startswith("measured (RAPL) energy x FR")


def test_zeus_meter_uses_a_measurement_window(monkeypatch):
  import sys
  import types

  from jaxgreen._src.account.energy import ZeusMeter

  calls = []

  class Monitor:  # Zeus's ZeusMonitor, as its docs describe it
    def begin_window(self, key):
      calls.append(("begin", key))

    def end_window(self, key):
      calls.append(("end", key))
      return types.SimpleNamespace(total_energy=42.5, time=1.0)

  zeus = types.ModuleType("zeus")
  monitor = types.ModuleType("zeus.monitor")
  monitor.ZeusMonitor = Monitor
  monkeypatch.setitem(sys.modules, "zeus", zeus)
  monkeypatch.setitem(sys.modules, "zeus.monitor", monitor)
  m = ZeusMeter()
  assert m.available and m.name == "Zeus"
  m.start()
  assert m.stop() == 42.5 and calls == [("begin", "jaxgreen-trial"), ("end", "jaxgreen-trial")]
  assert m.stop() is None  # one window per start


def test_zeus_meter_is_inert_without_zeus(monkeypatch):
  import sys

  from jaxgreen._src.account.energy import ZeusMeter

  monkeypatch.setitem(sys.modules, "zeus.monitor", None)  # import fails
  m = ZeusMeter()
  m.start()
  assert not m.available and m.stop() is None
