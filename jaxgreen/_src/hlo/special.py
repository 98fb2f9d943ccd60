"""FPO rules for random bits, FFTs and custom calls.

Random bits are integer ops by the jaxpr rules' block formulas
(:func:`jaxgreen._src.formulas.rng_bit_generator_ops`, ``rng_uniform_ops``,
``threefry_ops``); an FFT is 5 n log2 n real ops per transform (2 MUL : 3 ADD); the
custom calls jaxgreen knows are priced from their shapes (GEMMs and convolutions as
dots and convolutions, top-k as heap selection, cuDNN fused attention as the
attention it fuses, :mod:`jaxgreen._src.hlo.attention`), Pallas/Mosaic/Triton kernels are
mapped back to their jaxpr count or the author's estimate (:mod:`jaxgreen._src.hlo.kernels`),
and any other is listed in ``Cost.uncounted``. XLA prices a custom call at -1
("unknown"), a TPU kernel at its author's estimate.

Example:
  >>> is_threefry_callee("threefry2x32.3"), is_threefry_callee("main")
  (True, False)
"""

from __future__ import annotations

import math
import re

from jaxgreen._src.cost import Counts
from jaxgreen._src.formulas import (
  TRANSCENDENTALS,
  elementwise_price,
  reduce_steps,
  rng_bit_generator_ops,
  rng_uniform_ops,
  threefry_ops,
)
from jaxgreen._src.hlo.attention import FMHA_PREFIX, attention_counts
from jaxgreen._src.hlo.dense import CONV_TARGETS, GEMM_TARGETS, DenseRules
from jaxgreen._src.hlo.ir import Computation, Instr
from jaxgreen._src.hlo.kernels import (
  ESTIMATE_TARGETS,
  KERNEL_TARGETS,
  KernelTable,
  counted_tally,
  kernel_instr_name,
  kernel_name_of,
  kernel_operands,
  mlir_config_name,
  operand_shapes,
  tpu_estimate,
)
from jaxgreen._src.hlo.reductions import ReductionRules
from jaxgreen._src.hlo.tally import Tally, recounted
from jaxgreen._src.hlo.xla import CUSTOM, INTEGER, OTHER, PRICING, XLA_CUSTOM_CALL, fft_flops

# Custom calls that select the top k of each row: CPU and TPU ("TopK"), GPU
# ("__gpu$TopK"), and approx_top_k ("ApproxTopK", counted as the exact top-k; TPU
# compiles it to a "PartialReduce" of bins, counted as that reduction, and a sort).
TOPK_TARGETS = ("TopK", "__gpu$TopK", "ApproxTopK")
# jax's Threefry-2x32 GPU kernels: priced by the block formula, as the jaxpr primitive
# (and the function jax's generic lowering outlines, _THREEFRY_CALLEE) is.
THREEFRY_TARGETS = ("cu_threefry2x32", "hip_threefry2x32", "cu_threefry2x32_ffi",
                    "hip_threefry2x32_ffi")
# Custom calls that only allocate, annotate or move data: zero in jaxgreen, and zero in
# XLA's count on the backends that emit them (TPU prices them itself).
ZERO_CUSTOM_CALLS = frozenset({
    "AllocateBuffer", "Sharding", "SPMDFullToShardShape", "SPMDShardToFullShape",
    "MoveToHost", "MoveToDevice", "annotate_device_placement", "LayoutConstraint",
    "PadToStatic", "SliceToDynamic", "X64Combine", "X64SplitLow", "X64SplitHigh",
    "AssumeGatherIndicesInBound", "ConcatBitcast", "GatherScatterIndicesBitpacked",
    # TPU's asynchronous collective wrappers: the collective inside is counted.
    "AsyncCollectiveStart", "AsyncCollectiveDone",
})
_THREEFRY_CALLEE = re.compile(r"threefry2x32(?:_\d+)?(?:[@.]|$)")


def is_threefry_callee(name: str) -> bool:
  """Whether computation ``name`` is jax's outlined Threefry-2x32 function."""
  return _THREEFRY_CALLEE.match(name) is not None


# Special functions jax lowers to foreign calls (jax >= 0.12.1): target -> primitive.
MATH_FFI_TARGETS = {f"{p}_{f}_ffi": f for p in ("cpu", "cu", "hip")
                    for f in ("lgamma", "digamma")}


