"""One set of shardings for every target: mesh shapes from axis sizes, placed arguments.

Example:
  >>> mesh_shape_for(16, {"data": -1, "model": 2})  # 16 / 2 = 8 left for "data"
  {'data': 8, 'model': 2}
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any


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


def select_specs(specs: Any, dyn: Sequence[int], n: int) -> Any:
  """The specs of the non-static arguments (specs may be given for all n or for those)."""
  if specs is None or not isinstance(specs, list | tuple) or len(specs) == len(dyn):
    return specs
  if len(specs) == n:
    return [specs[i] for i in dyn]
  return specs
