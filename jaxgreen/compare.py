"""One program, several pods: ``jaxgreen.compare(f, targets=[...])(*args)``.

The same function is compiled (nothing runs) for each target, with its inputs sharded
over a mesh built on that target's devices, and reported side by side: the global FPO
(from the jaxpr: the same on every target), the compiled FLOPs, HBM bytes and
collectives per device, redundancy, XLA's memory figures, a roofline estimate of the
step time, and an *estimate* of the energy (TDP x estimated time x devices) and FPO per
joule. Chip figures and their sources: :mod:`jaxgreen.chips`; formulas:
:func:`jaxgreen.chips.roofline` and :mod:`jaxgreen.pods`.

Shardings are given once for all targets:

* ``mesh_axes={"data": -1, "model": 2}``: axis name -> size; one ``-1`` takes the
  devices left over, so the same dict gives a 8x2 mesh on ``tpu:v5e:4x4`` and 4x2 on
  ``gpu:h100x8``. ``mesh_shapes={"gpu:h100x8": (8, 1)}`` overrides a target's shape.
* ``in_specs``: ``PartitionSpec``s for the positional arguments, as a pytree prefix of
  them (as ``shard_map``'s ``in_specs``): ``(param_specs, P("data"))``.
* or ``shard=lambda target, mesh: in_specs`` to choose the specs (or ``Sharding``
  objects) per target.

The function runs under ``jax.set_mesh(mesh)``, so ``with_sharding_constraint`` with
bare ``PartitionSpec``s and ``jax.shard_map`` without ``mesh=`` use each target's mesh.

Example:
  >>> cmp = jaxgreen.compare(train_step, targets=["tpu:v5e:4x4", "gpu:h100x8"],
  ...                        mesh_axes={"data": -1, "model": 2},
  ...                        in_specs=(param_specs, P("data")))(params, batch)
  >>> print(cmp.table())
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import re
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

from jaxgreen.chips import Roofline, get_chip, roofline
from jaxgreen.pods import PodReport, compile_readable, report_compiled

_INSTANCE = re.compile(r" \(instruction [^)]*\)| \([a-z][\w\-]*(?:\.\d+)*\)")

# Metrics a bar plot can show: key -> (label, getter of a TargetResult).
PLOT_METRICS: dict[str, tuple[str, Callable[[Any], float | None]]] = {
    "step_s": ("estimated step time (s)", lambda r: r.roofline.step_s if r.roofline else None),
    "energy_j": ("estimated energy per step (J)", lambda r: r.energy_j),
    "fpo_per_joule": ("FPO per joule (estimate)", lambda r: r.fpo_per_joule),
    "per_device_fpo": ("compiled FPO per device", lambda r: r.pod.per_device.fpo),
    "sent_bytes": ("collective bytes sent per device", lambda r: r.pod.sent_bytes),
}


@dataclasses.dataclass(frozen=True)
class TargetResult:
  """One target of a comparison.

  Attributes:
    target: the target string.
    mesh_shape: axis name -> size of the mesh the inputs were sharded over.
    pod: the :class:`jaxgreen.pods.PodReport` (counts, collectives, memory).
    roofline: the per-device estimate (None for targets without chip figures, e.g. cpu).
    measured_step_s: a measured step time, if one was given (for MFU).
  """

  target: str
  mesh_shape: Mapping[str, int]
  pod: PodReport
  roofline: Roofline | None
  measured_step_s: float | None = None

  @property
  def global_fpo(self):
    return self.pod.logical.fpo

  @property
  def energy_j(self) -> float | None:
    """Estimated energy of one step on all devices: TDP x step time x devices."""
    if self.roofline is None or self.roofline.energy_j is None:
      return None
    return self.roofline.energy_j * self.pod.devices

  @property
  def fpo_per_joule(self) -> float | None:
    """Global FPO / estimated step energy (an estimate)."""
    e = self.energy_j
    return self.global_fpo / e if e else None

  @property
  def mfu(self) -> float | None:
    """Global FPO / (devices x peak x measured step time); None without a measurement."""
    if self.measured_step_s is None or self.roofline is None:
      return None
    from jaxgreen.chips import mfu

    return mfu(self.global_fpo / self.pod.devices, self.measured_step_s, self.roofline.chip,
               self.roofline.dtype)

  def to_dict(self) -> dict[str, Any]:
    return {
        "target": self.target, "mesh": dict(self.mesh_shape), **self.pod.to_dict(),
        "roofline": self.roofline.to_dict() if self.roofline else None,
        "energy_j": self.energy_j, "energy_label": "estimate (TDP x estimated time)",
        "fpo_per_joule": self.fpo_per_joule, "measured_step_s": self.measured_step_s,
        "mfu": self.mfu,
    }


@dataclasses.dataclass(frozen=True)
class Comparison:
  """Results of one program on several targets; index by target string.

  Attributes:
    results: one result per target that could be compiled.
    name: the report's title.
    unavailable: target string -> why it could not be compiled (and the fix).
  """

  results: tuple[TargetResult, ...]
  name: str = ""
  unavailable: Mapping[str, str] = dataclasses.field(default_factory=dict)

  def __getitem__(self, target: str) -> TargetResult:
    from jaxgreen.targets import get_target

    spec = get_target(target).spec
    for r in self.results:
      if r.target == spec:
        return r
    if spec in self.unavailable:
      raise KeyError(f"target {spec!r} is unavailable: {self.unavailable[spec]}")
    raise KeyError(f"no result for target {target!r}; have "
                   f"{', '.join(r.target for r in self.results)}")

  def __iter__(self):
    return iter(self.results)

  def __len__(self) -> int:
    return len(self.results)

  @property
  def same_global_fpo(self) -> bool:
    """True when every target counted the same global FPO (as it should)."""
    return len({r.global_fpo for r in self.results}) <= 1

  def rows(self) -> list[tuple[str, list[str]]]:
    """(label, one cell per target) for the tables; "unavailable" for targets that
    could not be compiled (their reasons are in :meth:`notes`)."""
    gone = ["unavailable"] * len(self.unavailable)
    return [(label, [*cells, *gone]) for label, cells in _rows(self.results)]

  def _heads(self) -> list[str]:
    return ["", *(r.target for r in self.results), *self.unavailable]

  def table(self) -> str:
    """The side-by-side plain-text report: one column per target."""
    from jaxgreen.report import table

    heads = self._heads()
    body = [[label, *cells] for label, cells in self.rows()]
    return "\n".join([table(heads, body), *self.notes()])

  def markdown(self) -> str:
    from jaxgreen.report import markdown_table

    heads = self._heads()
    body = [[label.strip() or " ", *cells] for label, cells in self.rows()]
    notes = [f"- {n}" for n in self.notes()]
    return "\n".join([markdown_table(heads, body), "", *notes]).rstrip()

  def notes(self) -> list[str]:
    out = ["Times and energies are roofline estimates from published chip figures "
           "(jaxgreen.chips), not measurements."]
    if not self.same_global_fpo:
      out.append("WARNING: the global FPO differs between targets: the jaxpr depends on "
                 "the target (e.g. a shard_map over a different mesh).")
    out += [f"{spec}: unavailable: {why}" for spec, why in self.unavailable.items()]
    for r in self.results:
      for n in (r.roofline.notes if r.roofline else ()):
        out.append(f"{r.target}: {n}")
      # One line per kind of caveat: instruction names would repeat it per instance.
      seen: dict[str, int] = {}
      for n in r.pod.notes:
        key = _INSTANCE.sub("", n)
        seen[key] = seen.get(key, 0) + 1
      out += [f"{r.target}: {k}" + (f" ({c} instructions)" if c > 1 else "")
              for k, c in seen.items()]
    return list(dict.fromkeys(out))

  def to_dict(self) -> dict[str, Any]:
    return {"name": self.name, "same_global_fpo": self.same_global_fpo,
            "targets": [r.to_dict() for r in self.results],
            "unavailable": dict(self.unavailable), "notes": self.notes()}

  def to_json(self, **kw) -> str:
    return json.dumps(self.to_dict(), default=_json_default, **kw)

  def plot(self, path: str | None = None, metrics: Sequence[str] = ("step_s", "energy_j",
                                                                    "fpo_per_joule")):
    """A bar chart, one panel per metric, one bar per target (needs the ``[plot]`` extra).

    Args:
      path: where to save the figure (PNG, SVG, PDF by extension); None: only return it.
      metrics: keys of :data:`PLOT_METRICS`.

    Returns:
      The matplotlib ``Figure``.
    """
    bad = [m for m in metrics if m not in PLOT_METRICS]
    if bad:
      raise ValueError(f"plot(metrics={list(metrics)!r}): unknown {bad}; use "
                       f"{', '.join(PLOT_METRICS)}")
    try:
      import matplotlib

      if path is not None:
        matplotlib.use("Agg", force=False)
      import matplotlib.pyplot as plt
    except ImportError:
      raise ImportError("Comparison.plot needs matplotlib: pip install 'jaxgreen[plot]'"
                        ) from None
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.4), squeeze=False)
    names = [r.target for r in self.results]
    for ax, key in zip(axes[0], metrics, strict=True):
      label, get = PLOT_METRICS[key]
      vals = [get(r) for r in self.results]
      ax.bar(names, [v if v is not None else 0 for v in vals], color="#4c956c")
      for i, v in enumerate(vals):
        if v is None:
          ax.text(i, 0, "unavailable", ha="center", va="bottom", fontsize=8, rotation=90)
      ax.set_title(label, fontsize=9)
      ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    title = f"{self.name}: " if self.name else ""
    fig.suptitle(f"{title}global FPO {self.results[0].global_fpo:,} (estimates)", fontsize=9)
    fig.tight_layout()
    if path is not None:
      fig.savefig(path, dpi=120)
    return fig


# -- formatting ---------------------------------------------------------------------------

def _num(v: float | None, unit: str = "") -> str:
  if v is None:
    return "unavailable"
  from jaxgreen.report import human

  return human(v, unit) if abs(v) >= 1000 else (f"{v:.3g} {unit}".rstrip())


def _sec(v: float | None) -> str:
  if v is None:
    return "unavailable"
  for scale, u in ((1, "s"), (1e-3, "ms"), (1e-6, "us")):
    if v >= scale:
      return f"{v / scale:.3g} {u}"
  return f"{v / 1e-9:.3g} ns"


def _rows(results: Sequence[TargetResult]) -> list[tuple[str, list[str]]]:
  from jaxgreen.pods import KINDS

  rows: list[tuple[str, list[str]]] = []

  def row(label: str, f: Callable[[TargetResult], str]) -> None:
    rows.append((label, [f(r) for r in results]))

  row("chip", lambda r: r.roofline.chip if r.roofline else "no figures")
  row("devices (mesh)", lambda r: f"{r.pod.devices} ("
      + " x ".join(f"{k}={v}" for k, v in r.mesh_shape.items()) + ")")
  row("global FPO (jaxpr)", lambda r: f"{r.global_fpo:,}")
  row("compiled FPO / device", lambda r: f"{r.pod.per_device.fpo:,}")
  row("compiled FPO x devices", lambda r: f"{r.pod.compiled_global_fpo:,}")
  row("redundancy", lambda r: "unavailable" if r.pod.redundancy is None
      else f"{r.pod.redundancy:.3f}")
  row("HBM bytes / device", lambda r: _num(r.pod.hbm_bytes, "B"))
  row("XLA bytes accessed / dev", lambda r: _num(getattr(r.pod.xla, "bytes_accessed", None),
                                                 "B"))
  row("peak memory / device", lambda r: _num(r.pod.memory.peak_bytes, "B"))
  for kind in KINDS:
    if any(kind in r.pod.collectives for r in results):
      def cell(r, kind=kind):
        c = r.pod.collectives.get(kind)
        return "-" if c is None else f"{c.count:g} x, {_num(c.sent_bytes, 'B')} sent"
      row(f"  {kind}", cell)
  row("collective bytes sent / dev", lambda r: _num(r.pod.sent_bytes, "B"))
  row("matmul dtype (peak used)", lambda r: r.roofline.dtype if r.roofline else r.pod.dtype)
  row("arithmetic intensity", lambda r: "unavailable" if not r.roofline
      or r.roofline.intensity is None else f"{r.roofline.intensity:.1f} FLOP/B")
  row("compute time (est.)", lambda r: _sec(r.roofline.compute_s if r.roofline else None))
  row("memory time (est.)", lambda r: _sec(r.roofline.memory_s if r.roofline else None))
  row("collective time (est.)", lambda r: _sec(r.roofline.collective_s if r.roofline
                                                else None))
  row("step time (est.)", lambda r: _sec(r.roofline.step_s if r.roofline else None)
      + (f", {r.roofline.bound}-bound" if r.roofline and r.roofline.step_s else ""))
  row("XLA optimal_seconds", lambda r: _sec(getattr(r.pod.xla, "optimal_seconds", None)))
  row("energy / step (estimate)", lambda r: _num(r.energy_j, "J"))
  row("FPO per joule (estimate)", lambda r: _num(r.fpo_per_joule))
  if any(r.measured_step_s is not None for r in results):
    row("measured step", lambda r: _sec(r.measured_step_s))
    row("MFU", lambda r: "unavailable" if r.mfu is None else f"{100 * r.mfu:.1f}%")
  row("count s / compile s", lambda r: f"{r.pod.count_s:.2f} / {r.pod.compile_s:.2f}")
  return rows


def _json_default(o: Any):
  if isinstance(o, float) and not math.isfinite(o):
    return None
  if dataclasses.is_dataclass(o):
    return dataclasses.asdict(o)
  return str(o)


# -- sharding ----------------------------------------------------------------------------

def mesh_shape_for(n_devices: int, mesh_axes: Mapping[str, int] | Sequence[str] | None,
                   override: Sequence[int] | None = None) -> dict[str, int]:
  """Axis name -> size for ``n_devices``: one ``-1`` size takes the devices left over.

  Args:
    n_devices: devices of the target.
    mesh_axes: ``{"data": -1, "model": 2}``; a sequence of names puts every device on
      the first axis; None gives ``{"x": n_devices}``.
    override: explicit sizes, one per axis.

  Example:
    >>> mesh_shape_for(16, {"data": -1, "model": 2})  # 16 / 2 = 8 left for "data"
    {'data': 8, 'model': 2}
  """
  if mesh_axes is None:
    axes: dict[str, int] = {"x": -1}
  elif isinstance(mesh_axes, Mapping):
    axes = dict(mesh_axes)
  elif isinstance(mesh_axes, str):
    axes = {mesh_axes: -1}
  else:
    names = list(mesh_axes)
    axes = {n: (-1 if i == 0 else 1) for i, n in enumerate(names)}
  if override is not None:
    if len(override) != len(axes):
      raise ValueError(f"mesh_shapes entry {tuple(override)} has {len(override)} sizes for "
                       f"{len(axes)} axes {list(axes)}")
    axes = dict(zip(axes, (int(s) for s in override), strict=True))
  free = [k for k, v in axes.items() if v == -1]
  if len(free) > 1 or any(v == 0 or v < -1 for v in axes.values()):
    raise ValueError(f"mesh_axes={axes}: sizes must be >= 1, with at most one -1 (the "
                     f"devices left over), e.g. {{'data': -1, 'model': 2}}")
  fixed = math.prod(v for v in axes.values() if v != -1)
  if free:
    if n_devices % fixed:
      raise ValueError(f"mesh_axes={axes}: {n_devices} devices are not divisible by "
                       f"{fixed}; choose sizes that divide the device count")
    axes[free[0]] = n_devices // fixed
  if math.prod(axes.values()) != n_devices:
    raise ValueError(f"mesh_axes={axes}: the sizes multiply to {math.prod(axes.values())}, "
                     f"but the target has {n_devices} devices; use -1 for one axis")
  return axes


def _is_spec(x: Any) -> bool:
  from jax.sharding import PartitionSpec, Sharding

  return x is None or isinstance(x, PartitionSpec | Sharding)


def place(args: Sequence[Any], specs: Any, mesh: Any) -> list[Any]:
  """``args`` as ShapeDtypeStructs sharded by ``specs`` (a pytree prefix) over ``mesh``.

  A ``PartitionSpec`` leaf of ``specs`` applies to every array of the matching subtree of
  ``args``; ``None`` replicates; a ``Sharding`` is used as is.
  """
  import jax
  from jax.sharding import NamedSharding, PartitionSpec

  args = list(args)
  if specs is None:
    specs = [PartitionSpec()] * len(args)
  specs = list(specs) if isinstance(specs, list | tuple) else [specs]
  if len(specs) != len(args):
    raise ValueError(f"in_specs has {len(specs)} entries for {len(args)} positional "
                     f"arguments; give one PartitionSpec (or pytree of them) per argument")

  def sharding(spec):
    if spec is None:
      return NamedSharding(mesh, PartitionSpec())
    if isinstance(spec, PartitionSpec):
      return NamedSharding(mesh, spec)
    return spec

  out = []
  for i, (arg, spec) in enumerate(zip(args, specs, strict=True)):
    def one(s, sub, i=i):
      sh = sharding(s)
      return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sh)
                          if hasattr(x, "shape") and hasattr(x, "dtype") else x, sub)
    try:
      out.append(jax.tree.map(one, spec, arg, is_leaf=_is_spec))
    except ValueError as e:
      raise ValueError(f"in_specs[{i}] is not a pytree prefix of argument {i}: {e}") from None
  return out


# -- the entry point -------------------------------------------------------------------

def compare(fn: Callable, targets: Sequence[Any] = ("tpu:v5e:2x2", "gpu:h100x4"), *,
            mesh_axes: Mapping[str, int] | Sequence[str] | None = None,
            in_specs: Any = None,
            shard: Callable[[Any, Any], Any] | None = None,
            mesh_shapes: Mapping[str, Sequence[int]] | None = None,
            static_argnums: int | Sequence[int] = (),
            measured_step_s: Mapping[str, float] | None = None,
            dtype: str | None = None, name: str = "",
            progress: Callable[[str, int, int], None] | bool | None = None
            ) -> Callable[..., Comparison]:
  """Compiles ``fn`` for each target, its inputs sharded alike, and compares the pods.

  Args:
    fn: the function (e.g. a train step); plain or ``jax.jit``-ed.
    targets: target strings, e.g. ``["tpu:v5e:4x4", "gpu:h100x8"]``.
    mesh_axes: mesh axis name -> size, one of them ``-1`` (see :func:`mesh_shape_for`).
    in_specs: ``PartitionSpec`` pytree prefix of the positional arguments; None
      replicates every argument (the redundancy row then shows the replicated work).
    shard: ``shard(target, mesh) -> in_specs`` per target, instead of ``in_specs``.
    mesh_shapes: target string -> explicit mesh sizes, overriding ``mesh_axes`` sizes.
    static_argnums: positions of static arguments (passed through, never sharded).
    measured_step_s: target string -> a measured step time, for MFU.
    dtype: the dtype whose peak FLOP/s the roofline uses; default: that of most
      matmul work in the compiled program.
    name: a title for the report.
    progress: called as ``progress(target, i, n)`` before each target; default: a
      status line on stderr when it is a terminal (the target being compiled, the time
      of each one done), nothing otherwise; False: nothing.

  Returns:
    A function of ``fn``'s arguments (arrays or ``jax.ShapeDtypeStruct``) returning a
    :class:`Comparison`. A target that cannot be compiled is listed in
    ``Comparison.unavailable`` with the reason and the fix; :class:`TargetError` is
    raised only when no target could be compiled.
  """
  from jaxgreen.targets import each_target, get_target, start_devices

  if not callable(fn):
    raise TypeError(f"compare(fn=...) must be callable, got {type(fn).__name__}")
  if isinstance(targets, str):
    targets = [targets]
  parsed = [get_target(t) for t in targets]  # bad target strings fail before any work
  if not parsed:
    raise ValueError("compare(targets=[]): give at least one target, e.g. "
                     "['tpu:v5e:4x4', 'gpu:h100x8']")
  if in_specs is not None and shard is not None:
    raise ValueError("compare(in_specs=..., shard=...): give one of them, not both")
  if isinstance(static_argnums, int):
    static_argnums = (static_argnums,)
  static = tuple(static_argnums)
  shapes = _per_target("mesh_shapes", mesh_shapes, parsed)
  measured = _per_target("measured_step_s", measured_step_s, parsed)
  for k, v in measured.items():
    if not isinstance(v, int | float) or not v > 0 or not math.isfinite(v):
      raise ValueError(f"compare(measured_step_s={{{k!r}: {v!r}}}): give a positive step "
                       f"time in seconds")

  def run(*args) -> Comparison:
    start_devices(parsed)
    results, unavailable = each_target(
        "compare", parsed, progress,
        lambda t: _one(fn, t, args, static, mesh_axes, in_specs, shard, shapes.get(t.spec),
                       measured.get(t.spec), dtype))
    return Comparison(tuple(results), name or getattr(fn, "__name__", ""), unavailable)

  return run


def _per_target(arg: str, given: Mapping[str, Any] | None, parsed: Sequence[Any]
                ) -> dict[str, Any]:
  """``given`` keyed by normalised target strings; a key that is not compared is an error."""
  from jaxgreen.targets import get_target

  specs = [t.spec for t in parsed]
  out = {}
  for k, v in (given or {}).items():
    spec = get_target(k).spec
    if spec not in specs:
      raise ValueError(f"compare({arg}={{{k!r}: ...}}): {k!r} is not one of the targets "
                       f"compared ({', '.join(specs)})")
    out[spec] = v
  return out


def _one(fn, t, args, static, mesh_axes, in_specs, shard, shape, measured, dtype
         ) -> TargetResult:
  import jax

  import jaxgreen.api as api

  try:
    axes = mesh_shape_for(t.num_devices, mesh_axes, shape)
  except ValueError as e:
    raise ValueError(f"compare: target {t.spec!r} ({t.num_devices} devices): {e}") from None
  mesh = t.mesh(tuple(axes.values()), tuple(axes))
  specs = shard(t, mesh) if shard is not None else in_specs
  dyn = [i for i in range(len(args)) if i not in static]
  placed = list(args)
  for i, a in zip(dyn, place([args[i] for i in dyn], _select(specs, dyn, len(args)), mesh),
                  strict=True):
    placed[i] = a
  ctx = jax.set_mesh(mesh) if hasattr(jax, "set_mesh") else contextlib.nullcontext()
  with ctx:
    t0 = time.perf_counter()
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      logical = api.count(fn, static_argnums=static)(*placed)
    t1 = time.perf_counter()
    compiled, text, notes = compile_readable(t, fn, *placed, static_argnums=static)
    t2 = time.perf_counter()
  pod = report_compiled(compiled, t.spec, logical, compile_s=t2 - t1, count_s=t1 - t0,
                        text=text, notes=notes)
  roof = None
  try:
    chip = get_chip(t)
  except KeyError:
    chip = None
  if chip is not None:
    xla_bytes = getattr(pod.xla, "bytes_accessed", None)
    hbm = pod.hbm_bytes if pod.hbm_bytes else xla_bytes
    roof = roofline(chip, flops=pod.per_device.fpo, hbm_bytes=hbm,
                    collective_bytes=pod.sent_bytes, dtype=dtype or pod.dtype)
  return TargetResult(t.spec, axes, pod, roof, measured)


def _select(specs: Any, dyn: Sequence[int], n: int) -> Any:
  """The specs of the non-static arguments (specs may be given for all n or for those)."""
  if specs is None or not isinstance(specs, list | tuple) or len(specs) == len(dyn):
    return specs
  if len(specs) == n:
    return [specs[i] for i in dyn]
  return specs


# -- command line ------------------------------------------------------------------------

def parse_mesh_axes(text: str) -> dict[str, int]:
  """``"data=-1,model=2"`` -> ``{"data": -1, "model": 2}`` (for ``--mesh``)."""
  out: dict[str, int] = {}
  for part in filter(None, (p.strip() for p in text.split(","))):
    name, eq, size = part.partition("=")
    try:
      out[name.strip()] = int(size) if eq else -1
    except ValueError:
      raise ValueError(f"--mesh {text!r}: write NAME=SIZE pairs, e.g. data=-1,model=2 "
                       f"(-1: the devices left over)") from None
  if not out:
    raise ValueError(f"--mesh {text!r}: write NAME=SIZE pairs, e.g. data=-1,model=2")
  return out


def parse_partition_spec(text: str):
  """``"data,None"`` -> ``P("data", None)``; ``"(data,model),None"`` shards one dim twice;
  ``""`` or ``"replicated"`` -> ``P()`` (for ``--in-spec``, one per argument)."""
  from jax.sharding import PartitionSpec

  s = text.strip()
  if s in ("", "replicated", "P()"):
    return PartitionSpec()
  dims: list[Any] = []
  depth, cur = 0, ""
  for ch in s + ",":
    if ch == "(":
      depth += 1
    elif ch == ")":
      depth -= 1
    if ch == "," and depth == 0:
      tok = cur.strip()
      if tok.startswith("("):
        dims.append(tuple(x.strip() for x in tok.strip("()").split(",") if x.strip()))
      else:
        dims.append(None if tok in ("None", "none", "") else tok)
      cur = ""
    else:
      cur += ch
  if depth != 0:
    raise ValueError(f"--in-spec {text!r}: unbalanced parentheses; e.g. (data,model),None")
  return PartitionSpec(*dims)


@dataclasses.dataclass(frozen=True)
class Setup:
  """Everything :func:`compare` needs, returned by a ``setup()`` function for the CLI.

  Attributes:
    fn: the function to compare.
    args: its positional arguments (ShapeDtypeStructs are enough).
    in_specs: PartitionSpec pytree prefix of ``args``.
    mesh_axes: mesh axis name -> size (one ``-1``).
    name: a title.
  """

  fn: Callable
  args: tuple
  in_specs: Any = None
  mesh_axes: Mapping[str, int] | None = None
  name: str = ""


def print_report(cmp: Comparison, *, fmt: str = "table", plot: str | None = None,
                 file: IO[str] | None = None) -> None:
  """Prints a :class:`Comparison` as ``"table"``, ``"markdown"`` or ``"json"``.

  Args:
    cmp: the comparison.
    fmt: output format.
    plot: also save a bar plot to this path (needs the ``[plot]`` extra).
    file: where to print (default stdout).
  """
  out = file or sys.stdout
  if fmt == "json":
    out.write(cmp.to_json(indent=2) + "\n")
  elif fmt == "markdown":
    out.write(cmp.markdown() + "\n")
  elif fmt == "table":
    if cmp.name:
      out.write(f"{cmp.name}\n\n")
    out.write(cmp.table() + "\n")
  else:
    raise ValueError(f"print_report(fmt={fmt!r}): use 'table', 'markdown' or 'json'")
  if plot:
    cmp.plot(plot)
    if fmt != "json":
      out.write(f"plot saved to {plot}\n")


def run_cli(function: str, *, targets: Sequence[str], arg_specs: Sequence[str] = (),
            mesh: str | None = None, in_specs: Sequence[str] = (), fmt: str = "table",
            plot: str | None = None, setup: bool = False,
            progress: Callable[[str, int, int], None] | None = None,
            file: IO[str] | None = None) -> int:
  """The pod report for ``jaxgreen compare --report``: load, compare, print.

  Args:
    function: ``MODULE:FUNCTION``; with ``setup=True`` a function returning a
      :class:`Setup` (e.g. ``examples/sharded_transformer.py:setup``).
    targets: target strings.
    arg_specs: ``--arg`` shape specs (``f32[8,128]``), when not ``setup``.
    mesh: ``--mesh`` text, e.g. ``"data=-1,model=2"`` (overrides the setup's axes).
    in_specs: ``--in-spec`` texts, one per argument (override the setup's specs).
    fmt: ``"table"``, ``"markdown"`` or ``"json"``.
    plot: path of a bar plot to save.
    progress: ``progress(target, i, n)`` before each target.
    file: where to print.

  Returns:
    The exit status (0).
  """
  from jaxgreen.cli.common import load_function, parse_shape_spec

  obj = load_function(function)
  if setup:
    s = obj()
    if not isinstance(s, Setup):
      raise TypeError(f"{function!r} returned {type(s).__name__}; a setup function must "
                      f"return jaxgreen.compare.Setup(fn, args, in_specs, mesh_axes)")
    fn, args, specs, axes, name = s.fn, tuple(s.args), s.in_specs, s.mesh_axes, s.name
  else:
    fn, args, specs, axes, name = obj, tuple(parse_shape_spec(a) for a in arg_specs), None, \
        None, function
  if mesh:
    axes = parse_mesh_axes(mesh)
  if in_specs:
    specs = tuple(parse_partition_spec(s) for s in in_specs)
  cmp = compare(fn, list(targets), mesh_axes=axes, in_specs=specs, name=name,
                progress=progress)(*args)
  print_report(cmp, fmt=fmt, plot=plot, file=file)
  return 0
