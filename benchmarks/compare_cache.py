"""A repeated ``jaxgreen.compare`` of a GPT-2-small train step: cold, then from the cache.

The step is compared on each target three times, with jaxgreen's compilation cache in a
fresh folder: (1) cold, (2) again in the same process, (3) in a new process (the cache
is on disk). Each figure is the wall time of the whole ``compare`` call (trace, count,
lower, compile or cache read, HLO walk). The reports must be identical but for timings.

Run from the repository root:
  python benchmarks/compare_cache.py [--layers 12] [--target tpu:v5e:2x2 --target gpu:h100]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(layers: int, batch: int, specs: list[str]) -> dict:
  from jaxgreen._src._quiet import import_jax_quietly

  import_jax_quietly()
  import jaxgreen
  from benchmarks.zoo import gpt2

  step, step_args = gpt2.make_train_step(gpt2.small(n_layer=layers), batch)
  out = {}
  for spec in specs:
    t0 = time.perf_counter()
    cmp = jaxgreen.compare(step, [spec])(*step_args)
    d = cmp.to_dict()["targets"][0]
    d.pop("compile_s", None)
    d.pop("count_s", None)
    out[spec] = {"seconds": time.perf_counter() - t0,
                 "report": json.dumps(d, sort_keys=True, default=str)}
  return out


def main() -> int:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--layers", type=int, default=12, help="transformer blocks (default 12)")
  ap.add_argument("--batch", type=int, default=1, help="sequences per step (default 1)")
  ap.add_argument("--target", action="append", default=[],
                  help="repeatable; default: tpu:v5e:2x2, gpu:h100")
  ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
  args = ap.parse_args()
  specs = args.target or ["tpu:v5e:2x2", "gpu:h100"]
  if args.child:
    print(json.dumps(_run(args.layers, args.batch, specs)))
    return 0
  os.environ["JAXGREEN_CACHE_DIR"] = tempfile.mkdtemp(prefix="jaxgreen-bench-cache-")
  os.environ.pop("JAXGREEN_CACHE", None)
  first = _run(args.layers, args.batch, specs)
  second = _run(args.layers, args.batch, specs)
  child = subprocess.run([sys.executable, __file__, "--child", "--layers", str(args.layers),
                          "--batch", str(args.batch), *sum((["--target", s] for s in specs),
                                                           [])],
                         capture_output=True, text=True, check=True)
  third = json.loads(child.stdout.strip().splitlines()[-1])
  import jax

  print(f"GPT-2 small train step ({args.layers} layers, batch {args.batch}x1024), "
        f"jax {jax.__version__}, {os.cpu_count()} CPU cores\n")
  head = (f"{'target':<14}{'cold s':>9}{'again s':>9}{'ratio':>8}{'new process s':>15}"
          f"{'ratio':>8}  same report")
  print(head)
  print("-" * len(head))
  ok = True
  for s in specs:
    a, b, c = first[s], second[s], third[s]
    same = a["report"] == b["report"] == c["report"]
    ok &= same
    print(f"{s:<14}{a['seconds']:>9.1f}{b['seconds']:>9.1f}{b['seconds'] / a['seconds']:>7.0%}"
          f"{c['seconds']:>15.1f}{c['seconds'] / a['seconds']:>7.0%}  {same}")
  return 0 if ok else 1


if __name__ == "__main__":
  sys.exit(main())
