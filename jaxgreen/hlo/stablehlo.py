"""Counts a lowered program: the StableHLO module jax hands to XLA, before any XLA pass.

``lowered.compiler_ir("stablehlo")`` is walked through the MLIR Python bindings that ship
with jaxlib. Each operation is translated into the instruction form of
:mod:`jaxgreen.hlo.parse` (``stablehlo.dot_general`` -> ``dot``, regions -> called
computations, ``func.call`` -> ``call``, multi-result operations -> tuples) and counted
by the same walker as the compiled HLO, so the conventions are identical: dot MUL =
B*M*N*K, ADD = B*M*N*(K-1), dense convolutions, reductions n - 1, transcendentals
priced by the CostModel, while loops x their trip count (derived from the induction
variable: StableHLO carries no ``known_trip_count``), ``case``/``if`` as a conditional
under the ``cond=`` policy (their branches read the enclosing values directly), and a
``shard_map`` body (``sdy.manual_computation``) x the devices of its manual axes, so
the count is global as the jaxpr count is.

Example:
  >>> lowered = jax.jit(f).lower(x)
  >>> jaxgreen.hlo.count_lowered(lowered).fpo
"""

from __future__ import annotations

import re
from typing import Any

from jaxgreen.cost import Cost
from jaxgreen.cost_model import DEFAULT, CostModel
from jaxgreen.hlo import compiled as _compiled
from jaxgreen.hlo.parse import Computation, Instr, Module, parse_type

# StableHLO / CHLO op name -> HLO opcode, where dropping the prefix and writing "-" for
# "_" is not enough.
_RENAME = {
    "broadcast_in_dim": "broadcast", "dot_general": "dot", "dot": "dot",
    "optimization_barrier": "opt-barrier", "dynamic_broadcast_in_dim": "broadcast",
    "dynamic_iota": "iota", "real_dynamic_slice": "slice", "uniform_quantize": "convert",
    "uniform_dequantize": "convert", "composite": "call", "case": "conditional",
    "if": "conditional",
}
# CHLO operations (expanded by XLA later) and their jaxpr primitive names.
_CHLO = {
    "erf": "erf", "erfc": "erfc", "erf_inv": "erf_inv", "lgamma": "lgamma",
    "digamma": "digamma", "polygamma": "polygamma", "zeta": "zeta", "sinh": "sinh",
    "cosh": "cosh", "tan": "tan", "asin": "asin", "acos": "acos", "atan": "atan",
    "asinh": "asinh", "acosh": "acosh", "atanh": "atanh", "bessel_i1e": "bessel_i1e",
    "next_after": "nextafter", "square": "square", "conj": "conj", "is_inf": "is_finite",
    "is_neg_inf": "is_finite", "is_pos_inf": "is_finite",
}
_DTYPE = re.compile(r"^(?:i1|[iu]i?\d+|f\d+|bf16|f8\w+|f4\w+|complex<f(?:32|64)>|index)$")
_LOC_NAME = re.compile(r'^loc\("((?:[^"\\]|\\.)*)"')
_INTS = re.compile(r"-?\d+")
_MESH_AXIS = re.compile(r'"([^"]+)"\s*=\s*(\d+)')


def _dtype(mlir: str) -> str:
  if mlir == "i1":
    return "pred"
  if mlir.startswith("ui"):
    return "u" + mlir[2:]
  if mlir.startswith("i"):
    return "s" + mlir[1:]
  if mlir == "complex<f32>":
    return "c64"
  if mlir == "complex<f64>":
    return "c128"
  return mlir.lower()


