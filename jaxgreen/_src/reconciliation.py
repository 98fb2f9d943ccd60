"""jaxgreen's count against XLA's ``cost_analysis()``, the difference split into named causes.

For each target the program is counted four ways: from the jaxpr (what the user
wrote), from the lowered module (what jax handed to XLA), from the compiled module's
optimized HLO (what XLA kept), and by XLA's own HloCostAnalysis. The difference between
the jaxpr count and XLA's flops is broken down into causes that add up exactly::

  jaxpr FPO - XLA flops x devices =
      jaxgreen uncounted      (a stage difference where jaxgreen itself left operations
                               uncounted on one side: its own gap, not the compiler's;
                               the operations are named per stage in the table)
    + jax lowering            (jaxpr walk - lowered walk: primitives jax lowers to other
                               operations, e.g. cumsum as a windowed sum)
    + compiler changes        (lowered walk - compiled-HLO walk: ops removed, duplicated,
                               rematerialized, expanded or added by partitioning; from
                               the jaxpr walk when the lowered module is not counted)
    + FMA convention          (XLA: a dot is 2*M*N*K; jaxgreen: M*N*K + M*N*(K-1))
    + padded conv taps        (jaxgreen counts taps on edge padding; XLA only taps on
                               real input)
    + transcendentals         (XLA keeps them apart at 0 flops; jaxgreen prices them)
    + elementwise pricing     (XLA: 1 flop per element of every elementwise op,
                               select and convert included; jaxgreen: CostModel prices)
    + integer ops             (XLA counts integer arithmetic as flops; FPO does not)
    + custom calls            (XLA prices an opaque custom call at -1)
    + kernels                 (a Pallas kernel: jaxgreen counts its body from the
                               jaxpr; XLA reports the author's pl.CostEstimate on TPU,
                               -1 elsewhere)
    + collectives             (XLA: 1 flop per all-reduced element; jaxgreen: (n-1)/n)
    + sort/fft/linalg conventions
    + loop trips              (XLA counts a while body once)
    + XLA float32 rounding    (XLA sums its counts in float32: beyond 2**24 its total is
                               rounded; jaxgreen replays that sum to know by how much)
    + unexplained residual    (never folded into another cause)

Example:
  >>> import jax, jax.numpy as jnp
  >>> x = jax.ShapeDtypeStruct((8, 8), jnp.float32)
  >>> r = reconcile(lambda a: a @ a, targets=["cpu"], progress=False)(x)
  >>> r["cpu"].causes["FMA convention"]  # XLA: 2*M*N*K; FPO: M*N*K + M*N*(K-1) = -M*N
  -64
  >>> r["cpu"].explained
  True

With the ``[tpu]`` and ``[gpu]`` extras::

  r = jaxgreen.reconcile(f, targets=["cpu", "tpu:v5e:2x2", "gpu:h100"])(x)
  print(r.table())
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from jaxgreen._src.compile_cache import executable_devices
from jaxgreen._src.cost import Cost
from jaxgreen._src.cost_model import CostModel
from jaxgreen._src.devices import start_devices
from jaxgreen._src.hlo import CAUSES, HloCount, LoopInfo, count_hlo_text, count_lowered
from jaxgreen._src.hlo.kernels import KernelTable
from jaxgreen._src.program import Program, static_argnums_of
from jaxgreen._src.progress import each_target
from jaxgreen._src.report import table
from jaxgreen._src.xla_analysis import XlaCost, xla_cost
from jaxgreen.targets import Target, get_target

UNCOUNTED = "jaxgreen uncounted"
LOWERING = "jax lowering"
COMPILER = "compiler changes"
LOOPS = "loop trips"
ROUNDING = "XLA float32 rounding"
RESIDUAL = "unexplained residual"
CAUSE_ORDER = (UNCOUNTED, LOWERING, COMPILER, *CAUSES, LOOPS, ROUNDING, RESIDUAL)
STAGES = ("jaxpr", "lowered", "compiled")


# -- results -------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class TargetReport:
  """One target's four counts and the named causes of their differences.

  Attributes:
    target: the target string.
    devices: devices the program is partitioned over (compiled counts are per device).
    jaxpr: jaxgreen's count of the jaxpr (the whole program, all devices).
    lowered: jaxgreen's count of the lowered StableHLO module (before XLA's passes).
    compiled: jaxgreen's count of the compiled, optimized HLO (per device).
    xla: XLA's cost analysis (per device).
    xla_replayed: XLA's flops as replayed by jaxgreen's walk of the compiled HLO.
    causes: cause -> amount, in FPO over all devices, such that
      ``jaxpr.fpo - xla.flops * devices == sum(causes.values())``. The
      ``"unexplained residual"`` entry is None when XLA gave no flops. A difference
      between two stages goes to ``"jaxgreen uncounted"`` when either stage left
      operations uncounted (see :attr:`uncounted`), else to ``"jax lowering"``
      (jaxpr -> lowered) or ``"compiler changes"`` (lowered -> compiled).
    loops: while loops of the compiled program and their trip counts.
    compile_seconds: time to lower and compile.
    walk_seconds: time jaxgreen spent walking the compiled HLO.
    target_devices: devices the target has (``devices`` of them run the program: 1 for
      inputs that are not sharded over :func:`jaxgreen.targets.mesh`).
  """

  target: str
  devices: int
  jaxpr: Cost
  lowered: Cost | None
  compiled: Cost
  xla: XlaCost
  xla_replayed: float
  causes: Mapping[str, float | None]
  loops: tuple[LoopInfo, ...] = ()
  compile_seconds: float = 0.0
  walk_seconds: float = 0.0
  target_devices: int = 0

  @property
  def residual(self) -> float | None:
    return self.causes.get(RESIDUAL)

  @property
  def uncounted(self) -> dict[str, dict[str, Any] | None]:
    """Stage -> the operations jaxgreen left uncounted there (name -> occurrences);
    every stage is present, with ``{}`` when all was counted (``None``: not counted)."""
    costs = {"jaxpr": self.jaxpr, "lowered": self.lowered, "compiled": self.compiled}
    return {k: (dict(c.uncounted) if c is not None else None) for k, c in costs.items()}

  @property
  def residual_ulps(self) -> float | None:
    """The residual in units of float32 spacing at XLA's total (XLA sums in float32)."""
    if self.residual is None or not self.xla.flops:
      return None
    import numpy as np

    step = float(np.spacing(np.float32(abs(self.xla.flops)))) * self.devices
    return abs(self.residual) / step if step else None

  @property
  def explained(self) -> bool:
    """True when XLA's flops are fully explained (residual exactly 0)."""
    return self.residual == 0

  def __repr__(self) -> str:
    return (f"TargetReport(target={self.target!r}, devices={self.devices}, "
            f"jaxpr_fpo={_fmt(self.jaxpr.fpo)}, xla_flops={_fmt(self.xla.flops)}, "
            f"residual={_fmt(self.residual)}, explained={self.explained})")

  def _repr_pretty_(self, p: Any, cycle: bool) -> None:
    p.text(repr(self) if cycle else reconcile_table(Reconciliation((self,))))

  def _repr_html_(self) -> str:
    return reconcile_html(Reconciliation((self,)))

  def to_dict(self) -> dict[str, Any]:
    return {
        "target": self.target,
        "devices": self.devices,
        "target_devices": self.target_devices,
        "jaxpr": self.jaxpr.to_dict(),
        "lowered": self.lowered.to_dict() if self.lowered is not None else None,
        "compiled_per_device": self.compiled.to_dict(),
        "xla_per_device": dataclasses.asdict(self.xla),
        "xla_replayed_flops_per_device": self.xla_replayed,
        "causes": dict(self.causes),
        "uncounted": self.uncounted,
        "loops": [dataclasses.asdict(lp) for lp in self.loops],
        "compile_seconds": self.compile_seconds,
        "walk_seconds": self.walk_seconds,
    }


