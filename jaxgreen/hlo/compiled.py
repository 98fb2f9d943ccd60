"""Counts the optimized HLO of a compiled executable (``compiled.as_text()``).

The walk uses the same conventions and :class:`~jaxgreen.CostModel` prices as the jaxpr
counter, applied to what the compiler actually kept:

* ``dot``: MUL = B*M*N*K, ADD = B*M*N*(K-1); ``convolution`` (including dots a TPU
  compiler rewrites as convolutions) counts the window taps on real input or edge
  padding, never those on lhs-dilation holes (``formulas.conv_counts``);
* ``reduce``/``reduce-window``/``scatter``/``map``: the reducer's cost x applications
  (a reduction of n elements to one is n - 1 applications);
* elementwise opcodes are priced by the CostModel under the jaxpr primitive name
  (``exponential`` -> ``exp``, ``power`` -> ``pow``, ``compare`` -> ``lt``/``eq``/...),
  complex operands by :func:`jaxgreen.formulas.complex_price`;
* the formulas the jaxpr rules use, from :mod:`jaxgreen.formulas`: a prefix
  ``reduce-window`` (cumsum & co.) is a scan, n - 1 per row; a reduce of (values,
  indices) picked by a compare is argmax/argmin, one compare per step; ``sort`` counts
  the keys its comparator reads; ``chlo.top_k`` and the ``TopK`` custom calls are heap
  selection; random bits are integer ops by block formulas;
* fusions and called computations are walked; ``while`` bodies are multiplied by the
  trip count (``known_trip_count`` where the compiler emits it, else derived from the
  loop's induction variable); ``conditional`` takes the costliest branch;
* cuBLAS/cuDNN/oneDNN GEMM and convolution custom calls are priced from their shapes;
  any other custom call is listed in ``Cost.uncounted``.

Alongside, the walk replays XLA's own ``HloCostAnalysis`` rules per instruction (a dot
is 2*M*N*K flops, a convolution 2 flops per *valid* tap, one flop per elementwise
element, transcendentals apart, a while body counted once, a custom call -1), and
files every per-instruction difference under a named cause. This is what lets
:mod:`jaxgreen.reconcile` explain XLA's number exactly.

Example:
  >>> compiled = jax.jit(f).lower(x).compile()
  >>> jaxgreen.hlo.count_compiled(compiled).cost.fpo
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from jaxgreen._scope import clean_scope
from jaxgreen.cost import Cost, Counts
from jaxgreen.cost_model import DEFAULT, TRANSCENDENTALS, CostModel
from jaxgreen.formulas import (
  ZERO_ELEMENTWISE,
  ConvCounts,
  contraction_counts,
  conv_counts,
  conv_input_grad_dim,
  counted_loop_trips,
  elementwise_price,
  loop_factors,
  pick_branches,
  ragged_dot_counts,
  reduce_steps,
  rng_bit_generator_ops,
  rng_uniform_ops,
  scan_steps,
  sort_compares,
  threefry_ops,
  top_k_compares,
  window_reduce_steps,
)
from jaxgreen.hlo.parse import (
    Array,
    Computation,
    HloParseError,
    Instr,
    Module,
    group_size,
    parse_module,
)

# XLA prices one multiply-add at 2 flops (hlo_cost_analysis.h, kFmaFlops); jaxgreen at
# one MUL plus one ADD, except the first product of each output, which needs no ADD.
XLA_FMA_FLOPS = 2

# Named causes of the per-instruction difference between jaxgreen's count and XLA's.
FMA = "FMA convention"
PADDING = "padded conv taps"  # taps on edge padding (lhs-dilation holes count nowhere)
TRANSC = "transcendentals"
PRICING = "elementwise pricing"
INTEGER = "integer ops"
CUSTOM = "custom calls"
COLLECTIVE = "collectives"
OTHER = "other conventions"  # reduce-window, sort, top-k, argmax, fft, conditional
CAUSES = (FMA, PADDING, TRANSC, PRICING, INTEGER, CUSTOM, COLLECTIVE, OTHER)

# HLO opcode -> jaxpr primitive name (the CostModel's key) for elementwise opcodes.
ELEMENTWISE: Mapping[str, str] = {
    "add": "add", "subtract": "sub", "multiply": "mul", "divide": "div",
    "remainder": "rem", "maximum": "max", "minimum": "min", "power": "pow",
    "atan2": "atan2", "negate": "neg", "abs": "abs", "sign": "sign", "floor": "floor",
    "ceil": "ceil", "round-nearest-afz": "round", "round-nearest-even": "round",
    "exponential": "exp", "exponential-minus-one": "expm1", "log": "log",
    "log-plus-one": "log1p", "logistic": "logistic", "tanh": "tanh", "sqrt": "sqrt",
    "rsqrt": "rsqrt", "cbrt": "cbrt", "sine": "sin", "cosine": "cos", "tan": "tan",
    "erf": "erf", "is-finite": "is_finite", "clamp": "clamp", "select": "select_n",
    "reduce-precision": "reduce_precision", "convert": "convert_element_type",
    "stochastic-convert": "convert_element_type", "real": "real", "imag": "imag",
    "complex": "complex", "not": "not", "and": "and", "or": "or", "xor": "xor",
    "shift-left": "shift_left", "shift-right-logical": "shift_right_logical",
    "shift-right-arithmetic": "shift_right_arithmetic", "popcnt": "population_count",
    "count-leading-zeros": "clz", "compare": "compare",
    "bitcast-convert": "bitcast_convert_type",
}
# Elementwise opcodes that HloCostAnalysis puts under "transcendentals", not flops.
XLA_TRANSCENDENTAL = frozenset({
    "exponential", "log", "logistic", "power", "sqrt", "cbrt", "rsqrt", "tanh", "sine",
    "cosine", "exponential-minus-one", "log-plus-one", "atan2", "erf", "tan",
})
# Elementwise opcodes that move or reinterpret data: zero in jaxgreen (as in the jaxpr
# counter's ZERO_COST list); XLA still counts one flop per element for them.
_ZERO_ELEMENTWISE = frozenset({"convert_element_type", "bitcast_convert_type"}) | ZERO_ELEMENTWISE
_INT_PRIM = frozenset({"not", "and", "or", "xor", "shift_left", "shift_right_logical",
                       "shift_right_arithmetic", "population_count", "clz"})
# Opcodes that do no arithmetic in either count (reviewed list: data movement, layout,
# control, communication without reduction). Anything else unknown is uncounted.
ZERO_OPCODES = frozenset({
    "parameter", "constant", "get-tuple-element", "tuple", "bitcast",
    "broadcast", "reshape", "dynamic-reshape", "transpose", "copy", "copy-start",
    "copy-done", "slice", "dynamic-slice", "dynamic-update-slice", "concatenate", "pad",
    "iota", "gather", "reverse", "after-all", "add-dependency", "partition-id",
    "replica-id", "opt-barrier", "optimization-barrier", "get-dimension-size",
    "set-dimension-size", "send", "send-done", "recv", "recv-done", "infeed", "outfeed",
    "all-gather", "all-gather-start", "all-gather-done", "all-to-all",
    "collective-permute", "collective-permute-start", "collective-permute-done",
    "all-reduce-done", "async-update", "async-done", "domain", "rng-get-and-update-state",
    "collective-broadcast", "ragged-all-to-all",
    "reduce-scatter-done", "all-to-all-start", "all-to-all-done",
    "slice-start", "slice-done", "async-start-done",
})
# Custom calls that select the top k of each row: CPU and TPU ("TopK"), GPU
# ("__gpu$TopK"), and approx_top_k ("ApproxTopK", counted as the exact top-k; TPU
# compiles it to a "PartialReduce" of bins, counted as that reduction, and a sort).
_TOPK_TARGETS = ("TopK", "__gpu$TopK", "ApproxTopK")
# jax's Threefry-2x32 GPU kernels: priced by the block formula, as the jaxpr primitive
# (and the function jax's generic lowering outlines, _THREEFRY_CALLEE) is.
_THREEFRY_TARGETS = ("cu_threefry2x32", "hip_threefry2x32", "cu_threefry2x32_ffi",
                     "hip_threefry2x32_ffi")
_GEMM_TARGETS = ("__cublas$gemm", "__cublas$lt$matmul", "__onednn$matmul",
                 "__cublas$lt$matmul$f8")
_CONV_TARGETS = ("__cudnn$conv", "__onednn$convolution")
# Custom calls that only allocate, annotate or move data: zero in jaxgreen, and zero in
# XLA's count on the backends that emit them (TPU prices them itself).
_ZERO_CUSTOM_CALLS = frozenset({
    "AllocateBuffer", "Sharding", "SPMDFullToShardShape", "SPMDShardToFullShape",
    "MoveToHost", "MoveToDevice", "annotate_device_placement", "LayoutConstraint",
    "PadToStatic", "SliceToDynamic", "X64Combine", "X64SplitLow", "X64SplitHigh",
    "AssumeGatherIndicesInBound", "ConcatBitcast", "GatherScatterIndicesBitpacked",
    # TPU's asynchronous collective wrappers: the collective inside is counted.
    "AsyncCollectiveStart", "AsyncCollectiveDone",
})


@dataclasses.dataclass(frozen=True)
class LoopInfo:
  """One while loop: where it is, its trip count and how that was found."""

  scope: str
  trips: int | None
  how: str  # "known_trip_count", "induction variable", "unknown"
  xla_body_flops: float  # XLA's flops for one trip of body + condition


@dataclasses.dataclass(frozen=True)
class HloCount:
  """The count of one compiled (or lowered) module, per device.

  Attributes:
    cost: jaxgreen's count (ADD/MUL, CostModel prices, loops x trips).
    xla_flops: XLA's HloCostAnalysis flops as replayed by the walk (loops once).
    xla_flops_trips: the same XLA rules with every loop multiplied by its trips.
    xla_transcendentals: XLA's transcendentals as replayed (loops once).
    causes: named cause -> (jaxgreen FPO - XLA flops) for the instructions of that kind,
      loops multiplied; ``sum(causes.values()) == cost.fpo - xla_flops_trips``.
    loops: every while loop found, with its trip count.
    xla_flops_f32: ``xla_flops`` summed as XLA sums it, in float32 and in its visiting
      order; beyond 2**24 flops XLA's own total is rounded, and this is the rounded value.
  """

  cost: Cost
  xla_flops: float
  xla_flops_trips: float
  xla_transcendentals: float
  causes: Mapping[str, float]
  loops: tuple[LoopInfo, ...] = ()
  xla_flops_f32: float | None = None


class _Tally:
  """Mutable sums of one computation's walk."""

  __slots__ = ("tot", "prim", "scope", "unc", "inexact", "x", "xt", "xtr", "causes",
               "loops", "x32", "cur32")

  def __init__(self):
    self.tot = [0, 0, 0, 0, 0]
    self.prim: dict[str, list] = {}
    self.scope: dict[str, list] = {}
    self.unc: dict[str, int] = {}
    self.inexact: dict[str, None] = {}
    self.x = 0.0    # XLA flops, loops once
    self.xt = 0.0   # XLA flops, loops x trips
    self.xtr = 0.0  # XLA transcendentals, loops once
    self.causes: dict[str, float] = {}
    self.loops: list[LoopInfo] = []
    # XLA keeps its properties in float32: x32 replays that arithmetic (sums in XLA's
    # visiting order), cur32 holds the instruction being visited.
    self.x32 = _F32(0)
    self.cur32 = _F32(0)

  def total32(self) -> np.float32:
    return _F32(self.x32 + self.cur32)

  def flush(self) -> None:
    self.x32 = _F32(self.x32 + self.cur32)
    self.cur32 = _F32(0)

  def leaf(self, prim: str, scope: str, c: tuple, xla: float, xla_tr: float = 0.0,
           cause: dict[str, float] | None = None) -> None:
    for i in range(5):
      self.tot[i] += c[i]
    if any(c):
      for table, key in ((self.prim, prim), (self.scope, scope)):
        row = table.setdefault(key, [0, 0, 0, 0, 0])
        for i in range(5):
          row[i] += c[i]
    self.x += xla
    self.xt += xla
    self.xtr += xla_tr
    self.cur32 = _F32(self.cur32 + _F32(xla))
    if cause:
      for k, v in cause.items():
        if v:
          self.causes[k] = self.causes.get(k, 0) + v

  def merge(self, o: _Tally, k_ours: float = 1, k_xla: float = 1) -> None:
    """Adds ``o`` scaled: ours and XLA-with-trips by ``k_ours``, XLA by ``k_xla``."""
    for i in range(5):
      self.tot[i] += o.tot[i] * k_ours
    for mine, theirs in ((self.prim, o.prim), (self.scope, o.scope)):
      for key, row in theirs.items():
        dst = mine.setdefault(key, [0, 0, 0, 0, 0])
        for i in range(5):
          dst[i] += row[i] * k_ours
    for key, n in o.unc.items():
      self.unc[key] = self.unc.get(key, 0) + n
    self.inexact.update(o.inexact)
    self.x += o.x * k_xla
    self.xt += o.xt * k_ours
    self.cur32 = _F32(self.cur32 + _F32(o.total32() * _F32(k_xla)))
    self.xtr += o.xtr * k_xla
    for key, v in o.causes.items():
      self.causes[key] = self.causes.get(key, 0) + v * k_ours
    self.loops.extend(o.loops)

  def freeze(self, cond: str) -> HloCount:
    def counts(table):
      return {k: Counts(*(_num(v) for v in row)) for k, row in table.items() if any(row)}

    cost = Cost(*(_num(v) for v in self.tot), by_primitive=counts(self.prim),
                by_scope=counts(self.scope), uncounted=self.unc,
                inexact=tuple(self.inexact), cond=cond)
    return HloCount(cost, _num(self.x), _num(self.xt), _num(self.xtr),
                    {k: _num(v) for k, v in self.causes.items() if v},
                    tuple(self.loops), _num(float(self.total32())))


