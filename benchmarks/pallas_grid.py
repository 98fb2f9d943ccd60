"""Counting a Pallas kernel's grid: jax's causal TPU flash attention at 32k tokens.

The kernel body is walked once per group of grid points whose branches and loop bounds
agree (found with numpy over the whole grid), not once per point. This script times
tracing and counting of the forward kernel and of its gradient (three kernels), checks
the dot MULs against the closed form 2 * B * H * D * pairs * block**2 (pairs: the
on/below-diagonal block pairs), and, on a small grid, that the grouped count equals a
walk of every grid point (``Walker(memo=False)``).

Target: counting (beyond tracing) well under one second for the 32k forward grid.

Run from the repository root:  python benchmarks/pallas_grid.py [--seq 32768] [--repeat 5]
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax.experimental.pallas.ops.tpu import flash_attention as fa  # noqa: E402

import jaxgreen  # noqa: E402
from jaxgreen._src.cost_model import DEFAULT  # noqa: E402
from jaxgreen._src.jaxpr.interpreter import Walker  # noqa: E402


def _median(fn, repeat):
  times = []
  for _ in range(repeat):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  return statistics.median(times)


def _attention(block):
  sizes = fa.BlockSizes(block_q=block, block_k_major=block, block_k=block, block_b=1,
                        block_q_major_dkv=block, block_k_major_dkv=block, block_k_dkv=block,
                        block_q_dkv=block, block_k_major_dq=block, block_k_dq=block,
                        block_q_dq=block)
  return functools.partial(fa.flash_attention, causal=True, block_sizes=sizes)


def _dot_muls(cost):
  return cost.by_primitive["dot_general"].muls


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--batch", type=int, default=1)
  ap.add_argument("--heads", type=int, default=8)
  ap.add_argument("--seq", type=int, default=32768)
  ap.add_argument("--dim", type=int, default=128)
  ap.add_argument("--block", type=int, default=128)
  ap.add_argument("--repeat", type=int, default=5)
  args = ap.parse_args(argv)
  b, h, t, d, block = args.batch, args.heads, args.seq, args.dim, args.block
  f = _attention(block)
  q = jax.ShapeDtypeStruct((b, h, t, d), jnp.bfloat16)
  n = t // block
  pairs = n * (n + 1) // 2
  print(f"causal TPU flash attention, B={b} H={h} T={t:,} D={d}, blocks of {block}: "
        f"grid {b} x {h} x {n} x {n} = {b * h * n * n:,} points, {b * h * pairs:,} "
        f"block pairs on/below the diagonal; jax {jax.__version__}")

  grad = jax.grad(lambda q, k, v: f(q, k, v).astype(jnp.float32).sum(), argnums=(0, 1, 2))
  for label, fn, dots in (("forward", f, 2), ("gradient (fwd + dK/dV + dQ)", grad, 9)):
    closed = jax.make_jaxpr(fn)(q, q, q)
    trace_s = _median(lambda fn=fn: jax.make_jaxpr(fn)(q, q, q), args.repeat)
    walk_s = _median(lambda closed=closed: jaxgreen.count_jaxpr(closed), args.repeat)
    cost = jaxgreen.count_jaxpr(closed)
    want = dots * b * h * pairs * block * block * d
    print(f"{label}:")
    print(f"  make_jaxpr          {trace_s:8.3f} s")
    print(f"  count_jaxpr         {walk_s:8.3f} s   (target < 1 s)")
    print(f"  FPO {cost.fpo:,}; dot MULs {_dot_muls(cost):,} = {dots} x B*H*pairs*block^2*D "
          f"{'OK' if _dot_muls(cost) == want else f'MISMATCH (want {want:,})'}; "
          f"exact={cost.exact}")

  small = jax.make_jaxpr(_attention(128))(*[jax.ShapeDtypeStruct((1, 2, 1024, 64),
                                                                 jnp.float32)] * 3)
  grouped = jaxgreen.count_jaxpr(small, dce=False)
  t0 = time.perf_counter()
  every = Walker(cost_model=DEFAULT, memo=False).walk(small.jaxpr, [None] * 3)
  every_s = time.perf_counter() - t0
  print(f"T=1,024 check: grouped count == one walk per grid point ({every_s:.2f} s): "
        f"{grouped == every}")


if __name__ == "__main__":
  main()