@dataclasses.dataclass(frozen=True)
class Reconciliation:
  """Reports for several targets; index by target string.

  Attributes:
    reports: one report per target that could be compiled.
    unavailable: target string -> why it could not be compiled (and the fix).
  """

  reports: tuple[TargetReport, ...]
  unavailable: Mapping[str, str] = dataclasses.field(default_factory=dict)

  def __getitem__(self, target: str) -> TargetReport:
    spec = get_target(target).spec
    for r in self.reports:
      if r.target == spec:
        return r
    if spec in self.unavailable:
      raise KeyError(f"target {spec!r} is unavailable: {self.unavailable[spec]}")
    raise KeyError(f"no report for target {target!r}; have "
                   f"{', '.join(r.target for r in self.reports)}")

  def __iter__(self):
    return iter(self.reports)

  def __len__(self) -> int:
    return len(self.reports)

  def to_dict(self) -> dict[str, Any]:
    return {"targets": [r.to_dict() for r in self.reports],
            "unavailable": dict(self.unavailable)}

  def to_json(self, **kw) -> str:
    return json.dumps(self.to_dict(), **kw)

  def table(self) -> str:
    """A side-by-side plain-text table: one column per target."""
    return reconcile_table(self)

  def __repr__(self) -> str:
    return (f"Reconciliation(targets={[r.target for r in self.reports]}, "
            f"explained={[r.explained for r in self.reports]}, "
            f"unavailable={list(self.unavailable)})")

  def _repr_pretty_(self, p: Any, cycle: bool) -> None:
    p.text(repr(self) if cycle else self.table())

  def _repr_html_(self) -> str:
    """The notebook view: the side-by-side table, then each target's causes as bars."""
    return reconcile_html(self)

  def to_pandas(self) -> Any:
    """One row per target: devices, the four counts (global, as in the table) and every
    cause (needs pandas: ``pip install 'jaxgreen[pandas]'``)."""
    from jaxgreen._src.report import data_frame

    rows = []
    for r in self.reports:
      xla = r.xla.flops
      rows.append({"target": r.target, "devices": r.devices, "jaxpr_fpo": r.jaxpr.fpo,
                   "lowered_fpo": r.lowered.fpo if r.lowered is not None else None,
                   "compiled_fpo_global": r.compiled.fpo * r.devices,
                   "xla_flops_global": xla * r.devices if xla is not None else None,
                   **{c: r.causes.get(c, 0) for c in CAUSE_ORDER},
                   "explained": r.explained})
    return data_frame(rows, "Reconciliation.to_pandas")


