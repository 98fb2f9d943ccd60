"""The price tag before training: hours, kWh, CO2e and dollars per target and region.

For a step function, a number of steps and some targets (``"tpu:v5e:2x2"``,
``"gpu:h100x4"``), the step is compiled for each target without the hardware
(:func:`jaxgreen._src.comparison.compare`) and its roofline time estimated from the
compiled program's exact per-device FPO, bytes and collectives
(:func:`jaxgreen.chips.roofline`). Then, per target and region, all **estimates**::

  hours = steps x step time / utilization / 3600
  kWh   = TDP x devices x hours / 1000            (board power for the whole time)
  CO2e  = kWh x grid gCO2e/kWh x PUE              (jaxgreen._src.account.carbon)
  $     = devices x hours x on-demand $/chip-hour (jaxgreen.chips.PRICES)

``utilization`` is the share of the roofline the run is assumed to reach (1.0: the
roofline itself, a lower bound on time; a well-tuned run reaches roughly 0.4-0.6 of
it). A chip without a published TDP or price gives that figure "unavailable", with
the fix (``tdp_watts={"v5e": W}``, ``usd_per_chip_hour={"v5e": $}``), never a guess.

Example:
  >>> from jaxgreen import chips
  >>> class Result:  # what compare() gives per target
  ...   target, roofline = "gpu:h100x4", chips.roofline("h100", flops=989e12, hbm_bytes=0)
  ...   class pod: devices = 4
  >>> f = from_comparison([Result()], steps=3600, regions=["FR"])
  >>> r = f.rows[0]
  >>> r.hours, r.kwh  # 3600 steps x 1 s; 700 W x 4 x 1 h
  (1.0, 2.8)
  >>> round(r.co2e_kg, 4), round(r.usd, 2)  # 2.8 kWh x 44 g/kWh x 1.56; 4 x $88.49 / 8
  (0.1922, 44.24)
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from jaxgreen import chips
from jaxgreen._src.account.carbon import lookup
from jaxgreen._src.report import markdown_table, table

ESTIMATE = ("estimate: roofline time of the deviceless compile / utilization; energy at "
            "TDP for that time; list prices on demand")


@dataclasses.dataclass(frozen=True)
class ForecastRow:
  """One target in one region (every figure an estimate; None: unavailable)."""

  target: str
  chip: str
  devices: int
  region: str
  steps: int
  step_s: float | None
  hours: float | None
  kwh: float | None
  co2e_kg: float | None
  usd: float | None
  energy_source: str
  carbon_source: str
  price_source: str
  notes: tuple[str, ...] = ()

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Forecast:
  """The price tag before training: one :class:`ForecastRow` per target and region."""

  name: str
  steps: int
  utilization: float
  rows: tuple[ForecastRow, ...]
  unavailable: tuple[str, ...] = ()  # targets that could not be compiled, and why

  def row(self, target: str, region: str | None = None) -> ForecastRow:
    for r in self.rows:
      if r.target == target and (region is None or r.region == region):
        return r
    raise KeyError(f"no forecast for target {target!r} in region {region!r}; have "
                   f"{sorted({(r.target, r.region) for r in self.rows})}")

  def _table(self) -> tuple[list[str], list[list[str]]]:
    headers = ["target", "region", "step (s)", "hours", "kWh", "CO2e (kg)", "cost ($)"]
    rows = [[r.target, r.region, _f(r.step_s), _f(r.hours), _f(r.kwh), _f(r.co2e_kg),
             "-" if r.usd is None else f"{r.usd:,.2f}"] for r in self.rows]
    return headers, rows

  def _notes(self) -> list[str]:
    out = [f"{self.steps:,} steps, utilization {self.utilization:g} of the roofline; "
           f"{ESTIMATE}"]
    seen: list[str] = []
    for r in self.rows:
      for n in (f"{r.chip} energy: {r.energy_source}", f"{r.chip} price: {r.price_source}",
                r.carbon_source, *r.notes):
        if n not in seen:
          seen.append(n)
    return out + seen + [f"not compiled: {u}" for u in self.unavailable]

  def table(self) -> str:
    headers, rows = self._table()
    return "\n".join([f"Forecast (estimate): {self.name}", "",
                      table(headers, rows, "ll" + "r" * 5), "", *self._notes()])

  def markdown(self) -> str:
    headers, rows = self._table()
    return "\n".join([f"## Forecast (estimate): {self.name}", "",
                      markdown_table(headers, rows, "ll" + "r" * 5), "",
                      *[f"- {n}" for n in self._notes()]])

  def to_dict(self) -> dict[str, Any]:
    return {"name": self.name, "steps": self.steps, "utilization": self.utilization,
            "label": ESTIMATE, "rows": [r.to_dict() for r in self.rows],
            "unavailable": list(self.unavailable)}

  def to_json(self, **kw: Any) -> str:
    return json.dumps(self.to_dict(), **kw)


def _f(x: float | None) -> str:
  if x is None:
    return "unavailable"
  return f"{x:,.3g}" if abs(x) < 1000 else f"{x:,.0f}"


def _check(steps: Any, utilization: Any, regions: Sequence[str]) -> None:
  if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
    raise ValueError(f"forecast(steps={steps!r}) must be an int >= 1 (training steps)")
  if (isinstance(utilization, bool) or not isinstance(utilization, int | float)
      or not 0 < utilization <= 1):
    raise ValueError(f"forecast(utilization={utilization!r}) must be in (0, 1]: the share "
                     f"of the roofline the run reaches, e.g. 0.5")
  if isinstance(regions, str) or not regions:
    raise ValueError(f"forecast(regions={regions!r}) must be a list of regions, e.g. "
                     f"['gcp:us-central1', 'aws:us-east-1']")


def _energy(chip: chips.Chip, watts: Mapping[str, float], devices: int,
            hours: float | None) -> tuple[float | None, str]:
  w = watts.get(chip.name, chip.tdp_watts)
  src = "given" if chip.name in watts else chip.sources.get("tdp_watts", "?")
  if w is None:
    return None, (f"unavailable: no published TDP for {chip.name}; give "
                  f"tdp_watts={{{chip.name!r}: W}}")
  if hours is None:
    return None, "unavailable: no step time"
  return w * devices * hours / 1000, f"TDP {w:g} W x devices x hours ({src})"


def _cost(chip: chips.Chip, given: Mapping[str, float], devices: int,
          hours: float | None) -> tuple[float | None, str]:
  if chip.name in given:
    rate, src = given[chip.name], "given"
  elif chip.name in chips.PRICES:
    p = chips.PRICES[chip.name]
    rate, src = p.usd_per_chip_hour, f"${p.usd_per_chip_hour:.4g}/chip-hour, {p.offer} " \
                                    f"({p.source}, {p.date})"
  else:
    return None, (f"unavailable: no published price for {chip.name} in jaxgreen.chips; "
                  f"give usd_per_chip_hour={{{chip.name!r}: $}}")
  return (None if hours is None else rate * devices * hours), src


def _row(r: Any, region: str, steps: int, utilization: float,
         watts: Mapping[str, float], prices: Mapping[str, float]) -> ForecastRow:
  roof = r.roofline
  chip = chips.get_chip(roof.chip)
  devices = int(r.pod.devices)
  step_s = None if roof.step_s is None else roof.step_s / utilization
  hours = None if step_s is None else steps * step_s / 3600
  kwh, e_src = _energy(chip, watts, devices, hours)
  carbon = lookup(region)
  grams = carbon.co2e_g(None if kwh is None else kwh * 3.6e6)
  usd, p_src = _cost(chip, prices, devices, hours)
  return ForecastRow(r.target, chip.name, devices, carbon.region or region, steps, step_s,
                     hours, kwh, None if grams is None else grams / 1000, usd, e_src,
                     carbon.label(), p_src, tuple(roof.notes))


def from_comparison(results: Any, steps: int, regions: Sequence[str] = ("gcp:us-central1",),
                    *, utilization: float = 1.0, tdp_watts: Mapping[str, float] | None = None,
                    usd_per_chip_hour: Mapping[str, float] | None = None,
                    name: str = "") -> Forecast:
  """The :class:`Forecast` of an existing :class:`~jaxgreen._src.comparison.Comparison` (or
  its results); see :func:`forecast` for the arguments."""
  _check(steps, utilization, regions)
  rows, unavailable = [], list(getattr(results, "unavailable", ()) or ())
  for r in results:
    if r.roofline is None:
      unavailable.append(f"{r.target}: no chip figures for a roofline")
      continue
    rows += [_row(r, g, steps, float(utilization), dict(tdp_watts or {}),
                  dict(usd_per_chip_hour or {})) for g in regions]
  return Forecast(name or getattr(results, "name", ""), steps, float(utilization),
                  tuple(rows), tuple(str(u) for u in unavailable))


def forecast(fn: Callable, targets: Sequence[str] = ("tpu:v5e:2x2", "gpu:h100x4"), *,
             steps: int, regions: Sequence[str] = ("gcp:us-central1",),
             utilization: float = 1.0, tdp_watts: Mapping[str, float] | None = None,
             usd_per_chip_hour: Mapping[str, float] | None = None, name: str = "",
             **compare_options: Any) -> Callable[..., Forecast]:
  """Forecasts a training run before it runs: hours, kWh, CO2e and $ per target and region.

  Args:
    fn: one training step (plain or ``jax.jit``-ed).
    targets: where it could run, e.g. ``["tpu:v5e:2x2", "gpu:h100x4"]``.
    steps: training steps planned.
    regions: where, for CO2e (see :mod:`jaxgreen._src.account.carbon`).
    utilization: the share of the roofline the run is assumed to reach, in (0, 1].
    tdp_watts: chip name -> board power, for chips without a published TDP.
    usd_per_chip_hour: chip name -> price, overriding or adding to
      :data:`jaxgreen.chips.PRICES`.
    name: a title.
    **compare_options: passed to :func:`jaxgreen._src.comparison.compare` (``mesh_axes``,
      ``in_specs``, ``static_argnums``, ``dtype``...).

  Returns:
    A function of ``fn``'s arguments (arrays or ``jax.ShapeDtypeStruct``) returning a
    :class:`Forecast`.
  """
  from jaxgreen._src.comparison import compare

  _check(steps, utilization, regions)
  for g in regions:
    lookup(g)  # a malformed region fails now, before any compile
  run = compare(fn, targets, name=name or getattr(fn, "__name__", ""), progress=False,
                **compare_options)

  def go(*args: Any) -> Forecast:
    return from_comparison(run(*args), steps, regions, utilization=utilization,
                           tdp_watts=tdp_watts, usd_per_chip_hour=usd_per_chip_hour,
                           name=name)

  return go


__all__ = ["Forecast", "ForecastRow", "forecast", "from_comparison"]
