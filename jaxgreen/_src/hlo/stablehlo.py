"""Counts a lowered program: the StableHLO module jax hands to XLA, before any XLA pass.

``lowered.compiler_ir("stablehlo")`` is read through the MLIR Python bindings that ship
with jaxlib and built into the IR of :mod:`jaxgreen._src.hlo.ir` (``stablehlo.dot_general``
-> ``dot``, regions -> called computations, ``func.call`` -> ``call``, multi-result
operations -> tuples), with attributes as typed values in ``Instr.fields``. It is
counted by the same table and traversal as the compiled HLO
(:mod:`jaxgreen._src.hlo.count`), so the conventions are identical: dot MUL = B*M*N*K,
ADD = B*M*N*(K-1), dense convolutions, reductions n - 1, transcendentals priced by the
CostModel, while loops x their trip count (derived from the induction variable:
StableHLO carries no ``known_trip_count``), ``case``/``if`` as a conditional under the
``cond=`` policy (their branches read the enclosing values directly), and a
``shard_map`` body (``sdy.manual_computation``) x the devices of its manual axes, so
the count is global as the jaxpr count is.

What differs between the two stages is data: :data:`_RENAME` (StableHLO names whose
HLO opcode is not the name with ``-`` for ``_``), the ``chlo.*`` entries of
:data:`jaxgreen._src.hlo.pricing.ELEMENTWISE` and of :data:`jaxgreen._src.hlo.count.RULES`.

Example::

  lowered = jax.jit(f).lower(x)
  jaxgreen._src.hlo.count_lowered(lowered).fpo
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from jaxgreen._src.cost import Cost
from jaxgreen._src.cost_model import DEFAULT, CostModel
from jaxgreen._src.hlo.count import Counter
from jaxgreen._src.hlo.ir import Computation, Instr, Module, parse_type
from jaxgreen._src.hlo.kernels import KERNEL_TARGETS, KernelTable, kernel_fields
from jaxgreen._src.hlo.mlir import (
  MlirAttrs,
  attr_ints,
  constant_value,
  conv_labels,
  dense_group_size,
  make_window,
  ragged_dot_fields,
  type_text,
)
from jaxgreen._src.hlo.pricing import ELEMENTWISE
from jaxgreen._src.hlo.tally import HloCount

# StableHLO / MHLO op name -> HLO opcode, where dropping the prefix and writing "-" for
# "_" is not enough.
_RENAME = {
    "broadcast_in_dim": "broadcast", "dot_general": "dot", "dot": "dot",
    "optimization_barrier": "opt-barrier", "dynamic_broadcast_in_dim": "broadcast",
    "dynamic_iota": "iota", "real_dynamic_slice": "slice", "uniform_quantize": "convert",
    "uniform_dequantize": "convert", "composite": "call", "case": "conditional",
    "if": "conditional",
}
_RETURNS = ("func.return", "stablehlo.return", "sdy.return")
_LOC_NAME = re.compile(r'^loc\("((?:[^"\\]|\\.)*)"')
_MESH_AXIS = re.compile(r'"([^"]+)"\s*=\s*(\d+)')
_MESH_AXES = re.compile(r"replica_group_mesh_axes<mesh = @([\w.$-]+), axes = \[(.*)\]>")

Fields = dict[str, Any]


class _Translator:
  """Builds a :class:`Module` of HLO-like instructions from an MLIR module."""

  def __init__(self, module: Any):
    self.funcs: dict[str, Any] = {}
    self.comps: dict[str, Computation] = {}
    self.count = 0
    # Every value translated so far, by name: a region (case/if branches, and any
    # region that uses a value of an enclosing block) reads it as a parameter.
    self.defs: dict[str, Instr] = {}
    self.captured: set[str] = set()  # values read by a nested region
    from jaxlib.mlir import ir

    # Shardy meshes by symbol: axis name -> size (sdy.mesh @mesh = <["x"=2, "y"=4]>).
    self.meshes: dict[str, dict[str, int]] = {}
    for op in module.body.operations:
      if op.operation.name == "func.func":
        name = ir.StringAttr(op.attributes["sym_name"]).value
        self.funcs[name] = op
      elif op.operation.name == "sdy.mesh":
        name = ir.StringAttr(op.attributes["sym_name"]).value
        self.meshes[name] = {k: int(v) for k, v in
                             _MESH_AXIS.findall(str(op.operation.attributes["mesh"]))}

  def fresh(self, base: str) -> str:
    self.count += 1
    return f"{base}.{self.count}"

  @staticmethod
  def vname(v: Any) -> str:
    return f"v{hash(v)}"

  def op_name(self, op: Any, prefix: str) -> str:
    m = _LOC_NAME.match(str(op.location))
    if not m:
      return prefix
    name = m.group(1)
    if not prefix or name.startswith("jit(") or name.startswith(prefix):
      return name
    return f"{prefix}/{name}"

  # -- computations ------------------------------------------------------------------

  def function(self, name: str, prefix: str) -> str:
    key = f"{name}@{prefix}"
    if key in self.comps:
      return key
    fn = self.funcs.get(name)
    if fn is None:
      return key
    self.comps[key] = Computation(key, [])  # placeholder against recursion
    block = fn.regions[0].blocks[0]
    instrs = [Instr(self.vname(a), type_text(str(a.type)), "parameter", [str(i)], "", "")
              for i, a in enumerate(block.arguments)]
    self.block(block, prefix, instrs, root="tuple")
    self.comps[key] = Computation(key, _live(instrs, self.captured))
    return key

  def region(self, region: Any, prefix: str, *, tuple_param: bool = False,
             root: str = "tuple") -> str:
    name = self.fresh("region")
    block = region.blocks[0]
    instrs: list[Instr] = []
    args = list(block.arguments)
    if tuple_param:
      # As XLA writes a loop: one tuple parameter and an element read per loop value.
      types = ", ".join(type_text(str(a.type)) for a in args)
      param = self.fresh("param")
      instrs.append(Instr(param, f"({types})", "parameter", ["0"], "", ""))
      for i, a in enumerate(args):
        instrs.append(Instr(self.vname(a), type_text(str(a.type)), "get-tuple-element",
                            [param], "", "", fields={"index": i}))
    else:
      for i, a in enumerate(args):
        instrs.append(Instr(self.vname(a), type_text(str(a.type)), "parameter", [str(i)],
                            "", ""))
    self.block(block, prefix, instrs, root=root)
    instrs = _live(instrs, self.captured)
    self.comps[name] = Computation(name, self.captures(instrs) + instrs)
    return name

  def captures(self, instrs: list[Instr]) -> list[Instr]:
    """Instructions for the values a region uses but does not define.

    StableHLO regions are not isolated from above: ``case``/``if`` branches take no
    arguments and read the enclosing block's values directly. Each such value becomes
    a parameter of the region's computation (so its shape is known), or a copy of its
    constant (so trip counts and constant branch indices stay visible).
    """
    defined = {i.name for i in instrs}
    out: list[Instr] = []
    n_params = sum(1 for i in instrs if i.opcode == "parameter")
    for ins in instrs:
      for name in ins.operands:
        if name in defined:
          continue
        src = self.defs.get(name)
        if src is None:
          continue
        defined.add(name)
        self.captured.add(name)  # live in the enclosing block
        if src.opcode == "constant":
          out.append(Instr(name, src.type_text, "constant", list(src.operands), "", ""))
        else:
          out.append(Instr(name, src.type_text, "parameter", [str(n_params)], "", ""))
          n_params += 1
    return out

  def block(self, block: Any, prefix: str, instrs: list[Instr], root: str) -> None:
    seen = 0
    for op in block.operations:
      for ins in instrs[seen:]:  # visible to the regions of the operations that follow
        self.defs[ins.name] = ins
      seen = len(instrs)
      o = op.operation
      if o.name in _RETURNS:
        instrs.append(self.returned(o, root))
      else:
        self.operation(o, prefix, instrs)

  def returned(self, o: Any, root: str) -> Instr:
    """The root instruction of a block from its return operation."""
    operands = [self.vname(v) for v in o.operands]
    if root == "tuple" or len(operands) != 1:
      types = ", ".join(type_text(str(v.type)) for v in o.operands)
      return Instr(self.fresh("root"), f"({types})", "tuple", operands, "", "", root=True)
    return Instr(self.fresh("root"), type_text(str(o.operands[0].type)), "bitcast", operands,
                 "", "", root=True)

  # -- operations ---------------------------------------------------------------------

  def operation(self, o: Any, prefix: str, instrs: list[Instr]) -> None:
    kind = o.name
    dialect, _, short = kind.partition(".")
    op_name = self.op_name(o, prefix)
    operands = [self.vname(v) for v in o.operands]
    fields: Fields = {}
    special = _SPECIAL.get(kind)
    if kind in ELEMENTWISE:  # CHLO elementwise operations
      opcode = kind
    elif special is not None:
      opcode = special(self, o, MlirAttrs(o), fields, op_name)
    elif dialect in ("stablehlo", "mhlo"):
      opcode = _RENAME.get(short, short.replace("_", "-"))
      rule = _FIELDS.get(short)
      if rule is not None:
        rule(self, o, MlirAttrs(o), fields, op_name)
      if short == "while":
        types = ", ".join(type_text(str(v.type)) for v in o.operands)
        init = self.fresh("init")
        instrs.append(Instr(init, f"({types})", "tuple", operands, "", op_name))
        operands = [init]
      elif short == "constant":
        operands = [constant_value(o)]
    elif dialect == "sdy":
      opcode = "bitcast"  # sharding annotations: no arithmetic
    else:
      opcode = kind  # unknown: reported as uncounted by the walker
    self.emit(o, opcode, operands, fields or None, op_name, instrs)

  def emit(self, o: Any, opcode: str, operands: list[str], fields: Fields | None,
           op_name: str, instrs: list[Instr]) -> None:
    """The instruction of operation ``o``; a tuple and its elements if it has several
    results."""
    results = list(o.results)
    if len(results) == 1:
      instrs.append(Instr(self.vname(results[0]), type_text(str(results[0].type)), opcode,
                          operands, "", op_name, fields=fields))
      return
    main = self.fresh("op")
    types = ", ".join(type_text(str(r.type)) for r in results)
    instrs.append(Instr(main, f"({types})", opcode, operands, "", op_name, fields=fields))
    for i, r in enumerate(results):
      instrs.append(Instr(self.vname(r), type_text(str(r.type)), "get-tuple-element", [main],
                          "", op_name, fields={"index": i}))

  def manual_devices(self, a: MlirAttrs) -> int:
    """Devices running a ``sdy.manual_computation``: the product of its manual axes."""
    axes = re.findall(r'"([^"]+)"', a("manual_axes"))
    m = re.search(r"@([\w.$-]+)", a("in_shardings") or a("out_shardings"))
    mesh = self.meshes.get(m.group(1)) if m else None
    if mesh is None and len(self.meshes) == 1:
      mesh = next(iter(self.meshes.values()))
    n = 1
    for axis in axes:
      n *= (mesh or {}).get(axis, 1)
    return n

  def replica_group_size(self, text: str) -> int | None:
    """Devices per replica group (None: every device), from the dense list or the
    mesh-axes form of newer jax releases."""
    m = _MESH_AXES.search(text)
    if not m:
      return dense_group_size(text)
    sizes = self.meshes.get(m.group(1), {})
    n = 1
    for axis in re.findall(r'name = "([^"]+)"', m.group(2)):
      n *= sizes.get(axis, 1)
    return n


# -- operations of one dialect but not the other, and the attributes counting reads ----

_Special = Callable[[_Translator, Any, MlirAttrs, Fields, str], str]
_Rule = Callable[[_Translator, Any, MlirAttrs, Fields, str], None]


def _ragged_dot(tr: _Translator, o: Any, a: MlirAttrs, f: Fields, op_name: str) -> str:
  f.update(ragged_dot_fields(a("ragged_dot_dimension_numbers")))
  return "ragged-dot"  # counted as XLA's ragged-dot


def _chlo_scan(tr: _Translator, o: Any, a: MlirAttrs, f: Fields, op_name: str) -> str:
  # cumulative ops on GPU (jax >= 0.12)
  f["dimensions"] = [(a.ints("dimension") or [0])[0]]
  f["to_apply"] = [tr.region(o.regions[0], op_name)]
  return "chlo.scan"


def _func_call(tr: _Translator, o: Any, a: MlirAttrs, f: Fields, op_name: str) -> str:
  f["to_apply"] = [tr.function(a("callee").lstrip("@"), op_name)]
  return "call"


def _manual_computation(tr: _Translator, o: Any, a: MlirAttrs, f: Fields, op_name: str) -> str:
  # A shard_map body: per-device shapes, run by every device of the manual axes.
  # Counted x that many devices, so the count is global as the jaxpr count is.
  f["to_apply"] = [tr.region(o.regions[0], op_name)]
  f["jaxgreen_devices"] = tr.manual_devices(a)
  return "call"


_SPECIAL: dict[str, _Special] = {
    "chlo.ragged_dot": _ragged_dot, "mhlo.ragged_dot": _ragged_dot,
    "chlo.scan": _chlo_scan, "func.call": _func_call,
    "sdy.manual_computation": _manual_computation,
}


def _dot_general(tr: _Translator, o: Any, a: MlirAttrs, f: Fields, op_name: str) -> None:
  m = re.search(r"lhs_contracting_dimensions = \[([\d, ]*)\]", a("dot_dimension_numbers"))
  f["lhs_contracting_dims"] = [int(d) for d in re.findall(r"\d+", m.group(1))] if m else []


def _dot(tr: _Translator, o: Any, a: MlirAttrs, f: Fields, op_name: str) -> None:
  rank = len(parse_type(type_text(str(o.operands[0].type)))[0].dims)
  f["lhs_contracting_dims"] = [max(0, rank - 1)]


def _convolution(tr: _Translator, o: Any, a: MlirAttrs, f: Fields, op_name: str) -> None:
  labels = conv_labels(a("dimension_numbers"))
  if labels is not None:
    lhs_l, rhs_l, out_l = labels
    f["dim_labels"] = f"{lhs_l}_{rhs_l}->{out_l}"
    rhs_dims = parse_type(type_text(str(o.operands[1].type)))[0].dims
    order = sorted((ch, i) for i, ch in enumerate(rhs_l) if ch.isdigit())
    sizes = [rhs_dims[i] for _, i in order]
    f["window"] = make_window(sizes, a.ints("window_strides"), a.ints("padding"),
                              a.ints("lhs_dilation"), a.ints("rhs_dilation"))
  for key in ("feature_group_count", "batch_group_count"):
    v = a.ints(key)
    if v:
      f[key] = v[0]


def _reduce_window(tr: _Translator, o: Any, a: MlirAttrs, f: Fields, op_name: str) -> None:
  f["window"] = make_window(a.ints("window_dimensions"), a.ints("window_strides"),
                            a.ints("padding"), a.ints("base_dilations"),
                            a.ints("window_dilations"))
  f["to_apply"] = [tr.region(o.regions[0], op_name)]


def _select_and_scatter(tr: _Translator, o: Any, a: MlirAttrs, f: Fields, op_name: str) -> None:
  f["window"] = make_window(a.ints("window_dimensions"), a.ints("window_strides"),
                            a.ints("padding"), [], [])
  f["select"] = [tr.region(o.regions[0], op_name)]
  f["scatter"] = [tr.region(o.regions[1], op_name)]


def _to_apply(tr: _Translator, o: Any, a: MlirAttrs, f: Fields, op_name: str) -> None:
  f["to_apply"] = [tr.region(o.regions[0], op_name)]


def _all_reduce(tr: _Translator, o: Any, a: MlirAttrs, f: Fields, op_name: str) -> None:
  f["to_apply"] = [tr.region(o.regions[0], op_name)]
  f["replica_group_size"] = tr.replica_group_size(a("replica_groups"))


def _while(tr: _Translator, o: Any, a: MlirAttrs, f: Fields, op_name: str) -> None:
  f["condition"] = [tr.region(o.regions[0], op_name, tuple_param=True, root="value")]
  f["body"] = [tr.region(o.regions[1], op_name, tuple_param=True, root="tuple")]


def _branches(tr: _Translator, o: Any, a: MlirAttrs, f: Fields, op_name: str) -> None:
  # Branches read the enclosing block's values (see captures); counted as XLA's
  # conditional, with the cond= policy of the jaxpr stage.
  names = [tr.region(r, op_name) for r in o.regions]
  if o.name.endswith(".if") and len(names) == 2:
    f["true_computation"], f["false_computation"] = [names[0]], [names[1]]
  else:
    f["branch_computations"] = names


def _compare(tr: _Translator, o: Any, a: MlirAttrs, f: Fields, op_name: str) -> None:
  f["direction"] = a.enum("comparison_direction", "comparison_direction", "EQ")


def _sort(tr: _Translator, o: Any, a: MlirAttrs, f: Fields, op_name: str) -> None:
  f["dimensions"] = [(a.ints("dimension") or [0])[0]]
  # the comparator: the walker reads which operands are keys from it
  f["to_apply"] = [tr.region(o.regions[0], op_name, root="value")]


def _custom_call(tr: _Translator, o: Any, a: MlirAttrs, f: Fields, op_name: str) -> None:
  target = f["custom_call_target"] = a("call_target_name").strip('"')
  if target in KERNEL_TARGETS:  # a Pallas kernel: its name and the author's estimate
    f.update(kernel_fields(o))



def _rng_bit_generator(tr: _Translator, o: Any, a: MlirAttrs, f: Fields, op_name: str) -> None:
  # the algorithm sets the block formula
  f["algorithm"] = "rng_" + a.enum("rng_algorithm", "rng_algorithm", "default").lower()


def _fft(tr: _Translator, o: Any, a: MlirAttrs, f: Fields, op_name: str) -> None:
  f["fft_type"] = a.enum("fft_type", "fft_type", "FFT")
  f["fft_length"] = a.ints("fft_length")


def _composite(tr: _Translator, o: Any, a: MlirAttrs, f: Fields, op_name: str) -> None:
  f["to_apply"] = [tr.function(a("decomposition").lstrip("@"), op_name)]


# StableHLO operation -> the fields counting reads of it (see count.RULES).
_FIELDS: dict[str, _Rule] = {
    "dot_general": _dot_general, "dot": _dot, "convolution": _convolution,
    "reduce_window": _reduce_window, "select_and_scatter": _select_and_scatter,
    "reduce": _to_apply, "scatter": _to_apply, "map": _to_apply,
    "all_reduce": _all_reduce, "reduce_scatter": _all_reduce, "while": _while,
    "case": _branches, "if": _branches, "compare": _compare, "sort": _sort,
    "custom_call": _custom_call, "rng_bit_generator": _rng_bit_generator, "fft": _fft,
    "composite": _composite,
}

# Operations kept even when nothing uses their result: they act on the world or on
# other devices, or run code jaxgreen cannot see into.
_EFFECTS = frozenset({
    "custom-call", "outfeed", "infeed", "send", "send-done", "recv", "recv-done",
    "after-all", "all-reduce", "all-gather", "all-to-all", "collective-permute",
    "reduce-scatter", "collective-broadcast", "rng-get-and-update-state",
})


def _live(instrs: list[Instr], captured: set[str]) -> list[Instr]:
  """``instrs`` without the operations whose results nothing uses (dead code).

  jax's lowering can leave unused operations in the StableHLO it hands to XLA (jax
  0.12 emits an unused ``exponential`` beside the one a gradient of ``erfc`` uses);
  XLA removes them before anything runs, and so does the jaxpr stage, so the
  lowered count does too. Parameters, the root, operations with effects and values
  that a nested region reads (``captured``) stay.
  """
  if not instrs:
    return instrs
  root = next((i for i in instrs if i.root), instrs[-1])
  live = {root.name}
  for ins in reversed(instrs):
    if ins.name in live or ins.opcode in _EFFECTS or ins.name in captured:
      live.add(ins.name)
      live.update(ins.operands)
  return [i for i in instrs if i.name in live or i.opcode == "parameter"]


def lowered_module(lowered: Any) -> Module:
  """The StableHLO of ``lowered`` as a :class:`~jaxgreen._src.hlo.ir.Module`."""
  ir_module = lowered.compiler_ir("stablehlo")
  with ir_module.context:
    tr = _Translator(ir_module)
    if "main" not in tr.funcs:
      raise ValueError("count_lowered(lowered=...): the StableHLO module has no @main; pass "
                       "jax.jit(f).lower(*args)")
    entry = tr.function("main", "")
    # As the HLO module header: an empty replica group spans every device.
    devices = 1
    attrs = ir_module.operation.attributes
    for key in ("mhlo.num_partitions", "mhlo.num_replicas"):
      if key in attrs:
        devices *= max(1, (attr_ints(str(attrs[key])) or [1])[0])
  return Module(tr.comps, entry, devices)


def count_lowered_detail(lowered: Any, *, cost_model: CostModel | None = None,
                         cond: str = "max", kernels: KernelTable | None = None,
                         trip_counts: Mapping[str, int] | int | None = None) -> HloCount:
  """Like :func:`count_lowered`, with the XLA replay and the loops found."""
  module = lowered_module(lowered)
  walker = Counter(module, cost_model or DEFAULT, cond)
  walker.kernels = kernels
  walker.trip_counts = trip_counts
  return walker.walk(module.entry, "").freeze(cond)


def count_lowered(lowered: Any, *, cost_model: CostModel | None = None,
                  cond: str = "max", kernels: KernelTable | None = None,
                  trip_counts: Mapping[str, int] | int | None = None) -> Cost:
  """Counts the StableHLO of a ``jax.stages.Lowered`` (``jax.jit(f).lower(*args)``).

  Args:
    lowered: the lowered program; nothing is compiled.
    cost_model: prices of non-elementary operations; default ``CostModel()``.
    cond: ``"max"`` (default), ``"min"`` or ``"mean"`` for ``case``/``if``.
    kernels: the program's Pallas kernels counted at the jaxpr stage, to count their
      custom calls (see :func:`jaxgreen._src.hlo.count.count_module`).
    trip_counts: trip counts of loops the module does not prove (as
      :func:`jaxgreen._src.hlo.count.count_module`).

  Returns:
    A :class:`~jaxgreen.Cost` with the jaxpr counter's conventions.

  Example::

    c = count_lowered(jax.jit(lambda a, b: a @ b).lower(x, y))
    c.muls  # M*N*K
  """
  return count_lowered_detail(lowered, cost_model=cost_model, cond=cond,
                              kernels=kernels, trip_counts=trip_counts).cost
