"""What only a real GPU can check, in under 5 minutes on one GPU.

  python benchmarks/device_check.py [--steps 100]

1. NVML joules over ``--steps`` tracked steps of a rematerialised MLP train step
   (``Experiment`` with the default NVML meter), and the energy label;
2. the chip found from the device (``jax.devices()[0].device_kind`` -> jaxgreen.chips);
3. MFU and HFU against the measured step time (the tracked steps' own timing, and an
   independently timed loop with ``block_until_ready``): HFU / MFU must equal the
   step's recompute ratio, and the tracked rate must agree with the timed loop;
4. the real GPU compile's FPO vs the deviceless ``gpu:<chip>`` target's (XLA compiles
   both; jaxgreen counts both HLOs): the ratio;
5. the roofline estimate (:func:`jaxgreen.chips.roofline`) vs the measured step time.

Prints one line per check with its figures and ratios; exits 1 when a check fails
(NVML gave no energy on a GPU, the ratio of HFU to MFU is off, the compiled counts differ
by more than 1 %). Every function takes its meter, clock and device kind as arguments,
so ``tests/account/test_device_check.py`` runs the logic with fakes.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class Check:
  name: str
  ok: bool
  line: str


def make_step(width: int = 2048, layers: int = 4, batch: int = 1024, remat: bool = True
              ) -> tuple[Callable, tuple]:
  """A remat MLP train step (SGD) and its arguments: tanh layers, each checkpointed."""

  def layer(x, w):
    return jnp.tanh(x @ w)

  f = jax.checkpoint(layer) if remat else layer

  def loss(ws, x):
    for w in ws:
      x = f(x, w)
    return jnp.mean(x * x)

  @jax.jit
  def step(ws, x):
    value, grads = jax.value_and_grad(loss)(ws, x)
    return [w - 1e-3 * g for w, g in zip(ws, grads, strict=True)], value

  key = jax.random.key(0)
  ws = [jax.random.normal(jax.random.fold_in(key, i), (width, width), jnp.float32) / width
        for i in range(layers)]
  x = jax.random.normal(key, (batch, width), jnp.float32)
  return step, (ws, x)


def chip_check(device_kind: str) -> Check:
  """The chip jaxgreen finds for the device kind, and its published peak."""
  from jaxgreen import chips

  name = chips.chip_of_device_kind(device_kind)
  if name is None:
    return Check("chip", False, f"chip: none found for device kind {device_kind!r}")
  c = chips.get_chip(name)
  return Check("chip", True, f"chip: {device_kind!r} -> {name} (fp32 peak "
                             f"{c.peak('fp32')}, bf16 peak {c.peak('bf16')}, TDP "
                             f"{c.tdp_watts} W)")


def tracked_run(step: Callable, args: tuple, steps: int, meter_factory: Callable[[], Any],
                peak: float | None, chip: str | None) -> dict[str, Any]:
  """Runs ``steps`` tracked calls in a trial measured by ``meter_factory()``; returns
  the trial's joules, energy label, throughput and recompute ratio."""
  from jaxgreen._src.account import Experiment, track

  tracked = track(step, examples=1, peak=peak, chip=None if peak else chip, dtype="fp32")
  exp = Experiment("device-check", ledger=None, measure_energy=meter_factory)
  state = args
  with exp.trial() as trial:
    for _ in range(steps):
      ws, value = tracked(*state)
      state = (ws, state[1])
    jax.block_until_ready(value)
  tag = exp.price_tag()
  exp.close()
  tp = tracked.tracker.throughput()
  (entry,) = tracked.tracker.entries.values()
  joules, label = tag.energy()
  return {"joules": joules, "energy_label": label, "throughput": tp,
          "hardware_fpo": entry.fpo, "model_fpo": entry.model_fpo,
          "trial_energy": trial._energy}


def energy_check(run: dict[str, Any], on_gpu: bool) -> Check:
  j, label = run["joules"], run["energy_label"]
  ok = (not on_gpu) or (j is not None and label.startswith("measured") and j > 0)
  per_step = "-" if j is None else f"{j / max(run['throughput'].steps + 1, 1):.4g} J/step"
  return Check("energy", ok, f"energy: {j} J ({label}); {per_step}")