def _fmt(v: float | None) -> str:
  if v is None:
    return "unavailable"
  if isinstance(v, float) and not v.is_integer():
    return f"{v:,.1f}"
  return f"{int(v):,}"


def reconcile_table(rec: Reconciliation) -> str:
  """Rows: the four counts (per device and global), then every non-zero cause."""
  heads, body, notes = _reconcile_rows(rec)
  return "\n".join([table(heads, body), *notes])


def reconcile_html(rec: Reconciliation) -> str:
  """The HTML view of :func:`reconcile_table`, and each target's causes as signed bars
  (red: jaxgreen counts fewer than XLA)."""
  from jaxgreen._src import _html

  heads, body, notes = _reconcile_rows(rec)
  parts = [_html.table(heads, body)]
  for r in rec.reports:
    causes = [(c, r.causes.get(c)) for c in CAUSE_ORDER]
    causes = [(c, v) for c, v in causes if v not in (0, None) or c == RESIDUAL]
    scale = max([abs(v) for _, v in causes if v is not None] or [0])
    rows = [[c, _fmt(v), _html.bar(v / scale if v is not None and scale else None)]
            for c, v in causes]
    gap = r.jaxpr.fpo - r.xla.flops * r.devices if r.xla.flops is not None else None
    parts.append(_html.section(
        f"{r.target}: jaxpr FPO - XLA flops = {_fmt(gap)}, by cause",
        _html.table(["cause", "FPO", "share of the largest"], rows, "lrl"),
        open=len(rec.reports) == 1))
  title = "Reconciliation with XLA: " + ", ".join(
      [r.target for r in rec.reports] + [f"{t} (unavailable)" for t in rec.unavailable])
  return _html.fragment(*parts, _html.notes(notes), title=title)


