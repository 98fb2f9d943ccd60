"""FPO rules for contractions: ``dot``, ``convolution``, ``ragged-dot`` and the GEMM and
convolution custom calls (cuBLAS, cuDNN, oneDNN).

Conventions, as the jaxpr rules: a dot is MUL = B*M*N*K, ADD = B*M*N*(K-1); a
convolution counts the window taps on real input or edge padding, a transposed one each
real input element times each kernel tap (:func:`jaxgreen._src.formulas.conv_counts`); a
ragged dot as
:func:`jaxgreen._src.formulas.ragged_dot_counts`. XLA's figure is 2 flops per product on
real input; the difference is filed under FMA, padding and custom-call causes.

Example:
  >>> cc = conv_info("b01f_01io->b01f", Array("f32", (1, 4, 4, 1)),
  ...                Array("f32", (3, 3, 1, 1)), Array("f32", (1, 2, 2, 1)), (), 1, 1)
  >>> cc.muls, cc.valid
  (36, 36)
"""

from __future__ import annotations

import math

from jaxgreen._src.formulas import (
  ConvCounts,
  contraction_counts,
  conv_counts,
  conv_filter_grad_dim,
  conv_input_grad_dim,
  ragged_dot_counts,
)
from jaxgreen._src.hlo.ir import Array, Computation, Instr, Window
from jaxgreen._src.hlo.pricing import CounterBase
from jaxgreen._src.hlo.tally import Tally
from jaxgreen._src.hlo.xla import CUSTOM, FMA, INTEGER, OTHER, PADDING, XLA_FMA_FLOPS

GEMM_TARGETS = ("__cublas$gemm", "__cublas$lt$matmul", "__onednn$matmul",
                "__cublas$lt$matmul$f8")
CONV_TARGETS = ("__cudnn$conv", "__onednn$convolution")
_NO_WINDOW = Window(1)


def conv_info(labels: str, lhs: Array, rhs: Array, out: Array, win: tuple[Window, ...],
              fgc: int, bgc: int, grad: str = "") -> ConvCounts:
  """The counts of a convolution (:func:`jaxgreen._src.formulas.conv_counts`).

  ``lhs``, ``rhs``, ``out`` are the forward convolution's input, filter and output as
  ``labels`` (``dim_labels``) and ``win`` describe them. ``grad`` is ``""`` for that
  convolution, ``"input"`` or ``"filter"`` for its input or weight gradient (a cuDNN
  backward call). ``valid`` of the result is XLA's ``GetConvolutionFlops`` FMA count:
  (kernel, output) position pairs that land on a real input element.
  """
  lhs_l, rest = labels.split("_", 1)
  rhs_l, out_l = rest.split("->")

  def spatial(label: str, arr: Array) -> list[int]:
    order = sorted((ch, i) for i, ch in enumerate(label) if ch.isdigit())
    return [arr.dims[i] for _, i in order]

  ins_l, ker_l, outs_l = spatial(lhs_l, lhs), spatial(rhs_l, rhs), spatial(out_l, out)
  dims = []
  for d in range(len(ker_l)):
    w = win[d] if d < len(win) else _NO_WINDOW
    dims.append((ins_l[d], ker_l[d], outs_l[d], w.stride, w.lo, w.hi, w.base, w.dil))
  # A group-selection dimension (XLA's rewrite of a grouped weight gradient) pairs
  # each output with one real element: counted in the outputs, not as a dimension.
  dims = [d for d in dims if not _selects_group(d)]
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
    # d(filter): the products of the weight-gradient convolution jax writes (the
    # forward's, but where a kernel wider than the input makes it a transposed one),
    # summed per filter element; for an input gradient of an lhs-dilated convolution,
    # the forward products summed per input element.
    products = fwd.products
    if grad == "filter" and all(d[6] == 1 for d in dims):
      products = conv_counts(rhs.size, lhs.dims[lhs_l.index("b")],
                             [conv_filter_grad_dim(n, k, o, s, lo, hi, r)
                              for n, k, o, s, lo, hi, _, r in dims]).products
    adds, muls = contraction_counts(products, (rhs if grad == "filter" else lhs).size,
                                    complex_)
    return ConvCounts(adds, muls, products, fwd.valid)
  return fwd


