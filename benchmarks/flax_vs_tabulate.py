"""Speed of ``jaxgreen.flax.summary`` against ``flax.linen.tabulate``, in one run.

Both profile the same linen model on the same abstract input, forward and backward:
``tabulate(..., compute_flops=True, compute_vjp_flops=True)`` lowers every submodule
separately and asks XLA for its flops; ``summary(..., backward=True)`` traces the model
and its gradient program once each and files the work under module paths. jaxgreen is
timed with and without its own XLA comparison (``xla=False`` skips lowering). Each
figure is the median of ``--repeat`` cold runs (jax's caches cleared before each), the
tools interleaved in each round.

Models: ResNet-50 (224x224, batch 1) and GPT-2 small (batch 1, T=1024); ``--layers N``
truncates GPT-2 to N blocks (and ``--resnet`` picks a smaller ResNet) when the full
tabulate is too slow for the machine. Target: summary >= 5x faster than tabulate.

Run from the repository root:  python benchmarks/flax_vs_tabulate.py [--layers 12]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402

import jaxgreen.flax  # noqa: E402
from benchmarks.zoo import gpt2, resnet  # noqa: E402

TARGET = 5.0


def _once(fn) -> tuple[float, object]:
  jax.clear_caches()  # every run is cold: nothing traced or lowered before is reused
  t0 = time.perf_counter()
  out = fn()
  return time.perf_counter() - t0, out


def compare(name: str, model: nn.Module, x, repeat: int) -> dict:
  """Median times of tabulate and of summary with and without XLA's estimate.

  The three are interleaved in each round so that load on the machine affects all alike.
  """
  # tabulate needs concrete inputs (one image / one sequence: small); both get the same.
  x = jax.numpy.zeros(x.shape, x.dtype)
  tools = {
      "tabulate_s": lambda: nn.tabulate(model, jax.random.key(0), compute_flops=True,
                                        compute_vjp_flops=True)(x),
      "summary_s": lambda: jaxgreen.flax.summary(model, x, backward=True),
      "summary_noxla_s": lambda: jaxgreen.flax.summary(model, x, backward=True, xla=False),
  }
  times: dict[str, list[float]] = {k: [] for k in tools}
  s = None
  for _ in range(repeat):
    for key, fn in tools.items():
      t, out = _once(fn)
      times[key].append(t)
      if key == "summary_s":
        s = out
  return {"name": name, "rows": len(s.rows), "fpo": s.totals["fpo"],
          **{k: statistics.median(v) for k, v in times.items()}}


def main(argv: list[str] | None = None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--layers", type=int, default=12, help="GPT-2 blocks (12 = GPT-2 small)")
  ap.add_argument("--resnet", default="resnet50", choices=sorted(resnet.CONFIGS))
  ap.add_argument("--repeat", type=int, default=3, help="cold runs per tool (median)")
  opts = ap.parse_args(argv)

  results = [compare(opts.resnet, *resnet.model_and_input(resnet.CONFIGS[opts.resnet]()),
                     opts.repeat),
             compare(f"gpt2-small ({opts.layers} layers)",
                     *gpt2.model_and_input(gpt2.small(n_layer=opts.layers)), opts.repeat)]
  print(f"{'model':<26} {'rows':>5} {'tabulate (s)':>13} {'summary (s)':>12} {'ratio':>7} "
        f"{'no-XLA (s)':>11} {'ratio':>7}")
  worst = float("inf")
  for r in results:
    ratio, ratio_noxla = (r["tabulate_s"] / r["summary_s"], r["tabulate_s"] / r["summary_noxla_s"])
    worst = min(worst, ratio)
    print(f"{r['name']:<26} {r['rows']:>5} {r['tabulate_s']:>13.2f} {r['summary_s']:>12.2f} "
          f"{ratio:>6.1f}x {r['summary_noxla_s']:>11.2f} {ratio_noxla:>6.1f}x")
  print(f"target >= {TARGET:.0f}x (summary with XLA's estimate): "
        f"{'met' if worst >= TARGET else 'NOT met'} (worst {worst:.1f}x)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
