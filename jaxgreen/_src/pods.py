"""Sharded programs on pods: redundancy, collectives and memory per device.

A program sharded over a mesh (``jax.jit`` with ``NamedSharding`` inputs, or
``jax.shard_map``) is compiled for a pod target without the hardware
(:meth:`jaxgreen.targets.Target.compile`) and read three ways:

* **redundancy** = compiled FPO per device x devices / logical FPO. The logical (global)
  FPO is :func:`jaxgreen.count` of the jaxpr; the per-device FPO is the walk of the
  compiled, partitioned HLO. 1.0 means every operation runs once somewhere in the pod;
  n means the work is replicated on n devices.
* **collectives** per kind and device, with the bytes each device sends by ring
  algorithms, loops multiplied by their trip counts (:mod:`jaxgreen._src.hlo.traffic`).
* **memory**: XLA's ``compiled.memory_analysis()`` (best effort; None where missing) and
  the HBM traffic of the compiled program (:func:`jaxgreen._src.hlo.traffic.hlo_traffic`).

Example::

  mesh = jaxgreen.targets.mesh("tpu:v5e:2x2", (2, 2), ("data", "model"))
  x = jax.ShapeDtypeStruct((64, 128), jnp.float32, sharding=NamedSharding(mesh, P("data")))
  r = jaxgreen._src.pods.analyze(f, "tpu:v5e:2x2", x)
  r.redundancy, r.collectives["all-reduce"].sent_bytes
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from jaxgreen._src.cost import Cost
from jaxgreen._src.hlo import count_module, parse_module
from jaxgreen._src.hlo.ir import as_int
from jaxgreen._src.hlo.kernels import KernelTable
from jaxgreen._src.hlo.traffic import (
  KINDS,
  CollectiveStats,
  HloTraffic,
  collective_bytes,
  hlo_traffic,
  matmul_dtype,
  module_matmul_dtype,
  module_traffic,
  module_traffic_by_scope,
  program_devices,
)
from jaxgreen._src.program import Program
from jaxgreen._src.xla_analysis import xla_cost

__all__ = ["KINDS", "CollectiveStats", "HloTraffic", "MemoryStats", "PodReport", "analyze",
           "collective_bytes", "compile_readable", "hlo_traffic", "matmul_dtype",
           "memory_stats", "program_devices", "report_compiled", "report_program"]

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
  if not peak and arg is not None and out is not None and temp is not None:
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
    xla: XLA's cost analysis per device (``jaxgreen._src.xla_analysis.XlaCost``), or None.
    dtype: the dtype of most matmul work in the compiled program (for the peak).
    compile_s: seconds to lower and compile; count_s: to count the jaxpr.
    notes: loops of unknown trip count and other caveats.
    by_scope: module path -> its collectives and HBM traffic per device (``""``: work
      without a module path), when asked for (``report_compiled(by_module=True)``);
      the compiled FPO per module path is ``per_device.by_scope``.
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
  by_scope: Mapping[str, HloTraffic] | None = None

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
        "compiled_global_fpo": as_int(self.compiled_global_fpo),
        "redundancy": self.redundancy,
        "collectives": {k: v.to_dict() for k, v in self.collectives.items()},
        "collective_sent_bytes": as_int(self.sent_bytes),
        "hbm_bytes": self.hbm_bytes,
        "memory": dataclasses.asdict(self.memory),
        "xla": (dataclasses.asdict(self.xla) if dataclasses.is_dataclass(self.xla)
                and not isinstance(self.xla, type) else None),
        "dtype": self.dtype, "compile_s": self.compile_s, "count_s": self.count_s,
        "notes": list(self.notes),
    }


def compile_readable(target: Any, fn: Callable, *args, static_argnums: int | Sequence[int] = (),
                     **kwargs) -> tuple[Any, str, tuple[str, ...]]:
  """Compiles ``fn`` for ``target`` and returns ``(compiled, hlo_text, notes)``.

  Uses :meth:`jaxgreen.targets.Target.compile`; if the compiled HLO cannot be read back
  (a TPU SparseCore gather offload), compiles once more with that offload disabled and
  says so in ``notes`` (:attr:`jaxgreen._src.program.Program.compiled`).
  """
  program = Program(fn, args, kwargs, static_argnums=static_argnums, target=target,
                    caller="compile_readable")
  return program.compiled, program.compiled_text, program.notes


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
  from jaxgreen._src.devices import start_devices
  from jaxgreen.targets import get_target

  t = get_target(target)
  start_devices([t])  # before the jaxpr count starts a backend (GPU targets need that)
  program = Program(fn, args, kwargs, static_argnums=static_argnums, target=t,
                    caller="analyze")
  return report_program(program, logical=logical)


def report_program(program: Program, *, logical: Cost | None = None,
                   by_module: bool = False) -> PodReport:
  """A :class:`PodReport` of a program on its target: its jaxpr counted (unless
  ``logical`` is given), compiled, and the compiled HLO read (see :func:`report_compiled`).
  """
  import jaxgreen._src.api as api

  t0 = time.perf_counter()
  if logical is None:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      logical = api.count_program(program)
  t1 = time.perf_counter()
  compiled, text = program.compiled, program.compiled_text
  t2 = time.perf_counter()
  # Pallas kernels' custom calls counted from their jaxprs, as count(stage=...) does
  return report_compiled(compiled, program.target.spec, logical, compile_s=t2 - t1,
                         count_s=t1 - t0, text=text, notes=program.notes,
                         by_module=by_module, kernels=program.kernels_in(text))


def report_compiled(compiled: Any, target: str, logical: Cost, *, compile_s: float = 0.0,
                    count_s: float = 0.0, text: str | None = None,
                    notes: Sequence[str] = (), by_module: bool = False,
                    kernels: KernelTable | None = None) -> PodReport:
  """A :class:`PodReport` from an already compiled executable and its jaxpr count.

  Args:
    compiled: the executable.
    target: the target string.
    logical: the jaxpr count (global).
    compile_s, count_s: timings to report.
    text: ``compiled.as_text()`` if already read.
    notes: caveats to carry into the report.
    by_module: also split the collectives and HBM traffic by module path
      (:attr:`PodReport.by_scope`).
    kernels: the program's Pallas kernels counted from its jaxpr
      (:func:`jaxgreen._src.api.kernel_table`), so their custom calls count exactly; without
      it a kernel counts as its author's estimate, marked inexact.
  """
  text = text if text is not None else compiled.as_text()
  module = parse_module(text)  # parsed once: a pod-sized module is large
  if not module.computations:
    raise ValueError(f"report_compiled(target={target!r}): the compiled HLO has no "
                     f"computation; pass the result of jax.jit(f).lower(*args).compile()")
  counted = count_module(module, kernels=kernels)
  per_device = counted.cost
  traffic = module_traffic(module)
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
  scoped = module_traffic_by_scope(module, traffic.devices) if by_module else None
  return PodReport(target, traffic.devices, logical, per_device, traffic.collectives,
                   traffic.hbm_bytes, memory_stats(compiled), xla_cost(compiled),
                   module_matmul_dtype(module), compile_s, count_s, tuple(dict.fromkeys(notes)),
                   scoped)
