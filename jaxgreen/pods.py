"""Sharded programs on pods: redundancy, collectives and memory per device.

A program sharded over a mesh (``jax.jit`` with ``NamedSharding`` inputs, or
``jax.shard_map``) is compiled for a pod target without the hardware
(:meth:`jaxgreen.targets.Target.compile`) and read three ways:

* **redundancy** = compiled FPO per device x devices / logical FPO. The logical (global)
  FPO is :func:`jaxgreen.count` of the jaxpr; the per-device FPO is the walk of the
  compiled, partitioned HLO. 1.0 means every operation runs once somewhere in the pod;
  n means the work is replicated on n devices.
* **collectives**, per kind (all-reduce, all-gather, reduce-scatter, all-to-all,
  collective-permute, collective-broadcast; the async ``-start``/``-done`` pairs and
  ``async-start`` wrappers counted once), parsed from the compiled HLO with loops
  multiplied by their trip counts. Per device and step:

  - ``operand_bytes``: the bytes each device puts in (the operands' payload);
  - ``result_bytes``: the bytes each device gets out (all-gather: n x operand,
    reduce-scatter: operand / n, the others: operand);
  - ``sent_bytes``: bytes each device sends with bandwidth-optimal (ring) algorithms,
    for a group of n devices and an operand of S bytes: all-reduce 2(n-1)/n S,
    all-gather (n-1) S, reduce-scatter (n-1)/n S, all-to-all (n-1)/n S,
    collective-permute S, collective-broadcast S. This is what the roofline divides by
    the link bandwidth.

* **memory**: XLA's ``compiled.memory_analysis()`` (best effort; None where missing) and
  the HBM traffic of the compiled program: operand + result bytes of every top-level
  (post-fusion) instruction, loops x trips, where a (dynamic-)slice or gather reads only
  the slice and a dynamic-update-slice touches only the update (in place).

Example:
  >>> mesh = jaxgreen.targets.mesh("tpu:v5e:2x2", (2, 2), ("data", "model"))
  >>> x = jax.ShapeDtypeStruct((64, 128), jnp.float32, sharding=NamedSharding(mesh, P("data")))
  >>> r = jaxgreen.pods.analyze(f, "tpu:v5e:2x2", x)
  >>> r.redundancy, r.collectives["all-reduce"].sent_bytes
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from jaxgreen.cost import Cost
from jaxgreen.hlo.compiled import _num as _int
from jaxgreen.hlo.compiled import count_module, trip_count
from jaxgreen.hlo.parse import Computation, Instr, Module, _header_devices, group_size, parse_module

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


# -- collectives ----------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class CollectiveStats:
  """One collective kind's totals per device and step (loops multiplied).

  Attributes:
    kind: ``"all-reduce"``, ``"all-gather"``, ...
    count: executions per step.
    operand_bytes: payload each device puts in.
    result_bytes: payload each device gets out.
    sent_bytes: bytes each device sends (ring algorithms; see the module docstring).
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
    return {k: _int(v) for k, v in dataclasses.asdict(self).items()}


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


