"""Green AI, Figure 4(b) reproduced: parameters and FPO per inference of the ResNet family.

For ResNet-18/34/50/101/152 on one 224x224 image (and ViT-B/16 alongside), prints the
parameter count, FPO = ADD + MUL (the paper's measure) and the multiply count of the
convolutions and dense layers, and checks them against torchvision's published figures:
parameter counts must be exact and our conv + dense MUL count within 1 % of
torchvision's "GFLOPS", which are multiply-accumulates (one MUL each). A GPT-2 small
AdamW train step is checked against the usual 6·N·D estimate plus its attention terms.

The paper's footnote r takes its numbers from ptflops (flops-counter.pytorch), which
also reports multiply-accumulates; FPO counts the ADDs too, so it is about twice those.

Exit status is non-zero when a check fails. With matplotlib installed a plot in the
figure's style (parameters, FPO and published top-1 vs depth) is saved to ``--out``.

Run from the repository root:  python benchmarks/figure4.py [--out figure4.png]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jaxgreen  # noqa: E402
import jaxgreen.flax  # noqa: E402
from benchmarks.zoo import gpt2, resnet, vit  # noqa: E402

# Multiplies of these primitives are what torchvision's and ptflops' MAC counts cover.
_MAC_PRIMITIVES = ("conv_general_dilated", "dot_general")

# torchvision IMAGENET1K_V1 weights, "acc@1" (https://pytorch.org/vision/stable/models.html);
# plotted as the figure's top panel, not checked.
_TOP1 = {"resnet18": 69.758, "resnet34": 73.314, "resnet50": 76.130, "resnet101": 77.374,
         "resnet152": 78.312, "vit_b_16": 81.072}
_DEPTH = {"resnet18": 18, "resnet34": 34, "resnet50": 50, "resnet101": 101, "resnet152": 152}

MAC_TOLERANCE = 0.01
TRAIN_TOLERANCE = 0.02


def _macs(cost: jaxgreen.Cost) -> int:
  return sum(cost.by_primitive[p].muls for p in _MAC_PRIMITIVES if p in cost.by_primitive)


def _profile(model, x) -> dict:
  s = jaxgreen.flax.summary(model, x, max_depth=0, xla=False)
  return {"params": s.totals["params"], "fpo": s.totals["fpo"], "macs": _macs(s.forward)}


def vision_rows() -> list[dict]:
  rows = []
  for name, make in resnet.CONFIGS.items():
    rows.append({"name": name, **_profile(*resnet.model_and_input(make())),
                 **resnet.PUBLISHED[name]})
  rows.append({"name": "vit_b_16", **_profile(*vit.model_and_input(vit.vit_b_16())),
               **vit.PUBLISHED["vit_b_16"]})
  return rows


def gpt2_train_check(batch_size: int = 8) -> dict:
  """GPT-2 small AdamW step vs 6·N·D + 12·L·B·T²·d.

  N counts the weights used in matrix products (every Dense kernel and the tied
  token embedding as the output projection), D = B·T tokens; 6·N·D is 2 FPO per
  multiply-add, forward + two backward products. The attention score and value
  products (4·B·T²·d FPO per layer forward, the full T x T with the causal mask
  applied after) are added x3 for the backward.
  """
  cfg = gpt2.small()
  step, args = gpt2.make_train_step(cfg, batch_size)
  cost = jaxgreen.count(step)(*args)
  d, t, L = cfg.d_model, cfg.seq_len, cfg.n_layer
  n = L * 12 * d * d + cfg.vocab * d  # qkv 3d², proj d², mlp 8d² per layer; tied wte
  expected = 6 * n * batch_size * t + 12 * L * batch_size * t * t * d
  return {"fpo": cost.fpo, "expected": expected, "ratio": cost.fpo / expected}


def _plot(rows: list[dict], path: str) -> bool:
  try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
  except ImportError:
    return False
  res = [r for r in rows if r["name"] in _DEPTH]
  depth = [_DEPTH[r["name"]] for r in res]
  fig, axes = plt.subplots(3, 1, figsize=(4.5, 7), sharex=True)
  panels = [([_TOP1[r["name"]] for r in res], "top-1 acc. (%)"),
            ([r["fpo"] / 1e9 for r in res], "FPO (billions)"),
            ([r["params"] / 1e6 for r in res], "params (millions)")]
  for ax, (ys, label) in zip(axes, panels, strict=True):
    ax.plot(depth, ys, "o-")
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
  axes[-1].set_xlabel("ResNet depth (layers)")
  axes[-1].set_xticks(depth)
  fig.suptitle("Green AI Figure 4(b), recomputed with jaxgreen")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return True


def main(argv: list[str] | None = None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--out", default="figure4.png", help="plot path (needs matplotlib)")
  ap.add_argument("--no-plot", action="store_true")
  ap.add_argument("--skip-gpt2", action="store_true", help="skip the train-step check")
  opts = ap.parse_args(argv)

  t0 = time.perf_counter()
  rows = vision_rows()
  failures = []
  print("Figure 4(b): one 224x224 image, inference. FPO = ADD + MUL; MAC = conv + dense MUL.")
  print(f"{'model':<10} {'params (M)':>11} {'published':>10} {'FPO (G)':>8} "
        f"{'MAC (G)':>8} {'published':>10} {'MAC diff':>9} {'top-1':>6}")
  for r in rows:
    diff = r["macs"] / (r["gmacs"] * 1e9) - 1
    # torchvision rounds to 2 decimals: allow that rounding on top of the tolerance.
    ok_mac = abs(r["macs"] / 1e9 - r["gmacs"]) <= MAC_TOLERANCE * r["gmacs"] + 0.005
    ok_par = r["params"] == r["params_pub"]
    print(f"{r['name']:<10} {r['params'] / 1e6:>11.2f} {r['params_pub'] / 1e6:>10.2f} "
          f"{r['fpo'] / 1e9:>8.2f} {r['macs'] / 1e9:>8.2f} {r['gmacs']:>10.2f} "
          f"{diff:>+9.2%} {_TOP1[r['name']]:>6.2f}")
    if not ok_mac:
      failures.append(f"{r['name']}: MAC {r['macs'] / 1e9:.3f} G vs published {r['gmacs']} G")
    if not ok_par:
      failures.append(f"{r['name']}: params {r['params']:,} vs published {r['params_pub']:,}")

  if not opts.skip_gpt2:
    g = gpt2_train_check()
    print(f"\nGPT-2 small AdamW step, batch 8 x 1024 tokens: FPO {g['fpo'] / 1e12:.3f} T vs "
          f"6·N·D + attention {g['expected'] / 1e12:.3f} T (ratio {g['ratio']:.4f})")
    if abs(g["ratio"] - 1) > TRAIN_TOLERANCE:
      failures.append(f"GPT-2 train step off by {g['ratio'] - 1:+.2%} (> {TRAIN_TOLERANCE:.0%})")

  if not opts.no_plot:
    if _plot(rows, opts.out):
      print(f"\nplot saved to {opts.out}")
    else:
      print("\nmatplotlib not installed: no plot")
  print(f"({time.perf_counter() - t0:.1f} s)")
  for f in failures:
    print(f"FAIL {f}", file=sys.stderr)
  return 1 if failures else 0


if __name__ == "__main__":
  sys.exit(main())