_F32 = np.float32


def _num(v):
  if isinstance(v, float) and v.is_integer() and abs(v) < 2**53:
    return int(v)
  return v


# -- scopes ---------------------------------------------------------------------------

_LOOP_SEGMENTS = re.compile(r"(?:^|/)(?:while/(?:body|cond)|cond/branch_\d+_fun|"
                            r"closed_call|checkpoint|remat|rematted_computation|"
                            r"core_call|custom_jvp_call|custom_vjp_call|shard_map)(?=/|$)")


def hlo_scope(op_name: str) -> str:
  """The jaxgreen scope of an HLO ``op_name``: the module path, as the jaxpr count keys it.

  The last segment (the primitive) is dropped, and the segments that lowering adds but
  a jaxpr name stack does not have (``while/body``, ``closed_call``, ``checkpoint``...)
  are removed before :func:`jaxgreen._scope.clean_scope`.
  """
  if not op_name:
    return ""
  op_name = op_name.split(";", 1)[0]
  cut = _last_slash(op_name)
  if cut < 0:
    return ""
  path = _LOOP_SEGMENTS.sub("", op_name[:cut])
  return clean_scope(path.strip("/"))


def _last_slash(s: str) -> int:
  depth = 0
  for i in range(len(s) - 1, -1, -1):
    ch = s[i]
    if ch == ")":
      depth += 1
    elif ch == "(":
      depth -= 1
    elif ch == "/" and depth == 0:
      return i
  return -1


# -- the walk ---------------------------------------------------------------------------

