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

A trial reads its energy through a :class:`Meter`: :class:`NvmlMeter` (the default)
or :class:`RaplMeter`, the CPU's own counters (Intel/AMD RAPL through Linux's powercap
files), or :class:`ZeusMeter` (Zeus, where installed: NVIDIA and AMD GPUs and CPUs),
chosen with ``Experiment(measure_energy=RaplMeter)``; the label names the meter.
A TPU has no energy counter jaxgreen can read: its energy is the estimate FPO × TDP /
peak, which is TDP × time × utilisation (utilisation = FPO / (peak × time)),
labelled an estimate, and unavailable for a TPU whose TDP Google does not publish.

**Multi-host** (``jax.distributed``, one ledger writer): every host measures its own
GPUs, so at each trial's end every process publishes its joules in the distributed
runtime's key-value store and process 0 records their sum (:func:`gather_energy`),
labelled with how many hosts measured (``"NVML, 2 of 2 hosts"``); a host that did not
measure, or did not report within :data:`GATHER_TIMEOUT_S`, is named in the label,
never left out silently. No device collective is used: a dead host costs the writer
at most that wait, and hangs no one.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
from collections import defaultdict
from typing import Any, Protocol

from jaxgreen import chips
from jaxgreen._src._compat import distributed_client

#: Seconds process 0 waits, at a trial's end, for the other hosts' energy (all hosts
#: together). Hosts end a trial within moments of each other (the same SPMD steps), so
#: only a dead or stalled host makes it wait this long; its energy is then left out of
#: the sum, and the label says so.
GATHER_TIMEOUT_S = 5.0


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
  """What an energy figure needs of a trial (a :class:`~jaxgreen.TrialCost`)."""

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
  """(joules, label) of a :class:`~jaxgreen.TrialCost`.

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


class RaplMeter:
  """Reads the CPU's RAPL energy counters (Linux powercap: ``energy_uj`` of each
  top-level ``intel-rapl:N`` zone, the packages; AMD exposes the same files).

  Counters wrap at ``max_energy_range_uj``; one wrap per zone between start and stop is
  accounted for (a package at 200 W wraps every ~20 minutes at the usual 2^32 µJ
  range, so read at least that often for long trials). Inert (``available`` False)
  where the files are missing or unreadable (non-root on recent kernels).

  Args:
    root: the powercap directory (tests point it at a fake one).
  """

  name = "RAPL"

  def __init__(self, root: str = "/sys/class/powercap") -> None:
    import glob
    import os

    self._zones: list[tuple[str, int]] = []
    for d in sorted(glob.glob(os.path.join(root, "intel-rapl:*"))):
      if os.path.basename(d).count(":") != 1:  # a subzone (core, dram) of a package
        continue
      try:
        with open(os.path.join(d, "max_energy_range_uj")) as f:
          wrap = int(f.read())
        self._read_zone(d)
      except (OSError, ValueError):
        continue
      self._zones.append((d, wrap))
    self._start: list[int] | None = None

  @staticmethod
  def _read_zone(d: str) -> int:
    with open(f"{d}/energy_uj") as f:
      return int(f.read())

  @property
  def available(self) -> bool:
    return bool(self._zones)

  def _read(self) -> list[int] | None:
    try:
      return [self._read_zone(d) for d, _ in self._zones]
    except (OSError, ValueError):
      return None

  def start(self) -> None:
    self._start = self._read() if self._zones else None

  def stop(self) -> float | None:
    start, end = self._start, self._read() if self._start is not None else None
    if start is None or end is None:
      return None
    used = sum(b - a if b >= a else b + wrap - a
               for a, b, (_, wrap) in zip(start, end, self._zones, strict=True))
    return used / 1e6  # µJ -> J


class ZeusMeter:
  """Energy from Zeus (``pip install zeus``), where it is installed: its
  ``ZeusMonitor`` measures NVIDIA and AMD GPUs and the CPU (RAPL) together, over a
  measurement window from :meth:`start` to :meth:`stop` (``total_energy``, joules).
  Inert without Zeus or a device it can measure.
  """

  name = "Zeus"
  _WINDOW = "jaxgreen-trial"

  def __init__(self) -> None:
    self._monitor: Any = None
    try:
      from zeus.monitor import ZeusMonitor  # an optional library, not an extra

      self._monitor = ZeusMonitor()
    except Exception:  # not installed, or nothing to measure here
      self._monitor = None
    self._open = False

  @property
  def available(self) -> bool:
    return self._monitor is not None

  def start(self) -> None:
    if self._monitor is not None:
      try:
        self._monitor.begin_window(self._WINDOW)
        self._open = True
      except Exception:
        self._open = False

  def stop(self) -> float | None:
    if not self._open:
      return None
    self._open = False
    try:
      return float(self._monitor.end_window(self._WINDOW).total_energy)
    except Exception:
      return None


class NvmlMeter:
  """Reads NVML's total-energy counters of all of this host's GPUs; inert without NVML.

  ``start()`` then ``stop()`` returns joules used in between, or None when NVML (the
  ``nvidia-ml-py`` package, a driver, or a GPU with the counter) is missing.
  """

  name = "NVML"

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


_ORDINALS: defaultdict[str, itertools.count] = defaultdict(lambda: itertools.count(1))
_ORDINALS_LOCK = threading.Lock()


def trial_key(experiment: str) -> str:
  """The key-value store prefix of the next trial started in ``experiment`` here.

  Trial ids are random per process; what every host shares is the experiment's name
  and the order in which its trials start (the same SPMD program runs everywhere), so
  the n-th trial of an experiment gets ``jaxgreen/energy/<experiment>/<n>`` on every
  host, counting the trials of every ``Experiment`` object of that name.

  Example:
    >>> trial_key("doc-keys"), trial_key("doc-keys")
    ('jaxgreen/energy/doc-keys/1', 'jaxgreen/energy/doc-keys/2')
  """
  with _ORDINALS_LOCK:
    n = next(_ORDINALS[experiment])
  return f"jaxgreen/energy/{experiment}/{n}"


def _hosts(ps: list[int]) -> str:
  return ("host " if len(ps) == 1 else "hosts ") + ", ".join(map(str, ps))


def gather_energy(joules: float | None, key: str, process_index: int, process_count: int,
                  *, client: Any = None, timeout: float = GATHER_TIMEOUT_S
                  ) -> tuple[float | None, str | None]:
  """(joules, source) of one trial over all hosts, as the ledger records them.

  Every process but 0 publishes its own joules (None when it measured nothing) under
  ``f"{key}/{process_index}"`` and returns them, labelled as its host's only. Process
  0 waits at most ``timeout`` seconds in all for the others, and returns the sum of
  what was measured, with a label naming how many hosts measured and which did not
  (not measured, or no report in time). (None, None) when no host measured anything.

  Args:
    joules: this host's measurement of the trial, or None.
    key: the trial's key prefix, the same on every host (:func:`trial_key`).
    process_index, process_count: ``jax.process_index()``, ``jax.process_count()``.
    client: the distributed runtime's client (default: ``jax.distributed``'s).
    timeout: seconds process 0 waits for all other hosts together.

  Example:
    >>> gather_energy(12.5, "k", 0, 1)  # one host: nothing to gather
    (12.5, 'NVML')
  """
  if process_count <= 1:
    return joules, None if joules is None else "NVML"
  client = distributed_client() if client is None else client
  if client is None:
    return joules, None if joules is None else (
        f"NVML, host {process_index} only of {process_count}: the other hosts' energy "
        f"could not be gathered (jax.distributed's key-value store is unavailable)")
  if process_index != 0:
    with contextlib.suppress(Exception):  # a failed publish shows in process 0's label
      client.key_value_set(f"{key}/{process_index}", json.dumps(joules))
    return joules, None if joules is None else f"NVML, host {process_index} only"
  measured = {0: joules} if joules is not None else {}
  unmeasured: list[int] = [] if joules is not None else [0]
  silent: list[int] = []
  deadline = time.monotonic() + timeout
  for p in range(1, process_count):
    value = _get(client, f"{key}/{p}", deadline)
    if isinstance(value, float):
      measured[p] = value
    else:
      (unmeasured if value is None else silent).append(p)
  if not measured:
    return None, None
  source = f"NVML, {len(measured)} of {process_count} hosts"
  if unmeasured:
    source += f"; not measured on {_hosts(unmeasured)}"
  if silent:
    source += f"; no report within {timeout:g} s from {_hosts(silent)}"
  return sum(measured.values()), source


def _get(client: Any, key: str, deadline: float) -> float | None | bool:
  """A host's published joules (None: it measured nothing; False: no valid report)."""
  left_ms = max(1, int((deadline - time.monotonic()) * 1000))
  try:
    value = json.loads(client.blocking_key_value_get(key, left_ms))
  except Exception:  # timed out, the service is gone, or garbled
    return False
  with contextlib.suppress(Exception):
    client.key_value_delete(key)
  if value is None:
    return None
  return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else False