def _type_text(t: str) -> str:
  """``tensor<8x16xf32>`` -> ``f32[8,16]``; tokens and other types -> ``token[]``."""
  if not t.startswith("tensor<"):
    return "token[]"
  body = t[len("tensor<"):-1]
  depth = 0
  for i, ch in enumerate(body):  # drop an encoding: ", #sdy.sharding<...>" and the like
    depth += (ch == "<") - (ch == ">")
    if ch == "," and depth == 0:
      body = body[:i]
      break
  parts = body.split("x")
  # the element type may itself hold an "x" only in exotic types; take the known suffix
  for i in range(len(parts)):
    rest = "x".join(parts[i:])
    if _DTYPE.match(rest):
      dims = [p if p.isdigit() else "0" for p in parts[:i]]
      return f"{_dtype(rest)}[{','.join(dims)}]"
  return "token[]"


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

    self.ir = ir
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
    instrs = [Instr(self.vname(a), _type_text(str(a.type)), "parameter", [str(i)], "", "")
              for i, a in enumerate(block.arguments)]
    self.block(block, prefix, instrs, root="tuple")
    self.comps[key] = Computation(key, _live(instrs, self.captured))
    return key

  def region(self, region: Any, prefix: str, *, tuple_param: bool, root: str) -> str:
    name = self.fresh("region")
    block = region.blocks[0]
    instrs: list[Instr] = []
    args = list(block.arguments)
    if tuple_param:
      # As XLA writes a loop: one tuple parameter and an element read per loop value.
      types = ", ".join(_type_text(str(a.type)) for a in args)
      param = self.fresh("param")
      instrs.append(Instr(param, f"({types})", "parameter", ["0"], "", ""))
      for i, a in enumerate(args):
        instrs.append(Instr(self.vname(a), _type_text(str(a.type)), "get-tuple-element",
                            [param], f"index={i}", ""))
    else:
      for i, a in enumerate(args):
        instrs.append(Instr(self.vname(a), _type_text(str(a.type)), "parameter", [str(i)],
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
      kind = o.name
      if kind in ("func.return", "stablehlo.return", "sdy.return"):
        operands = [self.vname(v) for v in o.operands]
        if root == "tuple" or len(operands) != 1:
          types = ", ".join(_type_text(str(v.type)) for v in o.operands)
          instrs.append(Instr(self.fresh("root"), f"({types})", "tuple", operands, "", "",
                              root=True))
        else:
          instrs.append(Instr(self.fresh("root"), _type_text(str(o.operands[0].type)),
                              "bitcast", operands, "", "", root=True))
        continue
      self.operation(o, prefix, instrs)

  # -- operations ---------------------------------------------------------------------

  def operation(self, o: Any, prefix: str, instrs: list[Instr]) -> None:
    kind = o.name
    dialect, _, short = kind.partition(".")
    op_name = self.op_name(o, prefix)
    attrs: list[str] = []
    operands = [self.vname(v) for v in o.operands]
    a = o.attributes

    def attr(key: str) -> str:
      if key not in a:
        return ""
      try:
        return str(a[key])
      except TypeError:  # an attribute the bindings cannot cast (complex dense values)
        return ""

    if dialect == "chlo" and short in _CHLO:
      opcode = "chlo." + short
    elif dialect in ("chlo", "mhlo") and short == "ragged_dot":
      opcode = "ragged-dot"  # counted by the walker as XLA's ragged-dot
      attrs.append(_compiled.ragged_dot_attrs(attr("ragged_dot_dimension_numbers")))
    elif dialect == "chlo" and short == "scan":  # cumulative ops on GPU (jax >= 0.12)
      opcode = "chlo.scan"
      attrs.append(f"dimensions={{{(_attr_ints(attr('dimension')) or [0])[0]}}}")
      body = self.region(o.regions[0], op_name, tuple_param=False, root="tuple")
      attrs.append(f"to_apply=%{body}")
    elif dialect == "func" and short == "call":
      callee = attr("callee").lstrip("@")
      opcode = "call"
      attrs.append(f"to_apply=%{self.function(callee, op_name)}")
    elif dialect == "sdy" and short == "manual_computation":
      # A shard_map body: per-device shapes, run by every device of the manual axes.
      # Counted x that many devices, so the count is global as the jaxpr count is.
      opcode = "call"
      body = self.region(o.regions[0], op_name, tuple_param=False, root="tuple")
      attrs.append(f"to_apply=%{body}")
      attrs.append(f"jaxgreen_devices={self.manual_devices(attr)}")
    elif dialect in ("stablehlo", "mhlo"):
      opcode = _RENAME.get(short, short.replace("_", "-"))
      self.attributes(o, short, attr, attrs, op_name)
      if short == "while":
        types = ", ".join(_type_text(str(v.type)) for v in o.operands)
        init = self.fresh("init")
        instrs.append(Instr(init, f"({types})", "tuple", operands, "", op_name))
        operands = [init]
      elif short == "constant":
        operands = [_constant_value(o)]
      elif short == "composite":
        callee = attr("decomposition").lstrip("@")
        attrs.append(f"to_apply=%{self.function(callee, op_name)}")
    elif dialect == "sdy":
      opcode = "bitcast"  # sharding annotations: no arithmetic
    else:
      opcode = kind  # unknown: reported as uncounted by the walker
    results = list(o.results)
    text = ", ".join(attrs)
    if len(results) == 1:
      instrs.append(Instr(self.vname(results[0]), _type_text(str(results[0].type)), opcode,
                          operands, text, op_name))
      return
    main = self.fresh("op")
    types = ", ".join(_type_text(str(r.type)) for r in results)
    instrs.append(Instr(main, f"({types})", opcode, operands, text, op_name))
    for i, r in enumerate(results):
      instrs.append(Instr(self.vname(r), _type_text(str(r.type)), "get-tuple-element", [main],
                          f"index={i}", op_name))

  def manual_devices(self, attr) -> int:
    """Devices running a ``sdy.manual_computation``: the product of its manual axes."""
    axes = re.findall(r'"([^"]+)"', attr("manual_axes"))
    m = re.search(r"@([\w.$-]+)", attr("in_shardings") or attr("out_shardings"))
    mesh = self.meshes.get(m.group(1)) if m else None
    if mesh is None and len(self.meshes) == 1:
      mesh = next(iter(self.meshes.values()))
    n = 1
    for a in axes:
      n *= (mesh or {}).get(a, 1)
    return n

  def replica_groups(self, text: str) -> str:
    """HLO-syntax replica groups, also from the mesh-axes form of newer jax releases."""
    m = re.search(r"replica_group_mesh_axes<mesh = @([\w.$-]+), axes = \[(.*)\]>", text)
    if not m:
      return _groups(text)
    sizes = self.meshes.get(m.group(1), {})
    axes = re.findall(r'name = "([^"]+)"', m.group(2))
    mesh = ",".join(f"'{k}'={v}" for k, v in sizes.items())
    return f"mesh[{mesh}] {{{','.join(repr(a) for a in axes)}}}"

  def attributes(self, o: Any, short: str, attr, attrs: list[str], op_name: str) -> None:
    """HLO-syntax attributes for the operations the walker reads attributes of."""
    def ints(key: str) -> list[int]:
      return _attr_ints(attr(key))

    def region(i: int, **kw) -> str:
      return self.region(o.regions[i], op_name, **kw)

    if short == "dot_general":
      m = re.search(r"lhs_contracting_dimensions = \[([\d, ]*)\]", attr("dot_dimension_numbers"))
      attrs.append(f"lhs_contracting_dims={{{m.group(1) if m else ''}}}")
    elif short == "dot":
      rank = len(parse_type(_type_text(str(o.operands[0].type)))[0].dims)
      attrs.append(f"lhs_contracting_dims={{{max(0, rank - 1)}}}")
    elif short == "convolution":
      dn = attr("dimension_numbers")
      m = re.search(r"\[([^\]]*)\]x\[([^\]]*)\]->\[([^\]]*)\]", dn)
      if m:
        labels = "_".join(x.replace(", ", "").replace(",", "") for x in m.groups()[:2])
        attrs.append(f"dim_labels={labels}->{m.group(3).replace(', ', '').replace(',', '')}")
        rhs_dims = _INTS.findall(_type_text(str(o.operands[1].type)).split("[")[1])
        rhs_l = m.group(2).replace(", ", "").replace(",", "")
        order = sorted((ch, i) for i, ch in enumerate(rhs_l) if ch.isdigit())
        sizes = [int(rhs_dims[i]) for _, i in order]
        attrs.append("window=" + _window_text(sizes, ints("window_strides"),
                                              ints("padding"), ints("lhs_dilation"),
                                              ints("rhs_dilation")))
      for key in ("feature_group_count", "batch_group_count"):
        v = ints(key)
        if v:
          attrs.append(f"{key}={v[0]}")
    elif short == "reduce_window":
      attrs.append("window=" + _window_text(ints("window_dimensions"), ints("window_strides"),
                                            ints("padding"), ints("base_dilations"),
                                            ints("window_dilations")))
      attrs.append(f"to_apply=%{region(0, tuple_param=False, root='tuple')}")
    elif short == "select_and_scatter":
      attrs.append("window=" + _window_text(ints("window_dimensions"), ints("window_strides"),
                                            ints("padding"), [], []))
      attrs.append(f"select=%{region(0, tuple_param=False, root='tuple')}")
      attrs.append(f"scatter=%{region(1, tuple_param=False, root='tuple')}")
    elif short in ("reduce", "scatter", "all_reduce", "reduce_scatter", "map"):
      attrs.append(f"to_apply=%{region(0, tuple_param=False, root='tuple')}")
      if short in ("all_reduce", "reduce_scatter"):
        attrs.append("replica_groups=" + self.replica_groups(attr("replica_groups")))
    elif short == "while":
      attrs.append(f"condition=%{region(0, tuple_param=True, root='value')}")
      attrs.append(f"body=%{region(1, tuple_param=True, root='tuple')}")
    elif short in ("case", "if"):
      # Branches read the enclosing block's values (see captures); counted as XLA's
      # conditional, with the cond= policy of the jaxpr stage.
      names = [self.region(r, op_name, tuple_param=False, root="tuple") for r in o.regions]
      if short == "if" and len(names) == 2:
        attrs.append(f"true_computation=%{names[0]}, false_computation=%{names[1]}")
      else:
        attrs.append("branch_computations={" + ", ".join(f"%{n}" for n in names) + "}")
    elif short == "compare":
      m = re.search(r"comparison_direction\s+(\w+)", attr("comparison_direction"))
      attrs.append(f"direction={m.group(1) if m else 'EQ'}")
    elif short == "sort":
      attrs.append(f"dimensions={{{(ints('dimension') or [0])[0]}}}")
      # the comparator: the walker reads which operands are keys from it
      attrs.append(f"to_apply=%{region(0, tuple_param=False, root='value')}")
    elif short == "custom_call":
      target = attr("call_target_name").strip('"')
      attrs.append(f'custom_call_target="{target}"')
    elif short == "rng_bit_generator":  # the algorithm sets the block formula
      m = re.search(r"rng_algorithm\s+(\w+)", attr("rng_algorithm"))
      attrs.append(f"algorithm=rng_{(m.group(1) if m else 'default').lower()}")
    elif short == "fft":
      m = re.search(r"fft_type\s+(\w+)", attr("fft_type"))
      attrs.append(f"fft_type={m.group(1) if m else 'FFT'}")
      attrs.append("fft_length={" + ",".join(map(str, ints("fft_length"))) + "}")


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


def _constant_value(o: Any) -> str:
  """The value text of a scalar or splat ``stablehlo.constant`` (``5``, ``1.0``,
  ``(1.0,2.0)`` for a complex one), else ``""``: only such values are read (loop
  bounds, branch indices).

  The ``value`` attribute is printed only when it is one value (a scalar or a splat):
  a large constant would print every element. The MLIR bindings cannot cast a complex
  dense attribute (TypeError); its value is read from the operation's text then, which
  is slower (it prints the whole module's context), so only there.
  """
  from jaxlib.mlir import ir

  try:
    attr = o.attributes["value"]
    try:
      dense = ir.DenseElementsAttr(attr)
      if not dense.is_splat and ir.ShapedType(attr.type).rank > 0:
        return ""
      text = str(attr)
    except TypeError:
      text = o.get_asm(large_elements_limit=16)
  except Exception:  # noqa: BLE001 - a value we cannot read is simply not known
    return ""
  m = re.search(r"dense<(.*)>\s*:", text)
  return m.group(1).strip() if m and "[" not in m.group(1) else ""


def _attr_ints(text: str) -> list[int]:
  """Integers of ``array<i64: 1, 2>``, ``dense<[[1, 1]]> : tensor<1x2xi64>`` (splats
  expanded) or ``3 : i64``; the type's own digits are not values."""
  if text.startswith("array<"):
    return [int(x) for x in _INTS.findall(text.split(":", 1)[1])] if ":" in text else []
  m = re.match(r"dense<(.*)>\s*:\s*tensor<([^>]*)>", text)
  if m:
    values = [int(x) for x in _INTS.findall(m.group(1))]
    if "[" not in m.group(1) and len(values) == 1:
      dims = [int(d) for d in m.group(2).split("x")[:-1] if d.isdigit()]
      n = 1
      for d in dims:
        n *= d
      return values * n
    return values
  return [int(x) for x in _INTS.findall(text.split(" : ", 1)[0])]


def _window_text(sizes, strides, pads, lhs_dil, rhs_dil) -> str:
  n = len(sizes)

  def dims(vals, default):
    vals = list(vals) or [default] * n
    return "x".join(str(v) for v in vals[:n])

  pad_pairs = [(pads[2 * i], pads[2 * i + 1]) for i in range(n)] if len(pads) >= 2 * n \
      else [(0, 0)] * n
  pad = "x".join(f"{lo}_{hi}" for lo, hi in pad_pairs)
  return (f"{{size={dims(sizes, 1)} stride={dims(strides, 1)} pad={pad} "
          f"lhs_dilate={dims(lhs_dil, 1)} rhs_dilate={dims(rhs_dil, 1)}}}")


def _groups(text: str) -> str:
  m = re.search(r"dense<(.*?)>\s*:", text)
  if not m or not m.group(1).strip():
    return "{}"
  return m.group(1).replace("[", "{").replace("]", "}").replace(" ", "")


class _StableHloWalker(_compiled._Walker):
  """The compiled-HLO walker, with CHLO operations priced under their jaxpr names."""

  def instr(self, t, comp, ins, outer_op):
    devices = ins.attr("jaxgreen_devices") if ins.opcode == "call" else None
    if devices is not None and int(devices) != 1:
      body = self.walk(ins.called("to_apply")[0], ins.op_name or outer_op)
      t.merge(body, int(devices), int(devices))
      return
    if ins.opcode == "chlo.top_k":  # heap selection, as the jaxpr top_k and TopK
      self.top_k(t, comp, ins, self.scope(ins.op_name or outer_op))
      return
    if ins.opcode == "chlo.scan":  # n - 1 steps per row, as the jaxpr cumsum & co.
      self.scan(t, comp, ins, ins.op_name or outer_op)
      return
    # Other CHLO operations fall through to the walker, which
    # lists them in Cost.uncounted.
    prim = _CHLO.get(ins.opcode[5:]) if ins.opcode.startswith("chlo.") else None
    if prim is not None:
      self.elementwise(t, comp, ins, prim, self.scope(ins.op_name or outer_op))
      return
    super().instr(t, comp, ins, outer_op)


def lowered_module(lowered: Any) -> Module:
  """The StableHLO of ``lowered`` as a :class:`~jaxgreen.hlo.parse.Module`."""
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
        devices *= max(1, (_attr_ints(str(attrs[key])) or [1])[0])
  return Module(tr.comps, entry, devices)


def count_lowered_detail(lowered: Any, *, cost_model: CostModel | None = None,
                         cond: str = "max") -> _compiled.HloCount:
  """Like :func:`count_lowered`, with the XLA replay and the loops found."""
  module = lowered_module(lowered)
  walker = _StableHloWalker(module, cost_model or DEFAULT, cond)
  return walker.walk(module.entry).freeze(cond)


def count_lowered(lowered: Any, *, cost_model: CostModel | None = None,
                  cond: str = "max") -> Cost:
  """Counts the StableHLO of a ``jax.stages.Lowered`` (``jax.jit(f).lower(*args)``).

  Args:
    lowered: the lowered program; nothing is compiled.
    cost_model: prices of non-elementary operations; default ``CostModel()``.
    cond: ``"max"`` (default), ``"min"`` or ``"mean"`` for ``case``/``if``.

  Returns:
    A :class:`~jaxgreen.Cost` with the jaxpr counter's conventions.

  Example:
    >>> c = count_lowered(jax.jit(lambda a, b: a @ b).lower(x, y))
    >>> c.muls  # M*N*K
  """
  return count_lowered_detail(lowered, cost_model=cost_model, cond=cond).cost