def timed_loop(step: Callable, args: tuple, steps: int,
               clock: Callable[[], float] = time.perf_counter) -> float:
  """Seconds per step of an untracked loop, synchronised at both ends (compile first)."""
  ws, value = step(*args)
  jax.block_until_ready(value)
  t0 = clock()
  state = args
  for _ in range(steps):
    ws, value = step(*state)
    state = (ws, state[1])
  jax.block_until_ready(value)
  return (clock() - t0) / steps


def utilisation_check(run: dict[str, Any], measured_step_s: float) -> Check:
  """HFU / MFU = hardware / model FPO exactly; the tracked rate vs the timed loop's."""
  tp = run["throughput"]
  ratio = run["hardware_fpo"] / run["model_fpo"]
  ok = tp.mfu is not None and tp.hfu is not None and tp.mfu < tp.hfu and \
      abs(tp.hfu / tp.mfu - ratio) < 1e-9 * ratio
  tracked_s = tp.seconds / tp.steps if tp.steps else float("nan")
  return Check("mfu/hfu", ok,
               f"MFU {tp.mfu} HFU {tp.hfu}; HFU/MFU {tp.hfu / tp.mfu if tp.mfu else None} vs "
               f"recompute ratio {ratio:.6g}; tracked step {tracked_s:.4g} s vs timed loop "
               f"{measured_step_s:.4g} s (ratio {tracked_s / measured_step_s:.3f})")


def compiled_counts(step: Callable, args: tuple, chip: str) -> tuple[int, int]:
  """(FPO of the real device's compiled HLO, FPO of the deviceless gpu:<chip> compile)."""
  from jaxgreen import count
  from jaxgreen._src.hlo import count_hlo_text

  real = count_hlo_text(step.lower(*args).compile().as_text()).cost.fpo
  abstract = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), args)
  deviceless = count(step, stage="compiled", target=f"gpu:{chip}")(*abstract).fpo
  return int(real), int(deviceless)


def counts_check(real: int, deviceless: int) -> Check:
  ok = real > 0 and abs(real - deviceless) <= 0.01 * real
  return Check("compile", ok, f"compiled FPO: real GPU {real:,} vs deviceless "
                              f"{deviceless:,} (ratio {deviceless / real if real else 0:.4f})")


def roofline_check(step: Callable, args: tuple, chip: str, measured_step_s: float) -> Check:
  """The roofline estimate of the deviceless compile vs the measured step time."""
  from jaxgreen._src.comparison import compare

  abstract = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), args)
  r = compare(step, [f"gpu:{chip}"], progress=False, dtype="fp32")(*abstract).results[0]
  est = r.roofline.step_s if r.roofline else None
  return Check("roofline", est is not None,
               f"roofline {est} s ({r.roofline.bound if r.roofline else '-'}-bound) vs "
               f"measured {measured_step_s:.4g} s (measured / roofline "
               f"{measured_step_s / est if est else float('nan'):.3g})")


def main(argv: list[str] | None = None) -> int:
  from jaxgreen import chips
  from jaxgreen._src.account.energy import NvmlMeter

  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--steps", type=int, default=100)
  a = p.parse_args(argv)
  dev = jax.devices()[0]
  on_gpu = dev.platform == "gpu"
  checks = [chip_check(dev.device_kind)]
  chip = chips.chip_of_device_kind(dev.device_kind)
  step, args = make_step()
  run = tracked_run(step, args, a.steps, NvmlMeter, None if chip else 1e12, chip)
  checks.append(energy_check(run, on_gpu))
  measured = timed_loop(step, args, a.steps)
  checks.append(utilisation_check(run, measured))
  if on_gpu and chip in chips.GPU_CHIPS:
    checks.append(counts_check(*compiled_counts(step, args, chip)))
    checks.append(roofline_check(step, args, chip, measured))
  for c in checks:
    print(("ok   " if c.ok else "FAIL ") + c.line)
  return 0 if all(c.ok for c in checks) else 1


if __name__ == "__main__":
  sys.exit(main())