def _reconcile_rows(rec: Reconciliation) -> tuple[list[str], list[list[str]], list[str]]:
  """Headers, rows and notes of the reconciliation's table."""
  rows: list[tuple[str, list[str]]] = []
  reps = rec.reports

  def row(label, vals):
    rows.append((label, [_fmt(v) for v in vals]))

  rows.append(("devices (program / target)",
               [f"{r.devices} / {r.target_devices or r.devices}" for r in reps]))
  row("jaxpr FPO (global)", [r.jaxpr.fpo for r in reps])
  row("lowered FPO (global)", [r.lowered.fpo if r.lowered is not None else None
                               for r in reps])
  row("compiled FPO / device", [r.compiled.fpo for r in reps])
  row("compiled FPO (global)", [r.compiled.fpo * r.devices for r in reps])
  row("XLA flops / device", [r.xla.flops for r in reps])
  row("XLA flops (global)", [r.xla.flops * r.devices if r.xla.flops is not None else None
                             for r in reps])
  row("XLA transcendentals / dev", [r.xla.transcendentals for r in reps])
  row("XLA bytes accessed / dev", [r.xla.bytes_accessed for r in reps])
  if any(r.xla.optimal_seconds is not None for r in reps):
    rows.append(("XLA optimal seconds / dev",
                 [f"{r.xla.optimal_seconds:.3g}" if r.xla.optimal_seconds is not None
                  else "unavailable" for r in reps]))
  rows.append(("XLA cost source", [r.xla.source for r in reps]))
  # jaxgreen's own gaps, per stage: what it could not count is named, never hidden in
  # a cause (the stage differences they touch are filed under "jaxgreen uncounted").
  for stage in STAGES:
    rows.append((f"uncounted by jaxgreen: {stage}",
                 [_uncounted_text(r.uncounted[stage]) for r in reps]))
  rows.append(("jaxpr - XLA (global) =", [""] * len(reps)))
  for cause in CAUSE_ORDER:
    vals = [r.causes.get(cause, 0) for r in reps]
    if cause == RESIDUAL or any(v not in (0, None) for v in vals):
      row(f"  {cause}", vals)
  rows.append(("compile s / walk s", [f"{r.compile_seconds:.2f} / {r.walk_seconds:.3f}"
                                      for r in reps]))
  gone = list(rec.unavailable)
  heads = ["", *(r.target for r in reps), *gone]
  body = [[label, *vals, *(["unavailable"] * len(gone))] for label, vals in rows]
  notes = [f"{spec}: unavailable: {why}" for spec, why in rec.unavailable.items()]
  for r in reps:
    if r.residual not in (0, None):
      ulps = r.residual_ulps
      within = (f" ({ulps:g} float32 steps of XLA's total: its summation order differs "
                f"from the replay)" if ulps is not None and ulps <= 4 else "")
      notes.append(f"{r.target}: {_fmt(r.residual)} flops of XLA's count are not "
                   f"explained{within}")
    for stage, c in (("jaxpr", r.jaxpr), ("lowered", r.lowered), ("compiled", r.compiled)):
      if c is not None and c.inexact:
        notes.append(f"{r.target}: {stage} count not exact: " + "; ".join(c.inexact))
  return heads, body, notes


