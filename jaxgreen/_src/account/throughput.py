"""Achieved FPO/s per device and MFU of tracked steps, from the exact count.

``@jaxgreen.track`` stamps each call with :data:`clock` after the step returns, without
waiting for the device: in steady state dispatch is paced by the device (the host
blocks once the device's queue is full), so the time between two consecutive calls is
the time of one step. The first call of each input signature is left out (it traces
and compiles), and so is the first call of a tracker or a trial (no interval ends
there). What lies between two calls (data loading, logging) is part of the interval,
as in MaxText's per-step TFLOP/s/device line. ``track(sync_every=N)`` waits for the
device every N steps, so the rate is exact at those points, not only in steady state.

MFU and HFU as PaLM defines them (Chowdhery et al. 2022, appendix B): HFU (hardware
FLOPs utilisation) is the FPO/s per device of the program as run, rematerialisation
included (what jaxgreen counts), over the chip's published dense peak for a dtype
(:mod:`jaxgreen.chips`); MFU (model FLOPs utilisation) is the same for the model FPO,
the program as if nothing were rematerialised (:mod:`jaxgreen._src.account.remat`), so
``HFU / MFU`` is the step's recompute ratio. Without a published peak (a CPU, an
unknown chip) both are unavailable, never guessed; ``track(chip="h100")`` or
``track(peak=989e12)`` names it.

Example:
  >>> t = Throughput(steps=10, seconds=0.5, fpo=10 * 2_000_000, fpo_per_device=10 * 1e6,
  ...                chip="h100", dtype="bf16", peak=1e9, model_fpo=10 * 1_500_000,
  ...                model_fpo_per_device=10 * 0.75e6)
  >>> t.fpo_per_s_per_device, t.hfu, t.mfu  # 1e7 / 0.5 s; 2e7 / 1e9; 1.5e7 / 1e9
  (20000000.0, 0.02, 0.015)
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping
from typing import Any

import jax

from jaxgreen import chips
from jaxgreen._src.account.pricetag import PriceTag
from jaxgreen._src.report import human

# The clock of tracked calls (seconds); tests replace it with a fake one.
clock = time.perf_counter


@dataclasses.dataclass(frozen=True)
class Throughput:
  """Achieved throughput over the timed steps (first call of each signature excluded).

  Attributes:
    steps: timed steps.
    seconds: their wall time (the sum of the intervals between calls).
    fpo: their FPO, all devices together (exact integer).
    fpo_per_device: Σ over timed steps of FPO / devices the step ran on.
    chip: the chip whose peak is the reference, or None.
    dtype: the dtype of that peak (``"bf16"``, ``"fp32"``...).
    peak: dense peak FLOP/s of one device, or None (then MFU is unavailable).
    peak_source: where the peak comes from, or why there is none.
    model_fpo: the timed steps' model FPO (nothing rematerialised), all devices; None
      when not known (a ledger of schema 3): then MFU is taken equal to HFU, and
      :attr:`model_known` says so.
    model_fpo_per_device: Σ over timed steps of model FPO / devices, or None.
  """

  steps: int
  seconds: float
  fpo: int
  fpo_per_device: float
  chip: str | None = None
  dtype: str = "bf16"
  peak: float | None = None
  peak_source: str = "unavailable: no chip named"
  model_fpo: int | None = None
  model_fpo_per_device: float | None = None

  @property
  def model_known(self) -> bool:
    """False when the model FPO was not recorded (MFU is then HFU)."""
    return self.model_fpo_per_device is not None

  @property
  def fpo_per_s(self) -> float | None:
    """FPO/s of all devices together; None before any timed step."""
    return self.fpo / self.seconds if self.seconds > 0 else None

  @property
  def fpo_per_s_per_device(self) -> float | None:
    """FPO/s per device; None before any timed step."""
    return self.fpo_per_device / self.seconds if self.seconds > 0 else None

  @property
  def model_fpo_per_s_per_device(self) -> float | None:
    """Model FPO/s per device (as HFU's rate when the model FPO is not known)."""
    if self.seconds <= 0:
      return None
    per_device = self.fpo_per_device if self.model_fpo_per_device is None else \
        self.model_fpo_per_device
    return per_device / self.seconds

  @property
  def hfu(self) -> float | None:
    """Hardware FLOPs utilisation: FPO/s per device as run (recompute included) over
    the peak; None without a peak or a timed step."""
    rate = self.fpo_per_s_per_device
    return rate / self.peak if rate is not None and self.peak else None

  @property
  def mfu(self) -> float | None:
    """Model FLOPs utilisation: model FPO/s per device (nothing rematerialised) over
    the peak; None without a peak or a timed step."""
    rate = self.model_fpo_per_s_per_device
    return rate / self.peak if rate is not None and self.peak else None

  def _model(self) -> tuple[int, float]:
    if self.model_fpo is None or self.model_fpo_per_device is None:
      return self.fpo, self.fpo_per_device
    return self.model_fpo, self.model_fpo_per_device

  def _combine(self, earlier: Throughput, sign: int) -> Throughput:
    mine, theirs = self._model(), earlier._model()
    known = self.model_known and earlier.model_known
    return dataclasses.replace(
        self, steps=self.steps + sign * earlier.steps,
        seconds=self.seconds + sign * earlier.seconds, fpo=self.fpo + sign * earlier.fpo,
        fpo_per_device=self.fpo_per_device + sign * earlier.fpo_per_device,
        model_fpo=mine[0] + sign * theirs[0] if known else None,
        model_fpo_per_device=mine[1] + sign * theirs[1] if known else None)

  def minus(self, earlier: Throughput) -> Throughput:
    """The throughput of the steps since ``earlier`` (a snapshot of the same tracker)."""
    return self._combine(earlier, -1)

  def plus(self, earlier: Throughput) -> Throughput:
    """This throughput and that of ``earlier`` steps together (a resumed trial's
    segments); the peak is this one's."""
    return self._combine(earlier, 1)

  def line(self) -> str:
    """One line: timed steps, FPO/s per device, MFU and HFU."""
    return (f"{self.steps:,} timed steps, {rate_text(self.fpo_per_s_per_device)}/device, "
            f"MFU {mfu_text(self.mfu, self)}, HFU {mfu_text(self.hfu, None)}")

  def _repr_pretty_(self, p: Any, cycle: bool) -> None:
    p.text(repr(self) if cycle else self.line())

  def _repr_html_(self) -> str:
    """The notebook view: a small table of the timed steps, the rates and MFU."""
    from jaxgreen._src import _html
    from jaxgreen._src.report import number

    rows = [["timed steps", f"{self.steps:,}"], ["wall time", f"{self.seconds:.4g} s"],
            ["FPO (all devices)", number(self.fpo)],
            ["FPO/s (all devices)", rate_text(self.fpo_per_s)],
            ["FPO/s per device", rate_text(self.fpo_per_s_per_device)],
            ["MFU", mfu_text(self.mfu, self)]]
    if self.peak is not None:
      rows.append(["peak / device", f"{self.peak:.4g} FLOP/s ({self.peak_source})"])
    return _html.fragment(_html.table(["", "value"], rows, "ll"), title="Throughput")

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self) | {
        "fpo_per_s": self.fpo_per_s, "fpo_per_s_per_device": self.fpo_per_s_per_device,
        "model_fpo_per_s_per_device": self.model_fpo_per_s_per_device, "mfu": self.mfu,
        "hfu": self.hfu, "model_known": self.model_known}


