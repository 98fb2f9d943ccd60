"""Time to walk a GPT-2-small train step's HLO, against the compile that produced it.

For each target the step is lowered and compiled once (deviceless for TPU/GPU); then,
side by side in the same run:
  * jaxgreen's walk of the compiled, optimized HLO (parse + count + XLA replay);
  * jaxgreen's walk of the lowered StableHLO module (MLIR bindings);
  * XLA's own ``cost_analysis()`` of the compiled executable (the peer number);
against the lower + compile time. Target: walking < 10 % of compile time.

Run from the repository root:
  python benchmarks/hlo_walk.py [--layers 12] [--batch 1] [--target cpu --target gpu:h100]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("JAXGREEN_CACHE", "0")  # compile times are measured: no cache
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxgreen._src._quiet import import_jax_quietly  # noqa: E402

import_jax_quietly()

import jax  # noqa: E402

from benchmarks.zoo import gpt2  # noqa: E402
from jaxgreen._src.hlo import count_hlo_text, count_lowered  # noqa: E402
from jaxgreen._src.xla_analysis import xla_cost  # noqa: E402
from jaxgreen.targets import get_target  # noqa: E402


def _median_time(fn, repeat: int) -> float:
  times = []
  for _ in range(repeat):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  return statistics.median(times)


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--layers", type=int, default=12, help="transformer blocks (default 12)")
  ap.add_argument("--batch", type=int, default=1, help="sequences per step (default 1)")
  ap.add_argument("--target", action="append", default=[],
                  help="repeatable; default: cpu, tpu:v5e:2x2, gpu:h100")
  ap.add_argument("--repeat", type=int, default=3, help="walks per target (median)")
  args = ap.parse_args()
  specs = args.target or ["cpu", "tpu:v5e:2x2", "gpu:h100"]
  targets = [get_target(s) for s in specs]
  for t in sorted(targets, key=lambda t: t.platform != "gpu"):  # GPU topologies first
    _ = t.devices

  step, step_args = gpt2.make_train_step(gpt2.small(n_layer=args.layers), args.batch)
  print(f"GPT-2 small train step ({args.layers} layers, batch {args.batch}x1024), "
        f"jax {jax.__version__}, {os.cpu_count()} CPU cores\n")
  head = (f"{'target':<14}{'compile s':>10}{'HLO lines':>10}{'walk HLO s':>11}"
          f"{'walk/compile':>13}{'StableHLO s':>12}{'XLA cost s':>11}{'walk/XLA':>9}")
  print(head)
  print("-" * len(head))
  for t in targets:
    t0 = time.perf_counter()
    lowered, compiled = t.compile(step, *step_args)
    compile_s = time.perf_counter() - t0
    text = compiled.as_text()
    walk_s = _median_time(lambda text=text: count_hlo_text(text), args.repeat)
    shlo_s = _median_time(lambda lowered=lowered: count_lowered(lowered), args.repeat)
    xla_s = _median_time(lambda compiled=compiled: xla_cost(compiled), args.repeat)
    print(f"{t.spec:<14}{compile_s:>10.1f}{text.count(chr(10)):>10,}{walk_s:>11.3f}"
          f"{walk_s / compile_s:>12.1%} {shlo_s:>12.3f}{xla_s:>11.3f}"
          f"{walk_s / max(xla_s, 1e-9):>8.1f}x", flush=True)


if __name__ == "__main__":
  main()
