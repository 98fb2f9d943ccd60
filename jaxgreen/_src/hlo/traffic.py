"""HBM traffic and collectives of a compiled (SPMD-partitioned) HLO module, per device.

* **collectives**, per kind (all-reduce, all-gather, reduce-scatter, all-to-all,
  collective-permute, collective-broadcast; the async ``-start``/``-done`` pairs and
  ``async-start`` wrappers counted once), with loops multiplied by their trip counts.
  Per device and step:

  - ``operand_bytes``: the bytes each device puts in (the operands' payload);
  - ``result_bytes``: the bytes each device gets out (all-gather: n x operand,
    reduce-scatter: operand / n, the others: operand);
  - ``sent_bytes``: bytes each device sends with bandwidth-optimal (ring) algorithms
    (:func:`collective_bytes`). This is what the roofline divides by the link bandwidth.

* **HBM traffic**: operand + result bytes of every top-level (post-fusion) instruction,
  loops x trips, where a (dynamic-)slice or gather reads only the slice and a
  dynamic-update-slice touches only the update (in place).

The module is walked by the same traversal as the FPO count
(:class:`jaxgreen._src.hlo.walk.Walk`); the context is whether the computation runs inside
a fusion (whose traffic is the fusion's own).

Example:
  >>> r = hlo_traffic('''HloModule m, num_partitions=4
  ... %add (a: f32[], b: f32[]) -> f32[] {
  ...   %a = f32[] parameter(0)
  ...   %b = f32[] parameter(1)
  ...   ROOT %s = f32[] add(f32[] %a, f32[] %b)
  ... }
  ... ENTRY %main (p: f32[256]) -> f32[256] {
  ...   %p = f32[256]{0} parameter(0)
  ...   ROOT %r = f32[256]{0} all-reduce(f32[256]{0} %p), replica_groups={}, to_apply=%add
  ... }''')
  >>> r.devices, r.collectives["all-reduce"].sent_bytes
  (4, 1536.0)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Mapping
from typing import Any

from jaxgreen._src.formulas import loop_factors
from jaxgreen._src.hlo.ir import Computation, Instr, Module, as_int
from jaxgreen._src.hlo.parse import header_devices, parse_module
from jaxgreen._src.hlo.pricing import hlo_scope
from jaxgreen._src.hlo.walk import Walk, callees

KINDS = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute",
         "collective-broadcast", "ragged-all-to-all")

# Opcodes that move no HBM data of their own: structure, aliasing, control (the bodies
# of while/call/conditional/async are walked instead), or the second half of an async pair.
_NO_TRAFFIC = frozenset({
    "parameter", "constant", "get-tuple-element", "tuple", "bitcast", "after-all",
    "partition-id", "replica-id", "opt-barrier", "optimization-barrier", "add-dependency",
    "while", "call", "conditional", "async-start", "async-update", "async-done",
    "all-reduce-done", "all-gather-done", "collective-permute-done", "reduce-scatter-done",
    "all-to-all-done", "copy-done", "send-done", "recv-done", "domain",
    "get-dimension-size", "set-dimension-size",
})

# Opcodes that read only their result's worth of their first operand.
_SLICING = frozenset({"slice", "dynamic-slice", "gather"})


@dataclasses.dataclass(frozen=True)
class CollectiveStats:
  """One collective kind's totals per device and step (loops multiplied).

  Attributes:
    kind: ``"all-reduce"``, ``"all-gather"``, ...
    count: executions per step.
    operand_bytes: payload each device puts in.
    result_bytes: payload each device gets out.
    sent_bytes: bytes each device sends (ring algorithms; see :func:`collective_bytes`).
  """

  kind: str
  count: float = 0
  operand_bytes: float = 0
  result_bytes: float = 0
  sent_bytes: float = 0

  def __add__(self, o: CollectiveStats) -> CollectiveStats:
    return CollectiveStats(self.kind, self.count + o.count,
                           self.operand_bytes + o.operand_bytes,
                           self.result_bytes + o.result_bytes, self.sent_bytes + o.sent_bytes)

  def __mul__(self, k: float) -> CollectiveStats:
    return CollectiveStats(self.kind, self.count * k, self.operand_bytes * k,
                           self.result_bytes * k, self.sent_bytes * k)

  def to_dict(self) -> dict[str, Any]:
    return {f.name: as_int(getattr(self, f.name)) for f in dataclasses.fields(self)}


def collective_bytes(kind: str, operand_bytes: float, group: int) -> tuple[float, float]:
  """(result bytes, sent bytes) per device of one collective over ``group`` devices.

  Bandwidth-optimal (ring) algorithms; S = ``operand_bytes``, n = ``group``:

  ==================== ============ ================
  kind                 result       sent
  ==================== ============ ================
  all-reduce           S            2 (n - 1) / n S
  all-gather           n S          (n - 1) S
  reduce-scatter       S / n        (n - 1) / n S
  all-to-all           S            (n - 1) / n S
  collective-permute   S            S
  collective-broadcast S            S
  ==================== ============ ================

  Args:
    kind: one of :data:`KINDS`.
    operand_bytes: bytes of the operands on one device.
    group: devices in one replica group (n >= 1).

  Example:
    >>> collective_bytes("all-reduce", 1024, 4)  # (S, 2 * 3 / 4 * S)
    (1024, 1536.0)
  """
  if kind not in KINDS:
    raise ValueError(f"collective_bytes(kind={kind!r}): use one of {', '.join(KINDS)}")
  if group < 1:
    raise ValueError(f"collective_bytes(group={group!r}): a group has >= 1 device")
  s, n = operand_bytes, group
  if kind == "all-reduce":
    return s, 2 * (n - 1) / n * s
  if kind == "all-gather":
    return n * s, (n - 1) * s
  if kind == "reduce-scatter":
    return s / n, (n - 1) / n * s
  if kind in ("all-to-all", "ragged-all-to-all"):
    return s, (n - 1) / n * s
  return s, s  # collective-permute, collective-broadcast: each device sends its buffer


def _kind(opcode: str) -> str | None:
  k = opcode[:-len("-start")] if opcode.endswith("-start") else opcode
  return k if k in KINDS else None


def _nbytes(ins: Instr | None) -> int:
  return sum(a.nbytes for a in ins.arrays) if ins is not None else 0


def _operand_bytes(comp: Computation, ins: Instr) -> int:
  return sum(_nbytes(comp.by_name.get(name)) for name in ins.operands)


class _Flow:
  """Collectives and HBM bytes of one computation."""

  __slots__ = ("coll", "traffic")

  def __init__(self) -> None:
    self.coll: dict[str, CollectiveStats] = {}
    self.traffic = 0.0

  def key(self) -> tuple[float, float]:
    """Bytes sent by collectives, then HBM bytes: the costlier branch is the larger."""
    return sum(s.sent_bytes for s in self.coll.values()), self.traffic


class TrafficWalk(Walk[_Flow]):
  """Sums collectives and top-level HBM traffic over a module, loops x trips."""

  def __init__(self, module: Module, devices: int):
    super().__init__(module)
    self.devices = devices
    self.unknown_loops: list[str] = []

  def new(self) -> _Flow:
    return _Flow()

  def merge(self, acc: _Flow, sub: _Flow, k: int = 1) -> None:
    for kind, st in sub.coll.items():
      acc.coll[kind] = acc.coll.get(kind, CollectiveStats(kind)) + st * k
    acc.traffic += sub.traffic * k

  def leaf(self, acc: _Flow, comp: Computation, ins: Instr, ctx: Hashable) -> None:
    kind = _kind(ins.opcode)
    if kind is not None:
      s = _operand_bytes(comp, ins)
      n = ins.group_size(self.devices)
      result, sent = collective_bytes(kind, s, n)
      one = _Flow()
      one.coll[kind] = CollectiveStats(kind, 1, s, result, sent)
      one.traffic = 0.0 if ctx else s + result
      self.merge(acc, one)
    elif not ctx and ins.opcode not in _NO_TRAFFIC:
      acc.traffic += instr_traffic(comp, ins)

  def fusion(self, acc: _Flow, comp: Computation, ins: Instr, ctx: Hashable) -> None:
    # A fusion reads its operands and writes its result once; collectives inside
    # (rare) still count, their traffic is the fusion's.
    for c in ins.called("calls"):
      self.merge(acc, self.walk(c, True))
    if not ctx:
      acc.traffic += fusion_traffic(self.m, comp, ins)

  def while_(self, acc: _Flow, comp: Computation, ins: Instr, ctx: Hashable) -> None:
    body, cond, trips, _how = self.loop(comp, ins, False)
    if trips is None:
      self.unknown_loops.append(ins.name)
    k_body, k_cond = loop_factors(trips)
    self.merge(acc, body, k_body)
    self.merge(acc, cond, k_cond)

  def conditional(self, acc: _Flow, comp: Computation, ins: Instr, ctx: Hashable) -> None:
    subs = self.branches(ins, False)
    if subs:  # the branch with the most traffic: an upper bound, as for FPO
      self.merge(acc, max(subs, key=_Flow.key))


def instr_traffic(comp: Computation, ins: Instr) -> float:
  """HBM bytes of one unfused instruction: what it reads plus what it writes.

  A slice reads only its result's worth of its operand; a dynamic-update-slice works
  in place, reading and writing only the update.
  """
  out = _nbytes(ins)
  if ins.opcode in _SLICING:
    return 2 * out
  if ins.opcode == "dynamic-update-slice" and len(ins.operands) > 1:
    upd = comp.by_name.get(ins.operands[1])
    return 2 * _nbytes(upd) if upd is not None else out
  return _operand_bytes(comp, ins) + out


def _param_reads(fc: Computation, k: int, full: int, users: dict[str, list[Instr]],
                 params: dict[int, Instr]) -> int:
  """Bytes a fusion reads of its operand ``k`` (``full`` bytes): only the slices where
  every use slices it, nothing where every use updates it in place."""
  p = params.get(k)
  us = users.get(p.name, []) if p is not None else []
  if p is None or not us:
    return full
  if all(u.opcode in _SLICING and u.operands[0] == p.name for u in us):
    return min(full, sum(_nbytes(u) for u in us))
  if all(u.opcode == "dynamic-update-slice" and u.operands[0] == p.name for u in us):
    return 0  # updated in place: the written part is counted with the result
  return full


def fusion_traffic(module: Module, comp: Computation, ins: Instr) -> float:
  """HBM bytes of a fusion: its operands and results, less what slicing leaves unread."""
  called = ins.called("calls")
  fc = module.computations.get(called[0]) if called else None
  if fc is None:
    return _operand_bytes(comp, ins) + _nbytes(ins)
  users: dict[str, list[Instr]] = {}
  params: dict[int, Instr] = {}
  for i in fc.instrs:
    if i.opcode == "parameter" and i.operands and i.operands[0].isdigit():
      params[int(i.operands[0])] = i
    for o in i.operands:
      users.setdefault(o, []).append(i)
  total = 0.0
  for k, name in enumerate(ins.operands):
    total += _param_reads(fc, k, _nbytes(comp.by_name.get(name)), users, params)
  root = fc.root
  outs = [fc.by_name.get(o) for o in root.operands] if root.opcode == "tuple" else [root]
  for res in outs:
    if res is not None and res.opcode == "dynamic-update-slice" and len(res.operands) > 1:
      total += _nbytes(fc.by_name.get(res.operands[1]))
    else:
      total += _nbytes(res)
  return total


@dataclasses.dataclass(frozen=True)
class HloTraffic:
  """Collectives and HBM traffic of one compiled module, per device and step."""

  collectives: Mapping[str, CollectiveStats]
  hbm_bytes: float
  devices: int
  unknown_loops: tuple[str, ...] = ()


def hlo_traffic(hlo_text: str, devices: int | None = None) -> HloTraffic:
  """Parses collectives and top-level HBM traffic from compiled HLO text.

  Args:
    hlo_text: ``compiled.as_text()`` of an SPMD-partitioned (or single-device) module.
    devices: devices of the program; default from the module header.

  Returns:
    An :class:`HloTraffic` (collectives in :data:`KINDS` order, only those present).
  """
  module = parse_module(hlo_text)
  if not module.computations:
    raise ValueError("hlo_traffic(hlo_text=...): no HLO computation found; pass "
                     "compiled.as_text()")
  return module_traffic(module, devices)


def module_traffic(module: Module, devices: int | None = None) -> HloTraffic:
  """:func:`hlo_traffic` of an already parsed module."""
  n = devices or module.devices
  w = TrafficWalk(module, n)
  flow = w.walk(module.entry, False)
  ordered = {k: flow.coll[k] for k in KINDS if k in flow.coll}
  return HloTraffic(ordered, as_int(flow.traffic), n, tuple(w.unknown_loops))


class _Scoped:
  """Collectives and HBM bytes of one computation, per module path."""

  __slots__ = ("by",)

  def __init__(self) -> None:
    self.by: dict[str, _Flow] = {}

  def at(self, scope: str) -> _Flow:
    f = self.by.get(scope)
    if f is None:
      f = self.by[scope] = _Flow()
    return f

  def key(self) -> tuple[float, float]:
    sent = traffic = 0.0
    for f in self.by.values():
      s, t = f.key()
      sent, traffic = sent + s, traffic + t
    return sent, traffic


class ScopedTrafficWalk(Walk[_Scoped]):
  """:class:`TrafficWalk` split by module path: each instruction's collectives and
  traffic go to the scope of its ``op_name`` metadata
  (:func:`~jaxgreen._src.hlo.pricing.hlo_scope`),
  or of the instruction that runs its computation where it has none, as the compiled FPO
  count attributes its work. The context is (inside a fusion, inherited ``op_name``)."""

  def __init__(self, module: Module, devices: int):
    super().__init__(module)
    self.flat = TrafficWalk(module, devices)
    self.scopes: dict[str, str] = {}

  def new(self) -> _Scoped:
    return _Scoped()

  def merge(self, acc: _Scoped, sub: _Scoped, k: int = 1) -> None:
    for scope, f in sub.by.items():
      self.flat.merge(acc.at(scope), f, k)

  def _op(self, ins: Instr, ctx: Any) -> str:
    return ins.op_name or ctx[1]

  def _scope(self, op_name: str) -> str:
    s = self.scopes.get(op_name)
    if s is None:
      s = self.scopes[op_name] = hlo_scope(op_name)
    return s

  def leaf(self, acc: _Scoped, comp: Computation, ins: Instr, ctx: Any) -> None:
    self.flat.leaf(acc.at(self._scope(self._op(ins, ctx))), comp, ins, ctx[0])

  def fusion(self, acc: _Scoped, comp: Computation, ins: Instr, ctx: Any) -> None:
    op = self._op(ins, ctx)
    for c in ins.called("calls"):
      self.merge(acc, self.walk(c, (True, op)))
    if not ctx[0]:
      acc.at(self._scope(op)).traffic += fusion_traffic(self.m, comp, ins)

  def call(self, acc: _Scoped, comp: Computation, ins: Instr, ctx: Any) -> None:
    op = self._op(ins, ctx)
    for c in callees(ins):
      self.merge(acc, self.walk(c, (ctx[0], op)))

  def while_(self, acc: _Scoped, comp: Computation, ins: Instr, ctx: Any) -> None:
    body, cond, trips, _how = self.loop(comp, ins, (False, self._op(ins, ctx)))
    k_body, k_cond = loop_factors(trips)
    self.merge(acc, body, k_body)
    self.merge(acc, cond, k_cond)

  def conditional(self, acc: _Scoped, comp: Computation, ins: Instr, ctx: Any) -> None:
    subs = self.branches(ins, (False, self._op(ins, ctx)))
    if subs:  # the same branch as TrafficWalk: the one with the most traffic
      self.merge(acc, max(subs, key=_Scoped.key))


def module_traffic_by_scope(module: Module, devices: int | None = None
                            ) -> dict[str, HloTraffic]:
  """:func:`module_traffic` split by module path (``""``: work without a module path).

  Each instruction counts where its ``op_name`` metadata puts it; a loop's or a
  fusion's contents inherit the scope of the instruction that runs them where they have
  none. The scopes add up to :func:`module_traffic` (up to float rounding).
  """
  n = devices or module.devices
  w = ScopedTrafficWalk(module, n)
  acc = w.walk(module.entry, (False, ""))
  out = {}
  for scope, flow in acc.by.items():
    ordered = {k: flow.coll[k] for k in KINDS if k in flow.coll}
    out[scope] = HloTraffic(ordered, as_int(flow.traffic), n)
  return out


def program_devices(hlo_text: str) -> int:
  """Devices an SPMD module runs on: ``num_partitions x replica_count`` of its header."""
  for line in hlo_text.splitlines():
    if line.startswith("HloModule"):
      return header_devices(line)
  return 1


def matmul_dtype(hlo_text: str, default: str = "bf16") -> str:
  """The input dtype of most dot/convolution work in HLO text: ``"bf16"``, ``"fp32"``...

  Each dot or convolution weighs its result size; the dtype is its first operand's.
  """
  return module_matmul_dtype(parse_module(hlo_text), default)


def module_matmul_dtype(module: Module, default: str = "bf16") -> str:
  """:func:`matmul_dtype` of an already parsed module."""
  weights: dict[str, int] = {}
  for comp in module.computations.values():
    for ins in comp.instrs:
      if ins.opcode not in ("dot", "convolution") or not ins.operands:
        continue
      src = comp.by_name.get(ins.operands[0])
      if src is None or src.out is None:
        continue
      weights[src.out.dtype] = weights.get(src.out.dtype, 0) + (ins.out.size if ins.out else 1)
  if not weights:
    return default
  dt = max(weights, key=lambda k: weights[k])
  if dt.startswith("f8"):
    return "fp8"
  return {"bf16": "bf16", "f16": "fp16", "f32": "fp32", "f64": "fp64"}.get(dt, default)
