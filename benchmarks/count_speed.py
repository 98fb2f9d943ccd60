"""Speed of `jaxgreen.count` on a GPT-2-small train step, against two peers, in one run.

Peers, all on the same function and abstract arguments:
  * `jax.experimental.roofline.roofline` (jax's own jaxpr cost interpreter);
  * XLA's CPU compile of the same step (what `jit(...).lower(...).compile()` costs).

Tracing (`jax.make_jaxpr`) is shared by jaxgreen and roofline, so it is timed on its own
and the ratios compare what each tool adds beyond it.

Targets: counting beyond tracing >= 3x faster than roofline, and < 10 % of compile time.

Run from the repository root:  python benchmarks/count_speed.py [--layers 12] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
from jax.experimental import roofline  # noqa: E402
from jax.extend.core import jaxprs_in_params  # noqa: E402

import jaxgreen  # noqa: E402
from benchmarks.zoo import gpt2  # noqa: E402


def _time(fn, repeat):
  times = []
  for _ in range(repeat):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  return statistics.median(times), times


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--layers", type=int, default=12)
  ap.add_argument("--batch", type=int, default=8)
  ap.add_argument("--seq", type=int, default=1024)
  ap.add_argument("--repeat", type=int, default=5)
  ap.add_argument("--no-compile", action="store_true", help="skip the XLA compile peer")
  args = ap.parse_args(argv)

  config = gpt2.GPT2Config(n_layer=args.layers, seq_len=args.seq)
  step, example = gpt2.make_train_step(config, args.batch)

  trace = lambda: jax.make_jaxpr(step)(*example)  # noqa: E731
  closed = trace()
  n_eqns = _count_eqns(closed.jaxpr)
  walk = lambda: jaxgreen.count_jaxpr(closed)  # noqa: E731
  ours_total = lambda: jaxgreen.count(step)(*example)  # noqa: E731
  peer = lambda: roofline.roofline(step)(*example)  # noqa: E731

  cost = walk()
  _, rl = peer()
  # Interleave so both see the same machine state.
  t_trace, t_walk, t_ours, t_roof = [], [], [], []
  for _ in range(args.repeat):
    t_trace.append(_time(trace, 1)[0])
    t_walk.append(_time(walk, 1)[0])
    t_ours.append(_time(ours_total, 1)[0])
    t_roof.append(_time(peer, 1)[0])
  trace_s, walk_s = statistics.median(t_trace), statistics.median(t_walk)
  ours_s, roof_s = statistics.median(t_ours), statistics.median(t_roof)
  roof_beyond = max(roof_s - trace_s, 1e-9)

  print(f"GPT-2 train step: {args.layers} layers, d=768, 12 heads, vocab 50257, "
        f"T={args.seq}, B={args.batch}, optax.adamw; {n_eqns:,} equations (nested)")
  print(f"jaxgreen FPO {cost.fpo:,} (ADD {cost.adds:,}, MUL {cost.muls:,}), exact={cost.exact}")
  print(f"roofline flops {int(rl.unfused_flops):,}")
  print(f"median of {args.repeat}, seconds:")
  print(f"  make_jaxpr (shared tracing)        {trace_s:8.3f}")
  print(f"  jaxgreen walk of the traced jaxpr  {walk_s:8.3f}")
  print(f"  jaxgreen.count end to end          {ours_s:8.3f}")
  print(f"  roofline end to end                {roof_s:8.3f}")
  print(f"ratio roofline / jaxgreen, beyond tracing:   {roof_beyond / walk_s:6.1f}x  "
        f"(target >= 3x)")
  if not args.no_compile:
    lowered = jax.jit(step).lower(*example)
    t0 = time.perf_counter()
    lowered.compile()
    compile_s = time.perf_counter() - t0
    print(f"  XLA CPU compile (lowered.compile)  {compile_s:8.3f}")
    print(f"ratio jaxgreen walk / XLA CPU compile:      {100 * walk_s / compile_s:6.1f}%  "
          f"(target < 10 %)")


def _count_eqns(jaxpr) -> int:
  n = 0
  for eqn in jaxpr.eqns:
    n += 1
    for sub in jaxprs_in_params(eqn.params):
      n += _count_eqns(sub)
  return n


if __name__ == "__main__":
  main()