class _Walk:
  """Sums collectives and top-level HBM traffic over a module, loops x trips."""

  def __init__(self, module: Module, devices: int):
    self.m = module
    self.devices = devices
    self.memo: dict[str, tuple[dict[str, CollectiveStats], float]] = {}
    self.unknown_loops: list[str] = []

  def operand_bytes(self, comp: Computation, ins: Instr) -> int:
    total = 0
    for name in ins.operands:
      src = comp.by_name.get(name)
      if src is not None:
        total += sum(a.nbytes for a in src.arrays)
    return total

  def instr_traffic(self, comp: Computation, ins: Instr) -> float:
    """HBM bytes of one unfused instruction: what it reads plus what it writes.

    A slice reads only its result's worth of its operand; a dynamic-update-slice works
    in place, reading and writing only the update.
    """
    out = sum(a.nbytes for a in ins.arrays)
    if ins.opcode in _SLICING:
      return 2 * out
    if ins.opcode == "dynamic-update-slice" and len(ins.operands) > 1:
      upd = comp.by_name.get(ins.operands[1])
      return 2 * sum(a.nbytes for a in upd.arrays) if upd is not None else out
    return self.operand_bytes(comp, ins) + out

  def fusion_traffic(self, comp: Computation, ins: Instr) -> float:
    """HBM bytes of a fusion: its operands and results, less what slicing leaves unread."""
    called = ins.called("calls")
    fc = self.m.computations.get(called[0]) if called else None
    if fc is None:
      return self.operand_bytes(comp, ins) + sum(a.nbytes for a in ins.arrays)
    users: dict[str, list[Instr]] = {}
    params: dict[int, Instr] = {}
    for i in fc.instrs:
      if i.opcode == "parameter" and i.operands and i.operands[0].isdigit():
        params[int(i.operands[0])] = i
      for o in i.operands:
        users.setdefault(o, []).append(i)
    total = 0.0
    for k, name in enumerate(ins.operands):
      src = comp.by_name.get(name)
      full = sum(a.nbytes for a in src.arrays) if src is not None else 0
      p = params.get(k)
      us = users.get(p.name, []) if p is not None else []
      if us and all(u.opcode in _SLICING and u.operands[0] == p.name for u in us):
        total += min(full, sum(a.nbytes for u in us for a in u.arrays))
      elif us and all(u.opcode == "dynamic-update-slice" and u.operands[0] == p.name
                      for u in us):
        total += 0  # updated in place: the written part is counted with the result
      else:
        total += full
    root = fc.root
    outs = ([fc.by_name.get(o) for o in root.operands] if root.opcode == "tuple" else [root])
    for o in outs:
      if o is None:
        continue
      if o.opcode == "dynamic-update-slice" and len(o.operands) > 1:
        upd = fc.by_name.get(o.operands[1])
        total += sum(a.nbytes for a in upd.arrays) if upd is not None else 0
      else:
        total += sum(a.nbytes for a in o.arrays)
    return total

  def walk(self, name: str, fused: bool = False) -> tuple[dict[str, CollectiveStats], float]:
    key = name + ("#f" if fused else "")
    if key in self.memo:
      return self.memo[key]
    comp = self.m.computations.get(name)
    coll: dict[str, CollectiveStats] = {}
    traffic = 0.0
    if comp is None:
      self.memo[key] = (coll, traffic)
      return coll, traffic

    def add(sub: tuple[dict[str, CollectiveStats], float], k: float = 1) -> None:
      nonlocal traffic
      for kind, st in sub[0].items():
        coll[kind] = coll.get(kind, CollectiveStats(kind)) + st * k
      traffic += sub[1] * k

    for ins in comp.instrs:
      op = ins.opcode
      kind = _kind(op)
      if kind is not None:
        s = self.operand_bytes(comp, ins)
        n = group_size(ins.attr("replica_groups"), self.devices)
        result, sent = collective_bytes(kind, s, n)
        add(({kind: CollectiveStats(kind, 1, s, result, sent)}, 0.0 if fused else s + result))
        continue
      if op == "while":
        trips, _how = trip_count(self.m, comp, ins)
        if trips is None:
          self.unknown_loops.append(ins.name)
          trips = 1
        for c in ins.called("body"):
          add(self.walk(c), trips)
        for c in ins.called("condition"):
          add(self.walk(c), trips + 1)
      elif op == "conditional":
        names = ins.called("branch_computations") or (
            ins.called("true_computation") + ins.called("false_computation"))
        subs = [self.walk(c) for c in names]
        if subs:  # the branch with the most traffic: an upper bound, as for FPO
          add(max(subs, key=lambda t: (sum(s.sent_bytes for s in t[0].values()), t[1])))
      elif op in ("call", "async-start"):
        for c in ins.called("to_apply") + ins.called("calls"):
          add(self.walk(c, fused))
      elif op == "fusion":
        # A fusion reads its operands and writes its result once; collectives inside
        # (rare) still count, their traffic is the fusion's.
        for c in ins.called("calls"):
          add(self.walk(c, True))
        if not fused:
          traffic += self.fusion_traffic(comp, ins)
      elif not fused and op not in _NO_TRAFFIC:
        traffic += self.instr_traffic(comp, ins)
    self.memo[key] = (coll, traffic)
    return coll, traffic


def program_devices(hlo_text: str) -> int:
  """Devices an SPMD module runs on: ``num_partitions x replica_count`` of its header."""
  for line in hlo_text.splitlines():
    if line.startswith("HloModule"):
      return _header_devices(line)
  return 1


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
  return _traffic(module, devices)


def _traffic(module: Module, devices: int | None = None) -> HloTraffic:
  n = devices or module.devices
  w = _Walk(module, n)
  coll, traffic = w.walk(module.entry)
  ordered = {k: coll[k] for k in KINDS if k in coll}
  return HloTraffic(ordered, _int(traffic), n, tuple(w.unknown_loops))


# -- memory -----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class MemoryStats:
  """XLA's per-device memory figures; None where the backend does not report them.

  Attributes:
    argument_bytes, output_bytes, temp_bytes, alias_bytes, code_bytes: from
      ``compiled.memory_analysis()``.
    peak_bytes: XLA's ``peak_memory_in_bytes`` where reported, else arguments + outputs
      + temporaries - aliased (an upper bound on the live set).
    source: ``"memory_analysis"`` or ``"unavailable"``.
  """

  argument_bytes: int | None = None
  output_bytes: int | None = None
  temp_bytes: int | None = None
  alias_bytes: int | None = None
  code_bytes: int | None = None
  peak_bytes: int | None = None
  source: str = "unavailable"