class _Walker:
  def __init__(self, module: Module, cost_model: CostModel, cond: str):
    self.m = module
    self.model = cost_model
    self.cond = cond
    self.memo: dict[tuple[str, str], _Tally] = {}
    self.scopes: dict[str, str] = {}
    # (groups, outputs) inside a TPU fusion that runs a ragged dot as a convolution
    self.ragged: tuple[int, int] | None = None

  def scope(self, op_name: str) -> str:
    s = self.scopes.get(op_name)
    if s is None:
      s = self.scopes[op_name] = hlo_scope(op_name)
    return s

  def walk(self, comp_name: str, op_name: str = "") -> _Tally:
    key = (comp_name, op_name)
    hit = self.memo.get(key)
    if hit is not None:
      return hit
    comp = self.m.computations.get(comp_name)
    t = _Tally()
    if comp is None:
      t.unc[f"computation {comp_name}"] = 1
      self.memo[key] = t
      return t
    for ins in _xla_order(comp):
      self.instr(t, comp, ins, op_name)
      t.flush()
    self.memo[key] = t
    return t

  def operand(self, comp: Computation, ins: Instr, i: int) -> Instr | None:
    if i >= len(ins.operands):
      return None
    return comp.by_name.get(ins.operands[i])

  def operand_arrays(self, comp: Computation, ins: Instr) -> list[Array]:
    out = []
    for name in ins.operands:
      src = comp.by_name.get(name)
      if src is not None:
        out.extend(src.arrays)
    return out

  # -- dispatch ---------------------------------------------------------------------

  def instr(self, t: _Tally, comp: Computation, ins: Instr, outer_op: str) -> None:
    op = ins.opcode
    op_name = ins.op_name or outer_op
    scope = self.scope(op_name)
    if op in ZERO_OPCODES:
      return
    prim = ELEMENTWISE.get(op)
    if prim is not None:
      self.elementwise(t, comp, ins, prim, scope)
    elif op == "dot":
      self.dot(t, comp, ins, scope)
    elif op == "convolution":
      self.conv(t, comp, ins, scope)
    elif op == "ragged-dot":
      self.ragged_dot(t, comp, ins, scope)
    elif op == "fusion":
      self.fusion(t, comp, ins, op_name)
    elif op in ("call", "async-start"):
      for c in ins.called("to_apply") or ins.called("calls"):
        if op == "call" and _THREEFRY_CALLEE.match(c):
          self.threefry(t, comp, ins, c, op_name, scope)
          continue
        t.merge(self.walk(c, op_name))
    elif op in ("rng-bit-generator", "rng"):
      self.rng(t, comp, ins, scope)
    elif op == "while":
      self.while_(t, comp, ins, op_name, scope)
    elif op == "conditional":
      self.conditional(t, comp, ins, op_name)
    elif op == "reduce":
      self.reduce(t, comp, ins, op_name)
    elif op == "reduce-window":
      self.reduce_window(t, comp, ins, op_name)
    elif op == "select-and-scatter":
      self.select_and_scatter(t, comp, ins, op_name)
    elif op == "map":
      body = self.walk(ins.called("to_apply")[0], op_name)
      t.merge(body, ins.out.size if ins.out else 0, ins.out.size if ins.out else 0)
    elif op == "scatter":
      upd = self.operand(comp, ins, len(ins.operands) - 1)
      n = upd.out.size if upd is not None and upd.out else 0
      body = self.walk(ins.called("to_apply")[0], op_name)
      t.merge(body, n, n)
    elif op in ("all-reduce", "all-reduce-start", "reduce-scatter", "reduce-scatter-start"):
      self.all_reduce(t, comp, ins, op_name, scope)
    elif op == "sort":
      self.sort(t, comp, ins, scope)
    elif op == "custom-call":
      self.custom_call(t, comp, ins, scope)
    elif op == "fft":
      self.fft(t, comp, ins, scope)
    else:
      t.unc[op] = t.unc.get(op, 0) + 1
      t.inexact[f"HLO opcode {op!r} has no rule"] = None

  # -- leaves ------------------------------------------------------------------------

  def bytes_of(self, comp: Computation, ins: Instr) -> int:
    return (sum(a.nbytes for a in self.operand_arrays(comp, ins))
            + sum(a.nbytes for a in ins.arrays))

  def elementwise(self, t: _Tally, comp: Computation, ins: Instr, prim: str, scope: str):
    out = ins.out
    n = out.size if out else 0
    ops_in = self.operand_arrays(comp, ins)
    if ins.opcode == "compare":
      prim = (ins.attr("direction") or "EQ").lower()
    is_float = any(a.is_float for a in ops_in) if ops_in else bool(out and out.is_float)
    xla_tr = n if ins.opcode in XLA_TRANSCENDENTAL else 0
    xla = 0 if xla_tr else n
    b = self.bytes_of(comp, ins)
    if prim in _ZERO_ELEMENTWISE:
      t.leaf(prim, scope, (0, 0, 0, 0, b), xla, xla_tr, {PRICING if is_float else INTEGER:
                                                         -xla})
      return
    if prim in _INT_PRIM or not is_float:
      price = self.model.price(prim) or (1, 0)
      iops = (price[0] + price[1]) * n if prim not in _INT_PRIM else n
      if prim == "select_n":
        iops = 0
      t.leaf(prim, scope, (0, 0, 0, iops, b), xla, xla_tr, {INTEGER: -xla})
      return
    # The jaxpr rules' price, complex operands included (formulas.complex_price).
    price = elementwise_price(self.model, prim, any(x.is_complex for x in ops_in))
    if price is None:
      t.unc[prim] = t.unc.get(prim, 0) + 1
      t.leaf(prim, scope, (0, 0, 0, 0, 0), xla, xla_tr, {PRICING: -xla})
      return
    a, m = price
    tr = n if prim in TRANSCENDENTALS else 0
    ours = (a + m) * n
    cause = TRANSC if ins.opcode in XLA_TRANSCENDENTAL else PRICING
    t.leaf(prim, scope, (a * n, m * n, tr, 0, b), xla, xla_tr, {cause: ours - xla})

  def dot(self, t: _Tally, comp: Computation, ins: Instr, scope: str):
    lhs = self.operand(comp, ins, 0)
    out = ins.out
    if lhs is None or lhs.out is None or out is None:
      t.unc["dot"] = t.unc.get("dot", 0) + 1
      return
    k = math.prod(lhs.out.dims[d] for d in ins.int_list("lhs_contracting_dims"))
    self._contraction(t, comp, ins, "dot_general", scope, out.size, k, lhs.out.is_complex,
                      XLA_FMA_FLOPS * out.size * k)

  def _contraction(self, t: _Tally, comp, ins, prim: str, scope: str, out_n: int, k: int,
                   complex_: bool, xla: float, valid: float | None = None,
                   muls_override: int | None = None,
                   counts: tuple[int, int, int] | None = None):
    """A dot or convolution: ``out_n`` outputs of ``k`` products each.

    ``valid`` is what XLA's rules give for the operation (2 flops per product on real
    input) and ``xla`` what XLA reports for this instruction (-1 for a custom call).
    ``counts`` = (ADD, MUL, products) computed by the caller (a convolution, whose
    outputs do not all take the same number of products).
    """
    if counts is not None:
      adds, muls, products = counts
    elif muls_override is not None:
      muls = muls_override
      adds = max(0, muls - out_n)
    elif k == 0:
      adds = muls = 0
    elif complex_:
      adds, muls = out_n * (2 * k + 2 * (k - 1)), out_n * 4 * k
    else:
      adds, muls = out_n * (k - 1), out_n * k
    is_float = ins.out.is_float if ins.out else True
    b = self.bytes_of(comp, ins)
    if counts is not None:
      dense = XLA_FMA_FLOPS * products
    else:
      dense = XLA_FMA_FLOPS * (muls if muls_override is not None else out_n * k)
    valid = dense if valid is None else valid
    if not is_float:
      t.leaf(prim, scope, (0, 0, 0, adds + muls, b), xla, 0,
             {INTEGER: -valid, CUSTOM: valid - xla})
      return
    t.leaf(prim, scope, (adds, muls, 0, 0, b), xla, 0,
           {FMA: adds + muls - dense, PADDING: dense - valid, CUSTOM: valid - xla})

  def conv(self, t: _Tally, comp: Computation, ins: Instr, scope: str,
           out: Array | None = None, custom: bool = False):
    """A convolution, or a cuDNN/oneDNN convolution custom call (``custom``).

    Counted as :func:`jaxgreen.formulas.conv_counts` (taps on lhs-dilation holes never
    count, edge padding does), as the jaxpr rule counts it. cuDNN's backward calls
    carry the forward convolution's ``dim_labels`` and ``window`` (input, filter ->
    output) and compute one of the three from the other two: ``convBackwardInput``
    returns the input (operands: output gradient, filter), ``convBackwardFilter`` the
    filter (operands: input, output gradient); they are counted as the input- and
    weight-gradient convolutions jax writes.
    """
    lhs = self.operand(comp, ins, 0)
    rhs = self.operand(comp, ins, 1)
    out = out or ins.out
    labels = ins.attr("dim_labels")
    if None in (lhs, rhs, out, labels) or lhs.out is None or rhs.out is None:
      t.unc["convolution"] = t.unc.get("convolution", 0) + 1
      return
    target = (ins.attr("custom_call_target") or "").strip('"') if custom else ""
    grad = ("input" if "BackwardInput" in target else
            "filter" if "BackwardFilter" in target else "")
    arrays = {"": (lhs.out, rhs.out, out), "input": (out, rhs.out, lhs.out),
              "filter": (lhs.out, out, rhs.out)}[grad]
    cc = _conv_info(labels, *arrays, ins.attr("window") or "",
                    _int_attr(ins, "feature_group_count", 1),
                    _int_attr(ins, "batch_group_count", 1), grad)
    valid = XLA_FMA_FLOPS * cc.valid
    xla = -1 if custom else valid
    if self.ragged is not None and not custom:
      # A TPU ragged dot: the convolution runs every group's weights over every row and
      # masks the rows outside the group (its fusion's convolution_algorithm_config says
      # is_ragged_dot, num_groups_in_ragged_dot), skipping those iterations. Counted as
      # the jaxpr rule counts ragged_dot_general: 1 / groups of the products, summed
      # into the fusion's outputs.
      groups, outputs = self.ragged
      products = cc.valid // max(1, groups)
      adds, muls = contraction_counts(products, min(outputs, out.size), lhs.out.is_complex)
      b = self.bytes_of(comp, ins)
      if not out.is_float:
        t.leaf("ragged_dot_general", scope, (0, 0, 0, adds + muls, b), xla, 0,
               {INTEGER: -xla})
        return
      dense = XLA_FMA_FLOPS * products
      t.leaf("ragged_dot_general", scope, (adds, muls, 0, 0, b), xla, 0,
             {FMA: adds + muls - dense, OTHER: dense - xla})
      return
    prim = ins.op_name.split(";", 1)[0].rsplit("/", 1)[-1]
    if ins.opcode == "convolution" and ins.op_name and not prim.startswith("conv"):
      # A dot the compiler rewrote as a convolution (TPU): windows, padding and
      # dilation there are layout devices, so only products on real input count.
      self._contraction(t, comp, ins, "dot_general", scope, out.size, 0,
                        lhs.out.is_complex, xla, valid, muls_override=cc.valid)
      return
    self._contraction(t, comp, ins, "conv_general_dilated", scope, out.size, 0,
                      lhs.out.is_complex, xla, valid, counts=(cc.adds, cc.muls, cc.products))

  def ragged_dot(self, t: _Tally, comp: Computation, ins: Instr, scope: str):
    """XLA's ``ragged-dot`` (and CHLO's ``ragged_dot`` of a lowered module), counted as
    the jaxpr rule counts ``ragged_dot_general`` (formulas.ragged_dot_counts).

    XLA's HandleRaggedDot prices it as a dot whose result loses its first
    ``len(rhs_group_dims)`` dimensions; the difference is filed under OTHER.
    """
    lhs, rhs = self.operand(comp, ins, 0), self.operand(comp, ins, 1)
    sizes = self.operand(comp, ins, 2)
    out = ins.out
    if None in (lhs, rhs, sizes, out) or lhs.out is None or sizes.out is None:
      t.unc["ragged-dot"] = t.unc.get("ragged-dot", 0) + 1
      return
    contract = ins.int_list("lhs_contracting_dims")
    k = math.prod(lhs.out.dims[d] for d in contract)
    ragged = any(d in contract for d in ins.int_list("lhs_ragged_dims"))
    groups = sizes.out.dims[-1] if sizes.out.dims else 1
    complex_ = lhs.out.is_complex or (rhs.out is not None and rhs.out.is_complex)
    adds, muls = ragged_dot_counts(out.size, k, groups, ragged, complex_)
    kept = list(out.dims)
    for i in range(len(ins.int_list("rhs_group_dims"))):  # ShapeUtil::DeleteDimension(i)
      if i < len(kept):
        del kept[i]
    xla = XLA_FMA_FLOPS * math.prod(kept) * k
    b = self.bytes_of(comp, ins)
    if not out.is_float:
      t.leaf("ragged_dot_general", scope, (0, 0, 0, adds + muls, b), xla, 0, {INTEGER: -xla})
      return
    dense = XLA_FMA_FLOPS * (muls // 4 if complex_ else muls)
    t.leaf("ragged_dot_general", scope, (adds, muls, 0, 0, b), xla, 0,
           {FMA: adds + muls - dense, OTHER: dense - xla})

  # -- calls and loops ----------------------------------------------------------------

  def fusion(self, t: _Tally, comp: Computation, ins: Instr, op_name: str):
    called = ins.called("calls")
    if not called:
      return
    ragged = (_backend_json(ins).get("convolution_algorithm_config") or {})
    if ragged.get("is_ragged_dot") and ins.out is not None:
      # TPU: a ragged dot as a convolution over every group, masked (see conv).
      outer, self.ragged = self.ragged, (int(ragged.get("num_groups_in_ragged_dot") or 1),
                                         ins.out.size)
      try:
        body = self.walk(called[0], op_name)
      finally:
        self.ragged = outer
    else:
      body = self.walk(called[0], op_name)
    # HloCostAnalysis::HandleFusion: a custom fusion holding a gather or scatter is
    # priced as that gather/scatter alone.
    if 'kind=kCustom' in ins.attrs or ins.attr("kind") == "kCustom":
      fused = self.m.computations.get(called[0])
      special = [i for i in fused.instrs if i.opcode in ("gather", "scatter")] if fused else []
      if special:
        sub = _Tally()
        self.instr(sub, fused, special[0], op_name)
        sub.flush()
        x_special = sub.x
        t.merge(body, 1, 1)
        t.cur32 = sub.total32()
        # replace the replayed XLA flops of the whole fusion by the gather/scatter's
        delta = x_special - body.x
        t.x += delta
        t.xt += delta
        t.causes[PRICING] = t.causes.get(PRICING, 0) - delta
        return
    t.merge(body)

  def while_(self, t: _Tally, comp: Computation, ins: Instr, op_name: str, scope: str):
    cond_c = (ins.called("condition") or [""])[0]
    body_c = (ins.called("body") or [""])[0]
    body = self.walk(body_c, op_name)
    cnd = self.walk(cond_c, op_name)
    trips, how = trip_count(self.m, comp, ins)
    if trips is None:
      t.inexact[f"while loop at scope {scope or '<top level>'!r} ({ins.name}): trip count "
                f"unknown, body counted once"] = None
    # As at the jaxpr stage: body x trips, condition x (trips + 1); an unknown count is
    # one iteration (body once, condition twice). XLA counts each once.
    k_body, k_cond = loop_factors(trips)
    t.merge(body, k_body, 1)
    t.merge(cnd, k_cond, 1)
    t.loops.append(LoopInfo(scope, trips, how, _num(body.x + cnd.x)))

  def conditional(self, t: _Tally, comp: Computation, ins: Instr, op_name: str):
    names = ins.called("branch_computations") or (
        ins.called("true_computation") + ins.called("false_computation"))
    branches = [self.walk(n, op_name) for n in names]
    if not branches:
      return
    fixed = _constant_branch(self.m, comp, ins, len(branches))
    if fixed is not None:  # a constant index or predicate selects its branch exactly
      chosen = [(fixed, 1)]
    else:
      chosen = pick_branches([(b.tot[0] + b.tot[1], b.tot[3]) for b in branches], self.cond)
    sub = _Tally()
    if len(chosen) == 1:
      sub.merge(branches[chosen[0][0]])
    else:  # mean: the sum over the branches divided by their number, as Cost / n
      for b in branches:
        sub.merge(b)
      sub = _divided(sub, len(branches))
    # As the jaxpr rule: uncounted operations and unknown loops of *every* branch are
    # reported, whichever branch is counted.
    sub.unc = {}
    for b in branches:
      for key, n in b.unc.items():
        sub.unc[key] = max(sub.unc.get(key, 0), n)
      sub.inexact.update(b.inexact)
    t.merge(sub)
    # HloCostAnalysis takes the maximum of each property over the branches.
    t.cur32 = max(b.total32() for b in branches)
    xla_max = max(b.x for b in branches)
    delta = xla_max - sub.x
    t.x += delta
    t.xt += delta
    t.causes[OTHER] = t.causes.get(OTHER, 0) - delta

  def reduce(self, t: _Tally, comp: Computation, ins: Instr, op_name: str):
    src = self.operand(comp, ins, 0)
    out = ins.out
    if src is None or src.out is None or out is None:
      t.unc["reduce"] = t.unc.get("reduce", 0) + 1
      return
    n = reduce_steps(src.out.size, out.size)
    body_name = ins.called("to_apply")[0]
    body = self.walk(body_name, op_name)
    arg = _arg_reduce(self.m, ins, body_name)
    if arg is None:
      t.merge(_renamed(body, _reduce_name(body)), n, n)
      return
    # argmax/argmin (a value and an index reduced together, picked by comparing the
    # values): one compare per step, as the jaxpr primitive; the NaN and tie checks
    # and the index bookkeeping of the lowering are not counted. XLA's replay is kept.
    sub = _Tally()
    sub.merge(body, n, n)
    a, m = self.model.price("max" if arg == "argmax" else "min")
    b = self.bytes_of(comp, ins)
    c = (a * n, m * n, 0, 0, b) if src.out.is_float else (0, 0, 0, (a + m) * n, b)
    t.merge(_recounted(sub, arg, self.scope(op_name), c, OTHER))

  def reduce_window(self, t: _Tally, comp: Computation, ins: Instr, op_name: str):
    out = ins.out
    win = _window(ins.attr("window") or "")
    if out is None:
      return
    taps = math.prod(d["size"] for d in win) if win else 1
    src = self.operand(comp, ins, 0)
    xla_n = out.size * (taps - 1)
    # Ours: taps - 1 per output, except a prefix window (cumsum & co.), counted as a
    # scan (n - 1 per row), as at the jaxpr stage (formulas.window_reduce_steps).
    ours_n = xla_n
    if src is not None and src.out is not None and win:
      ours_n = window_reduce_steps(
          src.out.dims, out.size, [d["size"] for d in win], [d["stride"] for d in win],
          [(d["lo"], d["hi"]) for d in win], [d["base"] for d in win],
          [d["dil"] for d in win])
    # HloCostAnalysis::HandleReduceWindow: a window that is a reduce broadcast back over
    # one dimension (cumulative sums lowered this way) is priced as a reduce.
    reducing = [i for i, d in enumerate(win) if d["size"] != 1]
    padded = [d for d in win if d["lo"] or d["hi"]]
    if len(reducing) == 1 and len(padded) == 1 and len(ins.arrays) == 1:
      for i, d in enumerate(win):
        if (d["size"] != 1 and d["lo"] and d["hi"] and d["lo"] == d["hi"]
            and d["size"] == 2 * d["lo"] + 1 and d["lo"] == out.dims[i] - 1):
          w = out.dims[i]
          xla_n = out.size // w + (w - 1)
    body = self.walk(ins.called("to_apply")[0], op_name)
    sub = _Tally()
    sub.merge(body, ours_n, xla_n)
    # Ours-with-trips follows ours; the XLA-count difference is a counting convention.
    diff = body.x * (ours_n - xla_n)
    sub.xt -= diff
    sub.causes[OTHER] = sub.causes.get(OTHER, 0) + diff
    name = {"add": "reduce_window_sum", "max": "reduce_window_max",
            "min": "reduce_window_min"}.get(_reduce_op(body), "reduce_window")
    t.merge(_renamed(sub, name))

  def select_and_scatter(self, t: _Tally, comp: Computation, ins: Instr, op_name: str):
    source = self.operand(comp, ins, 1)
    win = _window(ins.attr("window") or "")
    if source is None or source.out is None:
      return
    taps = math.prod(d["size"] for d in win) if win else 1
    n = source.out.size
    sel = self.walk(ins.called("select")[0], op_name)
    sca = self.walk(ins.called("scatter")[0], op_name)
    t.merge(_renamed(sel, "select_and_scatter_add"), n * (taps - 1), n * (taps - 1))
    t.merge(_renamed(sca, "select_and_scatter_add"), n, n)

  def all_reduce(self, t: _Tally, comp: Computation, ins: Instr, op_name: str, scope: str):
    groups = group_size(ins.attr("replica_groups"), self.m.devices)
    body_name = ins.called("to_apply")
    body = self.walk(body_name[0], op_name) if body_name else _Tally()
    elems = sum(a.size for a in self.operand_arrays(comp, ins))
    out_elems = sum(a.size for a in ins.arrays)
    # jaxgreen, as for psum: each device does (n - 1) / n of the reduction of its
    # elements (reduce-scatter + all-gather); XLA: one flop per output element.
    per_dev = elems * (groups - 1) / groups if groups > 1 else 0
    a = body.tot[0] * per_dev
    m = body.tot[1] * per_dev
    xla = 0 if ins.opcode.startswith("reduce-scatter") else out_elems
    prim = {"maximum": "pmax", "minimum": "pmin"}.get(_reduce_op(body), "psum")
    t.leaf(prim, scope, (_num(a), _num(m), 0, 0, self.bytes_of(comp, ins)), xla, 0,
           {COLLECTIVE: a + m - xla})

  def sort(self, t: _Tally, comp: Computation, ins: Instr, scope: str):
    key = self.operand(comp, ins, 0)
    if key is None or key.out is None:
      return
    dims = ins.int_list("dimensions")
    d = dims[0] if dims else len(key.out.dims) - 1
    n = key.out.dims[d] if key.out.dims else 1
    # As the jaxpr's num_keys: the operands whose parameters the comparator reads.
    keys = _sort_keys(self.m, comp, ins)
    compares = sort_compares(key.out.size, n, len(keys))
    e = key.out.size
    xla = e * _clog2(e)
    a, m = self.model.price("lt")
    b = self.bytes_of(comp, ins)
    if any(o.out is not None and o.out.is_float
           for o in (self.operand(comp, ins, i) for i in keys) if o is not None):
      t.leaf("sort", scope, (a * compares, m * compares, 0, 0, b), xla, 0,
             {OTHER: (a + m) * compares - xla})
    else:
      t.leaf("sort", scope, (0, 0, 0, compares, b), xla, 0, {INTEGER: -xla})

  def top_k(self, t: _Tally, comp: Computation, ins: Instr, scope: str,
            xla: float = 0, prim: str = "top_k"):
    """The top k of each row (``chlo.top_k``, the ``TopK`` custom calls): heap
    selection, ``formulas.top_k_compares`` per row, as the jaxpr ``top_k``."""
    x = self.operand(comp, ins, 0)
    out = ins.arrays[0] if ins.arrays else None
    if x is None or x.out is None or out is None or len(out.dims) != len(x.out.dims):
      name = ins.opcode if ins.opcode.startswith("chlo.") else prim
      t.unc[name] = t.unc.get(name, 0) + 1
      t.leaf(name, scope, (0, 0, 0, 0, 0), xla, 0, {CUSTOM: -xla})
      return
    dims = x.out.dims
    # The selected axis: the one the result shortens (the last one when k = n).
    axis = next((i for i in range(len(dims) - 1, -1, -1) if out.dims[i] != dims[i]),
                len(dims) - 1)
    n = dims[axis] if dims else 1
    k = out.dims[axis] if out.dims else 1
    compares = x.out.size // max(1, n) * top_k_compares(n, k)
    a, m = self.model.price("lt")
    b = self.bytes_of(comp, ins)
    if x.out.is_float:
      t.leaf(prim, scope, (a * compares, m * compares, 0, 0, b), xla, 0,
             {OTHER: (a + m) * compares, CUSTOM: -xla})
    else:
      t.leaf(prim, scope, (0, 0, 0, compares, b), xla, 0, {CUSTOM: -xla})

  def scan(self, t: _Tally, comp: Computation, ins: Instr, op_name: str):
    """A cumulative op as a scan (CHLO's ``scan``): its body combines one slice across
    the rows per step, n - 1 steps along the axis (``formulas.scan_steps`` per row)."""
    x = self.operand(comp, ins, 0)
    called = ins.called("to_apply")
    if x is None or x.out is None or not called:
      t.unc[ins.opcode] = t.unc.get(ins.opcode, 0) + 1
      return
    dims = ins.int_list("dimensions")
    d = dims[0] if dims else 0
    n = x.out.dims[d] if d < len(x.out.dims) else 1
    body = self.walk(called[0], op_name)
    steps = scan_steps(n, n)  # the body holds every row: n - 1 applications
    name = {"add": "cumsum", "mul": "cumprod", "max": "cummax",
            "min": "cummin"}.get(_reduce_op(body), "cumulative")
    t.merge(_renamed(body, name), steps, steps)

  def rng(self, t: _Tally, comp: Computation, ins: Instr, scope: str):
    """Random bits: integer ops only, by the jaxpr rules' block formulas
    (``rng-bit-generator``: formulas.rng_bit_generator_ops; ``rng``, XLA's RngUniform:
    Threefry blocks + a scale and a shift per float element). XLA counts no flops."""
    b = self.bytes_of(comp, ins)
    if ins.opcode == "rng-bit-generator":
      bits = ins.arrays[-1] if ins.arrays else None
      iops = rng_bit_generator_ops(ins.attr("algorithm") or "rng_default",
                                   bits.nbytes if bits is not None else 0)
      t.leaf("rng_bit_generator", scope, (0, 0, 0, iops, b), 0, 0)
      return
    out = ins.out
    if out is None or "normal" in (ins.attr("distribution") or "").lower():
      t.unc["rng"] = t.unc.get("rng", 0) + 1  # jax has no normal RngNormal primitive
      return
    iops = rng_uniform_ops(out.nbytes)
    c = (out.size, out.size, 0, iops, b) if out.is_float else (0, 0, 0, iops, b)
    t.leaf("rng_uniform", scope, c, 0, 0, {OTHER: c[0] + c[1]})

  def threefry(self, t: _Tally, comp: Computation, ins: Instr, callee: str, op_name: str,
               scope: str):
    """jax's outlined Threefry-2x32 function: the block formula (as the jaxpr
    primitive), not its expansion; XLA's replay of the expansion is kept."""
    body = self.walk(callee, op_name)
    pairs = ins.arrays[0].size if ins.arrays else 0
    c = (0, 0, 0, threefry_ops(pairs), self.bytes_of(comp, ins))
    t.merge(_recounted(body, "threefry2x32", scope, c, INTEGER))

  def fft(self, t: _Tally, comp: Computation, ins: Instr, scope: str):
    x = self.operand(comp, ins, 0)
    lengths = ins.int_list("fft_length")
    if x is None or x.out is None or not lengths:
      return
    kind = (ins.attr("fft_type") or "FFT").upper()
    n_total = math.prod(lengths)
    batch = x.out.size // max(1, math.prod(x.out.dims[-len(lengths):]))
    log_sum = sum(math.log2(n) for n in lengths if n > 1)
    muls, adds = 2 * n_total * log_sum * batch, 3 * n_total * log_sum * batch
    if "RFFT" in kind:
      muls, adds = muls / 2, adds / 2
    muls, adds = int(round(muls)), int(round(adds))
    xla = XLA_FMA_FLOPS * 4 * math.prod(int(math.log2(n)) if n else 0 for n in lengths) \
        * x.out.size
    t.leaf("fft", scope, (adds, muls, 0, 0, self.bytes_of(comp, ins)), xla, 0,
           {OTHER: adds + muls - xla})

  def custom_call(self, t: _Tally, comp: Computation, ins: Instr, scope: str):
    target = (ins.attr("custom_call_target") or "").strip('"')
    if target in _ZERO_CUSTOM_CALLS:
      return
    # HloCostAnalysis::HandleCustomCall marks flops "unknown" with -1.
    xla = -1
    if target in _GEMM_TARGETS or target.startswith("__cublas"):
      dn = _backend_json(ins).get("gemm_backend_config", _backend_json(ins)) or {}
      dims = (dn.get("dot_dimension_numbers") or {}).get("lhs_contracting_dimensions")
      lhs = self.operand(comp, ins, 0)
      out = ins.out
      if dims is not None and lhs is not None and lhs.out is not None and out is not None:
        k = math.prod(lhs.out.dims[int(d)] for d in dims)
        self._contraction(t, comp, ins, "dot_general", scope, out.size, k,
                          lhs.out.is_complex, xla)
        return
    if target in _TOPK_TARGETS:
      self.top_k(t, comp, ins, scope, xla, "approx_top_k" if "Approx" in target else "top_k")
      return
    if target == "PartialReduce":
      # TPU's approx_top_k: each output keeps the best of its bin of inputs (a
      # reduction: inputs - outputs compares); an exact top-k of the kept follows.
      x = self.operand(comp, ins, 0)
      out = ins.arrays[0] if ins.arrays else None
      if x is not None and x.out is not None and out is not None:
        n = reduce_steps(x.out.size, out.size)
        a, m = self.model.price("gt")
        b = self.bytes_of(comp, ins)
        c = (a * n, m * n, 0, 0, b) if x.out.is_float else (0, 0, 0, n, b)
        t.leaf("approx_top_k", scope, c, xla, 0, {OTHER: c[0] + c[1], CUSTOM: -xla})
        return
    if target in _THREEFRY_TARGETS:
      pairs = ins.arrays[0].size if ins.arrays else 0
      t.leaf("threefry2x32", scope, (0, 0, 0, threefry_ops(pairs), self.bytes_of(comp, ins)),
             xla, 0, {CUSTOM: -xla})
      return
    if target.startswith(_CONV_TARGETS) and ins.attr("dim_labels"):
      self.conv(t, comp, ins, scope, out=ins.out, custom=True)
      return
    name = f"custom-call {target}" if target else "custom-call"
    t.unc[name] = t.unc.get(name, 0) + 1
    t.leaf(name, scope, (0, 0, 0, 0, 0), xla, 0, {CUSTOM: -xla})


def _divided(t: _Tally, n: int) -> _Tally:
  """``t`` with every count divided by ``n`` (exact where it divides, as Cost / n);
  uncounted operations and notes are kept as they are."""
  def div(v):
    return v // n if isinstance(v, int) and v % n == 0 else v / n

  out = _Tally()
  out.merge(t)
  out.tot = [div(v) for v in out.tot]
  out.prim = {k: [div(v) for v in row] for k, row in out.prim.items()}
  out.scope = {k: [div(v) for v in row] for k, row in out.scope.items()}
  out.x, out.xt, out.xtr = out.x / n, out.xt / n, out.xtr / n
  out.causes = {k: v / n for k, v in out.causes.items()}
  out.x32 = _F32(t.total32() / _F32(n))
  out.cur32 = _F32(0)
  return out


def _renamed(body: _Tally, name: str) -> _Tally:
  """The same tally with every primitive row filed under ``name``."""
  if not body.prim:
    return body
  out = _Tally()
  out.merge(body)
  row = [0, 0, 0, 0, 0]
  for r in out.prim.values():
    for i in range(5):
      row[i] += r[i]
  out.prim = {name: row}
  return out


def _recounted(src: _Tally, prim: str, scope: str, c: tuple, cause: str) -> _Tally:
  """``src`` (a walked body, XLA's replay included) with jaxgreen's own count replaced
  by ``c`` (adds, muls, transcendentals, int ops, bytes), filed under ``prim`` and
  ``scope``; the FPO difference goes to ``cause``, so the causes still add up."""
  out = _Tally()
  out.merge(src)
  before = out.tot[0] + out.tot[1]
  out.tot = list(c)
  out.prim = {prim: list(c)} if any(c) else {}
  out.scope = {scope: list(c)} if any(c) else {}
  delta = c[0] + c[1] - before
  if delta:
    out.causes[cause] = out.causes.get(cause, 0) + delta
  return out


_THREEFRY_CALLEE = re.compile(r"threefry2x32(?:_\d+)?(?:[@.]|$)")
_PASS_VALUE = frozenset({"bitcast", "convert", "copy", "reshape"})


def _param_index(comp: Computation, name: str) -> int | None:
  """The parameter number ``name`` is (through bitcasts and converts), else None."""
  for _ in range(8):
    ins = comp.by_name.get(name)
    if ins is None:
      return None
    if ins.opcode == "parameter":
      try:
        return int(ins.operands[0])
      except (IndexError, ValueError):
        return None
    if ins.opcode not in _PASS_VALUE or not ins.operands:
      return None
    name = ins.operands[0]
  return None


def _arg_reduce(module: Module, ins: Instr, body_name: str) -> str | None:
  """"argmax"/"argmin" for a reduce of (values, integer indices) whose reducer picks by
  comparing the two values (GT/GE: argmax, LT/LE: argmin, as jax lowers argmax_p and
  argmin_p), else None."""
  arrays = ins.arrays
  if len(arrays) != 2 or len(ins.operands) != 4 or arrays[1].is_float:
    return None
  body = module.computations.get(body_name)
  if body is None:
    return None
  for i in body.instrs:
    if i.opcode != "compare" or len(i.operands) != 2:
      continue
    lhs, rhs = (_param_index(body, o) for o in i.operands)
    if {lhs, rhs} != {0, 2}:  # the values: parameters 0 (accumulated) and 2 (next)
      continue
    d = (i.attr("direction") or "").upper()
    greater = d in ("GT", "GE")
    if d not in ("GT", "GE", "LT", "LE"):
      continue
    return "argmax" if greater == (lhs == 0) else "argmin"
  return None


def _is_iota(module: Module, comp: Computation, name: str) -> bool:
  ins = comp.by_name.get(name)
  if ins is None:
    return False
  if ins.opcode == "iota":
    return True
  if ins.opcode == "fusion" and not ins.operands:
    called = module.computations.get((ins.called("calls") or [""])[0])
    return called is not None and called.root.opcode == "iota"
  return False


def _sort_keys(module: Module, comp: Computation, ins: Instr) -> list[int]:
  """The operands of a sort that are keys: those whose comparator parameters (2i and
  2i + 1) the comparator's result depends on. An iota operand other than the first is
  an index tie-breaker (XLA's stable-sort expander adds one), not a key. At least
  operand 0."""
  called = ins.called("to_apply")
  cmp = module.computations.get(called[0]) if called else None
  if cmp is None:
    return [0]
  seen: set[str] = set()
  stack = [cmp.root.name]
  params: set[int] = set()
  while stack:
    name = stack.pop()
    if name in seen:
      continue
    seen.add(name)
    i = cmp.by_name.get(name)
    if i is None:
      continue
    if i.opcode == "parameter":
      try:
        params.add(int(i.operands[0]))
      except (IndexError, ValueError):
        pass
      continue
    stack.extend(i.operands)
  keys = sorted({p // 2 for p in params if p // 2 < len(ins.operands)})
  keys = [k for k in keys if k == 0 or not _is_iota(module, comp, ins.operands[k])]
  return keys or [0]


def _reduce_op(body: _Tally) -> str:
  names = [k for k, r in body.prim.items() if any(r[:4])]
  return names[0] if len(names) == 1 else ""


def _reduce_name(body: _Tally) -> str:
  return {"add": "reduce_sum", "max": "reduce_max", "min": "reduce_min",
          "mul": "reduce_prod"}.get(_reduce_op(body), "reduce")


def _clog2(n: int) -> int:
  return max(0, (int(n) - 1).bit_length())


def _int_attr(ins: Instr, key: str, default: int) -> int:
  v = ins.attr(key)
  try:
    return int(v) if v is not None else default
  except ValueError:
    return default


def _backend_json(ins: Instr) -> dict:
  v = ins.attr("backend_config")
  if not v:
    return {}
  try:
    return json.loads(v)
  except ValueError:
    return {}


def _window(text: str) -> list[dict[str, int]]:
  """Parses ``{size=3x3 stride=1x1 pad=1_1x1_1 lhs_dilate=1x1 rhs_dilate=1x1}``."""
  fields = dict(re.findall(r"(\w+)=([\d_x\-]+)", text))
  if "size" not in fields:
    return []
  sizes = [int(s) for s in fields["size"].split("x")]
  n = len(sizes)

  def per_dim(key, default):
    if key not in fields:
      return [default] * n
    return fields[key].split("x")

  strides = [int(s) for s in per_dim("stride", "1")]
  pads = [p.split("_") for p in per_dim("pad", "0_0")]
  lhs_d = [int(s) for s in per_dim("lhs_dilate", "1")]
  rhs_d = [int(s) for s in per_dim("rhs_dilate", "1")]
  return [{"size": sizes[i], "stride": strides[i], "lo": int(pads[i][0]),
           "hi": int(pads[i][1]), "base": lhs_d[i], "dil": rhs_d[i]} for i in range(n)]


def _conv_info(labels: str, lhs: Array, rhs: Array, out: Array, window_text: str,
               fgc: int, bgc: int, grad: str = "") -> ConvCounts:
  """The counts of a convolution (:func:`jaxgreen.formulas.conv_counts`).

  ``lhs``, ``rhs``, ``out`` are the forward convolution's input, filter and output as
  ``labels`` (``dim_labels``) and ``window_text`` describe them. ``grad`` is ``""`` for
  that convolution, ``"input"`` or ``"filter"`` for its input or weight gradient (a
  cuDNN backward call). ``valid`` of the result is XLA's ``GetConvolutionFlops`` FMA
  count: (kernel, output) position pairs that land on a real input element.
  """
  lhs_l, rest = labels.split("_", 1)
  rhs_l, out_l = rest.split("->")

  def spatial(label: str, arr: Array) -> list[int]:
    order = sorted((ch, i) for i, ch in enumerate(label) if ch.isdigit())
    return [arr.dims[i] for _, i in order]

  ins_l, ker_l, outs_l = spatial(lhs_l, lhs), spatial(rhs_l, rhs), spatial(out_l, out)
  win = _window(window_text)
  dims = []
  for d in range(len(ker_l)):
    w = win[d] if d < len(win) else {"stride": 1, "lo": 0, "hi": 0, "base": 1, "dil": 1}
    dims.append((ins_l[d], ker_l[d], outs_l[d], w["stride"], w["lo"], w["hi"], w["base"],
                 w["dil"]))
  complex_ = lhs.is_complex or rhs.is_complex
  if grad == "input" and all(d[6] == 1 for d in dims):
    # d(input): the output gradient, dilated by the strides, against the kernel.
    out_feat = out.dims[out_l.index("f")]
    return conv_counts(lhs.size, out_feat // max(1, fgc),
                       [conv_input_grad_dim(n, k, o, s, lo, hi, r)
                        for n, k, o, s, lo, hi, _, r in dims], complex_)
  # The (input, output, tap) triples of the forward convolution; XLA's GetConvolutionFlops
  # is (C_in / fgc) * C_out * (batch / bgc) * valid positions, the same product.
  fwd = conv_counts(out.size, rhs.dims[rhs_l.index("i")], dims, complex_)
  if grad:
    # d(filter): the forward products, summed per filter element (and, for an input
    # gradient of an lhs-dilated convolution, per input element).
    adds, muls = contraction_counts(fwd.products, (rhs if grad == "filter" else lhs).size,
                                    complex_)
    return ConvCounts(adds, muls, fwd.products, fwd.valid)
  return fwd


_RAGGED_DNUMS = {"lhs_batching_dimensions": "lhs_batch_dims",
                 "rhs_batching_dimensions": "rhs_batch_dims",
                 "lhs_contracting_dimensions": "lhs_contracting_dims",
                 "rhs_contracting_dimensions": "rhs_contracting_dims",
                 "lhs_ragged_dimensions": "lhs_ragged_dims",
                 "rhs_group_dimensions": "rhs_group_dims"}


def ragged_dot_attrs(text: str) -> str:
  """HLO attributes of ``ragged-dot`` from a StableHLO ``#chlo.ragged_dot<...>`` (or
  ``#mhlo.ragged_dot<...>``) dimension-numbers attribute."""
  out = []
  for key, hlo in _RAGGED_DNUMS.items():
    m = re.search(key + r"\s*=\s*\[([\d,\s]*)\]", text)
    if m:
      dims = ",".join(re.findall(r"\d+", m.group(1)))
      out.append(f"{hlo}={{{dims}}}")
  return ", ".join(out)


def _xla_order(comp: Computation) -> list[Instr]:
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


# -- trip counts ----------------------------------------------------------------------

_KNOWN_TRIPS = re.compile(r'"known_trip_count":\{"n":"(\d+)"\}')


def _constant_branch(module: Module, comp: Computation, ins: Instr, n: int) -> int | None:
  """The branch a conditional with a constant index (or predicate) takes, else None.

  An index out of range takes the last branch (HLO semantics); a predicate selects
  ``true_computation`` (listed first) when true.
  """
  if not ins.operands:
    return None
  try:
    v = _sym(module, comp, ins.operands[0], {})
  except (KeyError, IndexError, ValueError):
    return None
  if not v or v[0] != "c":
    return None
  if ins.called("branch_computations"):
    i = int(v[1])
    return i if 0 <= i < n else n - 1
  return 0 if v[1] else min(1, n - 1)


def trip_count(module: Module, comp: Computation, w: Instr) -> tuple[int | None, str]:
  """The trip count of while instruction ``w`` and how it was found.

  CPU and GPU compilers record ``known_trip_count`` in the backend config. Where it is
  missing (TPU), the loop is recognised as counted: the condition compares a tuple
  element (the induction variable) with a constant, the body adds a constant step to
  it, and the initial value is a constant.
  """
  m = _KNOWN_TRIPS.search(w.attrs)
  if m:
    return int(m.group(1)), "known_trip_count"
  try:
    n = _derive_trips(module, comp, w)
  except (KeyError, IndexError, ValueError, ZeroDivisionError):
    n = None
  return (n, "induction variable") if n is not None else (None, "unknown")


def _derive_trips(module: Module, comp: Computation, w: Instr) -> int | None:
  cond = module.computations[w.called("condition")[0]]
  body = module.computations[w.called("body")[0]]
  init = comp.by_name.get(w.operands[0])
  init_comp = comp
  for _ in range(8):  # XLA:CPU wraps a loop in a call: its state comes from the caller
    if init is None or init.opcode != "parameter":
      break
    site = _unique_call_site(module, init_comp.name)
    idx = int(init.operands[0])
    if site is None or idx >= len(site[1].operands):
      break
    init_comp, init = site[0], site[0].by_name.get(site[1].operands[idx])
  cmp = _find_compare(module, cond, cond.root.name, {})
  if cmp is None:
    return None
  direction, lhs, rhs = cmp

  def init_value(k: int):
    if init is None or init.opcode != "tuple" or k >= len(init.operands):
      return None
    v = _sym(module, init_comp, init.operands[k], {})
    return v[1] if v and v[0] == "c" else None

  body_out = body.root
  if body_out.opcode != "tuple":
    return None

  def const_of(s):
    if s is None:
      return None
    if s[0] == "c":
      return s[1]
    if s[0] == "iv":  # a loop-invariant tuple element initialised to a constant
      nxt = _sym(module, body, body_out.operands[s[1]], {})
      if nxt == ("iv", s[1]):
        return init_value(s[1])
    return None

  def counter(s):
    """(k, offset) for tuple element k plus a constant offset, else None."""
    if s and s[0] == "iv" and const_of(s) is None:
      return s[1], 0
    if s and s[0] == "iv+" and const_of(("iv", s[1])) is None:
      off = const_of(s[2])
      return (s[1], off) if off is not None else None
    return None

  lc, rc = counter(lhs), counter(rhs)
  if lc is not None and const_of(rhs) is not None:
    (k, offset), bound, counter_first = lc, const_of(rhs), True
  elif rc is not None and const_of(lhs) is not None:
    (k, offset), bound, counter_first = rc, const_of(lhs), False
  else:
    return None
  start = init_value(k)
  step_sym = _sym(module, body, body_out.operands[k], {})
  if start is None or step_sym is None or step_sym[0] != "iv+" or step_sym[1] != k:
    return None
  step = const_of(step_sym[2])
  if step is None:
    return None
  return counted_loop_trips(direction, counter_first, offset, bound, start, step)


def _unique_call_site(module: Module, name: str) -> tuple[Computation, Instr] | None:
  """The one ``call`` instruction that calls computation ``name``, with its computation."""
  sites = [(c, i) for c in module.computations.values() for i in c.instrs
           if i.opcode == "call" and name in i.called("to_apply")]
  return sites[0] if len(sites) == 1 else None


_PASS = frozenset({"copy", "bitcast", "convert", "reshape", "broadcast"})
_FOLD = {"maximum": max, "minimum": min}


def _sym(module: Module, comp: Computation, name: str, env: dict[int, Any]):
  """A symbolic scalar: ("c", v) constant, ("iv", k) tuple element k of the loop state,
  ("iv+", k, sym) element k plus a step, or None."""
  ins = comp.by_name.get(name)
  if ins is None:
    return None
  op = ins.opcode
  if op == "constant":
    try:
      v = ins.operands[0].strip()
      if v in ("true", "false"):  # a pred constant (a branch predicate)
        return ("c", int(v == "true"))
      return ("c", int(v)) if re.fullmatch(r"-?\d+", v) else ("c", float(v))
    except (IndexError, ValueError):
      return None
  if op == "parameter":
    idx = int(ins.operands[0])
    return env.get(idx, ("param", idx))
  if op == "get-tuple-element":
    src = comp.by_name.get(ins.operands[0])
    if src is not None and src.opcode == "parameter" and not env:
      return ("iv", _int_attr(ins, "index", 0))
    return None
  if op in _PASS:
    return _sym(module, comp, ins.operands[0], env)
  if op in _FOLD or op == "clamp":  # constants only (a switch's clamped index)
    vals = [_sym(module, comp, o, env) for o in ins.operands]
    if not vals or any(not v or v[0] != "c" for v in vals):
      return None
    if op == "clamp":
      return ("c", min(max(vals[1][1], vals[0][1]), vals[2][1]))
    return ("c", _FOLD[op](vals[0][1], vals[1][1]))
  if op in ("add", "subtract"):
    a = _sym(module, comp, ins.operands[0], env)
    b = _sym(module, comp, ins.operands[1], env)
    if a and b and a[0] == "c" and b[0] == "c":
      return ("c", a[1] + b[1] if op == "add" else a[1] - b[1])
    if a and a[0] == "iv" and b and b[0] in ("c", "iv"):
      return ("iv+", a[1], b if op == "add" else _neg(b))
    if op == "add" and b and b[0] == "iv" and a and a[0] in ("c", "iv"):
      return ("iv+", b[1], a)
    return None
  if op == "fusion":
    called = module.computations[ins.called("calls")[0]]
    sub_env = {i: _sym(module, comp, o, env) for i, o in enumerate(ins.operands)}
    return _sym(module, called, called.root.name, sub_env)
  return None


def _neg(s):
  return ("c", -s[1]) if s[0] == "c" else None


def _find_compare(module: Module, comp: Computation, name: str, env: dict[int, Any]):
  ins = comp.by_name.get(name)
  if ins is None:
    return None
  if ins.opcode == "compare":
    return ((ins.attr("direction") or "").upper(),
            _sym(module, comp, ins.operands[0], env), _sym(module, comp, ins.operands[1], env))
  if ins.opcode == "fusion":
    called = module.computations[ins.called("calls")[0]]
    sub_env = {i: _sym(module, comp, o, env) for i, o in enumerate(ins.operands)}
    return _find_compare(module, called, called.root.name, sub_env)
  if ins.opcode in _PASS:
    return _find_compare(module, comp, ins.operands[0], env)
  return None


# -- entry points ---------------------------------------------------------------------

def count_hlo_text(text: str, *, cost_model: CostModel | None = None,
                   cond: str = "max") -> HloCount:
  """Counts the entry computation of an HLO module given as text.

  Args:
    text: ``compiled.as_text()`` (optimized HLO) or ``lowered.as_text("hlo")``.
    cost_model: prices of non-elementary operations; default ``CostModel()``.
    cond: ``"max"`` (default), ``"min"`` or ``"mean"`` for conditionals, as in
      :func:`jaxgreen.count`.

  Returns:
    An :class:`HloCount` (per device for an SPMD-partitioned module).
  """
  module = parse_module(text)
  if not module.computations:
    raise HloParseError("count_hlo_text(text=...): no HLO computation found; pass "
                        "compiled.as_text() or lowered.as_text('hlo')")
  return count_module(module, cost_model=cost_model, cond=cond)


def count_module(module: Module, *, cost_model: CostModel | None = None,
                 cond: str = "max") -> HloCount:
  """Counts the entry computation of an already parsed module (see :func:`count_hlo_text`)."""
  if cond not in ("max", "min", "mean"):
    raise ValueError(f"cond={cond!r}: use 'max', 'min' or 'mean'")
  walker = _Walker(module, cost_model or DEFAULT, cond)
  try:
    return walker.walk(module.entry).freeze(cond)
  except (IndexError, KeyError, ValueError, TypeError, ZeroDivisionError, AttributeError,
          RecursionError) as e:
    if isinstance(e, HloParseError):
      raise
    # Text that parses but whose instructions do not fit together (an operand index
    # past the operands, a window of the wrong rank, ...): refused, never a raw error.
    raise HloParseError(f"HLO module {module.entry!r} cannot be counted: an instruction "
                        f"does not match its operands ({type(e).__name__}: {e}); pass the "
                        f"unmodified compiled.as_text()") from e


def count_compiled(compiled, *, cost_model: CostModel | None = None,
                   cond: str = "max") -> HloCount:
  """Counts a ``jax.stages.Compiled`` from its optimized HLO (see :func:`count_hlo_text`).

  Example:
    >>> c = jax.jit(lambda a, b: a @ b).lower(x, y).compile()
    >>> count_compiled(c).cost.muls  # M*N*K
  """
  text = compiled.as_text()
  if not isinstance(text, str) or not text:
    raise ValueError("count_compiled(compiled=...): this executable has no HLO text; pass "
                     "the result of jax.jit(f).lower(*args).compile()")
  return count_hlo_text(text, cost_model=cost_model, cond=cond)
