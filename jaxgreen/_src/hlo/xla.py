"""XLA's own figures (``HloCostAnalysis``) as the counting walk replays them, and the
named causes that file every per-instruction difference from jaxgreen's count.

XLA's rules, from ``xla/service/hlo_cost_analysis.cc``: a dot is 2*M*N*K flops, a
convolution 2 flops per *valid* tap, one flop per elementwise element with the
transcendental opcodes counted apart, a while body counted once, the costliest
branch of a conditional, a custom call -1 ("unknown"), a TPU kernel (Mosaic
``tpu_custom_call``) its author's ``cost_estimate`` (0 without one). XLA keeps these properties in
float32 and sums them in its visiting order (:func:`xla_order`), so beyond 2**24 its
total is rounded; the walk replays that too.

Example:
  >>> CAUSES[0], XLA_FMA_FLOPS, clog2(1000)
  ('FMA convention', 2, 10)
"""

from __future__ import annotations

import math

from jaxgreen._src.hlo.ir import Computation, Instr

# XLA prices one multiply-add at 2 flops (hlo_cost_analysis.h, kFmaFlops); jaxgreen at
# one MUL plus one ADD, except the first product of each output, which needs no ADD.
XLA_FMA_FLOPS = 2

# Named causes of the per-instruction difference between jaxgreen's count and XLA's.
FMA = "FMA convention"
PADDING = "padded conv taps"  # products XLA skips: on edge padding, or cropped (transposed)
TRANSC = "transcendentals"
PRICING = "elementwise pricing"
INTEGER = "integer ops"
CUSTOM = "custom calls"
COLLECTIVE = "collectives"
KERNELS = "kernels"  # a Pallas/Mosaic/Triton kernel: XLA's figure is the author's estimate
OTHER = "other conventions"  # reduce-window, sort, top-k, argmax, fft, conditional
CAUSES = (FMA, PADDING, TRANSC, PRICING, INTEGER, CUSTOM, KERNELS, COLLECTIVE, OTHER)

# Elementwise opcodes that HloCostAnalysis puts under "transcendentals", not flops.
XLA_TRANSCENDENTAL = frozenset({
    "exponential", "log", "logistic", "power", "sqrt", "cbrt", "rsqrt", "tanh", "sine",
    "cosine", "exponential-minus-one", "log-plus-one", "atan2", "erf", "tan",
})

# HloCostAnalysis::HandleCustomCall marks flops "unknown" with -1.
XLA_CUSTOM_CALL = -1


def clog2(n: int) -> int:
  """ceil(log2(n)) for n >= 1 (XLA's sort: n * ceil(log2 n) compares), 0 below."""
  return max(0, (int(n) - 1).bit_length())


def sort_flops(elements: int) -> int:
  """XLA's flops for a sort of ``elements`` keys (HandleSort)."""
  return elements * clog2(elements)


def fft_flops(lengths: list[int], elements: int) -> int:
  """XLA's flops for an FFT (HandleFft): 2 x 4 x prod(floor(log2 n)) x elements."""
  return XLA_FMA_FLOPS * 4 * math.prod(int(math.log2(n)) if n else 0 for n in lengths) \
      * elements


def xla_order(comp: Computation) -> list[Instr]:
  """Instructions in the order HloCostAnalysis visits them: depth-first from the
  computation's root, operands first, then from each instruction that nothing uses.

  The order matters only because XLA sums in float32 (see ``HloCount.xla_flops_f32``).
  """
  by_name = comp.by_name
  used: set[str] = set()
  for ins in comp.instrs:
    used.update(ins.operands)
  root = comp.root
  starts = [root] + [i for i in comp.instrs if i.name not in used and i is not root]
  seen: set[str] = set()
  order: list[Instr] = []
  for start in starts:
    if start.name in seen:
      continue
    stack: list[tuple[Instr, int]] = [(start, 0)]
    seen.add(start.name)
    while stack:
      ins, i = stack[-1]
      if i < len(ins.operands):
        stack[-1] = (ins, i + 1)
        op = by_name.get(ins.operands[i])
        if op is not None and op.name not in seen:
          seen.add(op.name)
          stack.append((op, 0))
      else:
        stack.pop()
        order.append(ins)
  return order