def memory_stats(compiled: Any) -> MemoryStats:
  """``compiled.memory_analysis()`` as a :class:`MemoryStats`, never raising."""
  try:
    ma = compiled.memory_analysis()
  except Exception:  # noqa: BLE001 - best effort: a backend may not implement it
    return MemoryStats()
  if ma is None:
    return MemoryStats()
  if isinstance(ma, Sequence) and not isinstance(ma, str):
    ma = ma[0] if ma else None
    if ma is None:
      return MemoryStats()

  def get(name: str) -> int | None:
    v = getattr(ma, name, None)
    try:
      return int(v) if v is not None and int(v) >= 0 else None
    except (TypeError, ValueError):
      return None

  arg, out = get("argument_size_in_bytes"), get("output_size_in_bytes")
  temp, alias = get("temp_size_in_bytes"), get("alias_size_in_bytes")
  peak = get("peak_memory_in_bytes")
  if not peak and None not in (arg, out, temp):
    peak = arg + out + temp - (alias or 0)
  return MemoryStats(arg, out, temp, alias, get("generated_code_size_in_bytes"), peak,
                     "memory_analysis")


# -- one program on one target ------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class PodReport:
  """One sharded program compiled for one target.

  Attributes:
    target: the target string.
    devices: devices the program is partitioned over.
    logical: the jaxpr count (global: the whole program, all devices).
    per_device: the compiled-HLO count of one device.
    collectives: kind -> :class:`CollectiveStats` per device and step.
    hbm_bytes: HBM traffic per device (top-level instructions, loops x trips).
    memory: XLA's memory figures per device.
    xla: XLA's cost analysis per device (``jaxgreen.reconcile.XlaCost``), or None.
    dtype: the dtype of most matmul work in the compiled program (for the peak).
    compile_s: seconds to lower and compile; count_s: to count the jaxpr.
    notes: loops of unknown trip count and other caveats.
  """

  target: str
  devices: int
  logical: Cost
  per_device: Cost
  collectives: Mapping[str, CollectiveStats]
  hbm_bytes: float
  memory: MemoryStats
  xla: Any = None
  dtype: str = "bf16"
  compile_s: float = 0.0
  count_s: float = 0.0
  notes: tuple[str, ...] = ()

  @property
  def compiled_global_fpo(self) -> float:
    """Compiled FPO per device x devices."""
    return self.per_device.fpo * self.devices

  @property
  def redundancy(self) -> float | None:
    """``per_device.fpo x devices / logical.fpo``: 1 = no replicated work, n = all on n."""
    if not self.logical.fpo:
      return None
    return self.compiled_global_fpo / self.logical.fpo

  @property
  def sent_bytes(self) -> float:
    """Collective bytes each device sends per step (all kinds)."""
    return sum(c.sent_bytes for c in self.collectives.values())

  def to_dict(self) -> dict[str, Any]:
    return {
        "target": self.target, "devices": self.devices,
        "logical_fpo": self.logical.fpo, "per_device_fpo": self.per_device.fpo,
        "compiled_global_fpo": _int(self.compiled_global_fpo),
        "redundancy": self.redundancy,
        "collectives": {k: v.to_dict() for k, v in self.collectives.items()},
        "collective_sent_bytes": _int(self.sent_bytes),
        "hbm_bytes": self.hbm_bytes,
        "memory": dataclasses.asdict(self.memory),
        "xla": dataclasses.asdict(self.xla) if dataclasses.is_dataclass(self.xla) else None,
        "dtype": self.dtype, "compile_s": self.compile_s, "count_s": self.count_s,
        "notes": list(self.notes),
    }


def matmul_dtype(hlo_text: str, default: str = "bf16") -> str:
  """The input dtype of most dot/convolution work in HLO text: ``"bf16"``, ``"fp32"``...

  Each dot or convolution weighs its result size; the dtype is its first operand's.
  """
  return _matmul_dtype(parse_module(hlo_text), default)


def _matmul_dtype(module: Module, default: str = "bf16") -> str:
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
  dt = max(weights, key=weights.get)
  if dt.startswith("f8"):
    return "fp8"
  return {"bf16": "bf16", "f16": "fp16", "f32": "fp32", "f64": "fp64"}.get(dt, default)


# libtpu may offload embedding gathers to a v5p/v6e SparseCore as an async custom call
# whose ``async-update`` this jaxlib cannot read back (``compiled.as_text()`` fails);
# compiling again without that offload keeps the TensorCore program the same.
_READABLE_TPU_OPTIONS = {"xla_tpu_offload_gather_to_sparsecore": "false"}