def _uncounted_text(unc: Mapping[str, int] | None) -> str:
  if unc is None:
    return "not counted"
  if not unc:
    return "none"
  return ", ".join(f"{name} x{n}" for name, n in sorted(unc.items()))


def stage_causes(jaxpr: Cost, lowered: Cost | None, compiled: Cost,
                 devices: int = 1) -> dict[str, float]:
  """The differences between the stages' FPO, filed under named causes.

  ``jaxpr.fpo - compiled.fpo * devices`` is split at the lowered stage into
  ``"jax lowering"`` (jaxpr - lowered) and ``"compiler changes"`` (lowered -
  compiled); without a lowered count it is all ``"compiler changes"``. A difference
  where either side left operations uncounted (and the two sides did not leave out the
  very same ones) is jaxgreen's own gap and goes to ``"jaxgreen uncounted"`` instead.
  The three amounts add up to ``jaxpr.fpo - compiled.fpo * devices``.
  """
  out: dict[str, float] = {UNCOUNTED: 0, LOWERING: 0, COMPILER: 0}
  chain = [(jaxpr.fpo, dict(jaxpr.uncounted))]
  names = []
  if lowered is not None:
    chain.append((lowered.fpo, dict(lowered.uncounted)))
    names.append(LOWERING)
  chain.append((compiled.fpo * devices, dict(compiled.uncounted)))
  names.append(COMPILER)
  for (a, unc_a), (b, unc_b), name in zip(chain[:-1], chain[1:], names, strict=True):
    gap = (unc_a or unc_b) and unc_a != unc_b
    out[UNCOUNTED if gap else name] += a - b
  return out


# -- the entry point -----------------------------------------------------------------

def _lowered_count(lowered: Any, cost_model: CostModel | None, cond: str,
                   kernels: KernelTable | None = None) -> Cost | None:
  try:
    return count_lowered(lowered, cost_model=cost_model, cond=cond, kernels=kernels)
  except Exception as e:  # noqa: BLE001 - an optional stage never breaks the report
    warnings.warn(f"jaxgreen.reconcile: could not count the lowered module ({e})",
                  stacklevel=3)
    return None


def reconcile_target(fn: Callable, target: str | Target, args: Sequence[Any],
                     kwargs: Mapping[str, Any] | None = None, *,
                     static_argnums: int | Sequence[int] = (),
                     cost_model: CostModel | None = None, cond: str = "max",
                     jaxpr_cost: Cost | None = None) -> TargetReport:
  """Compiles ``fn`` for one target and reconciles the counts (see :func:`reconcile`)."""
  t = get_target(target)
  start_devices([t])  # before the jaxpr count starts a backend (GPU targets need that)
  program = Program(fn, args, kwargs, static_argnums=static_argnums, target=t,
                    cost_model=cost_model, cond=cond, caller="reconcile")
  return _reconcile_program(program, cost_model, cond, jaxpr_cost)


def _jaxpr_cost(program: Program, cost_model: CostModel | None, cond: str) -> Cost:
  import jaxgreen._src.api as api

  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    return api.count_program(program, cond=cond, cost_model=cost_model)


def _reconcile_program(program: Program, cost_model: CostModel | None, cond: str,
                       jaxpr_cost: Cost | None = None) -> TargetReport:
  """One target's report from a program on it (its jaxpr counted unless given)."""
  t = program.target
  if jaxpr_cost is None:
    jaxpr_cost = _jaxpr_cost(program, cost_model, cond)
  t0 = time.perf_counter()
  compiled = program.compiled
  t1 = time.perf_counter()
  text = program.compiled_text
  kernels = program.kernels_in(text)
  h: HloCount = count_hlo_text(text, cost_model=cost_model, cond=cond, kernels=kernels)
  t2 = time.perf_counter()
  lowered_cost = _lowered_count(program.lowered, cost_model, cond, kernels)
  xla = xla_cost(compiled)
  devices = executable_devices(compiled)
  causes: dict[str, float | None] = dict(stage_causes(jaxpr_cost, lowered_cost, h.cost,
                                                       devices))
  for name in CAUSES:
    causes[name] = h.causes.get(name, 0) * devices
  causes[LOOPS] = (h.xla_flops_trips - h.xla_flops) * devices
  x32 = h.xla_flops if h.xla_flops_f32 is None else h.xla_flops_f32
  causes[ROUNDING] = (h.xla_flops - x32) * devices
  causes[RESIDUAL] = (x32 - xla.flops) * devices if xla.flops is not None else None
  causes = {k: _clean(v) for k, v in causes.items()}
  return TargetReport(t.spec, devices, jaxpr_cost, lowered_cost, h.cost, xla, h.xla_flops,
                      causes, h.loops, t1 - t0, t2 - t1, t.num_devices)