class StepTimer:
  """Step timing, kept once for a tracker (its function's calls) and for a trial (all its
  tracked steps): each step is timed from the end of the previous one to its own end.

  Not thread-safe: its owner calls it under its own lock.
  """

  __slots__ = ("last", "timed")

  def __init__(self) -> None:
    self.last: float | None = None  # the clock at the previous step's end
    # The running totals of timed steps: steps, seconds, FPO, FPO per device, model FPO,
    # model FPO per device (:func:`from_timed`).
    self.timed: list[Any] = [0, 0.0, 0, 0.0, 0, 0.0]

  def step(self, now: float, warm: bool, entry: Any) -> bool:
    """A step of ``entry`` (its FPO and model FPO, and per device) ended at ``now``;
    True if it was timed: not the first step, nor one that compiled (``warm`` False)."""
    timed = warm and self.last is not None
    if timed:
      t = self.timed
      t[0] += 1
      t[1] += now - self.last  # type: ignore[operator]
      t[2] += entry.fpo
      t[3] += entry.fpo_per_device
      t[4] += entry.model_fpo
      t[5] += entry.model_fpo_per_device
    self.last = now
    return timed

  def snapshot(self) -> list[Any]:
    """A copy of the running totals, for :func:`from_timed`."""
    return list(self.timed)