def _selects_group(dim: tuple[int, ...]) -> bool:
  """Whether a convolution dimension is the group selector XLA writes for
  ``batch_group_count`` (a weight gradient of a grouped convolution): G inputs spread G
  apart, a window of G at stride G - 1, G outputs, each window holding one input."""
  n, k, o, s, lo, hi, b, r = dim
  return n == k == b == o > 1 and lo == hi == 0 and s == max(1, n - 1) and r == 1


class DenseRules(CounterBase):
  """Counts contractions."""

  def dot(self, t: Tally, comp: Computation, ins: Instr, op_name: str) -> None:
    lhs = comp.operand(ins, 0)
    out = ins.out
    if lhs is None or lhs.out is None or out is None:
      t.note_uncounted("dot")
      return
    k = math.prod(lhs.out.dims[d] for d in ins.int_list("lhs_contracting_dims"))
    self.contraction(t, comp, ins, "dot_general", self.scope(op_name), out.size, k,
                     lhs.out.is_complex, XLA_FMA_FLOPS * out.size * k)

  def contraction(self, t: Tally, comp: Computation, ins: Instr, prim: str, scope: str,
                  out_n: int, k: int, complex_: bool, xla: float, valid: float | None = None,
                  muls_override: int | None = None,
                  counts: tuple[int, int, int] | None = None) -> None:
    """A dot or convolution: ``out_n`` outputs of ``k`` products each.

    ``valid`` is what XLA's rules give for the operation (2 flops per product on real
    input) and ``xla`` what XLA reports for this instruction (-1 for a custom call).
    ``counts`` = (ADD, MUL, products) computed by the caller (a convolution, whose
    outputs do not all take the same number of products).
    """
    adds, muls, dense = _contraction_counts(out_n, k, complex_, muls_override, counts)
    is_float = ins.out.is_float if ins.out else True
    b = self.bytes_of(comp, ins)
    valid = dense if valid is None else valid
    if not is_float:
      t.leaf(prim, scope, xla, 0, {INTEGER: -valid, CUSTOM: valid - xla}, int_ops=adds + muls,
             nbytes=b)
      return
    t.leaf(prim, scope, xla, 0,
           {FMA: adds + muls - dense, PADDING: dense - valid, CUSTOM: valid - xla}, adds=adds,
           muls=muls, nbytes=b)

  def convolution(self, t: Tally, comp: Computation, ins: Instr, op_name: str) -> None:
    self.conv(t, comp, ins, self.scope(op_name))

  def conv(self, t: Tally, comp: Computation, ins: Instr, scope: str,
           custom: bool = False) -> None:
    """A convolution, or a cuDNN/oneDNN convolution custom call (``custom``).

    Counted as :func:`jaxgreen._src.formulas.conv_counts` (edge padding taps count; a
    transposed convolution counts input elements x kernel taps), as the jaxpr rule
    counts it. cuDNN's backward calls
    carry the forward convolution's ``dim_labels`` and ``window`` (input, filter ->
    output) and compute one of the three from the other two: ``convBackwardInput``
    returns the input (operands: output gradient, filter), ``convBackwardFilter`` the
    filter (operands: input, output gradient); they are counted as the input- and
    weight-gradient convolutions jax writes.
    """
    lhs, rhs = comp.operand(ins, 0), comp.operand(ins, 1)
    out = ins.out
    labels = ins.text("dim_labels")
    if (lhs is None or rhs is None or out is None or labels is None or lhs.out is None
        or rhs.out is None):
      t.note_uncounted("convolution")
      return
    target = (ins.text("custom_call_target") or "") if custom else ""
    grad = ("input" if "BackwardInput" in target else
            "filter" if "BackwardFilter" in target else "")
    arrays = {"": (lhs.out, rhs.out, out), "input": (out, rhs.out, lhs.out),
              "filter": (lhs.out, out, rhs.out)}[grad]
    cc = conv_info(labels, *arrays, ins.window(), ins.int_attr("feature_group_count", 1),
                   ins.int_attr("batch_group_count", 1), grad)
    valid = XLA_FMA_FLOPS * cc.valid
    xla = -1 if custom else valid
    if self.ragged is not None and not custom:
      self._ragged_conv(t, comp, ins, scope, cc, lhs.out.is_complex, out, xla)
      return
    prim = ins.op_name.split(";", 1)[0].rsplit("/", 1)[-1]
    if ins.opcode == "convolution" and ins.op_name and not prim.startswith("conv"):
      # A dot the compiler rewrote as a convolution (TPU): windows, padding and
      # dilation there are layout devices, so only products on real input count.
      self.contraction(t, comp, ins, "dot_general", scope, out.size, 0,
                       lhs.out.is_complex, xla, valid, muls_override=cc.valid)
      return
    self.contraction(t, comp, ins, "conv_general_dilated", scope, out.size, 0,
                     lhs.out.is_complex, xla, valid, counts=(cc.adds, cc.muls, cc.products))

  def _ragged_conv(self, t: Tally, comp: Computation, ins: Instr, scope: str,
                   cc: ConvCounts, complex_: bool, out: Array, xla: float) -> None:
    """A TPU ragged dot: the convolution runs every group's weights over every row and
    masks the rows outside the group (its fusion's convolution_algorithm_config says
    is_ragged_dot, num_groups_in_ragged_dot), skipping those iterations. Counted as the
    jaxpr rule counts ragged_dot_general: 1 / groups of the products, summed into the
    fusion's outputs."""
    assert self.ragged is not None
    groups, outputs = self.ragged
    products = cc.valid // max(1, groups)
    adds, muls = contraction_counts(products, min(outputs, out.size), complex_)
    b = self.bytes_of(comp, ins)
    if not out.is_float:
      t.leaf("ragged_dot_general", scope, xla, 0, {INTEGER: -xla}, int_ops=adds + muls, nbytes=b)
      return
    dense = XLA_FMA_FLOPS * products
    t.leaf("ragged_dot_general", scope, xla, 0, {FMA: adds + muls - dense, OTHER: dense - xla},
           adds=adds, muls=muls, nbytes=b)

  def ragged_dot(self, t: Tally, comp: Computation, ins: Instr, op_name: str) -> None:
    """XLA's ``ragged-dot`` (and CHLO's ``ragged_dot`` of a lowered module), counted as
    the jaxpr rule counts ``ragged_dot_general`` (formulas.ragged_dot_counts).

    XLA's HandleRaggedDot prices it as a dot whose result loses its first
    ``len(rhs_group_dims)`` dimensions; the difference is filed under OTHER.
    """
    lhs, rhs = comp.operand(ins, 0), comp.operand(ins, 1)
    sizes = comp.operand(ins, 2)
    out = ins.out
    if (lhs is None or rhs is None or sizes is None or out is None or lhs.out is None
        or sizes.out is None):
      t.note_uncounted("ragged-dot")
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
    scope = self.scope(op_name)
    if not out.is_float:
      t.leaf("ragged_dot_general", scope, xla, 0, {INTEGER: -xla}, int_ops=adds + muls, nbytes=b)
      return
    dense = XLA_FMA_FLOPS * (muls // 4 if complex_ else muls)
    t.leaf("ragged_dot_general", scope, xla, 0, {FMA: adds + muls - dense, OTHER: dense - xla},
           adds=adds, muls=muls, nbytes=b)

  def gemm_call(self, t: Tally, comp: Computation, ins: Instr, scope: str) -> bool:
    """A cuBLAS/oneDNN GEMM custom call priced as its dot; False if its backend config
    does not say which dimensions it contracts."""
    cfg = ins.backend_config()
    dn = cfg.get("gemm_backend_config", cfg) or {}
    dims = (dn.get("dot_dimension_numbers") or {}).get("lhs_contracting_dimensions")
    lhs = comp.operand(ins, 0)
    out = ins.out
    if dims is None or lhs is None or lhs.out is None or out is None:
      return False
    k = math.prod(lhs.out.dims[int(d)] for d in dims)
    self.contraction(t, comp, ins, "dot_general", scope, out.size, k, lhs.out.is_complex, -1)
    return True


def _contraction_counts(out_n: int, k: int, complex_: bool, muls_override: int | None,
                        counts: tuple[int, int, int] | None) -> tuple[int, int, int]:
  """(ADD, MUL, XLA's dense flops) of a contraction (see DenseRules.contraction)."""
  if counts is not None:
    adds, muls, products = counts
    return adds, muls, XLA_FMA_FLOPS * products
  if muls_override is not None:
    return max(0, muls_override - out_n), muls_override, XLA_FMA_FLOPS * muls_override
  if k == 0:
    adds = muls = 0
  elif complex_:
    adds, muls = out_n * (2 * k + 2 * (k - 1)), out_n * 4 * k
  else:
    adds, muls = out_n * (k - 1), out_n * k
  return adds, muls, XLA_FMA_FLOPS * out_n * k