def _clean(v):
  if isinstance(v, float) and v.is_integer():
    return int(v)
  return v


def reconcile(fn: Callable, *, targets: Sequence[str | Target] = ("cpu",),
              static_argnums: int | Sequence[int] = (), cost_model: CostModel | None = None,
              cond: str = "max",
              progress: Callable[[str, int, int], None] | bool | None = None
              ) -> Callable[..., Reconciliation]:
  """Reconciles jaxgreen's count of ``fn`` with XLA's on each target.

  Nothing is executed: arguments may be arrays or ``jax.ShapeDtypeStruct`` (with a
  sharding over :func:`jaxgreen.targets.mesh` devices for a partitioned program).
  Per-device XLA numbers are scaled by the device count for the global comparison.

  Args:
    fn: the function (plain or ``jax.jit``-ed).
    targets: target strings: ``"cpu"``, ``"tpu:v5e:2x2"``, ``"gpu:h100"``, ...
    static_argnums: positions of static arguments.
    cost_model: prices of non-elementary operations (default ``CostModel()``).
    cond: policy for conditionals, as in :func:`jaxgreen.count`.
    progress: called as ``progress(target, i, n)`` before compiling each target;
      default: a status line on stderr when it is a terminal, nothing otherwise; False:
      nothing.

  Returns:
    A function of ``fn``'s arguments returning a :class:`Reconciliation`. A target that
    cannot be compiled (a missing extra, a slice libtpu rejects, a compiler error) is
    listed in ``Reconciliation.unavailable`` with the reason and the fix, and its column
    reads "unavailable"; the other targets still come back. :class:`TargetError` is
    raised only when no target could be compiled.

  Example (the ``gpu:h100`` target needs the ``[gpu]`` extra)::

    r = jaxgreen.reconcile(step, targets=["cpu", "gpu:h100"])(params, batch)
    r["gpu:h100"].causes["FMA convention"]  # -M*N per dot
  """
  if not callable(fn):
    raise TypeError(f"reconcile(fn=...) must be callable, got {type(fn).__name__}")
  if isinstance(targets, str | Target):
    targets = [targets]
  parsed = [get_target(t) for t in targets]
  if not parsed:
    raise ValueError("reconcile(targets=[]): give at least one target, e.g. ['cpu']")
  static = static_argnums_of(static_argnums, "reconcile")

  @functools.wraps(fn)
  def run(*args, **kwargs) -> Reconciliation:
    start_devices(parsed)
    # One program per target (its arguments placed on the target's devices); the jaxpr,
    # the same on every target, is traced and counted once, from the first.
    programs = {t.spec: Program(fn, args, kwargs, static_argnums=static, target=t,
                                cost_model=cost_model, cond=cond, caller="reconcile")
                for t in parsed}
    jaxpr_cost = _jaxpr_cost(programs[parsed[0].spec], cost_model, cond)
    reports, unavailable = each_target(
        "reconcile", parsed, progress,
        lambda t: _reconcile_program(programs[t.spec], cost_model, cond, jaxpr_cost))
    return Reconciliation(tuple(reports), unavailable)

  return run