def compile_readable(target: Any, fn: Callable, *args, static_argnums: Sequence[int] = (),
                     **kwargs) -> tuple[Any, str, tuple[str, ...]]:
  """Compiles ``fn`` for ``target`` and returns ``(compiled, hlo_text, notes)``.

  Uses :meth:`jaxgreen.targets.Target.compile`; if the compiled HLO cannot be read back
  (a TPU SparseCore gather offload), compiles once more with that offload disabled and
  says so in ``notes``.
  """
  from jaxgreen.targets import get_target, quiet_stderr

  t = get_target(target)
  lowered, compiled = t.compile(fn, *args, static_argnums=tuple(static_argnums), **kwargs)
  try:
    return compiled, compiled.as_text(), ()
  except Exception as e:  # noqa: BLE001 - jaxlib raises JaxRuntimeError (INTERNAL)
    if t.platform != "tpu":
      raise
    first = str(e).splitlines()[0][:160]
  with quiet_stderr():
    compiled = lowered.compile(compiler_options=dict(_READABLE_TPU_OPTIONS))
  return compiled, compiled.as_text(), (
      f"compiled HLO unreadable ({first}); compiled again with "
      f"xla_tpu_offload_gather_to_sparsecore=false",)


def analyze(fn: Callable, target: Any, *args, static_argnums: int | Sequence[int] = (),
            logical: Cost | None = None, **kwargs) -> PodReport:
  """Compiles ``fn`` for ``target`` (nothing runs) and reports its pod-level figures.

  Args:
    fn: the function (plain or ``jax.jit``-ed, may use ``shard_map``).
    target: a target string (``"tpu:v5e:2x2"``, ``"gpu:h100x8"``) or Target.
    *args: arrays or ``jax.ShapeDtypeStruct``s, sharded over
      :func:`jaxgreen.targets.mesh` of the same target.
    static_argnums: positions of static arguments.
    logical: the jaxpr count if already known (saves counting again).
    **kwargs: keyword arguments of ``fn``.

  Returns:
    A :class:`PodReport`.
  """
  import jaxgreen.api as api
  from jaxgreen.targets import get_target, start_devices

  t = get_target(target)
  start_devices([t])  # before the jaxpr count starts a backend (GPU targets need that)
  if isinstance(static_argnums, int):
    static_argnums = (static_argnums,)
  t0 = time.perf_counter()
  if logical is None:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      logical = api.count(fn, static_argnums=tuple(static_argnums))(*args, **kwargs)
  t1 = time.perf_counter()
  compiled, text, notes = compile_readable(t, fn, *args, static_argnums=static_argnums,
                                           **kwargs)
  t2 = time.perf_counter()
  return report_compiled(compiled, t.spec, logical, compile_s=t2 - t1, count_s=t1 - t0,
                         text=text, notes=notes)


def report_compiled(compiled: Any, target: str, logical: Cost, *, compile_s: float = 0.0,
                    count_s: float = 0.0, text: str | None = None,
                    notes: Sequence[str] = ()) -> PodReport:
  """A :class:`PodReport` from an already compiled executable and its jaxpr count.

  Args:
    compiled: the executable.
    target: the target string.
    logical: the jaxpr count (global).
    compile_s, count_s: timings to report.
    text: ``compiled.as_text()`` if already read.
    notes: caveats to carry into the report.
  """
  from jaxgreen.reconcile import xla_cost

  text = text if text is not None else compiled.as_text()
  module = parse_module(text)  # parsed once: a pod-sized module is large
  if not module.computations:
    raise ValueError(f"report_compiled(target={target!r}): the compiled HLO has no "
                     f"computation; pass the result of jax.jit(f).lower(*args).compile()")
  counted = count_module(module)
  per_device = counted.cost
  traffic = _traffic(module)
  loops = [lp.trips for lp in counted.loops if lp.trips and lp.trips > 1]
  if loops:
    notes = [*notes, f"XLA's cost analysis (bytes accessed, optimal_seconds) counts each "
                     f"while body once; jaxgreen multiplies {len(loops)} loop(s) by their "
                     f"trip counts (up to {max(loops)})"]
  notes = list(notes) + [f"while loop ({n}): trip count unknown; its collectives and "
                         f"traffic counted once" for n in traffic.unknown_loops]
  notes += list(per_device.inexact)
  said = " ".join(notes)
  notes += [f"compiled HLO: no FPO rule for {k!r}, {v} time(s)"
            for k, v in per_device.uncounted.items() if repr(k) not in said]
  return PodReport(target, traffic.devices, logical, per_device, traffic.collectives,
                   traffic.hbm_bytes, memory_stats(compiled), xla_cost(compiled),
                   _matmul_dtype(module), compile_s, count_s, tuple(dict.fromkeys(notes)))
