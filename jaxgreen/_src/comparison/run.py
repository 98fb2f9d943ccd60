"""One program, several pods: ``jaxgreen.compare(f, targets=[...])(*args)``.

The same function is compiled (nothing runs) for each target, with its inputs sharded
over a mesh built on that target's devices, and reported side by side: the global FPO
(from the jaxpr: the same on every target), the compiled FLOPs, HBM bytes and
collectives per device, redundancy, XLA's memory figures, a roofline estimate of the
step time, and an *estimate* of the energy (TDP x estimated time x devices) and FPO per
joule. Chip figures and their sources: :mod:`jaxgreen.chips`; formulas:
:func:`jaxgreen.chips.roofline` and :mod:`jaxgreen._src.pods`.

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
  >>> import jax, jax.numpy as jnp
  >>> x = jax.ShapeDtypeStruct((8, 8), jnp.float32)
  >>> cmp = compare(lambda a: a @ a, ["cpu"], progress=False)(x)
  >>> cmp["cpu"].global_fpo  # 8*8*8 MUL + 8*8*7 ADD
  960

Sharded over TPU and GPU pods (needs the ``[tpu]`` and ``[gpu]`` extras)::

  cmp = jaxgreen.compare(train_step, targets=["tpu:v5e:4x4", "gpu:h100x8"],
                         mesh_axes={"data": -1, "model": 2},
                         in_specs=(param_specs, P("data")))(params, batch)
  print(cmp.table())
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from jaxgreen._src.comparison.results import Comparison, TargetResult
from jaxgreen._src.comparison.sharding import mesh_shape_for, place, select_specs
from jaxgreen._src.devices import start_devices
from jaxgreen._src.pods import report_program
from jaxgreen._src.program import Program, static_argnums_of
from jaxgreen._src.progress import each_target
from jaxgreen.chips import get_chip, roofline
from jaxgreen.targets import Target, get_target


@dataclasses.dataclass(frozen=True)
class Setup:
  """Everything :func:`compare` needs, as a ``setup()`` function returns it.

  ``jaxgreen compare --report --setup MODULE:FUNCTION`` calls such a function; reach
  the class as ``jaxgreen.Setup``.

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


def compare(fn: Callable, targets: Sequence[Any] = ("tpu:v5e:2x2", "gpu:h100x4"), *,
            mesh_axes: Mapping[str, int] | Sequence[str] | None = None,
            in_specs: Any = None,
            shard: Callable[[Any, Any], Any] | None = None,
            mesh_shapes: Mapping[str, Sequence[int]] | None = None,
            static_argnums: int | Sequence[int] = (),
            measured_step_s: Mapping[str, float] | None = None,
            dtype: str | None = None, name: str = "",
            progress: Callable[[str, int, int], None] | bool | None = None,
            by_module: bool = False, max_depth: int | None = None
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
    by_module: also split each target's figures by module path (from the compiled
      HLO's ``op_name`` metadata): :meth:`Comparison.modules` gives the table, and the
      reports print it after the totals (:mod:`jaxgreen._src.comparison.modules`).
    max_depth: with ``by_module``, aggregate module paths to this many segments
      (None: full paths); :meth:`Comparison.modules` may choose another.

  Returns:
    A function of ``fn``'s arguments (arrays or ``jax.ShapeDtypeStruct``) returning a
    :class:`Comparison`. A target that cannot be compiled is listed in
    ``Comparison.unavailable`` with the reason and the fix; :class:`TargetError` is
    raised only when no target could be compiled.
  """
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
  if max_depth is not None and (isinstance(max_depth, bool) or not isinstance(max_depth, int)
                                or max_depth < 1):
    raise ValueError(f"compare(max_depth={max_depth!r}): give None (full module paths) or "
                     f"an int >= 1, with by_module=True")
  measured = _per_target("measured_step_s", measured_step_s, parsed)
  for k, v in measured.items():
    if not isinstance(v, int | float) or not v > 0 or not math.isfinite(v):
      raise ValueError(f"compare(measured_step_s={{{k!r}: {v!r}}}): give a positive step "
                       f"time in seconds")
  opts = _Options(static_argnums=static_argnums_of(static_argnums, "compare"),
                  mesh_axes=mesh_axes, in_specs=in_specs, shard=shard,
                  mesh_shapes=_per_target("mesh_shapes", mesh_shapes, parsed),
                  measured_step_s=measured, dtype=dtype, by_module=bool(by_module))

  def run(*args) -> Comparison:
    start_devices(parsed)
    results, unavailable = each_target("compare", parsed, progress,
                                       lambda t: _one(fn, t, tuple(args), opts))
    return Comparison(tuple(results), name or getattr(fn, "__name__", ""), unavailable,
                      max_depth=max_depth, by_module=bool(by_module))

  return run


def _per_target(arg: str, given: Mapping[str, Any] | None, parsed: Sequence[Any]
                ) -> dict[str, Any]:
  """``given`` keyed by normalised target strings; a key that is not compared is an error."""
  specs = [t.spec for t in parsed]
  out = {}
  for k, v in (given or {}).items():
    spec = get_target(k).spec
    if spec not in specs:
      raise ValueError(f"compare({arg}={{{k!r}: ...}}): {k!r} is not one of the targets "
                       f"compared ({', '.join(specs)})")
    out[spec] = v
  return out


@dataclasses.dataclass(frozen=True)
class _Options:
  """What :func:`compare` was given, the same for every target (see its arguments)."""

  static_argnums: tuple[int, ...]
  mesh_axes: Mapping[str, int] | Sequence[str] | None
  in_specs: Any
  shard: Callable[[Any, Any], Any] | None
  mesh_shapes: Mapping[str, Sequence[int]]  # by target string
  measured_step_s: Mapping[str, float]  # by target string
  dtype: str | None
  by_module: bool


def _one(fn: Callable, t: Target, args: tuple, opts: _Options) -> TargetResult:
  """``fn`` compiled for one target, its arguments placed on a mesh of its devices."""
  import jax

  try:
    axes = mesh_shape_for(t.num_devices, opts.mesh_axes, opts.mesh_shapes.get(t.spec))
  except ValueError as e:
    raise ValueError(f"compare: target {t.spec!r} ({t.num_devices} devices): {e}") from None
  mesh = t.mesh(tuple(axes.values()), tuple(axes))
  specs = opts.shard(t, mesh) if opts.shard is not None else opts.in_specs
  static = opts.static_argnums
  dyn = [i for i in range(len(args)) if i not in static]
  placed = list(args)
  for i, a in zip(dyn, place([args[i] for i in dyn], select_specs(specs, dyn, len(args)), mesh),
                  strict=True):
    placed[i] = a
  # Equinox modules and other non-array leaves: arrays traced, the rest fixed (Program).
  program = Program(fn, placed, static_argnums=static, target=t, caller="compare")
  ctx = jax.set_mesh(mesh) if hasattr(jax, "set_mesh") else contextlib.nullcontext()
  with ctx:
    pod = report_program(program, by_module=opts.by_module)
  dtype = opts.dtype
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
  return TargetResult(t.spec, axes, pod, roof, opts.measured_step_s.get(t.spec))