def from_timed(timed: list[Any], chip: str | None, dtype: str, peak: float | None,
               source: str) -> Throughput:
  """The :class:`Throughput` of running totals (:class:`StepTimer`)."""
  steps, seconds, fpo, per_device, model, model_per_device = timed
  return Throughput(int(steps), seconds, int(fpo), per_device, chip, dtype, peak, source,
                    int(model), model_per_device)


def rate_text(rate: float | None) -> str:
  return "- FPO/s" if rate is None else human(rate, "FPO/s")


def mfu_text(mfu: float | None, t: Throughput | None = None) -> str:
  if mfu is not None:
    ref = f" of {t.chip or 'the given'} {t.dtype} peak" if t is not None else ""
    return f"{100 * mfu:.3g} %{ref}"
  if t is not None and t.peak is None:
    return t.peak_source
  return "-"


def resolve_peak(chip: str | None, peak: float | None, dtype: str
                 ) -> tuple[str | None, float | None, str]:
  """(chip name, peak FLOP/s per device or None, source) for ``track``'s options.

  A given ``peak`` wins; else a given ``chip``'s published peak for ``dtype``; else the
  chip of this process's first device. A chip without a published peak for ``dtype``
  gives None (MFU unavailable), never another dtype's peak.
  """
  if peak is not None:
    return chip, float(peak), "given: track(peak=...)"
  name = chip
  if name is None:
    kind = jax.devices()[0].device_kind
    name = chips.chip_of_device_kind(kind)
    if name is None:
      return None, None, (f"unavailable: no published peak for device kind {kind!r}; "
                          f"name one with track(chip=...) or track(peak=FLOP/s)")
  c = chips.get_chip(name)
  value = c.peak(dtype)
  if value is None:
    return c.name, None, (f"unavailable: no published {dtype} peak for {c.name}; pass "
                          f"track(dtype=...) with a published one, or track(peak=FLOP/s)")
  return c.name, value, f"{c.name} {dtype} peak: {c.sources.get('peak_flops', '?')}"


def check_options(chip: str | None, peak: float | None, dtype: str,
                  sync_every: int | None, log_every: int | None) -> None:
  """Rejects bad throughput options of ``track`` when it is applied."""
  if chip is not None:
    try:
      chips.get_chip(chip)
    except KeyError:
      raise ValueError(f"track(chip={chip!r}): no published figures for this chip; known "
                       f"chips: {', '.join(chips.CHIPS)}; or give track(peak=FLOP/s)") from None
  if peak is not None and (isinstance(peak, bool) or not isinstance(peak, int | float)
                           or not math.isfinite(peak) or not peak > 0):
    raise ValueError(f"track(peak={peak!r}) must be a dense peak in FLOP/s per device > 0, "
                     f"e.g. 989e12")
  if chips._dtype_key(dtype) not in chips.DTYPES:
    raise ValueError(f"track(dtype={dtype!r}): use one of {', '.join(chips.DTYPES)}")
  for arg, n in (("sync_every", sync_every), ("log_every", log_every)):
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
      raise ValueError(f"track({arg}={n!r}) must be an int >= 1, or None (the default)")


def devices_of(leaves: list[Any]) -> int:
  """The number of devices a step runs on: the most devices any array argument spans."""
  n = 1
  for x in leaves:
    if isinstance(x, jax.Array):
      try:
        n = max(n, len(x.sharding.device_set))
      except Exception:  # a deleted (donated) array or an abstract value: no sharding
        pass
  return n


def with_throughput(tag: PriceTag, measured: Mapping[str, Throughput | None]) -> PriceTag:
  """``tag`` with the FPO/s per device and MFU of the trials measured here (by id)."""
  trials = []
  for c in tag.trials:
    tp = measured.get(c.id)
    if tp is not None and tp.steps:
      ref = (tp.peak_source if tp.peak is None else
             f"{tp.chip or 'given'} {tp.dtype} peak {tp.peak:.4g} FLOP/s")
      c = dataclasses.replace(c, fpo_per_s_per_device=tp.fpo_per_s_per_device, mfu=tp.mfu,
                              hfu=tp.hfu, mfu_reference=ref,
                              model_fpo_known=tp.model_known)
    trials.append(c)
  return dataclasses.replace(tag, trials=tuple(trials))
