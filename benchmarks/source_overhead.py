"""What attributing FPO to source lines adds to `jaxgreen.count`, in one run.

On a GPT-2-small train step (the model of count_speed.py), `count` is timed with the
source attribution (every equation's traceback turned into the user's stack, cached per
frame) and with it switched off (every stack replaced by "", as if no equation had a
traceback), interleaved. "cold" clears the frame and stack caches before each count, as
the first count of a process (or `track`'s first signature) sees them; "warm" keeps
them. The walker's memo is per count, so every count walks the whole program. Times
are the process's CPU time (on a shared machine wall time wanders by 10 % and more), the
fastest of the repeats.

Target: attribution adds < 15 % to a cold `count`.

Run from the repository root:  python benchmarks/source_overhead.py [--layers 12] [--repeat 15]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402

import jaxgreen  # noqa: E402
from benchmarks.zoo import gpt2  # noqa: E402
from jaxgreen._src import _source  # noqa: E402
from jaxgreen._src.jaxpr import interpreter  # noqa: E402


def _clear() -> None:
  _source._user.clear()
  _source._frames.clear()
  _source._stacks.clear()
  _source._raw.clear()


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--layers", type=int, default=12)
  ap.add_argument("--batch", type=int, default=8)
  ap.add_argument("--seq", type=int, default=1024)
  ap.add_argument("--repeat", type=int, default=15)
  args = ap.parse_args(argv)

  config = gpt2.GPT2Config(n_layer=args.layers, seq_len=args.seq)
  step, example = gpt2.make_train_step(config, args.batch)
  closed = jax.make_jaxpr(step)(*example)
  attributed = interpreter.stack_of

  def run(on: bool, cold: bool, whole: bool) -> float:
    interpreter.stack_of = attributed if on else (lambda tb: "")  # type: ignore[assignment]
    if cold:
      _clear()
    t0 = time.process_time()
    cost = jaxgreen.count(step)(*example) if whole else jaxgreen.count_jaxpr(closed)
    dt = time.process_time() - t0
    assert bool(cost.by_site)
    return dt

  cost = jaxgreen.count(step)(*example)
  times: dict[tuple[bool, bool, bool], list[float]] = {}
  for _ in range(args.repeat):
    for key in [(on, cold, whole) for whole in (True, False) for cold in (True, False)
                for on in (False, True)]:
      times.setdefault(key, []).append(run(*key))
  interpreter.stack_of = attributed  # type: ignore[assignment]
  med = {k: min(v) for k, v in times.items()}

  print(f"GPT-2 train step, {args.layers} layers, T={args.seq}, B={args.batch}: "
        f"FPO {cost.fpo:,}; {len(cost.by_site):,} sites, {len(cost.by_source):,} lines")
  top, c = next(iter(cost.by_source.items()))
  print(f"top line: {_source.short(top)}  FPO {c.fpo:,} ({100 * c.fpo / cost.fpo:.1f} %)")
  print(f"fastest of {args.repeat}, CPU seconds off      on   added")
  for whole, what in ((True, "count end to end"), (False, "walk of the traced jaxpr")):
    for cold in (True, False):
      off, on = med[(False, cold, whole)], med[(True, cold, whole)]
      label = f"{what} ({'cold' if cold else 'warm'})"
      print(f"  {label:34s} {off:7.3f} {on:7.3f}  {100 * (on - off) / off:+5.1f} %")
  cold_added = (med[(True, True, True)] - med[(False, True, True)]) / med[(False, True, True)]
  print(f"attribution adds {100 * cold_added:.1f} % to a cold count (target < 15 %)")


if __name__ == "__main__":
  main()