class SpecialRules(DenseRules, ReductionRules):
  """Counts random bits, FFTs and custom calls."""

  # The program's kernels counted at the jaxpr stage (None: HLO text alone).
  kernels: KernelTable | None = None

  def rng(self, t: Tally, comp: Computation, ins: Instr, op_name: str) -> None:
    """Random bits: integer ops only, by the jaxpr rules' block formulas
    (``rng-bit-generator``: formulas.rng_bit_generator_ops; ``rng``, XLA's RngUniform:
    Threefry blocks + a scale and a shift per float element). XLA counts no flops."""
    b = self.bytes_of(comp, ins)
    scope = self.scope(op_name)
    if ins.opcode == "rng-bit-generator":
      bits = ins.arrays[-1] if ins.arrays else None
      iops = rng_bit_generator_ops(ins.text("algorithm") or "rng_default",
                                   bits.nbytes if bits is not None else 0)
      t.leaf("rng_bit_generator", scope, 0, 0, int_ops=iops, nbytes=b)
      return
    out = ins.out
    if out is None or "normal" in (ins.text("distribution") or "").lower():
      t.note_uncounted("rng")  # jax has no normal RngNormal primitive
      return
    iops = rng_uniform_ops(out.nbytes)
    if out.is_float:
      t.leaf("rng_uniform", scope, 0, 0, {OTHER: out.size + out.size}, adds=out.size,
             muls=out.size, int_ops=iops, nbytes=b)
    else:
      t.leaf("rng_uniform", scope, 0, 0, int_ops=iops, nbytes=b)

  def threefry(self, t: Tally, comp: Computation, ins: Instr, callee: str,
               op_name: str) -> None:
    """jax's outlined Threefry-2x32 function: the block formula (as the jaxpr
    primitive), not its expansion; XLA's replay of the expansion is kept."""
    body = self.sub(callee, op_name)
    pairs = ins.arrays[0].size if ins.arrays else 0
    c = Counts(int_ops=threefry_ops(pairs), bytes=self.bytes_of(comp, ins))
    t.merge(recounted(body, "threefry2x32", self.scope(op_name), c, INTEGER))

  def fft(self, t: Tally, comp: Computation, ins: Instr, op_name: str) -> None:
    x = comp.operand(ins, 0)
    lengths = ins.int_list("fft_length")
    if x is None or x.out is None or not lengths:
      return
    kind = (ins.text("fft_type") or "FFT").upper()
    n_total = math.prod(lengths)
    batch = x.out.size // max(1, math.prod(x.out.dims[-len(lengths):]))
    log_sum = sum(math.log2(n) for n in lengths if n > 1)
    fmuls, fadds = 2 * n_total * log_sum * batch, 3 * n_total * log_sum * batch
    if "RFFT" in kind:
      fmuls, fadds = fmuls / 2, fadds / 2
    muls, adds = int(round(fmuls)), int(round(fadds))
    xla = fft_flops(lengths, x.out.size)
    t.leaf("fft", self.scope(op_name), xla, 0, {OTHER: adds + muls - xla}, adds=adds, muls=muls,
           nbytes=self.bytes_of(comp, ins))

  def custom_call(self, t: Tally, comp: Computation, ins: Instr, op_name: str) -> None:
    target = ins.text("custom_call_target") or ""
    if target in ZERO_CUSTOM_CALLS:
      return
    scope = self.scope(op_name)
    xla = XLA_CUSTOM_CALL
    if target in KERNEL_TARGETS:
      self.kernel(t, comp, ins, scope, target)
      return
    if target in GEMM_TARGETS or target.startswith("__cublas"):
      if self.gemm_call(t, comp, ins, scope):
        return
    if target in TOPK_TARGETS:
      self.top_k(t, comp, ins, scope, xla, "approx_top_k" if "Approx" in target else "top_k")
    elif target == "PartialReduce" and self.partial_reduce(t, comp, ins, scope):
      pass
    elif target in THREEFRY_TARGETS or target in MATH_FFI_TARGETS:
      self.elementwise_call(t, comp, ins, scope, target)
    elif target.startswith(CONV_TARGETS) and ins.text("dim_labels"):
      self.conv(t, comp, ins, scope, custom=True)
    elif target.startswith(FMHA_PREFIX) and self.fmha(t, comp, ins, scope, target):
      pass
    else:
      name = f"custom-call {target}" if target else "custom-call"
      t.note_uncounted(name)
      t.leaf(name, scope, xla, 0, {CUSTOM: -xla})

  def elementwise_call(self, t: Tally, comp: Computation, ins: Instr, scope: str,
                       target: str) -> None:
    """A custom call computing one function per element: jax's Threefry-2x32 GPU kernel
    (the block formula, as the jaxpr primitive), or a special function jax (>= 0.12.1)
    lowers to a foreign call (``cpu_lgamma_ffi``), priced as its jaxpr primitive."""
    out = ins.arrays[0] if ins.arrays else None
    n = out.size if out is not None else 0
    if target in THREEFRY_TARGETS:
      t.leaf("threefry2x32", scope, XLA_CUSTOM_CALL, 0, {CUSTOM: -XLA_CUSTOM_CALL},
             int_ops=threefry_ops(n), nbytes=self.bytes_of(comp, ins))
      return
    prim = MATH_FFI_TARGETS[target]
    cprice = elementwise_price(self.model, prim, False)
    if cprice is None:
      t.note_uncounted(prim)
      t.leaf(prim, scope, XLA_CUSTOM_CALL, 0, {CUSTOM: -XLA_CUSTOM_CALL})
      return
    a, m = cprice
    tr = n if prim in TRANSCENDENTALS else 0
    t.leaf(prim, scope, XLA_CUSTOM_CALL, 0, {PRICING: (a + m) * n, CUSTOM: -XLA_CUSTOM_CALL},
           adds=a * n, muls=m * n, transcendentals=tr, nbytes=self.bytes_of(comp, ins))

  def partial_reduce(self, t: Tally, comp: Computation, ins: Instr, scope: str) -> bool:
    """TPU's approx_top_k: each output keeps the best of its bin of inputs (a
    reduction: inputs - outputs compares); an exact top-k of the kept follows."""
    x = comp.operand(ins, 0)
    out = ins.arrays[0] if ins.arrays else None
    if x is None or x.out is None or out is None:
      return False
    n = reduce_steps(x.out.size, out.size)
    a, m = self.model.price("gt") or (0, 0)
    b = self.bytes_of(comp, ins)
    if x.out.is_float:
      t.leaf("approx_top_k", scope, XLA_CUSTOM_CALL, 0,
             {OTHER: a * n + m * n, CUSTOM: -XLA_CUSTOM_CALL}, adds=a * n, muls=m * n, nbytes=b)
    else:
      t.leaf("approx_top_k", scope, XLA_CUSTOM_CALL, 0, {CUSTOM: -XLA_CUSTOM_CALL},
             int_ops=n, nbytes=b)
    return True

  def kernel(self, t: Tally, comp: Computation, ins: Instr, scope: str, target: str) -> None:
    """A Pallas/Mosaic/Triton kernel: its jaxpr count when the program's kernels are
    known, else the author's estimate (inexact), else uncounted."""
    cfg = ins.backend_config()
    name = kernel_name_of(ins.name, cfg, target,
                          kernel_instr_name(ins) or mlir_config_name(ins.attr("backend_config")))
    est = tpu_estimate(cfg) if target in ESTIMATE_TARGETS else None
    if target in ESTIMATE_TARGETS:
      xla, xla_tr = (est[0], est[1]) if est is not None else (0, 0)
    else:
      xla, xla_tr = XLA_CUSTOM_CALL, 0
    shapes = operand_shapes(kernel_operands(comp, ins))
    entry = self.kernels.find(scope, name, shapes) if self.kernels is not None else None
    if entry is not None:
      t.merge(counted_tally(entry, xla, xla_tr))
      return
    if est is not None:
      flops, tr, nbytes = est
      t.leaf("pallas_call", scope, xla, xla_tr, adds=flops - flops // 2, muls=flops // 2,
             transcendentals=tr, nbytes=nbytes)
      t.inexact[f"kernel {name}: the author's estimate (its pl.CostEstimate flops, split "
                f"evenly between ADD and MUL; count the function with jaxgreen.count to "
                f"count the kernel itself)"] = None
      return
    label = f"custom-call {target}"
    t.note_uncounted(label)
    t.leaf(label, scope, xla, xla_tr, {CUSTOM: -xla})

  def fmha(self, t: Tally, comp: Computation, ins: Instr, scope: str, target: str) -> bool:
    """cuDNN fused attention priced from its shapes (:mod:`jaxgreen._src.hlo.attention`);
    False when its backend config does not give the score shape."""
    cfg = ins.backend_config().get("cudnn_fmha_backend_config") or {}
    scores = [int(d) for d in (cfg.get("intermediate_tensor_shape") or {}).get("dimensions")
              or []]
    ops = kernel_operands(comp, ins)
    backward = "Backward" in target
    outs = ins.arrays
    if len(scores) != 4 or len(ops) < 3 or len(outs) < (3 if backward else 1):
      return False
    q = ops[0]
    contracting = (cfg.get("bmm1_dot_dimension_numbers") or {}).get(
        "lhs_contracting_dimensions") or [len(q.dims) - 1]
    d_qk = math.prod(q.dims[int(i)] for i in contracting)
    d_v = (outs[2] if backward else outs[0]).dims[-1]
    adds, muls, tr = attention_counts(self.model, scores, d_qk, d_v,
                                      scale=float(cfg.get("fmha_scale", 1.0)),
                                      bias="Bias" in target, backward=backward)
    xla = XLA_CUSTOM_CALL
    t.leaf("dot_product_attention", scope, xla, 0, {CUSTOM: adds + muls - xla}, adds=adds,
           muls=muls, transcendentals=tr, nbytes=self.bytes_of(comp, ins))
    return True
