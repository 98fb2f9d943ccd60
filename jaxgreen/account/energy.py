"""Energy, always labelled: measured by NVML where available, otherwise an estimate.

Energy is hardware dependent (Green AI, "Electricity usage"), so it is reported next
to FPO, never added to it or converted from it silently. Two sources:

* **measured**: NVIDIA's NVML total-energy counter (``nvmlDeviceGetTotalEnergyConsumption``,
  millijoules since the driver loaded; Volta and newer), read at trial start and end
  over every GPU NVML enumerates on this host (NVML ignores ``CUDA_VISIBLE_DEVICES``,
  and other hosts' GPUs are not read). Needs the ``[energy]`` extra (``nvidia-ml-py``).
* **estimate**: FPO × joules per FLOP, where joules per FLOP is the chip's board power
  divided by its peak dense throughput (public figures from :mod:`jaxgreen.chips`).
  That is the energy at 100 % utilisation: real runs use more per FLOP, so the
  estimate is a lower bound.

A trial reads its energy through a :class:`Meter`; :class:`NvmlMeter` is the one
shipped.
"""

from __future__ import annotations

import contextlib
from typing import Any, Protocol

from jaxgreen import chips


class Meter(Protocol):
  """Measures the energy used between :meth:`start` and :meth:`stop`."""

  @property
  def available(self) -> bool:
    """False when nothing can be measured here (then the energy is estimated)."""
    ...

  def start(self) -> None: ...

  def stop(self) -> float | None:
    """Joules used since :meth:`start`, or None when the reading failed."""
    ...


class Priced(Protocol):
  """What an energy figure needs of a trial (a :class:`~jaxgreen.account.pricetag.TrialCost`)."""

  @property
  def energy_j(self) -> float | None: ...

  @property
  def energy_source(self) -> str | None: ...

  @property
  def device_kind(self) -> str: ...

  @property
  def fpo(self) -> int: ...


def joules_per_flop(device_kind: str) -> tuple[float | None, str]:
  """(J/FLOP, chip) for a ``jax.Device.device_kind``; (None, reason) when unknown.

  J/FLOP = board power (TDP) / dense bf16 (else fp16) peak FLOP/s, from
  :mod:`jaxgreen.chips`; e.g. H100: 700 W / 989e12 FLOP/s ≈ 7.1e-13 J/FLOP.

  Example:
    >>> jpf, chip = joules_per_flop("NVIDIA H100 80GB HBM3")
    >>> f"{jpf:.2g} J/FLOP, {chip}"
    '7.1e-13 J/FLOP, h100 TDP/peak'
  """
  name = chips.chip_of_device_kind(device_kind)
  if name is not None and name in chips.CHIPS:
    chip = chips.CHIPS[name]
    peak = chip.peak("bf16") or chip.peak("fp16")
    if not chip.tdp_watts or not peak:
      return None, f"no published power or peak for {name} in jaxgreen.chips"
    return chip.tdp_watts / peak, f"{name} TDP/peak"
  return None, f"no J/FLOP figure for device kind {device_kind!r}"


def trial_energy(trial: Priced, jpf: float | None = None) -> tuple[float | None, str]:
  """(joules, label) of a :class:`~jaxgreen.account.pricetag.TrialCost`.

  A measured value wins; otherwise FPO × ``jpf`` (or the chip table's figure),
  labelled ``"estimate"``; ``(None, "unavailable ...")`` when neither is known.
  """
  if trial.energy_j is not None:
    return float(trial.energy_j), f"measured ({trial.energy_source or 'NVML'})"
  source = "given"
  if jpf is None:
    jpf, source = joules_per_flop(trial.device_kind)
    if jpf is None:
      return None, f"unavailable: {source}; pass joules_per_flop"
  return trial.fpo * jpf, f"estimate, {jpf:.3g} J/FLOP, {source}"


class NvmlMeter:
  """Reads NVML's total-energy counters of all of this host's GPUs; inert without NVML.

  ``start()`` then ``stop()`` returns joules used in between, or None when NVML (the
  ``nvidia-ml-py`` package, a driver, or a GPU with the counter) is missing.
  """

  def __init__(self) -> None:
    self._handles: list[Any] = []
    self._start: list[int] | None = None
    try:
      import pynvml  # from nvidia-ml-py, the [energy] extra

      pynvml.nvmlInit()
    except Exception:  # no package, no driver: energy is then estimated
      return
    self._nvml = pynvml
    try:
      n = pynvml.nvmlDeviceGetCount()
      self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(n)]
    except Exception:  # no usable GPU
      self._handles = []
    if not self._handles:
      with contextlib.suppress(Exception):
        pynvml.nvmlShutdown()

  @property
  def available(self) -> bool:
    return bool(self._handles)

  def _read(self) -> list[int] | None:
    try:
      return [self._nvml.nvmlDeviceGetTotalEnergyConsumption(h) for h in self._handles]
    except Exception:
      return None

  def start(self) -> None:
    self._start = self._read() if self._handles else None

  def stop(self) -> float | None:
    if not self._handles:
      return None
    start = self._start
    end = self._read() if start else None
    # nvmlInit is reference counted: every meter that initialised NVML shuts it down.
    with contextlib.suppress(Exception):
      self._nvml.nvmlShutdown()
    self._handles = []
    if start is None or end is None:
      return None
    used_mj = sum(b - a for a, b in zip(start, end, strict=True))
    return used_mj / 1000.0  # mJ -> J
